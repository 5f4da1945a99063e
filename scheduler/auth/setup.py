"""Turning `pacer serve`'s security flags into what the API needs, with errors naming the flag.

`load_auth_config` reads `--auth-file` and adds the `--http-credentials` user (admin on every
path, as Marathon's single user could do everything); `tls_context` loads `--tls-cert` and
`--tls-key`; `leader_client_context` how a follower checks the leader's certificate
(`--tls-ca-file`); `exposure_problem` is the safe default: a non-loopback `--listen` with nothing
configured is refused unless `--insecure`.
"""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

from scheduler.auth.passwords import hash_password
from scheduler.auth.policy import AuthConfig, AuthFileError, Grant, User, merge, parse_auth_file, parse_http_credentials


class AuthSetupError(Exception):
    """A security flag cannot be honoured; the message names it and the fix."""


def load_auth_config(auth_file: Path | None, http_credentials: str | None) -> AuthConfig:
    """The users of `--auth-file` plus the `--http-credentials` one; empty when neither is given."""
    config = AuthConfig()
    if auth_file is not None:
        try:
            text = auth_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise AuthSetupError(f"--auth-file {auth_file}: cannot read it ({reason})") from None
        try:
            config = parse_auth_file(text)
        except AuthFileError as exc:
            raise AuthSetupError(f"--auth-file {auth_file}: {exc}") from None
    if http_credentials is not None:
        try:
            name, password = parse_http_credentials(http_credentials)
            config = merge(config, [User(name, hash_password(password), grants=(Grant("admin", "/**"),))])
        except AuthFileError as exc:
            raise AuthSetupError(str(exc)) from None
    return config


def tls_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """The server's TLS context from PEM files, or None without `--tls-cert`."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise AuthSetupError("--tls-cert and --tls-key go together: give both PEM files")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
    except FileNotFoundError as exc:
        raise AuthSetupError(f"--tls-cert/--tls-key: {exc.filename} does not exist") from None
    except (OSError, ssl.SSLError) as exc:
        raise AuthSetupError(f"--tls-cert {cert} / --tls-key {key}: cannot load them ({exc}); give a PEM "
                             "certificate (chain) and its unencrypted PEM private key") from None
    return context


def leader_client_context(serving_tls: bool, ca_file: Path | None) -> ssl.SSLContext | None:
    """How a follower verifies the leader it forwards requests to: None (plain HTTP) unless the
    API is served over HTTPS, then the leader's certificate checked against `--tls-ca-file`
    (PEM, one CA or several) or, without it, the system's trust store, host name included."""
    if not serving_tls:
        if ca_file is not None:
            raise AuthSetupError("--tls-ca-file verifies the leader's certificate when the API is served over HTTPS: "
                                 "give --tls-cert and --tls-key too, or leave --tls-ca-file out")
        return None
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    except FileNotFoundError:
        raise AuthSetupError(f"--tls-ca-file {ca_file} does not exist") from None
    except (OSError, ssl.SSLError) as exc:
        raise AuthSetupError(f"--tls-ca-file {ca_file}: cannot load it ({exc}); give the PEM certificate of the CA "
                             "that signed the instances' --tls-cert") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def is_loopback(host: str) -> bool:
    """Whether `--listen`'s host is reachable from this machine only."""
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_problem(host: str, port: int, auth: AuthConfig, insecure: bool) -> str | None:
    """Why serving on ``host`` as configured must not start, or None."""
    if insecure or auth.enabled or is_loopback(host):
        return None
    return (f"--listen {host}:{port} is reachable from other machines and no authentication is configured: anyone "
            "who can reach it could run any command as this user. Configure credentials with --auth-file FILE "
            "(users with password hashes from `pacer auth hash-password` and roles; see README 'Securing Pacer') "
            "or --http-credentials USER:PASSWORD, listen on 127.0.0.1, or pass --insecure to serve without "
            "authentication anyway")
