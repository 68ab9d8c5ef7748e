"""A unit of work on a worker (a Dask task): the evaluate notebook for one task, or one slice of its items.

Runs in the worker's process, one unit at a time. The unit brings its params and the run's model card; the
notebook is executed by papermill in a temporary folder (`SLM_OUTPUT_ROOT` and `SLM_REPORTS_ROOT` point
there while it runs), with the worker's thread budget (`THREADS_ENV`), on this machine's copy of the
weights: found by their SHA-256 (the card's path, the worker's cache, a package that ships them), or
converted here once from their source found so. What the unit returns (the task's record and per-item
log, the executed notebook, the edge figures when asked) goes back to the client, which writes the run
folder: workers share no filesystem. A worker whose machine differs from the client's (`checks.refusal`)
hands the unit back to the scheduler; a unit that fails for its own reason raises UnitFailed with it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import tempfile
import threading
from pathlib import Path

from .. import artifacts, paths, provenance, runner, weights as wts
from ..params import validate
from . import checks

THREADS_ENV = "SLM_UNIT_THREADS"  # a worker's threads for llama.cpp and torch (set by `worker` and `local`)
ROOT_VARS = ("SLM_OUTPUT_ROOT", "SLM_REPORTS_ROOT")
_ONE_AT_A_TIME = threading.Lock()  # a worker's units use its whole thread budget, and the roots are per process


def unit_threads() -> int:
    """The threads this worker's units use: its budget (`THREADS_ENV`), else its cores."""
    return int(os.environ.get(THREADS_ENV) or 0) or provenance.usable_cores()


class UnitFailed(RuntimeError):
    """A unit failed for its own reason (a task's error, weights that are not the study's); `notebook` is its
    executed notebook (JSON text, empty when it never ran)."""

    def __init__(self, reason: str, notebook: str = ""):
        super().__init__(reason, notebook)
        self.reason, self.notebook = reason, notebook

    def __str__(self) -> str:
        return self.reason

    def __repr__(self) -> str:  # what a worker's log shows: the reason, not the notebook
        return f"UnitFailed({self.reason!r})"


def run_unit(unit: dict) -> dict:
    """Evaluate `unit` ({key, values: the notebook's params, card: the run's model card, required: the
    client's capabilities}); returns {record, rows, notebook, edge}."""
    from distributed import Reschedule

    with _ONE_AT_A_TIME:
        reason = refusal(json.dumps(unit["required"], sort_keys=True))
        if reason:
            print(f"[worker] unit {unit['key']} handed back: {reason}", file=sys.stderr, flush=True)
            raise Reschedule()
        try:
            card = local_card(unit["card"])
        except wts.WeightsError as exc:
            raise UnitFailed(f"unit {unit['key']}: {exc}") from None
        p = validate({**unit["values"], "threads": int(os.environ.get(THREADS_ENV) or 0)})
        with tempfile.TemporaryDirectory(prefix="slm-unit-") as tmp, output_roots(Path(tmp)):
            run = p.run_path()
            artifacts.write_json(paths.model_card_file(run), card)
            out = runner.executed_path(run.name, "evaluate")
            try:
                runner.execute_notebook("evaluate", p, out, progress=False)
            except runner.StageFailed as exc:
                notebook = out.read_text(encoding="utf-8") if out.exists() else ""
                raise UnitFailed(f"unit {unit['key']}: {str(exc).splitlines()[0]}", notebook) from None
            (task,) = p.tasks
            edge = paths.edge_file(run)
            return {"record": artifacts.read_json(paths.task_file(run, task)),
                    "rows": artifacts.read_jsonl(paths.samples_file(run, task)),
                    "notebook": out.read_text(encoding="utf-8"),
                    "edge": artifacts.read_json(edge) if p.edge and edge.exists() else None}


@functools.cache
def refusal(required: str) -> str | None:
    """Why this machine must not run the study's units (its capabilities differ from the client's, JSON), or
    None; once per process and study."""
    return checks.refusal(json.loads(required))


def local_card(card: dict) -> dict:
    """The run's model card with this machine's copy of its weights: found by their SHA-256
    (`checks.find_weights`), or converted here from their source found so (once: the cache keeps it), and
    checked to be the same file. WeightsError saying where it looked when they are not here."""
    weights, conversion = card["weights"], card.get("conversion")
    if card.get("adapter") and not Path(card["adapter"]["path"]).is_dir():
        raise wts.WeightsError(f"LoRA adapter {card['adapter']['path']}: not on this machine; a run with an adapter "
                               "runs where the adapter's folder is at the same path")
    if weights["kind"] == "hub":
        problem = checks.model_available(weights)
        if problem:
            raise wts.WeightsError(problem)
        return card
    path = checks.find_weights(weights)
    if path is None and conversion:
        source = checks.find_weights({**card.get("source_weights", {}), "sha256": conversion["source_sha256"]})
        if source is not None:
            made, _ = wts.convert_gguf(wts.Weights("gguf", str(source), None, conversion["source_sha256"],
                                                   source.stat().st_size), conversion["format"])
            if made.sha256 != weights["sha256"]:
                raise wts.WeightsError(f"weights: converting {conversion['source_sha256'][:12]}… to "
                                       f"{conversion['format']} here gives sha256 {made.sha256[:12]}…, the study's "
                                       f"is {weights['sha256'][:12]}… (another llama.cpp?); run `make setup`")
            path = Path(made.path)
    if path is None:
        raise wts.WeightsError(checks.model_available(weights, conversion) or
                               f"model weights sha256 {weights['sha256'][:12]}…: not on this machine")
    return {**card, "weights": {**weights, "path": str(path)}}


def worker_problem(required: dict, cards: list[dict]) -> str | None:
    """Why this worker cannot run the study's units: its capabilities differ from the client's (`required`),
    or it has not the weights of one of the study's model `cards` (nor their source to convert); None when it
    can."""
    reason = refusal(json.dumps(required, sort_keys=True))
    if reason:
        return reason
    for card in cards:
        problem = checks.model_available(card["weights"], card.get("conversion"))
        if problem:
            return problem
    return None


@contextlib.contextmanager
def output_roots(root: Path):
    """`SLM_OUTPUT_ROOT` and `SLM_REPORTS_ROOT` under `root` for the block (this process and its kernels)."""
    saved = {var: os.environ.get(var) for var in ROOT_VARS}
    os.environ.update({"SLM_OUTPUT_ROOT": str(root / "outputs"), "SLM_REPORTS_ROOT": str(root / "reports")})
    try:
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
