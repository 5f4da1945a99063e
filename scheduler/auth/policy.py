"""Who may do what: the auth file, path patterns, roles, and the authorization decision.

Pure: `parse_auth_file(text)` turns the TOML of an auth file into an `AuthConfig` (or raises
`AuthFileError` naming the field and the fix), and `authorize(principal, requirement)` answers
whether a request may go on. Nothing here reads a file, a clock or a socket: the middleware
does, and hands the results in.

The auth file (TOML, so operators can comment it)::

    [users.alice]
    password = "scrypt$16384$8$1$…"          # `pacer auth hash-password`
    roles = ["admin on /**"]

    [users.team-a]
    tokens = ["sha256$…"]                    # `pacer auth new-token` prints a token and this
    roles = ["deployer on /team-a/**", "viewer on /shared/**"]

    [users.carol]
    password = "scrypt$…"
    roles = ["viewer on /**", "approver on /prod/**"]

    [[approval]]                             # changes beneath these paths wait for an approval
    paths = ["/prod/**"]
    expiry = "24h"                           # optional: s, m, h or d; 24h when left out

A role is granted on a path pattern over app ids: ``/team-a/**`` is everything beneath
``/team-a``, ``*`` is one id segment (``/team-*/web``), a plain path is that app. Roles nest:
``admin`` ⊃ ``deployer`` ⊃ ``viewer`` and ``admin`` ⊃ ``approver`` ⊃ ``viewer``; a deployer
is not an approver (nor the other way round), so the two halves of a four-eyes release are
granted apart, and an admin may do either. "Global" permissions (abdicating the leadership,
the audit log) are the role on ``/`` itself, which only ``/**`` (or ``/``) covers.

Approval gates (``[[approval]]``): a deployment of an app that one of the ``paths`` patterns
matches is held as ``awaiting approval`` until a user other than its author, holding
``approver`` on every app it changes, approves it (``POST /v2/deployments/{id}/approve``);
it ends unstarted when rejected or when ``expiry`` passes. Several rules matching one change
ask for one approval, with the shortest expiry. `approval_need` decides this, purely.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from scheduler.auth.passwords import HashFormatError, check_token_hash, parse_password_hash

Role = Literal["viewer", "deployer", "approver", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "deployer", "approver", "admin")
_IMPLIES: dict[str, frozenset[str]] = {
    "viewer": frozenset({"viewer"}),
    "deployer": frozenset({"viewer", "deployer"}),
    "approver": frozenset({"viewer", "approver"}),
    "admin": frozenset(ROLES),
}
"""The roles each role includes (itself too)."""
DEFAULT_APPROVAL_EXPIRY = 24 * 3600.0
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_SEGMENT = re.compile(r"^[a-z0-9*?.\[\]!-]+$")
_USER_KEYS = frozenset({"password", "tokens", "roles"})


class AuthFileError(ValueError):
    """The auth file (or `--http-credentials`) is wrong; the message names the field and the fix."""


@dataclass(frozen=True)
class Grant:
    """``role`` on every app id ``pattern`` matches."""

    role: Role
    pattern: str

    def __str__(self) -> str:
        return f"{self.role} on {self.pattern}"


@dataclass(frozen=True)
class User:
    """One principal: how it proves who it is (a password hash, token hashes) and its grants."""

    name: str
    password_hash: str | None = None
    token_hashes: tuple[str, ...] = ()
    grants: tuple[Grant, ...] = ()


@dataclass(frozen=True)
class ApprovalRule:
    """Changes to apps that one of ``paths`` matches wait for an approval, at most ``expiry_seconds``."""

    paths: tuple[str, ...]
    expiry_seconds: float = DEFAULT_APPROVAL_EXPIRY


@dataclass(frozen=True)
class AuthConfig:
    """Every user, by name, and the approval gates. No users means authentication is off."""

    users: Mapping[str, User] = field(default_factory=dict)
    approvals: tuple[ApprovalRule, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.users)


# ---------------------------------------------------------------------------------------------
# path patterns


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


class _Fresh:
    """A child segment nobody named: only ``*``-only segments and ``**`` match it."""


_FRESH = _Fresh()


def _segment_matches(pattern: str, segment: str | _Fresh) -> bool:
    if isinstance(segment, _Fresh):
        return set(pattern) == {"*"}
    return fnmatch.fnmatchcase(segment, pattern)


def _match(pattern: list[str], path: list[str | _Fresh]) -> bool:
    """Segment-wise glob: ``**`` is any number of segments (none included)."""
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match(rest, path[i:]) for i in range(len(path) + 1))
    return bool(path) and _segment_matches(head, path[0]) and _match(rest, path[1:])


def pattern_matches(pattern: str, path: str) -> bool:
    """Whether the path pattern matches the (canonical) id ``path``; ``/`` is the root."""
    return _match(_segments(pattern), list(_segments(path)))


def pattern_covers(pattern: str, group: str) -> bool:
    """Whether ``pattern`` matches every id strictly beneath ``group``, whatever its name and
    depth: what a whole-group write needs (it may create or remove any app under the group).

    Checked with children nobody can name (`_FRESH`) one and two levels down: a pattern
    matching both has a ``**`` in its tail and so matches any depth below.
    """
    base: list[str | _Fresh] = list(_segments(group))
    pat = _segments(pattern)
    return _match(pat, base + [_FRESH]) and _match(pat, base + [_FRESH, _FRESH])


def check_pattern(pattern: str) -> str | None:
    """Why ``pattern`` is not a valid path pattern, or None."""
    if not pattern.startswith("/"):
        return f"'{pattern}' must start with '/' (e.g. /team-a/**)"
    for segment in _segments(pattern):
        if "**" in segment and segment != "**":
            return f"'{pattern}': '**' must be a whole segment (/team-a/**, not /team-a**)"
        if segment != "**" and not _SEGMENT.match(segment):
            return f"'{pattern}': segment '{segment}' may hold lowercase letters, digits, '-', '.' and * ? [ ]"
    return None


# ---------------------------------------------------------------------------------------------
# the auth file


def parse_grant(text: str, where: str) -> Grant:
    """``"deployer on /team-a/**"`` -> Grant; `AuthFileError` naming ``where`` otherwise."""
    words = text.split()
    if len(words) != 3 or words[1] != "on":
        raise AuthFileError(f"{where}: '{text}' must read 'ROLE on PATTERN', e.g. 'deployer on /team-a/**'")
    role, pattern = words[0], words[2]
    if role not in _IMPLIES:
        raise AuthFileError(f"{where}: unknown role '{role}'; use one of {', '.join(ROLES)}")
    problem = check_pattern(pattern)
    if problem:
        raise AuthFileError(f"{where}: {problem}")
    return Grant(role, pattern)  # type: ignore[arg-type]


def _user(name: str, raw: Any) -> User:
    where = f"users.{name}"
    if not _USER_NAME.match(name):
        raise AuthFileError(f"{where}: a user name has letters, digits, '.', '_', '@', '-' (no ':'), at most 64")
    if not isinstance(raw, dict):
        raise AuthFileError(f"{where} must be a table ([users.{name}]) with password, tokens and roles")
    unknown = sorted(set(raw) - _USER_KEYS)
    if unknown:
        raise AuthFileError(f"{where}.{unknown[0]}: unknown key; a user has only password, tokens and roles")
    password = raw.get("password")
    if password is not None:
        if not isinstance(password, str):
            raise AuthFileError(f"{where}.password must be a string (a hash from `pacer auth hash-password`)")
        try:
            parse_password_hash(password)
        except HashFormatError as exc:
            raise AuthFileError(f"{where}.password: {exc} (plain-text passwords are not accepted)") from None
    tokens = raw.get("tokens", [])
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise AuthFileError(f"{where}.tokens must be a list of token hashes (from `pacer auth new-token`)")
    for i, token in enumerate(tokens):
        try:
            check_token_hash(token)
        except HashFormatError as exc:
            raise AuthFileError(f"{where}.tokens[{i}]: {exc}") from None
    if password is None and not tokens:
        raise AuthFileError(f"{where}: give a password hash or at least one token hash, or the user cannot log in")
    roles = raw.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise AuthFileError(f"{where}.roles must be a list like [\"deployer on /team-a/**\"]")
    grants = tuple(parse_grant(r, f"{where}.roles[{i}]") for i, r in enumerate(roles))
    return User(name, password, tuple(tokens), grants)


def parse_auth_file(text: str) -> AuthConfig:
    """The `AuthConfig` of an auth file's TOML text; `AuthFileError` naming the field otherwise."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AuthFileError(f"not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - {"users", "approval"})
    if unknown:
        raise AuthFileError(f"{unknown[0]}: unknown top-level key; the file has [users.NAME] and [[approval]] tables")
    users = doc.get("users", {})
    if not isinstance(users, dict) or not users:
        raise AuthFileError("users: no user defined; add at least one [users.NAME] table")
    parsed = {name: _user(name, raw) for name, raw in users.items()}
    hashes = [t for u in parsed.values() for t in u.token_hashes]
    if len(hashes) != len(set(hashes)):
        raise AuthFileError("tokens: the same token hash is given twice; each token belongs to one user")
    return AuthConfig(parsed, _approval_rules(doc.get("approval", [])))


def parse_duration(text: Any, where: str) -> float:
    """``"24h"``, ``"30m"``, ``"90s"``, ``"2d"`` -> seconds; `AuthFileError` naming ``where`` otherwise."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise AuthFileError(f"{where} must be a positive duration like \"24h\", \"30m\", \"90s\" or \"2d\"")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _approval_rules(raw: Any) -> tuple[ApprovalRule, ...]:
    if not isinstance(raw, list):
        raise AuthFileError("approval must be an array of tables: [[approval]] with paths = [\"/prod/**\"]")
    rules = []
    for i, table in enumerate(raw):
        where = f"approval[{i}]"
        if not isinstance(table, dict):
            raise AuthFileError(f"{where} must be a table with paths (and expiry)")
        unknown = sorted(set(table) - {"paths", "expiry"})
        if unknown:
            raise AuthFileError(f"{where}.{unknown[0]}: unknown key; an approval rule has only paths and expiry")
        paths = table.get("paths")
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            raise AuthFileError(f"{where}.paths must be a non-empty list of path patterns like [\"/prod/**\"]")
        for j, pattern in enumerate(paths):
            problem = check_pattern(pattern)
            if problem:
                raise AuthFileError(f"{where}.paths[{j}]: {problem}")
        expiry = (parse_duration(table["expiry"], f"{where}.expiry") if "expiry" in table
                  else DEFAULT_APPROVAL_EXPIRY)
        rules.append(ApprovalRule(tuple(paths), expiry))
    return tuple(rules)


def parse_http_credentials(value: str) -> tuple[str, str]:
    """Marathon's ``--http_credentials user:password`` -> (user, password)."""
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise AuthFileError("--http-credentials must be USER:PASSWORD (both non-empty)")
    if not _USER_NAME.match(user):
        raise AuthFileError("--http-credentials: the user name has letters, digits, '.', '_', '@', '-'")
    return user, password


def merge(config: AuthConfig, extra: Iterable[User]) -> AuthConfig:
    """``config`` plus users defined elsewhere (`--http-credentials`); a name defined twice is an error."""
    users = dict(config.users)
    for user in extra:
        if user.name in users:
            raise AuthFileError(f"user '{user.name}' is defined both by --http-credentials and in the auth file; "
                                "keep one")
        users[user.name] = user
    return AuthConfig(users, config.approvals)


# ---------------------------------------------------------------------------------------------
# the decision


@dataclass(frozen=True)
class Requirement:
    """What a request needs. ``kind``: ``open`` (anyone, e.g. /ping), ``authenticated`` (any known
    user; listings are then filtered), ``role`` (``role`` on each of ``paths``; with ``subtree``,
    on everything beneath each path)."""

    kind: Literal["open", "authenticated", "role"]
    role: Role = "viewer"
    paths: tuple[str, ...] = ()
    subtree: bool = False
    why: str = ""
    private_paths: bool = False
    """The paths come from the state, not the request (a deployment's apps): a refusal names
    only those the caller may view, as the listings do."""


OPEN = Requirement("open")
AUTHENTICATED = Requirement("authenticated")


@dataclass(frozen=True)
class Decision:
    """``status`` 200 (go on), 401 (who are you?) or 403 (not allowed: ``missing`` says what)."""

    status: int
    missing: str | None = None

    @property
    def allowed(self) -> bool:
        return self.status == 200


def may(user: User, role: Role, path: str, *, subtree: bool = False) -> bool:
    """Whether ``user`` holds ``role`` (or more) on ``path`` (on all of it beneath, with ``subtree``)."""
    for grant in user.grants:
        if role not in _IMPLIES[grant.role]:
            continue
        if pattern_covers(grant.pattern, path) if subtree else pattern_matches(grant.pattern, path):
            return True
    return False


def may_view(user: User, app_id: str) -> bool:
    return may(user, "viewer", app_id)


def sees_everything(user: User) -> bool:
    """A viewer of every path: listings need no filtering for this user."""
    return may(user, "viewer", "/", subtree=True)


def authorize(principal: User | None, requirement: Requirement) -> Decision:
    """Whether ``principal`` (None: no valid credentials) may make a request needing ``requirement``."""
    if requirement.kind == "open":
        return Decision(200)
    if principal is None:
        return Decision(401)
    if requirement.kind == "authenticated":
        return Decision(200)
    for path in requirement.paths:
        if not may(principal, requirement.role, path, subtree=requirement.subtree):
            target = f"{path.rstrip('/')}/**" if requirement.subtree else path
            if requirement.private_paths and not may(principal, "viewer", path):
                target = "an app of it you may not view"
            why = f" ({requirement.why})" if requirement.why else ""
            return Decision(403, f"{requirement.role} on {target}{why}")
    return Decision(200)


# ---------------------------------------------------------------------------------------------
# approval gates


def approval_need(config: AuthConfig, app_ids: Iterable[str],
                  author: str | None) -> tuple[tuple[str, ...], float, tuple[str, ...]] | None:
    """(the matching patterns, the shortest expiry, who may approve) when a change of
    ``app_ids`` by ``author`` must wait for an approval, else None. Who may approve: every user
    but the author holding ``approver`` on each of the apps, by name."""
    ids = list(app_ids)
    matched: list[str] = []
    expiry: float | None = None
    for rule in config.approvals:
        hits = [p for p in rule.paths if any(pattern_matches(p, a) for a in ids)]
        if hits:
            matched.extend(h for h in hits if h not in matched)
            expiry = rule.expiry_seconds if expiry is None else min(expiry, rule.expiry_seconds)
    if expiry is None:
        return None
    approvers = tuple(sorted(name for name, user in config.users.items()
                             if name != author and all(may(user, "approver", a) for a in ids)))
    return tuple(matched), expiry, approvers
