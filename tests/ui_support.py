"""Browser tests of the web UI: Debian's Chromium driven by Playwright, and a page wrapper that
records console errors and saves screenshots.

Playwright cannot download its own browsers here, so it drives ``/usr/bin/chromium`` (root
needs ``--no-sandbox``; the other flags keep Chromium off the network). Tests that need it are
skipped, with the reason, when either is missing.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from .support import REPO

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = REPO / "tests" / "artifacts" / "ui"
DOC_SCREENSHOTS = REPO / "docs" / "screenshots"
UPDATE_DOCS = os.environ.get("PACER_UPDATE_SCREENSHOTS") == "1"
"""Set to 1 to refresh docs/screenshots/ (the README's pictures) from a test run."""
TIMEOUT_MS = 30_000
_FAILED_LOAD = re.compile(r"^Failed to load resource: the server responded with a status of (\d{3})")


def browser_missing() -> str | None:
    """Why the browser tests cannot run here (Chromium or Playwright missing), or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: apt-get install chromium (make test installs it as root)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed: pip install -e '.[test]'"
    return None


def needs_browser() -> pytest.MarkDecorator:
    """The module mark of the browser tests: skipped, with the reason, without a browser."""
    missing = browser_missing()
    return pytest.mark.skipif(missing is not None, reason=missing or "")


@contextmanager
def chromium() -> Iterator[Any]:
    """One headless Chromium for a test module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Ui:
    """A page of the UI at ``base``: console errors are collected, except HTTP error answers a
    test said it expects (`expect_status`), and `check_console` fails on the rest."""

    def __init__(self, browser: Any, base: str) -> None:
        self.base = base
        self.context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.expected: set[tuple[int, str]] = set()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        failed = _FAILED_LOAD.match(message.text)
        if failed and (int(failed.group(1)), urlsplit(message.location.get("url", "")).path) in self.expected:
            return
        self.errors.append(f"{message.text} ({message.location.get('url')})")

    def expect_status(self, status: int, path: str) -> None:
        """An HTTP error answer to ``path`` that the test provokes on purpose."""
        self.expected.add((status, path))

    def goto(self, route: str) -> Any:
        self.page.goto(f"{self.base}/{route}")
        return self.page

    def shot(self, name: str, *, docs: bool = False) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        if docs and UPDATE_DOCS:
            DOC_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOC_SCREENSHOTS / f"{name}.png")
        return path

    def check_console(self) -> None:
        assert not self.errors, "browser console errors:\n" + "\n".join(self.errors)

    def close(self) -> None:
        self.context.close()
