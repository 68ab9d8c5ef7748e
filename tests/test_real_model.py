"""The real default model: the pipeline's score equals lm-eval run directly.

The direct run loads the shipped GGUF with lm-eval's own hf backend (`gguf_file=`),
while the pipeline loads its cached float32 conversion; both score the same task
config on the same items.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from slmlib import detect, evaluate, params, paths, runs, suites

pytestmark = pytest.mark.real_model
SUBMISSION = "params/submissions/smollm2-135m-instruct.yaml"


def test_pipeline_score_equals_lm_eval_direct_on_the_same_items():
    from lm_eval import simple_evaluate

    card, report = detect.detect_submission(SUBMISSION)
    assert report.ok, report.errors
    p = params.validate({"tasks": ["arc_challenge"], "limit": 12, "run_id": "real-model"})
    results = runs.evaluate_run(p, card, paths.run_dir(p.run_id), progress=False)
    ours = results["tasks"]["arc_challenge"]

    prep = suites.prepare_task("arc_challenge", 12, p.seed)
    gguf = Path(card["weights"]["path"])
    direct = simple_evaluate(
        model="hf", model_args={"pretrained": str(gguf.parent), "gguf_file": gguf.name,
                                "device": "cpu", "dtype": "float32"},
        tasks=[evaluate.task_config(prep)], samples={"arc_challenge": prep.indices}, batch_size=1,
        task_manager=evaluate.task_manager(), verbosity="WARNING")
    theirs = direct["results"]["arc_challenge"]

    assert ours["n"] == 12 and ours["item_ids"] == prep.item_ids
    assert ours["raw"] == theirs["acc_norm,none"]
    assert ours["all_metrics"]["acc,none"] == theirs["acc,none"]
    rows = {r["doc_id"]: r for r in
            evaluate.artifacts.read_jsonl(paths.run_dir(p.run_id) / "samples" / "arc_challenge.jsonl")}
    for sample in direct["samples"]["arc_challenge"]:
        mine = rows[sample["doc_id"]]
        assert mine["value"] == sample["acc_norm"]
        for (ll_a, _), (ll_b, _) in zip(mine["response"], sample["filtered_resps"]):
            assert ll_a == pytest.approx(float(ll_b), abs=2e-3)
