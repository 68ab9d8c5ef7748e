"""Runs the four stage notebooks with papermill and turns executed notebooks into HTML.

The only module that imports papermill. Each stage notebook receives the params it
declares in its `parameters` cell; executed notebooks go to the run folder
(`paths.executed_dir`), their HTML (with and without code) to
`reports/<run>/`, and `reports/index.html` lists every run. Progress bars stream live to the
terminal; the kept notebook holds what they leave behind (`tidy_outputs`: no refreshes), and the
reports show no absolute path of this machine (`shown_paths`). With `mlflow: true` the
finished run is also logged to MLflow (`slmlib.tracking`). With `quantization: all` detect
and evaluate run once per listed quantization (each its own run id), then aggregate and
publish once (their executed notebooks go to the last of those runs). With `cluster:` the
evaluate stage of every run runs as units of work on Dask (`slmlib.cluster`), each unit the
evaluate notebook executed on a worker (`execute_notebook`).
"""

from __future__ import annotations

import html
import os
import re
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
    """Execute one stage notebook for `p` into the run folder, then its HTML; returns the executed notebook's path."""
    run_id = p.resolved_run_id()
    out = executed_path(run_id, stage)
    try:
        return execute_notebook(stage, p, out, progress)
    finally:
        if out.exists():
            export_html(out, run_id)


def execute_notebook(stage: str, p: StudyParams, out: Path, progress: bool = True) -> Path:
    """Execute one stage notebook for `p` into `out` and tidy it (`tidy_notebook`); raises StageFailed naming
    the error (the executed notebook is written all the same)."""
    import papermill

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
        raise StageFailed(f"stage {stage} failed: {exc.ename}: {exc.evalue}\n"
                          f"executed notebook: {out}") from None
    finally:
        if out.exists():
            tidy_notebook(out)
    return out


# tqdm's meter: "37%|███▋ |" or "[00:12<00:30," / "[01:02, 3.1it/s]" (bars without a total)
PROGRESS_BAR = re.compile(r"\d{1,3}%\||\[(\d+:)?\d+:\d\d(<|,|\])")
BAR_END = re.compile(r"\[(\d+:)?\d+:\d\d[^\]\n]*\]")  # the meter's last part: "[elapsed<left, rate, postfix]"
TERMINAL_CODE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # cursor moves of nested bars
WARNINGS_TAG = "warnings"  # a cell whose kept stderr the reader's report shows folded


def tidy_text(text: str) -> str:
    """A stream's text without progress-bar refreshes: every line a bar redrew (with a carriage
    return) loses the bar's states, and the blank lines right after a bar go; every other line is kept
    as written."""
    *lines, tail = TERMINAL_CODE.sub("", text).split("\n")
    kept, after_bar = [], False
    for line, end in [*((line, "\n") for line in lines), (tail, "")]:
        if "\r" in line:
            rest = [text for seg in line.split("\r") if (text := _after_bar(seg).strip())]
            after_bar = not rest
            kept += [" ".join(rest) + end] if rest else []
        elif not (after_bar and not line.strip()):
            kept.append(line + end)
            after_bar = False
    return "".join(kept)


def _after_bar(segment: str) -> str:
    """What a redrawn line holds besides the bar: all of it when it is no bar, else what was written after the
    bar's meter on the same line (a log line that did not wait for the bar)."""
    if not PROGRESS_BAR.search(segment):
        return segment
    end = BAR_END.search(segment)
    return segment[end.end():] if end else ""


def tidy_outputs(outputs: list[dict]) -> list[dict]:
    """A cell's outputs with consecutive streams of one name joined and their bars removed
    (`tidy_text`); streams left empty are dropped. Other outputs are kept as they are."""
    out: list[dict] = []
    for o in outputs:
        if o.get("output_type") == "stream" and out and out[-1].get("output_type") == "stream" \
                and out[-1]["name"] == o["name"]:
            out[-1] = {**out[-1], "text": out[-1]["text"] + _text(o["text"])}
        else:
            out.append({**o, "text": _text(o["text"])} if o.get("output_type") == "stream" else o)
    tidied = []
    for o in out:
        if o.get("output_type") == "stream":
            o = {**o, "text": tidy_text(o["text"])}
            if not o["text"].strip():
                continue
            if tidied and tidied[-1].get("output_type") == "stream" and tidied[-1]["name"] == o["name"]:
                tidied[-1] = {**tidied[-1], "text": tidied[-1]["text"].rstrip("\n") + "\n" + o["text"]}
                continue
        tidied.append(o)
    return tidied


def _text(text) -> str:
    return text if isinstance(text, str) else "".join(text)


def tidy_notebook(path: Path) -> Path:
    """Rewrite an executed notebook without progress refreshes (`tidy_outputs`); a cell left with
    stderr text (warnings, an error's log) is tagged `warnings` for the reader's report."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = [nbformat.from_dict(o) for o in tidy_outputs(cell.get("outputs", []))]
        tags = cell.metadata.setdefault("tags", [])
        if any(o.get("name") == "stderr" for o in cell.outputs) and WARNINGS_TAG not in tags:
            tags.append(WARNINGS_TAG)
    return artifacts.write_text_atomic(path, nbformat.writes(nb))


def path_names() -> list[tuple[str, str]]:
    """(absolute prefix, how reports show it), longest first: the output and reports roots relative to
    the repository when inside it (else by their variable), the cache, the repository ("." : paths under
    it are shown relative to it), the home folder."""
    def shown(root: Path, variable: str) -> str:
        root = root.resolve()
        return root.relative_to(paths.REPO_ROOT).as_posix() if root.is_relative_to(paths.REPO_ROOT) else f"${variable}"

    names = {str(paths.outputs_root().resolve()): shown(paths.outputs_root(), "SLM_OUTPUT_ROOT"),
             str(paths.reports_root().resolve()): shown(paths.reports_root(), "SLM_REPORTS_ROOT"),
             str(paths.cache_root().resolve()): "$SLM_CACHE_DIR", str(paths.REPO_ROOT): ".",
             str(Path.home().resolve()): "~"}
    return sorted(((k, v) for k, v in names.items() if k != "/"), key=lambda kv: -len(kv[0]))


def shown_paths(text: str, names: list[tuple[str, str]]) -> str:
    """`text` with every absolute path under a known root (`path_names`) written relative to it."""
    for prefix, name in names:
        text = re.sub(re.escape(prefix) + r"(/|(?![\w.-]))",
                      lambda m, name=name: "" if name == "." and m.group(1) else name + m.group(1), text)
    return text


def reader_notebook(nb, for_readers: bool, names: list[tuple[str, str]]):
    """The notebook as a report shows it: paths in code and outputs relative (`shown_paths`), and for readers
    the stderr of a `warnings` cell folded into one line that opens to the text."""
    import nbformat

    def scrub(value):
        if isinstance(value, str):
            return shown_paths(value, names)
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return {k: scrub(v) for k, v in value.items()} if isinstance(value, dict) else value

    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.source = shown_paths(cell.source, names)  # the injected parameters may name a folder
        outputs = [scrub(dict(o)) for o in cell.get("outputs", [])]
        if for_readers and WARNINGS_TAG in cell.metadata.get("tags", []):
            outputs = [folded(o) if o.get("name") == "stderr" else o for o in outputs]
        cell.outputs = [nbformat.from_dict(o) for o in outputs]
    return nb


def folded(stream: dict) -> dict:
    """A stderr stream as one line ("n lines of warnings") that opens to its text."""
    text = _text(stream["text"]).strip("\n")
    n = text.count("\n") + 1
    summary = f"{n} line{'s' * (n != 1)} of warnings and messages (stderr)"
    return {"output_type": "display_data", "metadata": {},
            "data": {"text/plain": text, "text/html": f'<details class="slm-warnings"><summary>{summary}</summary>'
                                                      f"<pre>{html.escape(text)}</pre></details>"}}


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
             stamp: str = "", tls_dir: str = "", dashboard: str = "") -> list[str]:
    """Every run `p` asks for (`plan_runs`): detect and evaluate for each, then aggregate and publish
    once; stops at the first failure. Returns the run ids. With `p.cluster` every run is detected first,
    then the evaluate stage of all of them runs as units on that Dask cluster (`slmlib.cluster`; `tls_dir`:
    its certificate folder, `dashboard`: a local cluster's dashboard address). With `p.mlflow` each run is
    then logged to MLflow; a logging failure is reported and leaves the run's own artifacts as they are."""
    plan = plan_runs(p, stamp)
    if p.mlflow:
        tracking.require_mlflow()  # before the stages, not after an hour of evaluation
    try:
        if p.cluster and "evaluate" in stages:
            from .cluster import evaluate_runs

            for q in plan:
                _run_stages(q, [s for s in stages if s == "detect"], progress)
            start = time.perf_counter()
            print(f"[slm-study] evaluate on the cluster {p.cluster} ...", flush=True)
            evaluate_runs(plan, tls_dir, dashboard, progress)
            print(f"[slm-study] evaluate done in {time.perf_counter() - start:.1f} s", flush=True)
        else:
            for q in plan:
                _run_stages(q, [s for s in stages if s in PER_RUN_STAGES], progress)
        _run_stages(plan[-1], [s for s in stages if s not in PER_RUN_STAGES], progress)
    finally:
        write_reports_index()  # a failed run too: its failed stage is the report to find
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
    """HTML of an executed notebook, with code and without (for readers: warnings folded); no CDN
    requests, no absolute path of this machine (`reader_notebook`)."""
    import nbformat
    from nbconvert import HTMLExporter

    names = path_names()
    written = []
    for suffix, exclude_input in (("", False), (".no-code", True)):
        nb = reader_notebook(nbformat.read(str(notebook), as_version=4), exclude_input, names)
        exporter = HTMLExporter(mathjax_url="", require_js_url="", exclude_input=exclude_input,
                                exclude_input_prompt=exclude_input, exclude_output_prompt=exclude_input)
        body, _ = exporter.from_notebook_node(nb)
        target = paths.run_reports_dir(run_id) / f"{notebook.stem}{suffix}.html"
        written.append(artifacts.write_text_atomic(target, body))
    return written


def write_reports_index() -> Path:
    """`reports/index.html`: one row per run (newest first) with its stage reports, and from the
    registry, when there is a readable one, its aggregate, track and model page."""
    from .publish import render_reports_index

    root = paths.reports_root()
    try:
        registry = artifacts.read_json(paths.registry_path()) if paths.registry_path().is_file() else None
    except (OSError, ValueError):
        registry = None
    return artifacts.write_text_atomic(root / "index.html", render_reports_index(root, registry))


def executed_notebooks() -> list[tuple[str, Path]]:
    """(run id, path) of every executed notebook under outputs/runs."""
    return [(run.name, nb) for run in sorted(paths.runs_dir().glob("*"))
            for nb in sorted(paths.executed_dir(run).glob("*.ipynb"))]


def rebuild_reports() -> int:
    """Re-export the HTML of every executed notebook and the index (notebooks executed before bars were
    removed lose theirs first); returns how many."""
    done = executed_notebooks()
    for run_id, nb in done:
        tidy_notebook(nb)
        export_html(nb, run_id)
    write_reports_index()
    return len(done)


__all__ = ["plan_runs", "run_plan", "run_stage", "execute_notebook", "export_html", "rebuild_reports", "StageFailed"]
