"""The test summary says plainly when the site's browser layer did not run (issue 17): without Chromium
the 26 browser tests are skipped, not failed, and a bare "26 skipped" is easy to miss."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from slmlib.publish.site import browser

ROOT = Path(__file__).resolve().parents[1]


def run_browser_tests(env: dict, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_publish_browser.py",
                          *args], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=600)
    return out.stdout


def test_without_chromium_the_summary_ends_saying_the_browser_layer_did_not_run():
    text = run_browser_tests({"SLM_CHROMIUM": "/nonexistent/chromium"})
    lines = text.rstrip("\n").split("\n")
    assert lines[-1].startswith("BROWSER LAYER NOT RUN: ") and "browser tests skipped" in lines[-1]
    assert " skipped in " in lines[-2] and " passed" not in lines[-2]
    assert "The site was not checked in a browser" in text and "make setup` installs Chromium" in text


@pytest.mark.skipif(browser.missing() is not None, reason="needs Chromium to show the summary stays quiet")
def test_with_chromium_the_summary_says_nothing_of_it():
    text = run_browser_tests({}, "-k", "test_empty_site_says_no_models_yet")
    assert "1 passed" in text and "BROWSER LAYER NOT RUN" not in text
