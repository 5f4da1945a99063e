"""The pure parts of `scheduler.auth`: auth file, patterns, roles, route table, isolation,
visibility, secrecy, password hashes, the /proc socket table, audit entries and rotation."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.auth.audit import AuditLog, audit_entry, newest_entries, rotation_names
from scheduler.auth.isolation import host_path_allowed, isolation_breaches
from scheduler.auth.local_peer import find_inode, is_own_connection
from scheduler.auth.passwords import hash_password, hash_token, new_token, token_matches, verify_password
from scheduler.auth.policy import (
    AUTHENTICATED, OPEN, AuthFileError, Grant, Requirement, User, authorize, may, parse_auth_file, pattern_covers,
    pattern_matches, sees_everything,
)
from scheduler.auth.routes import UNPARSABLE, Lookups, listing_kind, requirement
from scheduler.auth.secrecy import redact
from scheduler.auth.visibility import deployment_view, event_visible, filter_listing

FAST = {"n": 2, "r": 1, "p": 1}      # cheap scrypt parameters for tests of the format
segment = st.text("abcdefgh-", min_size=1, max_size=6).filter(lambda s: s.strip("-"))
paths = st.lists(segment, min_size=0, max_size=5).map(lambda parts: "/" + "/".join(parts))


def user(*grants: str) -> User:
    return User("u", grants=tuple(Grant(g.split()[0], g.split()[2]) for g in grants))  # type: ignore[arg-type]


# --- passwords -----------------------------------------------------------------------------

def test_password_hash_round_trip_and_format() -> None:
    encoded = hash_password("s3cret", **FAST)
    assert encoded.startswith("scrypt$2$1$1$") and "s3cret" not in encoded
    assert verify_password("s3cret", encoded)
    assert not verify_password("s3cret!", encoded)
    assert not verify_password("s3cret", "plain-text")


@settings(max_examples=30, deadline=None)
@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_only_the_password_verifies(password: str, other: str) -> None:
    encoded = hash_password(password, **FAST)
    assert verify_password(password, encoded)
    assert verify_password(other, encoded) == (other == password)


def test_tokens_are_stored_as_hashes() -> None:
    token = new_token()
    stored = hash_token(token)
    assert token not in stored and token_matches(token, stored) and not token_matches(token + "x", stored)


# --- the auth file -------------------------------------------------------------------------

GOOD = f'''
[users.alice]
password = "{hash_password("pw", **FAST)}"
roles = ["admin on /**"]

[users.team-a]
tokens = ["{hash_token("tok")}"]
roles = ["deployer on /team-a/**", "viewer on /shared/*"]
'''


def test_auth_file_parses() -> None:
    config = parse_auth_file(GOOD)
    assert set(config.users) == {"alice", "team-a"}
    assert config.users["team-a"].grants == (Grant("deployer", "/team-a/**"), Grant("viewer", "/shared/*"))


@pytest.mark.parametrize("text, names", [
    ("[users.bob]\npassword = \"hunter2\"\nroles = []", "users.bob.password"),
    ("[users.bob]\nroles = [\"viewer on /**\"]", "users.bob: give a password hash or at least one token"),
    (f"[users.bob]\ntokens = [\"{hash_token('x')}\"]\nroles = [\"boss on /**\"]", "users.bob.roles[0]: unknown role"),
    (f"[users.bob]\ntokens = [\"{hash_token('x')}\"]\nroles = [\"viewer /x\"]", "must read 'ROLE on PATTERN'"),
    (f"[users.bob]\ntokens = [\"{hash_token('x')}\"]\nroles = [\"viewer on team\"]", "must start with '/'"),
    (f"[users.bob]\ntokens = [\"{hash_token('x')}\"]\nroles = [\"viewer on /a**\"]", "must be a whole segment"),
    (f"[users.bob]\ntokens = [\"abc\"]", "users.bob.tokens[0]"),
    (f"[users.bob]\ntokens = [\"{hash_token('x')}\"]\ncolour = 1", "users.bob.colour: unknown key"),
    ("[groups.x]\n", "groups: unknown top-level key"),
    ("", "no user defined"),
    ("[users", "not valid TOML"),
])
def test_auth_file_errors_name_the_field(text: str, names: str) -> None:
    with pytest.raises(AuthFileError, match=None) as info:
        parse_auth_file(text)
    assert names in str(info.value)


# --- patterns and roles ----------------------------------------------------------------------

@pytest.mark.parametrize("pattern, path, matches", [
    ("/**", "/", True), ("/**", "/a/b/c", True), ("/team-a/**", "/team-a", True),
    ("/team-a/**", "/team-a/web", True), ("/team-a/**", "/team-ab/web", False), ("/team-a/*", "/team-a/x/y", False),
    ("/team-*/web", "/team-b/web", True), ("/team-a/web", "/team-a/web", True), ("/team-a/web", "/team-a/web2", False),
    ("/", "/", True), ("/", "/a", False),
])
def test_pattern_matches(pattern: str, path: str, matches: bool) -> None:
    assert pattern_matches(pattern, path) is matches


@settings(max_examples=200)
@given(paths, st.lists(segment, min_size=1, max_size=3))
def test_a_covered_group_covers_every_descendant(group: str, tail: list[str]) -> None:
    pattern = group.rstrip("/") + "/**"
    assert pattern_covers(pattern, group)
    assert pattern_matches(pattern, group.rstrip("/") + "/" + "/".join(tail))


@settings(max_examples=200)
@given(st.lists(st.sampled_from(["a", "b", "*", "**"]), max_size=4), paths, st.lists(segment, min_size=1, max_size=3))
def test_covers_implies_matches_below(parts: list[str], group: str, tail: list[str]) -> None:
    pattern = "/" + "/".join(parts)
    if pattern_covers(pattern, group):
        assert pattern_matches(pattern, group.rstrip("/") + "/" + "/".join(tail))


@settings(max_examples=200)
@given(st.sampled_from(["viewer", "deployer", "admin"]), st.sampled_from(["viewer", "deployer", "admin"]), paths)
def test_roles_nest(granted: str, needed: str, path: str) -> None:
    rank = ["viewer", "deployer", "admin"]
    assert may(user(f"{granted} on /**"), needed, path) is (rank.index(granted) >= rank.index(needed))  # type: ignore[arg-type]


@settings(max_examples=200)
@given(paths, paths)
def test_a_grant_never_reaches_outside_its_subtree(base: str, other: str) -> None:
    grantee = user(f"admin on {base.rstrip('/')}/**")
    inside = other == base or other.startswith(base.rstrip("/") + "/")
    assert may(grantee, "admin", other) is inside


def test_authorize_statuses_and_message() -> None:
    need = Requirement("role", "deployer", ("/team-b/web",))
    assert authorize(None, OPEN).status == 200
    assert authorize(None, AUTHENTICATED).status == 401
    assert authorize(user("viewer on /x"), AUTHENTICATED).status == 200
    denied = authorize(user("deployer on /team-a/**"), need)
    assert denied.status == 403 and denied.missing == "deployer on /team-b/web"
    group = authorize(user("deployer on /team-a/*"), Requirement("role", "deployer", ("/team-a",), subtree=True))
    assert group.status == 403 and group.missing == "deployer on /team-a/**"
    assert authorize(user("deployer on /team-a/**"), Requirement("role", "deployer", ("/team-a",), subtree=True)).allowed
    assert sees_everything(user("viewer on /**")) and not sees_everything(user("admin on /a/**"))


def test_a_refusal_on_a_deployment_names_only_the_apps_the_caller_may_view() -> None:
    shared = Requirement("role", "deployer", ("/team-a/web", "/team-b/db"), private_paths=True)
    refused = authorize(user("deployer on /team-a/**"), shared)
    assert refused.status == 403 and "/team-b" not in refused.missing
    assert refused.missing == "deployer on an app of it you may not view"
    seen = authorize(user("deployer on /team-a/**", "viewer on /team-b/**"), shared)
    assert seen.missing == "deployer on /team-b/db"       # it may view that one: named, as for any other


# --- the route table -------------------------------------------------------------------------

LOOKUPS = Lookups(known_apps={"/a/web"}, task_app={"a_web.instance-1._app.1": "/a/web"}.get,
                  deployment_apps={"d1": ("/a/web", "/b/web")}.get)


@pytest.mark.parametrize("method, path, body, kind, role, ids", [
    ("GET", "/ping", None, "open", None, ()),
    ("GET", "/metrics", None, "open", None, ()),
    ("GET", "/v2/apps", None, "authenticated", None, ()),
    ("GET", "/v2/info", None, "authenticated", None, ()),
    ("POST", "/v2/apps", {"id": "a/new"}, "role", "deployer", ("/a/new",)),
    ("POST", "/v2/apps", {"cmd": "x"}, "role", "deployer", ("/",)),
    ("POST", "/v2/apps", UNPARSABLE, "authenticated", None, ()),
    ("PUT", "/v2/apps", [{"id": "/a/x"}, {"id": "/b/y"}], "role", "deployer", ("/a/x", "/b/y")),
    ("GET", "/v2/apps/a/web", None, "role", "viewer", ("/a/web",)),
    ("GET", "/v2/apps/a/web/tasks", None, "role", "viewer", ("/a/web",)),
    ("GET", "/v2/apps/a/web/versions/2020", None, "role", "viewer", ("/a/web",)),
    ("PUT", "/v2/apps/a/web", {"instances": 2}, "role", "deployer", ("/a/web",)),
    ("DELETE", "/v2/apps/a/web", None, "role", "deployer", ("/a/web",)),
    ("POST", "/v2/apps/a/web/restart", None, "role", "deployer", ("/a/web",)),
    ("DELETE", "/v2/apps/a/web/tasks/x", None, "role", "deployer", ("/a/web",)),
    ("GET", "/v2/apps/a/*", None, "authenticated", None, ()),
    ("POST", "/v2/tasks/delete", {"ids": ["a_web.instance-1._app.1", "gone"]}, "role", "deployer", ("/a/web",)),
    ("DELETE", "/v2/queue/a/web/delay", None, "role", "admin", ("/a/web",)),
    ("DELETE", "/v2/deployments/d1", None, "role", "deployer", ("/a/web", "/b/web")),
    ("DELETE", "/v2/deployments/unknown", None, "authenticated", None, ()),
    ("PUT", "/v2/groups/a", {"apps": []}, "role", "deployer", ("/a",)),
    ("POST", "/v2/groups", {"id": "/b"}, "role", "deployer", ("/b",)),
    ("DELETE", "/v2/groups", None, "role", "deployer", ("/",)),
    ("DELETE", "/v2/leader", None, "role", "admin", ("/",)),
    ("GET", "/v2/audit", None, "role", "admin", ("/",)),
    ("POST", "/v2/autoscaler/policies", {"appId": "a/web"}, "role", "admin", ("/a/web",)),
    ("POST", "/v2/autoscaler/policies", UNPARSABLE, "role", "admin", ("/",)),
    ("PUT", "/v2/autoscaler/policies/a/web", {}, "role", "admin", ("/a/web",)),
    ("GET", "/v2/autoscaler/policies/a/web", None, "role", "viewer", ("/a/web",)),
    ("POST", "/v2/haproxy/refresh", None, "role", "admin", ("/",)),
])
def test_route_table(method: str, path: str, body: object, kind: str, role: str | None, ids: tuple[str, ...]) -> None:
    got = requirement(method, path, body if body is not None else object(), LOOKUPS)
    assert got.kind == kind
    if kind == "role":
        assert (got.role, got.paths) == (role, ids)


def test_isolation_breaking_writes_need_admin() -> None:
    privileged = {"id": "/a/x", "container": {"type": "DOCKER", "docker": {"image": "i", "parameters": [
        {"key": "privileged", "value": "true"}]}}}
    assert requirement("POST", "/v2/apps", privileged, LOOKUPS).role == "admin"
    in_group = {"apps": [{"id": "x", "container": {"docker": {"image": "i", "privileged": True}}}]}
    need = requirement("PUT", "/v2/groups/a", in_group, LOOKUPS)
    assert (need.role, need.subtree) == ("admin", True)


def test_a_rollback_is_judged_by_the_version_it_restores() -> None:
    """A deployer may not roll an app back to a privileged version an admin once deployed."""
    privileged = {"id": "/a/web", "container": {"type": "DOCKER", "docker": {"image": "i", "privileged": True}}}
    stored = {("/a/web", "2026-01-01T00:00:00.000Z"): privileged, ("/a/web", "2026-02-01T00:00:00.000Z"): {"id": "/a/web"}}
    lookups = Lookups(known_apps={"/a/web"}, stored_version=lambda a, v: stored.get((a, v)))
    for method, path, body in [("PUT", "/v2/apps/a/web", {"version": "2026-01-01T00:00:00.000Z"}),
                               ("PUT", "/v2/apps", [{"id": "/a/web", "version": "2026-01-01T00:00:00.000Z"}])]:
        assert requirement(method, path, body, lookups).role == "admin"
    assert requirement("PUT", "/v2/apps/a/web", {"version": "2026-02-01T00:00:00.000Z"}, lookups).role == "deployer"
    assert requirement("PUT", "/v2/apps/a/web", {"version": "2026-03-01T00:00:00.000Z"}, lookups).role == "deployer"



def test_a_group_rollback_is_judged_by_the_definitions_it_restores() -> None:
    """A deployer of /a may not roll group /a back to a version holding a privileged app."""
    privileged = {"id": "/a/db", "container": {"type": "DOCKER", "docker": {"image": "i", "privileged": True}}}
    snapshots = {"2026-01-01T00:00:00.000Z": [{"id": "/a/web"}, privileged], "2026-02-01T00:00:00.000Z": [{"id": "/a/web"}]}
    asked: list[tuple[str, str]] = []

    def group_as_of(group_id: str, version: str) -> list[dict]:
        asked.append((group_id, version))
        return snapshots.get(version, [])
    lookups = Lookups(group_as_of=group_as_of)
    for method, path, body in [("PUT", "/v2/groups/a", {"version": "2026-01-01T00:00:00.000Z"}),
                               ("PUT", "/v2/groups/a", {"id": "/a", "version": "2026-01-01T00:00:00.000Z"}),
                               ("POST", "/v2/groups", {"id": "/a", "version": "2026-01-01T00:00:00.000Z"})]:
        need = requirement(method, path, body, lookups)
        assert (need.role, need.paths, need.subtree) == ("admin", ("/a",), True)
        assert "privileged" in need.why
    assert asked[-1] == ("/a", "2026-01-01T00:00:00.000Z")
    need = requirement("PUT", "/v2/groups/a", {"version": "2026-02-01T00:00:00.000Z"}, lookups)
    assert (need.role, need.paths, need.subtree) == ("deployer", ("/a",), True)
    # a body that is not a rollback is judged by itself, without asking for stored versions
    asked.clear()
    assert requirement("PUT", "/v2/groups/a", {"apps": [{"id": "web"}]}, lookups).role == "deployer"
    assert not asked

@pytest.mark.parametrize("key, value, breaks", [
    ("privileged", "true", True), ("privileged", "false", False), ("pid", "host", True), ("pid", "container:x", False),
    ("--ipc", "host", True), ("cap-add", "NET_ADMIN", True), ("cap-drop", "ALL", False), ("device", "/dev/sda", True),
    ("security-opt", "seccomp=unconfined", True), ("v", "/etc:/x", True), ("volume", "named:/x", False),
    ("volume", "/srv/data/app:/data", False), ("volume", "/srv/data/../../etc:/x", True),
    ("mount", "type=bind,source=/etc,target=/x", True), ("mount", "type=volume,source=v,target=/x", False),
    ("label", "a=b", False), ("net", "host", True), ("cgroup-parent", "/", True),
])
def test_isolation_breaches(key: str, value: str, breaks: bool) -> None:
    app = {"container": {"docker": {"parameters": [{"key": key, "value": value}]}}}
    assert bool(isolation_breaches(app, ["/srv/data"])) is breaks


def test_host_volumes() -> None:
    app = {"container": {"volumes": [{"containerPath": "/d", "hostPath": "/var/lib/x", "mode": "RW"}]}}
    assert isolation_breaches(app) and not isolation_breaches(app, ["/var/lib"])
    assert host_path_allowed("/var/lib", ["/var/lib/"]) and not host_path_allowed("/var/libx", ["/var/lib"])


# --- visibility ------------------------------------------------------------------------------

def test_autoscaler_listings_are_filtered() -> None:
    grantee = user("viewer on /a/**")

    def view(a: str) -> bool:
        return may(grantee, "viewer", a)
    policies = {"policies": [{"appId": "/a/x"}, {"appId": "/b/y"}]}
    assert filter_listing("policies", policies, view) == {"policies": [{"appId": "/a/x"}]}
    assert filter_listing("decisions", {"decisions": [{"appId": "/b/y"}]}, view) == {"decisions": []}
    assert filter_listing("apps", {"apps": [{"id": "/b/y"}]}, view) == {"apps": [{"id": "/b/y"}]}   # not its job


def _deployment(*apps: str) -> dict:
    return {"id": "d", "affectedApps": list(apps), "affectedPods": [],
            "steps": [{"actions": [{"action": "StartApplication", "app": a}]} for a in apps]
            + [{"actions": [{"action": "ScaleApplication", "app": a} for a in apps]}],
            "currentActions": [{"action": "ScaleApplication", "app": a, "readinessCheckResults": []} for a in apps],
            "currentStep": 2, "totalSteps": len(apps) + 1}


def test_a_deployment_shows_only_the_apps_the_caller_may_view() -> None:
    grantee = user("viewer on /a/**")

    def view(a: str) -> bool:
        return may(grantee, "viewer", a)
    mine = _deployment("/a/x", "/a/y")
    assert deployment_view(mine, view) is mine
    assert deployment_view(_deployment("/b/y"), view) is None
    shared = deployment_view(_deployment("/a/x", "/b/y", "/b/z/w"), view)
    assert shared is not None
    assert shared["affectedApps"] == ["/a/x"] and shared["totalSteps"] == 4
    assert [[a["app"] for a in step["actions"]] for step in shared["steps"]] == [["/a/x"], [], [], ["/a/x"]]
    assert [a["app"] for a in shared["currentActions"]] == ["/a/x"]


@settings(max_examples=100, deadline=None)
@given(st.lists(paths.filter(lambda p: p != "/"), min_size=1, max_size=6, unique=True), paths)
def test_a_deployment_view_never_names_an_app_the_caller_may_not_view(apps: list[str], granted: str) -> None:
    grantee = user(f"viewer on {granted.rstrip('/')}/**")

    def view(a: str) -> bool:
        return may(grantee, "viewer", a)
    shown = deployment_view(_deployment(*apps), view)
    if not any(view(a) for a in apps):
        assert shown is None
        return
    assert shown is not None
    named = set(shown["affectedApps"]) | {a["app"] for step in shown["steps"] for a in step["actions"]}
    named |= {a["app"] for a in shown["currentActions"]}
    assert named == {a for a in apps if view(a)}


def test_events_are_filtered() -> None:
    grantee = user("viewer on /a/**")

    def view(a: str) -> bool:
        return may(grantee, "viewer", a)

    def group(g: str) -> bool:
        return may(grantee, "viewer", g, subtree=True)
    assert event_visible(json.dumps({"eventType": "status_update_event", "appId": "/a/x"}), view, group)
    assert not event_visible(json.dumps({"appDefinition": {"id": "/b/y"}}), view, group)
    assert not event_visible(json.dumps({"plan": {"affectedApps": ["/a/x", "/b/y"]}}), view, group)
    assert event_visible(json.dumps({"eventType": "event_stream_attached"}), view, group)
    assert event_visible(json.dumps({"groupId": "/a"}), view, group)
    assert not event_visible(json.dumps({"groupId": "/"}), view, group)


def test_redact_hides_url_credentials_and_paths() -> None:
    doc = {"master": "http://pacer:s3cret@m1:5050,http://m2:5050", "x": ["/home/pacer/var"], "n": 1}
    out = redact(doc, ["/home/pacer"])
    assert "s3cret" not in json.dumps(out) and out["master"] == "http://m1:5050,http://m2:5050"
    assert out["x"] == ["<hidden>/var"] and out["n"] == 1


# --- the socket table --------------------------------------------------------------------------

def test_find_inode_parses_the_kernel_table() -> None:
    table = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
             "   0: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 4242 1\n")
    assert find_inode(table, ("127.0.0.1", 8080), ("127.0.0.1", 54321)) == 4242
    assert find_inode(table, ("127.0.0.1", 8081), ("127.0.0.1", 54321)) is None


def test_own_connections_are_recognised_and_others_are_not() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        own = socket.create_connection(server.getsockname())
        accepted, peer = server.accept()
        assert is_own_connection(server.getsockname(), peer)
        own.close()
        accepted.close()
        child = subprocess.Popen([sys.executable, "-c", "import socket,sys,time; s=socket.create_connection(("
                                  f"'127.0.0.1', {server.getsockname()[1]})); time.sleep(5)"])
        try:
            foreign, peer = server.accept()
            assert not is_own_connection(server.getsockname(), peer)
            foreign.close()
        finally:
            child.kill()
            child.wait()


# --- the audit log -----------------------------------------------------------------------------

def test_audit_entry_fields() -> None:
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    ok = audit_entry(when=when, user="bob", source="127.0.0.1", forwarded_for=None, method="PUT", path="/v2/apps/a",
                     app_ids=("/a",), status=200, result={"version": "v1", "deploymentId": "d"}, deployment_id=None)
    assert ok == {"time": "2024-01-02T03:04:05.000Z", "user": "bob", "source": "127.0.0.1", "method": "PUT",
                  "path": "/v2/apps/a", "appIds": ["/a"], "status": 200, "version": "v1", "deploymentId": "d"}
    bad = audit_entry(when=when, user=None, source=None, forwarded_for="10.0.0.1", method="DELETE", path="/x",
                      app_ids=(), status=403, result={"message": "no"}, deployment_id=None)
    assert bad["error"] == "no" and bad["forwardedFor"] == "10.0.0.1" and "version" not in bad


def test_audit_log_rotates_by_size(tmp_path: Path) -> None:
    assert [(a.name, b.name) for a, b in rotation_names(tmp_path / "audit.log", 3)] == [
        ("audit.log.1", "audit.log.2"), ("audit.log", "audit.log.1")]
    audit = AuditLog(tmp_path, max_bytes=4096, files=3)
    for i in range(200):
        audit.record({"i": i, "pad": "x" * 100})
        if i % 20 == 0:
            audit.flush()
    audit.flush()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["audit.log", "audit.log.1", "audit.log.2"]
    assert all(p.stat().st_size <= 4096 for p in tmp_path.iterdir())
    tail = audit.tail(5)
    assert [e["i"] for e in tail] == [195, 196, 197, 198, 199]
    assert (tmp_path / "audit.log").stat().st_mode & 0o777 == 0o600
    audit.close()



names = st.sampled_from(["ann", "bob", "cy", None])


@settings(max_examples=100, deadline=None)
@given(st.lists(names, max_size=80), st.integers(1, 30), names, st.integers(1, 8))
def test_audit_tail_filters_by_user_before_the_limit(users: list[str | None], limit: int, who: str | None,
                                                     cut_every: int) -> None:
    """Lines cut by a crash (here one every ``cut_every``) are neither returned nor counted."""
    lines = [json.dumps({"i": i, "user": u, "path": f"/v2/apps/{u}"}) + "\n" for i, u in enumerate(users)]
    for at in range(len(lines), 0, -cut_every):
        lines.insert(at, '{"cut by a cra{"i": -1}\n')
    expected = [i for i, u in enumerate(users) if who is None or u == who][-limit:]
    assert [e["i"] for e in newest_entries(lambda: iter(lines), limit, who)] == expected


def test_audit_log_tail_of_one_user_reaches_back_past_other_users(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path, max_bytes=4096, files=4)
    for i in range(3):
        audit.record({"i": i, "user": "rare"})
    for i in range(3, 60):
        audit.record({"i": i, "user": "busy", "path": "/v2/apps/rare", "pad": "x" * 60})
        if i % 10 == 0:
            audit.flush()
    audit.flush()
    assert (tmp_path / "audit.log.1").exists()
    assert [e["i"] for e in audit.tail(2, "rare")] == [1, 2]
    assert [e["i"] for e in audit.tail(2)] == [58, 59]
    audit.close()

def test_listing_kinds() -> None:
    """Only the autoscaler's listings are filtered after their handler; the API's filter at the source."""
    assert listing_kind("GET", "/v2/autoscaler/policies") == "policies"
    assert listing_kind("GET", "/v2/autoscaler/decisions") == "decisions"
    for path in ("/v2/apps", "/v2/apps/a/*", "/v2/groups/a", "/v2/tasks", "/v2/queue", "/v2/deployments"):
        assert listing_kind("GET", path) is None
    assert listing_kind("POST", "/v2/autoscaler/policies") is None
