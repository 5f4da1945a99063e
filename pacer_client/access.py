"""How a client reaches a secured Pacer: credentials, a CA for HTTPS, and the flags that set them.

`pacer deploy`, the autoscaler and the HAProxy bridge all take the same three settings, from
flags or, so that CI jobs keep them out of command lines and logs, from the environment:

    --credentials USER:PASSWORD   $PACER_CREDENTIALS   HTTP basic (Marathon's --http_credentials)
    --token-file FILE             $PACER_TOKEN         an API token, sent as `Authorization: Bearer`
    --ca-file PEM                 $PACER_CA_FILE       the CA that signed Pacer's certificate

Secrets are never printed: `Access` keeps them out of its repr, and `redact_url` takes any
`user:password@` out of a URL before it appears in a message.
"""

from __future__ import annotations

import argparse
import base64
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


class AccessError(ValueError):
    """A credential or CA setting that cannot be used; the message names the flag and the fix."""


@dataclass(frozen=True)
class Access:
    """What a client sends to be let in, and which CA it trusts."""

    username: str | None = field(default=None)
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    ca_file: str | None = None

    def headers(self) -> dict[str, str]:
        """The Authorization header, if any (a token wins over a password)."""
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.username is not None and self.password is not None:
            raw = f"{self.username}:{self.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}
        return {}

    def ssl_context(self) -> ssl.SSLContext | None:
        """A context trusting `ca_file` (None: the system's CAs, aiohttp's default)."""
        if not self.ca_file:
            return None
        try:
            return ssl.create_default_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise AccessError(f"--ca-file {self.ca_file}: cannot load it as PEM certificates ({exc}); "
                              "give the CA certificate that signed Pacer's --tls-cert") from None


NO_ACCESS = Access()


def parse_credentials(value: str, flag: str = "--credentials") -> tuple[str, str]:
    user, sep, password = value.partition(":")
    if not sep or not user:
        raise AccessError(f"{flag}: expected USER:PASSWORD (the password may contain ':')")
    return user, password


def access_from(credentials: str | None = None, token_file: str | None = None, ca_file: str | None = None,
                environ: Mapping[str, str] | None = None) -> Access:
    """Flags first, then $PACER_CREDENTIALS, $PACER_TOKEN and $PACER_CA_FILE."""
    env = os.environ if environ is None else environ
    user = password = token = None
    if credentials is None and env.get("PACER_CREDENTIALS"):
        user, password = parse_credentials(env["PACER_CREDENTIALS"], "$PACER_CREDENTIALS")
    elif credentials is not None:
        user, password = parse_credentials(credentials)
    if token_file is not None:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as exc:
            raise AccessError(f"--token-file {token_file}: {exc.strerror or exc}") from None
        if not token:
            raise AccessError(f"--token-file {token_file}: the file is empty; put the API token in it")
    elif env.get("PACER_TOKEN"):
        token = env["PACER_TOKEN"].strip()
    ca = ca_file if ca_file is not None else (env.get("PACER_CA_FILE") or None)
    if ca is not None and not Path(ca).is_file():
        raise AccessError(f"--ca-file {ca}: no such file; give the PEM file of the CA that signed Pacer's certificate")
    return Access(user, password, token, ca)


def add_access_arguments(parser: argparse.ArgumentParser) -> None:
    """The three flags, on any command that talks to a Pacer."""
    parser.add_argument("--credentials", default=None, metavar="USER:PASSWORD",
                        help="HTTP basic credentials for Pacer's API (default: $PACER_CREDENTIALS); "
                             "prefer the environment variable, which stays out of process listings")
    parser.add_argument("--token-file", default=None, metavar="FILE",
                        help="a file holding an API token, sent as a bearer token (default: $PACER_TOKEN)")
    parser.add_argument("--ca-file", default=None, metavar="PEM",
                        help="CA certificate(s) to trust for an https:// --master (default: $PACER_CA_FILE, "
                             "else the system's CAs)")


def access_from_args(args: argparse.Namespace) -> Access:
    return access_from(args.credentials, args.token_file, args.ca_file)


def redact_url(url: str) -> str:
    """The URL without any user:password@ part, for messages and logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
