"""Test isolation: every test writes under its own tmp_path, offline, without progress bars."""

from __future__ import annotations

import os

import pytest

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TQDM_DISABLE": "1"}


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
