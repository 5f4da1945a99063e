"""Authentication, authorization, TLS and the audit log of the API.

Off unless configured: with no `--auth-file` and no `--http-credentials`, `build_api` adds
nothing and Pacer behaves as it always did. Configured, every request but ``/ping`` and
``/metrics`` must prove who it is, and what it may do is decided per app path.

Pure decisions: `policy` (the auth file, path patterns, roles, `authorize`), `routes` (which
role each call needs on which app ids), `isolation` (app fields that need `admin`),
`visibility` (filtering listings and events), `passwords` (hashes, tokens). At the edges:
`middleware` (the aiohttp gate), `audit` (the JSON-lines log), `local_peer` (the in-process
services' private listener), `setup` (reading the file, TLS, start-up checks).

Exceptions::

    ValueError
    ├── policy.AuthFileError       the auth file or --http-credentials is wrong (names the field)
    └── passwords.HashFormatError  a stored hash is malformed
    setup.AuthSetupError           a flag cannot be honoured (unreadable file, bad certificate)
"""

from scheduler.auth.middleware import AUTH_KEY, AuthState, Authenticator
from scheduler.auth.policy import AuthConfig, AuthFileError

__all__ = ["AUTH_KEY", "AuthConfig", "AuthFileError", "AuthState", "Authenticator"]
