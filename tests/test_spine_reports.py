"""The runner's reports: executed notebooks keep no progress-bar refreshes (tidy_text, tidy_outputs,
tidy_notebook), and the HTML reports show no absolute path of this machine and fold warnings for readers."""

from __future__ import annotations

import io
import json
from pathlib import Path

import nbformat
from hypothesis import given, settings, strategies as st
from tqdm import tqdm

from slmlib import paths, runner


def bar_text(total: int, desc: str = "loglikelihood (llama.cpp)", leave: bool = True) -> str:
    """What a real tqdm bar writes to a non-terminal stream, every refresh of it."""
    out = io.StringIO()
    for _ in tqdm(range(total), desc=desc, file=out, mininterval=0, miniters=1, leave=leave, disable=False):
        pass
    return out.getvalue()


def stream(name: str, text: str) -> dict:
    return {"output_type": "stream", "name": name, "text": text}


def test_a_real_bar_leaves_nothing_and_the_lines_around_it_stay():
    text = "loaded\n" + bar_text(50) + "\n" + "WARNING: something a reader should see\n" + bar_text(7, "tasks")
    assert text.count("\r") >= 50
    assert runner.tidy_text(text) == "loaded\nWARNING: something a reader should see\n"


def test_nested_bars_as_the_evaluate_stage_writes_them_keep_one_line_per_task():
    """The sequence of stream outputs the default run's evaluate cell recorded (one output per write:
    the outer `tasks` bar, lm-eval's inner bars moved with cursor codes, one `[evaluate]` line per task)."""
    outputs = [stream("stdout", "[evaluate] llama.cpp 0.3.36: model.gguf (F16), 2 threads\n")]
    for i, task in enumerate(("mmlu", "arc_challenge")):
        outputs += [stream("stderr", f"\rtasks:   {i * 50}%|     | {i}/2 [00:0{i}<?, ?task/s, {task} (80 items)]"),
                    stream("stderr", "\n")]
        for part in ("\r  0%|          | 0/80 [00:00<?, ?it/s]", "\x1b[A", "\n",
                     "\rTokenizing inputs: 100%|██████████| 320/320 [00:00<00:00, 2283.69it/s]", "\x1b[A", "\n",
                     *("\rloglikelihood (llama.cpp):  %d%%|▏  | %d/320 [00:00<00:07, 39.90it/s]" % (k, k) for k in range(99)),
                     "\x1b[A", "\n"):
            outputs.append(stream("stderr", part))
        outputs.append(stream("stdout", f"[evaluate] {i + 1}/2 {task}: acc = 0.200 on 80 items in 21 s (2 threads)\n"))
    tidied = runner.tidy_outputs(outputs)
    assert tidied == [stream("stdout", "[evaluate] llama.cpp 0.3.36: model.gguf (F16), 2 threads\n"
                                       "[evaluate] 1/2 mmlu: acc = 0.200 on 80 items in 21 s (2 threads)\n"
                                       "[evaluate] 2/2 arc_challenge: acc = 0.200 on 80 items in 21 s (2 threads)\n")]


def test_a_warning_written_into_a_bar_line_is_kept_and_the_cell_tagged(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("work()")
    cell.outputs = [nbformat.from_dict(stream("stderr", "\r 10%|█  | 1/10 [00:01<00:09, 1.0it/s]UserWarning: "
                                                        "low memory\n")),
                    nbformat.v4.new_output("execute_result", data={"text/plain": "42"}, execution_count=1)]
    quiet = nbformat.v4.new_code_cell("other()")
    quiet.outputs = [nbformat.from_dict(stream("stderr", bar_text(5)))]
    nb.cells = [cell, quiet]
    path = tmp_path / "nb.ipynb"
    path.write_text(nbformat.writes(nb))
    runner.tidy_notebook(path)
    kept = nbformat.read(str(path), as_version=4)
    assert kept.cells[0].outputs[0]["text"] == "UserWarning: low memory\n"
    assert kept.cells[0].outputs[1]["data"]["text/plain"] == "42"
    assert runner.WARNINGS_TAG in kept.cells[0].metadata["tags"]
    assert kept.cells[1].outputs == [] and runner.WARNINGS_TAG not in kept.cells[1].metadata.get("tags", [])


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="\r\x1b", blacklist_categories=("Cs",))))
def test_text_without_carriage_returns_is_kept_as_written(text):
    assert runner.tidy_text(text) == text


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.text(alphabet=st.characters(blacklist_characters="\r\n\x1b", blacklist_categories=("Cs",)),
                                  min_size=1).filter(lambda s: s.strip() and not runner.PROGRESS_BAR.search(s)),
                          st.integers(1, 30)), max_size=8))
def test_lines_between_real_bars_survive_and_every_bar_goes(parts):
    """Any mix of printed lines and whole bars: the printed lines are what is left."""
    text = "".join(f"{p}\n" if isinstance(p, str) else bar_text(p) for p in parts)
    lines = [p for p in parts if isinstance(p, str)]
    assert runner.tidy_text(text) == "".join(f"{line}\n" for line in lines)


def test_reports_show_paths_relative_to_the_roots(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_CACHE_DIR", str(tmp_path / "cache"))
    names = runner.path_names()
    out_root, rep_root = paths.outputs_root().resolve(), paths.reports_root().resolve()
    text = (f"PosixPath('{out_root}/runs/r1/model_card.json') {rep_root}/site "
            f"{paths.REPO_ROOT}/params/default.yaml {paths.REPO_ROOT}x {tmp_path}/cache/models/m.gguf "
            f"in {paths.REPO_ROOT}")
    assert runner.shown_paths(text, names) == (
        "PosixPath('$SLM_OUTPUT_ROOT/runs/r1/model_card.json') $SLM_REPORTS_ROOT/site params/default.yaml "
        f"{paths.REPO_ROOT}x $SLM_CACHE_DIR/models/m.gguf in .")
    monkeypatch.delenv("SLM_OUTPUT_ROOT")  # the default: outputs/ in the repository
    assert runner.shown_paths(f"{paths.REPO_ROOT}/outputs/registry.json", runner.path_names()) == "outputs/registry.json"


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="/abc._- '\"\n", max_size=30), st.text(alphabet="/abc._- '\"\n", max_size=30))
def test_no_root_is_left_absolute(before, after):
    names = runner.path_names()
    root = str(paths.outputs_root().resolve())
    shown = runner.shown_paths(f"{before}{root}/runs/x{after}", names)
    assert f"{root}/" not in shown and "$SLM_OUTPUT_ROOT/runs/x" in shown


def test_the_readers_report_folds_warnings_and_hides_paths(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(f'run("{paths.reports_root().resolve()}/site")',
                                     metadata={"tags": [runner.WARNINGS_TAG]})
    cell.outputs = [nbformat.from_dict(stream("stdout", f"wrote {paths.outputs_root().resolve()}/registry.json\n")),
                    nbformat.from_dict(stream("stderr", "UserWarning: one\nUserWarning: <two>\n"))]
    nb.cells = [cell]
    executed = tmp_path / "01_detect.ipynb"
    executed.write_text(nbformat.writes(nb))
    full, reader = runner.export_html(executed, "run-1")
    for page in (full, reader):
        text = page.read_text()
        assert str(paths.outputs_root().resolve()) not in text and "$SLM_OUTPUT_ROOT/registry.json" in text
    text = reader.read_text()
    assert '<details class="slm-warnings"><summary>2 lines of warnings and messages (stderr)</summary>' in text
    assert "UserWarning: &lt;two&gt;" in text and "run(" not in text
    assert "$SLM_REPORTS_ROOT/site" in full.read_text()  # the code too
    assert "slm-warnings" not in full.read_text() and "UserWarning: &lt;two&gt;" in full.read_text()
    assert json.loads(executed.read_text())["cells"][0]["outputs"][1]["name"] == "stderr"  # the record is unchanged
