"""Every path the study reads or writes, in one place.

The output root defaults to the repository's `outputs/` and `reports/`; tests and
batch jobs move everything with `SLM_OUTPUT_ROOT` / `SLM_REPORTS_ROOT`. Caches that
outlive a clone (converted models, extracted data) live under `SLM_CACHE_DIR`
(default `~/.cache/slm-study`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
PARAMS_DIR = REPO_ROOT / "params"
SUBMISSIONS_DIR = PARAMS_DIR / "submissions"
LOCK_FILE = REPO_ROOT / "requirements.lock"  # every package of the environment with its hash (make lock)
STAGES = ("detect", "evaluate", "aggregate", "publish")
NOTEBOOKS = {stage: NOTEBOOKS_DIR / f"{i:02d}_{stage}.ipynb" for i, stage in enumerate(STAGES, 1)}

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
QUANTIZATION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")  # a listed quantization's name: ends run ids


def outputs_root() -> Path:
    """Root of generated artifacts (executed notebooks, runs, registry)."""
    return Path(os.environ.get("SLM_OUTPUT_ROOT", REPO_ROOT / "outputs"))


def reports_root() -> Path:
    """Root of HTML reports and the static site."""
    return Path(os.environ.get("SLM_REPORTS_ROOT", REPO_ROOT / "reports"))


def cache_root() -> Path:
    """Cache shared across runs and clones: converted models, extracted data."""
    return Path(os.environ.get("SLM_CACHE_DIR", Path.home() / ".cache" / "slm-study"))


def check_id(value: str, field: str) -> str:
    """Return `value` if it is safe as a single path component, else raise naming `field`."""
    if not isinstance(value, str) or not _SAFE_ID.fullmatch(value) or ".." in value:
        raise ValueError(
            f"{field}: {value!r} is not a valid id; use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def runs_dir() -> Path:
    return outputs_root() / "runs"


def run_dir(run_id: str) -> Path:
    return runs_dir() / check_id(run_id, "run_id")


# What a run folder outputs/runs/<run_id>/ holds (detect writes the first two, evaluate the rest,
# the runner the executed notebooks). Every module names them through these.
def validation_file(run: Path) -> Path:
    return run / "validation.json"


def model_card_file(run: Path) -> Path:
    return run / "model_card.json"


def task_file(run: Path, task: str) -> Path:
    """A finished task's record (written as each task ends, so a restarted run skips it)."""
    return run / "tasks" / f"{task}.json"


def samples_dir(run: Path) -> Path:
    """The per-item logs, one `<task>.jsonl` per task."""
    return run / "samples"


def samples_file(run: Path, task: str) -> Path:
    return samples_dir(run) / f"{task}.jsonl"


def edge_file(run: Path) -> Path:
    return run / "edge.json"


def results_file(run: Path) -> Path:
    """The run's record: written last, so a folder without it is incomplete."""
    return run / "results.json"


def executed_dir(run: Path) -> Path:
    """The executed stage notebooks of a run."""
    return run / "notebooks"


def shard_file(run: Path, task: str, shard: tuple[int, int]) -> Path:
    """A finished slice (K, N) of a task's items evaluated by a cluster's unit: its record, with its per-item
    log beside it (`.jsonl`); removed once the task's slices are merged into `task_file`."""
    return run / "units" / f"{task}.{shard[0]}-of-{shard[1]}.json"


def unit_notebook(run: Path, task: str, shard: tuple[int, int] | None) -> Path:
    """The executed evaluate notebook of a cluster's unit: one task, or one slice (K, N) of its items."""
    part = f".{shard[0]}-of-{shard[1]}" if shard else ""
    return executed_dir(run) / f"{NOTEBOOKS['evaluate'].stem}.{task}{part}.ipynb"


def registry_path() -> Path:
    return outputs_root() / "registry.json"


def audit_file(run_id: str) -> Path:
    """An audit's verdict (`python -m slmlib audit`), beside the run folder, not in it (signed folders)."""
    return outputs_root() / "audits" / f"{check_id(run_id, 'run_id')}.json"


def mlruns_dir() -> Path:
    """MLflow's local file store, when a run logs to MLflow without a tracking URI."""
    return outputs_root() / "mlruns"


def site_dir(override: str = "") -> Path:
    """The static site's folder: `override` when given, else reports/site."""
    return Path(override) if override else reports_root() / "site"


def run_reports_dir(run_id: str) -> Path:
    return reports_root() / check_id(run_id, "run_id")
