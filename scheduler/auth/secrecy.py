"""Keeping secrets out of what the API shows: credentials inside URLs, and local paths.

Pure: `redact(document, hide)` returns a copy of a JSON document in which every URL's
``user:password@`` is gone and every string containing one of ``hide`` (the home directory,
for callers who are not admins) has it replaced by ``<hidden>``. `/v2/info` passes its
document through it, so a master given as ``http://user:secret@host:5050`` or a path under
`--home` never reaches a client that should not see it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s,]+@")


def redact(document: Any, hide: Sequence[str] = ()) -> Any:
    """``document`` without URL credentials and without the strings of ``hide``."""
    if isinstance(document, dict):
        return {key: redact(value, hide) for key, value in document.items()}
    if isinstance(document, list):
        return [redact(value, hide) for value in document]
    if isinstance(document, str):
        text = _USERINFO.sub(r"\g<scheme>", document)
        for secret in hide:
            if secret:
                text = text.replace(secret, "<hidden>")
        return text
    return document
