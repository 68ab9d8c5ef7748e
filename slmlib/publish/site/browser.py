"""Headless Chromium for the site's browser tests and screenshots.

Debian's `chromium` package driven by Playwright for Python (`executable_path`); Playwright's
own browser download is never used. `SLM_CHROMIUM` names another Chromium binary.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

LAUNCH_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--no-first-run")
INSTALL_HINT = ("no Chromium found: install Debian's package with `sudo apt-get install -y chromium` "
                "(or set SLM_CHROMIUM to a Chromium binary), and Playwright with "
                "`.venv/bin/pip install playwright==1.65.2` (make setup does)")


def chromium_path() -> str | None:
    """The Chromium binary to drive: `SLM_CHROMIUM`, else `chromium` or `chromium-browser` on PATH."""
    if os.environ.get("SLM_CHROMIUM"):
        return os.environ["SLM_CHROMIUM"] if Path(os.environ["SLM_CHROMIUM"]).is_file() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def missing() -> str | None:
    """Why the browser cannot run here (with how to fix it), or None when it can."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        return INSTALL_HINT
    return None if chromium_path() else INSTALL_HINT


def launch(playwright):
    """Start headless Chromium through a started `sync_playwright()` object."""
    path = chromium_path()
    if path is None:
        raise RuntimeError(INSTALL_HINT)
    return playwright.chromium.launch(executable_path=path, args=list(LAUNCH_ARGS), headless=True)


def page_url(site_dir: Path, page: str, fragment: str = "") -> str:
    """file:// URL of a page of the site, with an optional #fragment (the pages' view state)."""
    url = (Path(site_dir).resolve() / page).as_uri()
    return f"{url}#{fragment}" if fragment else url
