"""The evaluate stage on a local Dask cluster of 2 workers (`cluster: local:2`), against the sequential run: whole
tasks give the same run folder (scores, outputs_sha256, per-item rows; only time and energy differ), on the
tiny model (hf backend) and on the real default model (llama.cpp, a few items); slices of tasks are merged in
item order and re-scored; a unit that fails for its own reason fails the study at once with that reason, and
the study resumes from the units already in the run folder."""
from __future__ import annotations

import os

import pytest

from slmlib import artifacts, datapacks, params, paths, runner
from slmlib.benchmarks import all_benchmarks, load_plugin_files
from tiny import build_tiny_model, write_submission, write_tiny_benchmarks

pytestmark = pytest.mark.slow
TASKS = ["tiny_mc", "tiny_gen", "tiny_code"]
VARY = ("seconds", "energy", "threads")  # what differs between two evaluations of a task: this machine's figures

FAILING = '''"""A benchmark whose scoring raises (a unit that fails for its own reason)."""
from slmlib.benchmarks import Benchmark, read_jsonl, register


def broken(doc, results):
    raise ValueError("tiny_fail is broken on purpose")


register(Benchmark(
    name="tiny_fail", title="Tiny failing", pillar="reasoning", pack="local", root={root!r},
    files=("tiny_mc.jsonl",), sha256={sha!r}, load=lambda files: read_jsonl(files[0]), lm_eval_yaml="arc/arc_easy.yaml",
    n_choices=lambda d: len(d["choices"]["text"]), overrides={{"process_results": broken}}, license="CC0-1.0"))
'''


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The tiny model and benchmarks (plus tiny_fail), their submission, and its sequential run ("seq")."""
    root = tmp_path_factory.mktemp("cluster-local")
    plugin = write_tiny_benchmarks(root / "bench")
    data = root / "bench" / "data"
    failing = root / "bench" / "failing.py"
    failing.write_text(FAILING.format(root=str(data), sha=datapacks.digest_files([data / "tiny_mc.jsonl"], data)))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLM_BENCHMARK_FILES", os.pathsep.join([str(plugin), str(failing)]))  # the workers' kernels
        mp.setenv("SLM_OUTPUT_ROOT", str(root / "outputs"))
        mp.setenv("SLM_REPORTS_ROOT", str(root / "reports"))
        for name, path in (("tiny_mc", plugin), ("tiny_fail", failing)):  # in this process, once
            if name not in all_benchmarks():
                load_plugin_files(str(path))
        submission = write_submission(root / "tiny-random.yaml", build_tiny_model(root / "model"))
        base = {"submission": str(submission), "tasks": TASKS, "limit": None, "limit_generative": None, "batch_size": 2}
        runner.run_plan(params.validate({**base, "run_id": "seq"}), ("detect", "evaluate"), progress=False)
        yield base, root


def same_run(seq: str, other: str, tasks: list[str]) -> None:
    """The two run folders hold the same per-item rows and task records, but for this machine's figures."""
    for task in tasks:
        rows = [paths.samples_file(paths.run_dir(r), task).read_bytes() for r in (seq, other)]
        assert rows[0] == rows[1], task
        records = [artifacts.read_json(paths.task_file(paths.run_dir(r), task)) for r in (seq, other)]
        assert [{k: v for k, v in rec.items() if k not in VARY} for rec in records[1:]] == \
            [{k: v for k, v in records[0].items() if k not in VARY}], task
    results = [artifacts.read_json(paths.results_file(paths.run_dir(r))) for r in (seq, other)]
    assert results[1]["settings"] == results[0]["settings"] and list(results[1]["tasks"]) == list(results[0]["tasks"])
    assert {t: r["outputs_sha256"] for t, r in results[1]["tasks"].items()} == \
        {t: r["outputs_sha256"] for t, r in results[0]["tasks"].items()}
    assert results[1]["energy"]["tasks"] == len(tasks) and results[1]["edge"]["decode_tokens_per_s"] > 0


def test_a_local_cluster_of_two_workers_writes_the_sequential_run_folder(study, monkeypatch, capsys):
    base, root = study
    monkeypatch.setenv("SLM_OUTPUT_ROOT", str(root / "outputs"))
    monkeypatch.setenv("SLM_REPORTS_ROOT", str(root / "reports"))
    runner.run_plan(params.validate({**base, "run_id": "local", "cluster": "local:2"}), ("detect", "evaluate"),
                    progress=False)
    assert "[cluster] 2 of 2 new workers accepted" in capsys.readouterr().out
    same_run("seq", "local", TASKS)
    run = paths.run_dir("local")
    for task in TASKS:  # each unit's executed notebook is its record, with its reports
        notebook = paths.unit_notebook(run, task, None)
        assert notebook.is_file() and (paths.run_reports_dir("local") / f"{notebook.stem}.no-code.html").is_file()
    assert not (run / "units").exists()


def test_slices_merge_in_item_order_a_failing_unit_stops_the_study_and_a_rerun_resumes(study, monkeypatch, capsys):
    base, root = study
    monkeypatch.setenv("SLM_OUTPUT_ROOT", str(root / "outputs"))
    monkeypatch.setenv("SLM_REPORTS_ROOT", str(root / "reports"))
    sliced = {**base, "run_id": "sliced", "cluster": "local:2", "shard_size": 2}
    with pytest.raises(runner.StageFailed, match=r"unit sliced/tiny_fail/\d-of-2: stage evaluate failed: "
                                                 r"ValueError: tiny_fail is broken on purpose"):
        runner.run_plan(params.validate({**sliced, "tasks": [*TASKS, "tiny_fail"]}), ("detect", "evaluate"),
                        progress=False)
    run = paths.run_dir("sliced")
    (failed,) = run.glob("notebooks/02_evaluate.tiny_fail.*-of-2.ipynb")  # the failed unit's notebook, to read
    assert "broken on purpose" in failed.read_text()
    assert (paths.run_reports_dir("sliced") / f"{failed.stem}.html").is_file()
    kept = {nb.name: nb.stat().st_mtime_ns for nb in run.glob("notebooks/02_evaluate.tiny_[mgc]*.ipynb")}
    assert not paths.results_file(run).exists()

    capsys.readouterr()
    runner.run_plan(params.validate(sliced), ("evaluate",), progress=False)
    out = capsys.readouterr().out
    assert f"[cluster] sliced: {2 + 2 + 1 - len(kept)} unit" in out  # what the failed study finished is not redone
    assert {nb: run.joinpath("notebooks", nb).stat().st_mtime_ns for nb in kept} == kept
    results = artifacts.read_json(paths.results_file(run))
    seq = artifacts.read_json(paths.results_file(paths.run_dir("seq")))
    assert results["settings"] == {**seq["settings"], "shard_size": 2} and sorted(results["tasks"]) == sorted(TASKS)
    for task in TASKS:
        record, rows = results["tasks"][task], artifacts.read_jsonl(paths.samples_file(run, task))
        assert [r["item_id"] for r in rows] == record["item_ids"] == seq["tasks"][task]["item_ids"]
        assert record["outputs_sha256"] == artifacts.outputs_digest(rows)
        assert record["raw"] == pytest.approx(sum(r["value"] for r in rows) / len(rows))
        assert len(record.get("slices", [None])) == (1 if task == "tiny_code" else 2)
    # the tiny model scores every item as the sequential run does (its log-likelihoods differ in the last bits)
    for task in TASKS:
        assert results["tasks"][task]["raw"] == seq["tasks"][task]["raw"]
    assert not (run / "units").exists()


def test_the_default_model_on_llama_cpp_gives_the_sequential_bits(tmp_path, monkeypatch):
    """The real GGUF (F16 through llama.cpp), a few items of one multiple-choice and one generative task."""
    base = {"tasks": ["arc_challenge", "arithmetic"], "limit": 3, "limit_generative": 2}
    runner.run_plan(params.validate({**base, "run_id": "seq"}), ("detect", "evaluate"), progress=False)
    runner.run_plan(params.validate({**base, "run_id": "local", "cluster": "local:2"}), ("detect", "evaluate"),
                    progress=False)
    same_run("seq", "local", base["tasks"])
    assert artifacts.read_json(paths.results_file(paths.run_dir("local")))["settings"]["backend"] == "llamacpp"
