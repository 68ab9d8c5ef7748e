"""Safety pillar metrics: TruthfulQA MC2 (lm-eval's truthfulqa_mc2 on the BIG-bench copy) and
BBQ's accuracy per context condition, on the real pinned data and through lm-eval on a tiny model."""

from __future__ import annotations

import math

import pytest

from slmlib import artifacts, datapacks
from slmlib.evaluate import harness, suites
from slmlib.aggregate import registry
from slmlib.benchmarks import get_benchmark
from slmlib.benchmarks import safety
from tiny import build_tiny_model


def prepared(name: str, limit: int | None = None, seed: int = 1234) -> suites.PreparedTask:
    try:
        return suites.prepare_task(name, limit, seed)
    except datapacks.DataPackError as exc:
        pytest.skip(f"data pack missing for {name}; run `make setup`: {exc}")


def docs_of(prep: suites.PreparedTask) -> list[dict]:
    return artifacts.read_jsonl(prep.data_file)


# --- TruthfulQA MC2 ---------------------------------------------------------------------

def test_mc2_is_safety_mc1_is_reasoning_and_the_methodology_says_why():
    assert get_benchmark("truthfulqa_mc1").pillar == "reasoning"
    assert get_benchmark("truthfulqa_mc2").pillar == "safety"
    assert "truthfulqa_mc2" in suites.SUITES["embedded"] and "truthfulqa_mc1" in suites.SUITES["embedded"]
    row = next(r for r in suites.benchmark_table() if r["task"] == "truthfulqa_mc2")
    assert "counts once in one pillar" in row["source"] and "MC1" in row["source"]
    assert row["baseline"] == "true answers / choices per item"


def test_mc2_documents_hold_several_true_answers_and_extend_mc1():
    mc1, mc2 = docs_of(prepared("truthfulqa_mc1")), docs_of(prepared("truthfulqa_mc2"))
    assert len(mc1) == len(mc2) == 299
    several = 0
    for one, many in zip(mc1, mc2):
        assert one["question"] == many["question"] and one["item_id"] == many["item_id"]
        labels, choices = many["mc2_targets"]["labels"], many["mc2_targets"]["choices"]
        assert len(labels) == len(choices) == len(set(choices)) and 1 <= sum(labels) < len(labels)
        true = {c for c, label in zip(choices, labels) if label}
        false = set(choices) - true
        mc1_true = [c for c, label in zip(one["mc1_targets"]["choices"], one["mc1_targets"]["labels"]) if label]
        assert set(mc1_true) <= true  # MC1's one true answer is among MC2's true answers
        assert set(one["mc1_targets"]["choices"]) - set(mc1_true) <= false
        several += sum(labels) > 1
    assert several == 262  # 37 of the 299 questions have a single true reference answer


def test_mc2_config_is_lm_evals_truthfulqa_mc2():
    config = harness.task_config(prepared("truthfulqa_mc2", 5))
    mc1 = harness.task_config(prepared("truthfulqa_mc1", 5))
    assert config["doc_to_text"] == mc1["doc_to_text"]  # the same 6-shot QA preamble (lm-eval's include)
    assert config["doc_to_choice"] == "{{mc2_targets.choices}}"
    process = config["process_results"]  # lm-eval's own function, loaded from its truthfulqa/utils.py
    assert process.__name__ == "process_results_mc2"
    assert process.__code__.co_filename == str(harness.lm_eval_tasks_dir() / "truthfulqa" / "utils.py")
    assert config["metric_list"] == [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}]


def test_mc2_baseline_is_lm_evals_metric_for_a_uniform_model():
    prep = prepared("truthfulqa_mc2", 40, 7)
    process = harness.task_config(prep)["process_results"]
    docs = docs_of(prep)
    chosen = [docs[i] for i in prep.indices]
    uniform = [process(d, [(-2.0, False)] * len(d["mc2_targets"]["choices"]))["acc"] for d in chosen]
    assert prep.baseline == pytest.approx(sum(uniform) / len(uniform))
    one_over_n = sum(1 / len(d["mc2_targets"]["choices"]) for d in chosen) / len(chosen)
    assert prep.baseline > one_over_n + 0.1  # not the single-answer baseline


def test_mc2_sample_is_stratified_by_category():
    prep = prepared("truthfulqa_mc2", 60, 1234)
    docs = docs_of(prep)
    cats = {d["category"] for d in docs}
    chosen = {docs[i]["category"] for i in prep.indices}
    assert len(cats) == 22 and chosen == cats  # 60 items: every category gets at least its floor share


# --- BBQ accuracy per context condition ----------------------------------------------

def test_bbq_results_and_aggregations_on_known_numbers():
    doc = {"gold": 1, "context_condition": "disambig"}
    assert safety.bbq_results(doc, [(-3.0, False), (-1.0, False), (-2.0, False)]) == {
        "acc": 1.0, "accuracy_amb": (1.0, True), "accuracy_disamb": (1.0, True)}
    amb = safety.bbq_results({"gold": 0, "context_condition": "ambig"}, [(-3.0, False), (-1.0, False)])
    assert amb["acc"] == 0.0 and amb["accuracy_amb"] == (0.0, False)
    items = [(1.0, False), (0.0, False), (0.0, False), (1.0, True), (1.0, True)]
    assert safety.accuracy_amb(items) == pytest.approx(1 / 3)
    assert safety.accuracy_disamb(items) == 1.0
    assert math.isnan(safety.accuracy_disamb(items[:3]))  # no disambiguated items


def test_extra_metrics_keep_secondary_metrics_and_map_nan_to_none():
    bench = get_benchmark("bbq")
    config = {"metric_list": bench.overrides["metric_list"]}
    metrics = {"acc,none": 0.5, "acc_stderr,none": 0.1, "accuracy_amb,none": float("nan"),
               "accuracy_disamb,none": 0.75}
    assert harness.extra_metrics(config, metrics, bench) == {"accuracy_amb": None, "accuracy_disamb": 0.75}


def test_registry_carries_the_median_extra_metrics():
    recs = [{"extra_metrics": {"accuracy_amb": 0.2, "accuracy_disamb": None}},
            {"extra_metrics": {"accuracy_amb": 0.4, "accuracy_disamb": None}},
            {"extra_metrics": {"accuracy_amb": 0.9}}]
    assert registry.median_extra_metrics(recs) == {"accuracy_amb": 0.4, "accuracy_disamb": None}
    assert registry.median_extra_metrics([{}]) == {}


# --- through lm-eval on a tiny random model ------------------------------------------

@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from slmlib import weights

    model, tok, _ = weights.load_model(str(build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")))
    return harness.make_lm(model, tok, batch_size=4)


def test_bbq_reports_accuracy_on_each_context_condition(tiny_lm):
    prep = prepared("bbq", 12, 1234)
    record, rows = harness.run_task(tiny_lm, prep, 1234)
    docs = docs_of(prep)
    condition = {d["item_id"]: d["context_condition"] for d in docs}
    by = {c: [r["value"] for r in rows if condition[r["item_id"]] == c] for c in ("ambig", "disambig")}
    assert by["ambig"] and by["disambig"]  # stratified: both conditions present
    assert record["extra_metrics"] == {"accuracy_amb": pytest.approx(sum(by["ambig"]) / len(by["ambig"])),
                                       "accuracy_disamb": pytest.approx(sum(by["disambig"]) / len(by["disambig"]))}
    assert record["metric"] == "acc" and record["raw"] == pytest.approx(sum(r["value"] for r in rows) / 12)


def test_mc2_scores_probability_mass_through_lm_eval(tiny_lm):
    prep = prepared("truthfulqa_mc2", 6, 1234)
    record, rows = harness.run_task(tiny_lm, prep, 1234)
    assert record["pillar"] == "safety" and record["n"] == 6
    values = [r["value"] for r in rows]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert record["raw"] == pytest.approx(sum(values) / 6)
    for row in rows:  # the value is the softmax mass of the true answers over the choices' log-likelihoods
        doc = next(d for d in docs_of(prep) if d["item_id"] == row["item_id"])
        top = max(ll for ll, _ in row["response"])
        probs = [math.exp(ll - top) for ll, _ in row["response"]]
        mass = sum(p for p, label in zip(probs, doc["mc2_targets"]["labels"]) if label) / sum(probs)
        assert row["value"] == pytest.approx(mass, rel=1e-6)
