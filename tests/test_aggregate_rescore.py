"""Re-scoring (issue 18): a run's metrics recomputed from its own per-item log by lm-eval with the
benchmark's metric (a ReplayLM answering from the log), on real runs of the tiny model; each forgery
is named."""

from __future__ import annotations

import copy
import shutil

import pytest

from slmlib import artifacts, detect, evaluate, params, paths
from slmlib.aggregate import reconcile
from slmlib.aggregate.rescore import rescore_problem
from tiny import tiny_model_with_benchmarks, write_submission

TASKS = ["tiny_mc", "tiny_gen", "tiny_code"]


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    """A real run of the tiny model on a multiple-choice, a generative and a code task, read back as
    the aggregate reads it."""
    root = tmp_path_factory.mktemp("rescore")
    card, report = detect.detect_submission(write_submission(root / "tiny-random.yaml",
                                                             tiny_model_with_benchmarks(root)))
    assert report.ok, report.errors
    p = params.validate({"tasks": TASKS, "limit": 3, "limit_generative": 2, "batch_size": 2, "run_id": "h"})
    # a sample, not every document: lm-eval numbers requests by position, the log by document index
    preps = [evaluate.prepare_task(t, p.limit_for(t != "tiny_mc"), p.seed) for t in TASKS]
    assert any(prep.indices != list(range(len(prep.indices))) for prep in preps)
    folder = root / "runs" / "h"  # not paths.run_dir: the per-test output root is not set for a module fixture
    evaluate.evaluate_run(p, card, folder, progress=False)
    run, rows, reason = reconcile.read_run(folder)
    assert reason is None
    return run, rows, folder


def forged(honest):
    return copy.deepcopy(honest[0]), copy.deepcopy(honest[1])


def test_an_honest_run_is_rescored_to_its_own_numbers(honest):
    run, rows, _ = honest
    assert all("generated" in r for r in rows["tiny_gen"]) and "generated" not in rows["tiny_mc"][0]
    assert rescore_problem(run, rows) is None


def test_an_edited_value_is_found_by_recomputing_it(honest):
    run, rows = forged(honest)
    rows["tiny_mc"][0]["value"] = 1.0 - rows["tiny_mc"][0]["value"]
    assert "re-scoring task tiny_mc: item" in rescore_problem(run, rows)
    assert "its response gives" in rescore_problem(run, rows)


def test_an_edited_choice_log_likelihood_changes_the_recomputed_answer(honest):
    run, rows = forged(honest)
    row = rows["tiny_mc"][0]
    wrong = next(i for i in range(len(row["response"])) if i != row["target"])
    row["response"][wrong][0] = 1e6 if row["value"] == 1.0 else row["response"][wrong][0]
    row["response"][row["target"]][0] = 1e6 if row["value"] == 0.0 else row["response"][row["target"]][0]
    assert "its response gives" in rescore_problem(run, rows)


def test_an_edited_raw_is_found(honest):
    run, rows = forged(honest)
    run["tasks"]["tiny_gen"]["raw"] = run["tasks"]["tiny_gen"]["raw"] + 0.5
    assert "re-scoring task tiny_gen: recorded" in rescore_problem(run, rows)


def test_a_code_item_claimed_to_pass_is_executed_again_and_fails(honest):
    run, rows = forged(honest)
    assert run["tasks"]["tiny_code"]["raw"] == 0.0  # random weights write no working code
    rows["tiny_code"][0]["value"] = 1.0
    assert "re-scoring task tiny_code: item" in rescore_problem(run, rows)


def test_generated_text_that_the_filter_does_not_turn_into_the_logged_response_is_found(honest):
    run, rows = forged(honest)
    rows["tiny_gen"][0]["generated"] = ["something else entirely"]
    problem = rescore_problem(run, rows)
    assert "re-scoring task tiny_gen: item" in problem


def test_missing_short_and_other_item_logs_are_refused(honest):
    run, rows = forged(honest)
    del rows["tiny_mc"]
    assert "no per-item log (samples/tiny_mc.jsonl)" in rescore_problem(run, rows)
    run, rows = forged(honest)
    rows["tiny_mc"] = rows["tiny_mc"][:-1]
    assert "seeded sample" in rescore_problem(run, rows)
    run, rows = forged(honest)
    run["seed"] = run["seed"] + 1  # the seed claims another sample than the logged items
    run["limit"] = 1
    assert "seeded sample" in rescore_problem(run, rows)
    run, rows = forged(honest)
    del rows["tiny_gen"][0]["generated"]
    assert "no generated text in the log" in rescore_problem(run, rows)


def test_a_prompt_other_than_the_task_builds_is_found(honest):
    run, rows = forged(honest)
    rows["tiny_mc"][0]["prompt"] += " (easier)"
    assert "the logged prompt is not the one the task builds" in rescore_problem(run, rows)


def test_only_embedded_runs_are_rescored(honest):
    run, rows = forged(honest)
    run["suite"] = "standard"
    assert "only embedded-suite runs" in rescore_problem(run, rows)


def test_rows_are_json_round_tripped_as_on_disk(honest, tmp_path):
    """The check reads what the run folder holds, not Python objects: write and read again."""
    run, rows = forged(honest)
    for name, task_rows in rows.items():
        artifacts.write_jsonl(tmp_path / f"{name}.jsonl", task_rows)
        rows[name] = artifacts.read_jsonl(tmp_path / f"{name}.jsonl")
    assert rescore_problem(run, rows) is None


def test_intake_takes_an_honest_archive_and_refuses_a_consistent_forgery(honest, tmp_path):
    """The forger also fixes the outputs hash and the task's raw, so only re-scoring can tell."""
    from slmlib import signing

    inbox = tmp_path / "study"
    (inbox / "runs").mkdir(parents=True)
    shutil.copytree(honest[2], paths.run_dir("h"))  # this test's output root is its own
    signing.pack_run("h", inbox / "honest.tar.gz")
    study = reconcile.load_study(inbox / "runs", inbox=inbox)
    assert study.rejected == [] and study.extracted == ["h"]

    run, rows = forged(honest)
    run["run_id"] = "f"
    row = rows["tiny_mc"][0]
    row["value"] = 1.0 - row["value"]
    task = run["tasks"]["tiny_mc"]
    task["raw"] = task["score"] = sum(r["value"] for r in rows["tiny_mc"]) / len(rows["tiny_mc"])
    task["outputs_sha256"] = artifacts.outputs_digest(rows["tiny_mc"])
    artifacts.write_json(paths.run_dir("f") / "results.json", run)
    for name, task_rows in rows.items():
        artifacts.write_jsonl(paths.samples_file(paths.run_dir("f"), name), task_rows)
    assert reconcile.read_run(paths.run_dir("f"))[2] is None  # consistent: the old checks pass it
    signing.pack_run("f", inbox / "forged.tar.gz")
    study = reconcile.load_study(inbox / "runs", inbox=inbox)
    (rejected,) = study.rejected
    assert rejected["run_id"] == "f" and rejected["reason"].startswith("re-scoring task tiny_mc: item")
    assert not (inbox / "runs" / "f").exists()


def test_a_log_lm_eval_cannot_digest_is_refused_not_raised(honest):
    run, rows = forged(honest)
    run["limit"] = 0  # no items at all: prepare_task refuses
    assert "cannot be re-scored (ValueError: tiny_mc: no items to evaluate" in rescore_problem(run, rows)
    run, rows = forged(honest)
    for row in rows["tiny_gen"]:
        row["response"] = {"not": "a list"}
        row["generated"] = ["x" * 10]
    assert rescore_problem(run, rows).startswith("re-scoring task tiny_gen: ")
