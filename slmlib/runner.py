"""Runs the four stage notebooks with papermill and turns executed notebooks into HTML.

The only module that imports papermill. Each stage notebook receives the params it
declares in its `parameters` cell; executed notebooks go to the run folder
(`paths.executed_dir`), their HTML (with and without code) to
`reports/<run>/`, and `reports/index.html` lists every report. With `mlflow: true` the
finished run is also logged to MLflow (`slmlib.tracking`). With `quantization: all` detect
and evaluate run once per listed quantization (each its own run id), then aggregate and
publish once (their executed notebooks go to the last of those runs).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from dataclasses import replace

from . import artifacts, paths, tracking
from .params import ALL, ParamsError, StudyParams, make_run_id, stage_values

KERNEL = "python3"  # the interpreter papermill runs in: this environment's own kernel
PER_RUN_STAGES = ("detect", "evaluate")  # once per run; aggregate and publish read every run


class StageFailed(RuntimeError):
    """A stage notebook raised; the executed notebook (and its HTML) show where."""


def notebook_parameters(stage: str) -> list[str]:
    """Names declared in a stage notebook's `parameters` cell."""
    import papermill

    return list(papermill.inspect_notebook(str(paths.NOTEBOOKS[stage])).keys())


def executed_path(run_id: str, stage: str) -> Path:
    return paths.executed_dir(paths.run_dir(run_id)) / paths.NOTEBOOKS[stage].name


def kernel_manager_class():
    """jupyter_client's kernel manager talking to the kernel over local IPC sockets (short paths
    in the temp dir) instead of TCP ports: nothing listens on the network, and ipykernel has no
    unencrypted TCP to warn about. TCP where IPC sockets are not supported (Windows)."""
    from jupyter_client import AsyncKernelManager

    class LocalKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            if os.name != "nt":
                kwargs.setdefault("transport", "ipc")
                kwargs.setdefault("ip", os.path.join(tempfile.gettempdir(), f"slm-kernel-{uuid.uuid4().hex[:12]}"))
            super().__init__(**kwargs)

    return LocalKernelManager


def run_stage(stage: str, p: StudyParams, progress: bool = True) -> Path:
    """Execute one stage notebook for `p`; returns the executed notebook's path."""
    import papermill

    run_id = p.resolved_run_id()
    out = executed_path(run_id, stage)
    out.parent.mkdir(parents=True, exist_ok=True)
    values = stage_values(p, notebook_parameters(stage))
    try:
        # progress: stream the kernel's stdout/stderr (per-task lines, lm-eval's bars) here
        streams = {"stdout_file": sys.stdout, "stderr_file": sys.stderr} if progress else {}
        papermill.execute_notebook(
            str(paths.NOTEBOOKS[stage]), str(out), parameters=values, kernel_name=KERNEL,
            progress_bar=False, cwd=str(paths.NOTEBOOKS_DIR), kernel_manager_class=kernel_manager_class(), **streams,
        )
    except papermill.PapermillExecutionError as exc:
        export_html(out, run_id)
        raise StageFailed(f"stage {stage} failed: {exc.ename}: {exc.evalue}\n"
                          f"executed notebook: {out}") from None
    finally:
        if out.exists():
            export_html(out, run_id)
    return out


def plan_runs(p: StudyParams, stamp: str = "") -> list[StudyParams]:
    """The runs `p` asks for, each with its quantization and run id fixed. The submission's listed
    quantizations are read here, once per study (`detect.choose_quantizations`: "" = the first listed,
    a listed name, or "all" = each its own run); a given run id gets `__<name>` with "all"."""
    from . import detect

    listed = detect.quantization_names(paths.REPO_ROOT / p.submission)
    try:
        names = detect.choose_quantizations(listed, p.quantization, allow_all=True)
    except detect.SubmissionError as exc:
        raise ParamsError(str(exc)) from None
    each = p.quantization.lower() == ALL

    def run_id(name: str) -> str:
        if p.run_id:
            return paths.check_id(f"{p.run_id}__{name.lower()}", "run_id") if each else p.run_id
        return make_run_id(p.submission, p.suite, p.limit, name, stamp)

    return [replace(p, quantization=name, run_id=run_id(name)) for name in names]


def run_plan(p: StudyParams, stages: tuple[str, ...] = paths.STAGES, progress: bool = True,
             stamp: str = "") -> list[str]:
    """Every run `p` asks for (`plan_runs`): detect and evaluate for each, then aggregate and publish
    once; stops at the first failure. Returns the run ids. With `p.mlflow` each run is then logged to
    MLflow; a logging failure is reported and leaves the run's own artifacts as they are."""
    plan = plan_runs(p, stamp)
    if p.mlflow:
        tracking.require_mlflow()  # before the stages, not after an hour of evaluation
    for q in plan:
        _run_stages(q, [s for s in stages if s in PER_RUN_STAGES], progress)
    _run_stages(plan[-1], [s for s in stages if s not in PER_RUN_STAGES], progress)
    write_reports_index()
    if p.mlflow:
        for q in plan:
            log_to_mlflow(q, stages)
    return [q.resolved_run_id() for q in plan]


def _run_stages(p: StudyParams, stages: list[str], progress: bool) -> None:
    run_id = p.resolved_run_id()
    for stage in stages:
        start = time.perf_counter()
        print(f"[slm-study] {run_id}: {stage} ...", flush=True)
        run_stage(stage, p, progress)
        print(f"[slm-study] {run_id}: {stage} done in {time.perf_counter() - start:.1f} s", flush=True)


def log_to_mlflow(p: StudyParams, stages: tuple[str, ...]) -> str | None:
    """Log the run to MLflow; on failure print why and how to retry, and return None."""
    run_id = p.resolved_run_id()
    try:
        uri, mlflow_run = tracking.log_run(p, stages)
    except Exception as exc:
        print(f"[slm-study] {run_id}: logging to MLflow failed ({type(exc).__name__}: {exc}); the run's "
              f"artifacts are complete in {paths.run_dir(run_id)}. To retry, rerun with --run-id {run_id} "
              "(finished tasks are kept).", file=sys.stderr, flush=True)
        return None
    print(f"[slm-study] {run_id}: logged to MLflow at {uri} (experiment {tracking.EXPERIMENT}, "
          f"run {mlflow_run})", flush=True)
    return mlflow_run


def export_html(notebook: Path, run_id: str) -> list[Path]:
    """HTML of an executed notebook, with code and without (for readers); no CDN requests."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook), as_version=4)
    written = []
    for suffix, exclude_input in (("", False), (".no-code", True)):
        exporter = HTMLExporter(mathjax_url="", require_js_url="", exclude_input=exclude_input,
                                exclude_input_prompt=exclude_input, exclude_output_prompt=exclude_input)
        body, _ = exporter.from_notebook_node(nb)
        target = paths.run_reports_dir(run_id) / f"{notebook.stem}{suffix}.html"
        written.append(artifacts.write_text_atomic(target, body))
    return written


def write_reports_index() -> Path:
    """`reports/index.html`: every run's stage reports, by run (newest first) and stage."""
    from .publish import render_reports_index

    root = paths.reports_root()
    return artifacts.write_text_atomic(root / "index.html", render_reports_index(root))


def executed_notebooks() -> list[tuple[str, Path]]:
    """(run id, path) of every executed notebook under outputs/runs."""
    return [(run.name, nb) for run in sorted(paths.runs_dir().glob("*"))
            for nb in sorted(paths.executed_dir(run).glob("*.ipynb"))]


def rebuild_reports() -> int:
    """Re-export the HTML of every executed notebook and the index; returns how many."""
    done = executed_notebooks()
    for run_id, nb in done:
        export_html(nb, run_id)
    write_reports_index()
    return len(done)


__all__ = ["plan_runs", "run_plan", "run_stage", "export_html", "rebuild_reports", "StageFailed"]
