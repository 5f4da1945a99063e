"""Password hashes and API tokens: what the auth file stores instead of secrets.

Passwords are kept as scrypt hashes (``scrypt$N$r$p$SALT$HASH``, salt and hash in unpadded
URL-safe base64), so a leaked auth file does not hand out the passwords. API tokens are long
random strings: a fast SHA-256 of them (``sha256$HEX``) is enough to keep them from being
readable at rest, since nobody can guess a 256-bit token from its hash, and it lets a bearer
token be looked up without trying every user's hash.

Every comparison of a secret against a stored value goes through ``hmac.compare_digest``, so
how long an answer takes says nothing about how much of a guess was right. Pure apart from
the randomness a new salt or token needs (``secrets``); no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SCRYPT_N = 2 ** 14
"""scrypt cost parameters (the values RFC 7914 and Python's docs suggest for interactive
logins: ~50 ms and 16 MiB per check). Verified passwords are cached by the authenticator, so
a client sending basic auth on every request pays this once."""
SCRYPT_R = 8
SCRYPT_P = 1
_MAX_N = 2 ** 20               # refuse hashes that would cost more than ~1 GiB to check
_DKLEN = 32
TOKEN_BYTES = 32


class HashFormatError(ValueError):
    """A stored hash is not in a form this module writes; the message says which part."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                          maxmem=256 * r * (n + p + 2) + 1024 * 1024, dklen=_DKLEN)


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P,
                  salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$SALT$HASH`` for ``password`` (a fresh 16-byte salt unless given)."""
    if not password:
        raise ValueError("a password must not be empty")
    salt = secrets.token_bytes(16) if salt is None else salt
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(_scrypt(password, salt, n, r, p))}"


def parse_password_hash(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    """(N, r, p, salt, hash) of a stored hash; `HashFormatError` naming the bad part."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise HashFormatError("a password hash must look like scrypt$N$r$p$SALT$HASH; create one with "
                              "`pacer auth hash-password`")
    try:
        n, r, p = (int(x) for x in parts[1:4])
    except ValueError:
        raise HashFormatError("scrypt parameters N, r and p must be integers") from None
    if n < 2 or n & (n - 1) or n > _MAX_N or not 1 <= r <= 64 or not 1 <= p <= 16:
        raise HashFormatError(f"scrypt parameters out of range (N a power of two up to {_MAX_N}, "
                              "r 1..64, p 1..16)")
    try:
        salt, digest = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        raise HashFormatError("salt and hash must be URL-safe base64") from None
    if len(salt) < 8 or len(digest) < 16:
        raise HashFormatError("salt or hash too short")
    return n, r, p, salt, digest


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` hashes to ``encoded``; a malformed hash never matches."""
    try:
        n, r, p, salt, digest = parse_password_hash(encoded)
    except HashFormatError:
        return False
    candidate = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                               maxmem=256 * r * (n + p + 2) + 1024 * 1024, dklen=len(digest))
    return hmac.compare_digest(candidate, digest)


def new_token() -> str:
    """A fresh API token (256 random bits, URL-safe): shown once, stored only as its hash."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """``sha256$HEX`` of a token: what the auth file keeps."""
    return "sha256$" + hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_token_hash(encoded: str) -> None:
    """`HashFormatError` unless ``encoded`` is a ``sha256$HEX`` token hash."""
    kind, sep, digest = encoded.partition("$")
    if kind != "sha256" or not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise HashFormatError("a token hash must look like sha256$<64 lowercase hex digits>; create a token and "
                              "its hash with `pacer auth new-token`")


def token_matches(token: str, encoded: str) -> bool:
    """Constant-time comparison of a presented token with a stored ``sha256$HEX``."""
    return hmac.compare_digest(hash_token(token).encode("ascii"), encoded.encode("ascii", "replace"))
