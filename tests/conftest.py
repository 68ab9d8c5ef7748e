"""Test isolation: every test writes under its own tmp_path, offline, without progress bars."""

from __future__ import annotations

import os

import pytest

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TQDM_DISABLE": "1"}


@pytest.fixture(autouse=True, scope="session")
def session_outputs(tmp_path_factory):
    """Outputs of module- and session-scoped fixtures (set up before any test's own folder) land in a
    temporary folder too, never in the repository's outputs/ and reports/."""
    root = tmp_path_factory.mktemp("session")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLM_OUTPUT_ROOT", str(root / "outputs"))
        mp.setenv("SLM_REPORTS_ROOT", str(root / "reports"))
        yield


@pytest.fixture(autouse=True)
def isolated_outputs(tmp_path, monkeypatch):
    """Outputs and reports in tmp_path; the content-addressed cache (converted models,
    extracted data) is shared, as it is between runs."""
    monkeypatch.setenv("SLM_OUTPUT_ROOT", str(tmp_path / "outputs"))
    monkeypatch.setenv("SLM_REPORTS_ROOT", str(tmp_path / "reports"))
    for key, value in OFFLINE.items():
        monkeypatch.setenv(key, value)
    yield


def pytest_report_header(config):
    return f"SLM_CACHE_DIR={os.environ.get('SLM_CACHE_DIR', '~/.cache/slm-study')}"


BROWSER_TESTS = "test_publish_browser.py"  # skipped as a whole when Chromium or Playwright is missing


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say plainly when the browser layer did not run: its tests are skipped (not failed) without Chromium,
    which a summary line of "N skipped" hides."""
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if BROWSER_TESTS in r.nodeid and "browser tests:" in str(r.longrepr)]
    if not skipped:
        return
    reason = str(skipped[0].longrepr[-1] if isinstance(skipped[0].longrepr, tuple) else skipped[0].longrepr)
    terminalreporter.write_sep("!", f"BROWSER LAYER NOT RUN: {len(skipped)} browser tests skipped", red=True, bold=True)
    terminalreporter.write_line("The site was not checked in a browser (tracks, filters, compare page, phone "
                                "layout): " + reason.removeprefix("Skipped: ").removeprefix("browser tests: "))
    terminalreporter.write_line("`make setup` installs Chromium when run as root with apt-get; then run the tests again.")
    config.stash[BROWSER_NOT_RUN] = len(skipped)


BROWSER_NOT_RUN = pytest.StashKey[int]()


def pytest_unconfigure(config):
    """Repeat it as the very last line, below the list of skips and the counts."""
    skipped = config.stash.get(BROWSER_NOT_RUN, 0)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if skipped and reporter is not None:
        reporter.write_line(f"BROWSER LAYER NOT RUN: {skipped} browser tests skipped (Chromium or Playwright missing; see above)",
                            red=True, bold=True)
