"""The evaluate loop on a tiny random model: determinism, resuming, per-task records."""

from __future__ import annotations

import pytest

from slmlib import artifacts, params, paths
from slmlib import detect, evaluate
from tiny import tiny_model_with_benchmarks, write_submission


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    model_dir = tiny_model_with_benchmarks(root)
    card, report = detect.detect_submission(write_submission(root / "tiny-random.yaml", model_dir))
    assert report.ok, report.errors
    return card


def study(**values):
    base = {"tasks": ["tiny_mc", "tiny_gen", "tiny_code"], "limit": None, "limit_generative": None,
            "batch_size": 2}
    return params.validate({**base, **values})


def test_two_runs_give_identical_scores_and_per_item_outputs(tiny):
    first = evaluate.evaluate_run(study(run_id="a"), tiny, paths.run_dir("a"), progress=False)
    second = evaluate.evaluate_run(study(run_id="b"), tiny, paths.run_dir("b"), progress=False)
    for name, task in first["tasks"].items():
        assert second["tasks"][name]["raw"] == task["raw"]
        assert second["tasks"][name]["outputs_sha256"] == task["outputs_sha256"]
        rows_a = artifacts.read_jsonl(paths.run_dir("a") / "samples" / f"{name}.jsonl")
        rows_b = artifacts.read_jsonl(paths.run_dir("b") / "samples" / f"{name}.jsonl")
        assert rows_a == rows_b and len(rows_a) == task["n"]


def test_a_restarted_run_skips_finished_tasks_and_redoes_changed_ones(tiny):
    run = paths.run_dir("resume")
    evaluate.evaluate_run(study(run_id="resume", tasks=["tiny_mc"]), tiny, run, progress=False)
    saved = (run / "tasks" / "tiny_mc.json").read_bytes()
    results = evaluate.evaluate_run(study(run_id="resume"), tiny, run, progress=False)
    assert (run / "tasks" / "tiny_mc.json").read_bytes() == saved  # kept, not re-evaluated
    assert sorted(results["tasks"]) == ["tiny_code", "tiny_gen", "tiny_mc"]
    changed = evaluate.evaluate_run(study(run_id="resume", batch_size=1), tiny, run, progress=False)
    assert changed["tasks"]["tiny_mc"]["settings"]["batch_size"] == 1  # settings differ: evaluated again
    assert (run / "tasks" / "tiny_mc.json").read_bytes() != saved


def test_code_is_executed_and_generation_is_extracted(tiny):
    results = evaluate.evaluate_run(study(run_id="c"), tiny, paths.run_dir("c"), progress=False)
    code = results["tasks"]["tiny_code"]
    assert code["metric"] == "pass@1" and code["n"] == 2 and code["raw"] == 0.0  # random weights fail
    gen = artifacts.read_jsonl(paths.run_dir("c") / "samples" / "tiny_gen.jsonl")
    assert all(isinstance(r["response"][0], str) for r in gen)
    assert results["energy"]["kwh"] > 0 and results["tasks"]["tiny_mc"]["energy"]["country"] == "USA"
