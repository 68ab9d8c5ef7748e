"""The chance rule (issue 22): a model that guesses uniformly at random scores 0 in expectation on
every ranked task, every pillar and the aggregate; bias measures stay beside the ranking.

What "guessing" means here, and why: lm-eval scores a multiple-choice item by the argmax of the
choices' log-likelihoods, and the argmax of equal values is the first choice. A model giving every
choice the same log-likelihood is therefore "always the first option", a constant strategy, not a
guesser: it scores 1.0 on TruthfulQA MC1 and HHH (their right answer is listed first) and the share of
"no" on BoolQ (`test_equal_loglikelihoods_are_the_first_choice_not_chance`). The guesser
(`backends.GuessingLM`) instead draws one choice per item uniformly, seeded per item, and puts all the
probability on it, so acc, acc_norm, TruthfulQA MC2's probability mass and CrowS-Pairs' comparison all
see a uniform pick; it generates the empty string.

Two tests then check the rule. Exactly: for every ranked multiple-choice task, the expectation of the
task's own metric (its lm-eval `process_results`) over the guesser's equally likely picks equals the
baseline the study normalizes against, so the normalized expectation is 0, and with it every pillar
and the aggregate (means of normalized tasks, not clipped at 0). By sampling: the guesser runs through
the real pipeline (evaluate loop, lm-eval, run folder, aggregate stage with its bootstrap) on the
embedded suite, and the aggregate's and every pillar's 95% interval holds 0.
"""

from __future__ import annotations

import functools
from collections import Counter

import pytest

from slmlib import aggregate, backends, datapacks, detect, evaluate, paths, params
from slmlib.aggregate.scoring import is_ranked
from slmlib.benchmarks import PILLARS, get_benchmark
from slmlib.evaluate import harness, loop, suites
from slmlib.evaluate.standard import uniform_score
from tiny import build_tiny_model, write_submission

SEED, LIMIT, LIMIT_GENERATIVE = 1234, 80, 20  # the default run's items for multiple choice; fewer generated


def lm_eval_task(prep: suites.PreparedTask):
    """The lm-eval task object the pipeline builds for a prepared embedded task."""
    return harness.task_manager().load([harness.task_config(prep)])["tasks"][prep.bench.name]


@functools.cache
def chosen_docs(name: str, limit: int | None = LIMIT):
    """The prepared task, its lm-eval task and the documents of the chosen items, as lm-eval sees them."""
    harness.set_offline_env()
    prep = prepared(name, limit)
    task = lm_eval_task(prep)
    docs = list(task.test_docs())
    return prep, task, [docs[i] for i in prep.indices]


def prepared(name: str, limit: int | None = LIMIT) -> suites.PreparedTask:
    try:
        return suites.prepare_task(name, limit, SEED)
    except datapacks.DataPackError as exc:
        pytest.skip(f"data pack missing for {name}; run `make setup`: {exc}")


MULTIPLE_CHOICE = [n for n in suites.SUITES["embedded"] if not get_benchmark(n).generative]


@pytest.fixture(scope="module")
def expectations() -> dict[str, tuple[float, float]]:
    """Per multiple-choice task of the embedded suite (the default run's items): the expectation of its
    primary metric under uniform guessing, computed item by item by the task's own lm-eval
    process_results with all the probability on each choice in turn, and the recorded baseline."""
    out = {}
    for name in MULTIPLE_CHOICE:
        prep, task, docs = chosen_docs(name)
        out[name] = (sum(uniform_score(task, d, prep.bench.metric) for d in docs) / len(docs), prep.baseline)
    return out


@pytest.mark.parametrize("name", MULTIPLE_CHOICE)
def test_expected_score_of_uniform_guessing_is_the_baseline(name, expectations):
    """Each benchmark's normalization with its own random baseline: the guesser's expected metric is the
    recorded baseline, so it normalizes to exactly 0; a perfect score normalizes to 100."""
    expected, baseline = expectations[name]
    bench = get_benchmark(name)
    if not bench.ranked:  # a bias measure: a guesser has no preference, which is the measure's ideal
        assert expected == pytest.approx(bench.bias_ideal)
        return
    assert expected == pytest.approx(baseline, abs=1e-12) and 0.0 < baseline < 1.0
    assert aggregate.normalize(expected, baseline) == pytest.approx(0.0, abs=1e-9)
    assert aggregate.normalize(1.0, baseline) == pytest.approx(100.0)


def test_every_pillar_and_the_aggregate_expect_zero(expectations):
    """Records as a guesser's run would hold them in expectation (multiple choice: the expected metric;
    generation: the empty answer, 0): every pillar and the aggregate are 0, CrowS-Pairs (expected 0.5,
    recorded against baseline 0) included in none."""
    records = []
    for name in suites.SUITES["embedded"]:
        bench = get_benchmark(name)
        score, base = expectations.get(name, (0.0, 0.0))
        records.append({"task": name, "pillar": bench.pillar, "score": score, "baseline": base})
    pillars = aggregate.pillar_scores(records)
    assert set(pillars) == set(PILLARS) and all(v == pytest.approx(0.0, abs=1e-9) for v in pillars.values())
    assert aggregate.aggregate_score(pillars) == pytest.approx(0.0, abs=1e-9)


def test_boolq_sample_has_as_many_yes_as_no_so_a_constant_answer_scores_chance():
    for limit, each in ((LIMIT, 40), (81, 40), (None, 1237)):
        prep, task, docs = chosen_docs("boolq", limit)
        assert Counter(d["label"] for d in docs) == {0: each, 1: each}, limit
    # the whole split is 62% "yes": a model that always says "yes" would score 0.62 there, 24 points
    split = list(task.test_docs())
    assert sum(d["label"] for d in split) / len(split) == pytest.approx(0.6217, abs=1e-4)


def test_balanced_sampling_follows_the_weights_exactly():
    docs = [{"g": "a"}] * 10 + [{"g": "b"}] * 3 + [{"g": "c"}] * 7
    equal = {"a": 1, "b": 1, "c": 1}
    for limit, each in ((6, 2), (7, 2), (100, 3), (None, 3)):
        chosen = suites.stratified_sample(docs, limit, "g", "s", equal)
        assert Counter(docs[i]["g"] for i in chosen) == {"a": each, "b": each, "c": each}
        assert chosen == sorted(set(chosen)) and chosen == suites.stratified_sample(docs, limit, "g", "s", equal)
    two = Counter(docs[i]["g"] for i in suites.stratified_sample(docs, 2, "g", "s", equal))
    assert sorted(two.values()) == [1, 1]  # under one unit: one item from each of two seeded groups, never none
    chosen = suites.stratified_sample(docs, None, "g", "s", {"a": 2, "b": 1, "c": 2})
    assert Counter(docs[i]["g"] for i in chosen) == {"a": 6, "b": 3, "c": 6}
    with pytest.raises(ValueError, match="give every group a weight"):
        suites.stratified_sample(docs, 6, "g", "s", {"a": 1, "b": 1})


CONSTANT_ANSWERS = ("boolq", "mmlu", "mathqa")  # the same answers every item (no/yes, A-D) or listed in the prompt


@pytest.mark.parametrize("name", CONSTANT_ANSWERS)
def test_a_constant_answer_scores_at_most_chance(name):
    """Where a model can give the same answer to every item (BoolQ's "yes", MMLU's letter, MathQA's listed
    position), the balanced sample makes that strategy score the chance level: exactly on BoolQ and MMLU;
    on MathQA 0.2 against 0.1991, since a few items list more than five options but never put the right
    one after the fifth (0.1 points)."""
    prep, task, docs = chosen_docs(name)
    always = []
    for j in range(5):
        picks = [task.process_results(d, [(0.0 if c == j else -1e9, c == j) for c in range(len(task.doc_to_choice(d)))])
                 for d in docs]
        always.append(sum(r[prep.bench.metric] for r in picks) / len(docs))
    assert aggregate.normalize(max(always), prep.baseline) <= (0.2 if name == "mathqa" else 1e-9), always


def test_hhh_always_the_longer_answer_scores_chance():
    """HHH's better answer is the longer one in 63% of its items; the sample holds as many of the others
    (two answers of equal length count as not longer: "the longest" is then the first, the better one)."""
    prep, task, docs = chosen_docs("hhh_alignment")
    longest = [task.process_results(d, [(0.0 if t == max(d["multiple_choice_targets"], key=len) else -1e9, False)
                                        for t in d["multiple_choice_targets"]])["acc"] for d in docs]
    ties = sum(len(set(map(len, d["multiple_choice_targets"]))) == 1 for d in docs)
    assert Counter(d["better_longer"] for d in docs) == {"yes": 40, "no": 40} and prep.baseline == 0.5
    assert sum(longest) == 40 + ties and ties <= 1


def test_bbq_always_unknown_scores_chance():
    """BBQ's right answer is "unknown" exactly in its ambiguous contexts: one in three items of the sample."""
    for limit in (LIMIT, None):
        prep, _, docs = chosen_docs("bbq", limit)
        unknown = [d["choices"][d["gold"]].strip().lower() in ("can't be determined", "cannot be determined",
                                                              "not enough info", "not enough information",
                                                              "undetermined", "unknown", "cannot answer",
                                                              "can't answer", "not answerable", "not known")
                   for d in docs]
        assert sum(unknown) * 3 == len(docs) and prep.baseline == pytest.approx(1 / 3)


@pytest.fixture(scope="module")
def tiny_card(tmp_path_factory):
    """A card to hang the synthetic model on (its weights are never used for a score)."""
    root = tmp_path_factory.mktemp("guess")
    card, report = detect.detect_submission(write_submission(root / "uniform-guesser.yaml",
                                                             build_tiny_model(root / "model")))
    assert report.ok, report.errors
    return card, root / "model"


def test_equal_loglikelihoods_are_the_first_choice_not_chance():
    """Why the guesser draws a choice: the same log-likelihood for every choice is "always the first"."""
    harness.set_offline_env()
    lm = backends.GuessingLM(equal=True)
    raw = {name: harness.run_task(lm, prepared(name, 20), SEED)[0]["raw"]
           for name in ("truthfulqa_mc1", "hhh_alignment", "boolq")}
    assert raw == {"truthfulqa_mc1": 1.0, "hhh_alignment": 1.0, "boolq": 0.5}  # BoolQ: "no", balanced sample


def test_a_guessing_model_scores_zero_through_the_pipeline(tiny_card, monkeypatch):
    """The guesser through the evaluate loop, lm-eval and the aggregate stage on the embedded suite: the
    aggregate's and every pillar's 95% bootstrap interval holds 0; generation scores exactly 0; CrowS-Pairs
    is reported beside the ranking at its ideal (the guesser has no preference)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    card, model_dir = tiny_card
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    timing = evaluate.hf_generator(AutoModelForCausalLM.from_pretrained(model_dir), tokenizer)  # edge figures only
    monkeypatch.setattr(loop, "load_backend", lambda *_: (backends.GuessingLM(seed=SEED), tokenizer, 0.0, timing))
    p = params.validate({"suite": "embedded", "tasks": [], "limit": LIMIT, "limit_generative": LIMIT_GENERATIVE,
                         "seed": SEED, "run_id": "guesser"})
    results = evaluate.evaluate_run(p, card, paths.run_dir("guesser"), progress=False)
    assert sorted(results["tasks"]) == sorted(suites.SUITES["embedded"])
    for name, rec in results["tasks"].items():
        if get_benchmark(name).generative:
            assert rec["raw"] == 0.0 and rec["baseline"] == 0.0, name

    study = aggregate.load_study()
    registry = aggregate.build_registry(study.runs, samples=study.samples)
    (entry,) = registry["models"]
    report = {p: (entry["pillars"][p], entry["intervals"]["pillars"][p]) for p in PILLARS}
    report["aggregate"] = (entry["aggregate"], entry["intervals"]["aggregate"])
    print("\nuniform guesser, embedded suite, limit 80/20, seed 1234:")
    for name, (value, (lo, hi)) in report.items():
        print(f"  {name:10s} {value:7.2f} [{lo:7.2f}, {hi:7.2f}]")
    for name, (value, (lo, hi)) in report.items():
        assert lo <= 0.0 <= hi, f"{name}: {value} [{lo}, {hi}] does not hold 0"
    assert sorted(entry["tasks"]) == sorted(n for n in suites.SUITES["embedded"] if is_ranked(n))
    crows = entry["bias"]["crows_pairs"]
    assert crows["ci"][0] <= crows["ideal"] <= crows["ci"][1]
    print(f"  crows_pairs pct_stereotype {crows['value']:.3f} [{crows['ci'][0]:.3f}, {crows['ci'][1]:.3f}]")
