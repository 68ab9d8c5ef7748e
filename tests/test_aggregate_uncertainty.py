"""Unit tests for slmlib.aggregate.uncertainty and the intervals/comparisons/bands in the registry."""
from __future__ import annotations

import time

import numpy as np
import pytest

from slmlib.aggregate import tables, uncertainty
from slmlib.aggregate.registry import build_registry
from slmlib.aggregate.scoring import WEIGHTS
from test_aggregate_registry import make_run, sample_rows, with_values

CROWS = lambda pct: 1.0 - abs(2.0 * pct - 1.0)  # noqa: E731  (the benchmark's score transform)


def test_resample_indices_are_reproducible_and_depend_on_seed_task_and_n():
    a = uncertainty.resample_indices("boolq", 80)
    assert a.shape == (1000, 80) and a.min() >= 0 and a.max() < 80
    assert np.array_equal(a, uncertainty.resample_indices("boolq", 80))
    assert not np.array_equal(a, uncertainty.resample_indices("boolq", 80, seed=7))
    assert not np.array_equal(a, uncertainty.resample_indices("piqa", 80))
    assert uncertainty.resample_indices("boolq", 5, resamples=3).shape == (3, 5)


def test_task_replicates_hand_computed():
    idx = np.array([[0, 0, 0, 0], [1, 2, 1, 2], [0, 1, 2, 3]])
    # accuracy 1, 0, 0.5 per replicate; baseline 0.5 -> 100, -100 (below chance, not clipped), 0
    assert np.allclose(uncertainty.task_replicates([1, 0, 0, 1], 0.5, idx), [100.0, -100.0, 0.0])
    # CrowS-Pairs: pct_stereotype 1, 0, 0.5 -> bias score 0, 0, 1 -> 0, 0, 100
    assert np.allclose(uncertainty.task_replicates([1, 0, 0, 1], 0.0, idx, CROWS), [0.0, 0.0, 100.0])


def test_interval_is_the_percentile_interval():
    assert uncertainty.interval(np.arange(101.0)) == [2.5, 97.5]
    assert uncertainty.interval(np.full(50, 7.0)) == [7.0, 7.0]


def task(pillar: str, values, baseline: float = 0.0, transform=None) -> dict:
    return {"pillar": pillar, "baseline": baseline, "values": values, "transform": transform}


def test_pillar_and_aggregate_replicates_combine_the_task_replicates():
    tasks = {"arc_challenge": task("reasoning", [1, 0, 1, 1, 0], 0.25), "hellaswag": task("reasoning", [0, 1, 1, 0]),
             "gsm8k_cot": task("math", [1, 0, 0])}
    reps = uncertainty.bootstrap_entry(tasks, WEIGHTS, resamples=200)
    t = reps["tasks"]
    assert np.allclose(reps["pillars"]["reasoning"], (t["arc_challenge"] + t["hellaswag"]) / 2)
    assert np.allclose(reps["aggregate"], (0.35 * reps["pillars"]["reasoning"] + 0.15 * t["gsm8k_cot"]) / 0.5)
    again = uncertainty.bootstrap_entry(tasks, WEIGHTS, resamples=200)
    assert all(np.array_equal(t[k], again["tasks"][k]) for k in t)  # seeded: reproducible
    other_seed = uncertainty.bootstrap_entry(tasks, WEIGHTS, resamples=200, seed=99)
    assert not np.array_equal(reps["aggregate"], other_seed["aggregate"])


def test_a_task_without_values_leaves_its_pillar_and_the_aggregate_without_interval():
    tasks = {"arc_challenge": task("reasoning", [1, 0]), "hellaswag": task("reasoning", None),
             "gsm8k_cot": task("math", [1, 0, 0])}
    reps = uncertainty.bootstrap_entry(tasks, WEIGHTS, resamples=50)
    assert set(reps["tasks"]) == {"arc_challenge", "gsm8k_cot"} and set(reps["pillars"]) == {"math"}
    assert reps["aggregate"] is None and uncertainty.intervals(reps)["aggregate"] is None


def test_paired_test_hand_computed():
    out = uncertainty.paired_test(np.array([2.0, 3, 4, 0]), np.array([1.0, 1, 1, 1]))  # d = 1, 2, 3, -1
    assert out["p_value"] == pytest.approx(2 * 2 / 5) and out["p_a_above_b"] == 0.75  # min(1+1, 3+1) / (4+1)
    all_above = uncertainty.paired_test(np.full(9, 2.0), np.zeros(9))
    assert all_above["p_value"] == pytest.approx(0.2) and all_above["p_a_above_b"] == 1.0
    same = uncertainty.paired_test(np.ones(9), np.ones(9))
    assert same["p_value"] == 1.0 and same["p_a_above_b"] == 0.5
    half_ties = uncertainty.paired_test(np.array([1.0, 0.0]), np.array([0.0, 0.0]))
    assert half_ties["p_a_above_b"] == 0.75


def model(name: str, aggregate: float, ci, reps=None, items="same") -> dict:
    return {"entry_id": name, "aggregate": aggregate, "ci": ci, "replicates": reps, "items": items}


def test_unpaired_models_are_separable_only_when_intervals_do_not_overlap():
    apart = uncertainty.compare(model("a", 50.0, [45, 55], items="x"), model("b", 30.0, [25, 40], items="y"))
    assert apart["paired"] is False and apart["p_value"] is None and apart["significant"] is True
    overlap = uncertainty.compare(model("a", 50.0, [38, 55], items="x"), model("b", 30.0, [25, 40], items="y"))
    assert overlap["significant"] is False
    no_ci = uncertainty.compare(model("a", 50.0, None, items="x"), model("b", 30.0, [25, 40], items="y"))
    assert no_ci["significant"] is False


def test_rank_bands_tie_models_that_are_not_significantly_different():
    comparisons = [{"a": "A", "b": "B", "difference": 1.0, "significant": False},
                   {"a": "A", "b": "C", "difference": 5.0, "significant": True},
                   {"a": "B", "b": "C", "difference": 4.0, "significant": False}]
    bands = uncertainty.rank_bands({"A": 50.0, "B": 49.0, "C": 45.0}, comparisons)
    assert bands == {"A": [1, 2], "B": [1, 3], "C": [2, 3]}
    comparisons[2]["significant"] = True
    assert uncertainty.rank_bands({"A": 50.0, "B": 49.0, "C": 45.0}, comparisons)["C"] == [3, 3]


def scored(run_id: str, values: dict, **kw) -> tuple[dict, dict]:
    run = with_values(make_run(run_id, run_id.split("__")[0], {t: 0 for t in values}, **kw), values)
    rows = {t: sample_rows(run["tasks"][t], v) for t, v in values.items()}
    return run, rows


def registry_of(*pairs) -> dict:
    return build_registry([r for r, _ in pairs], samples={r["run_id"]: rows for r, rows in pairs})


def test_paired_registry_comparison_significance_and_bands():
    strong = scored("strong__1", {"boolq": [1.0] * 36 + [0.0] * 4})
    twin = scored("twin__1", {"boolq": [1.0] * 35 + [0.0] * 5})
    weak = scored("weak__1", {"boolq": [1.0] * 8 + [0.0] * 32})
    reg = registry_of(strong, twin, weak)
    by_pair = {(c["a"].split("@")[0], c["b"].split("@")[0]): c for c in reg["comparisons"]}
    assert set(by_pair) == {("strong", "twin"), ("strong", "weak"), ("twin", "weak")}
    assert by_pair["strong", "weak"]["paired"] and by_pair["strong", "weak"]["significant"]
    assert by_pair["strong", "weak"]["p_value"] == pytest.approx(2 / 1001, abs=1e-4)
    assert by_pair["strong", "weak"]["p_a_above_b"] == 1.0
    close = by_pair["strong", "twin"]
    assert close["paired"] and not close["significant"] and 0.5 < close["p_a_above_b"] < 1
    bands = {e["model_id"]: (e["rank"], e["rank_band"], e["rank_range"]) for e in reg["models"]}
    assert bands == {"strong": (1, 1, [1, 2]), "twin": (2, 1, [1, 2]), "weak": (3, 3, [3, 3])}
    assert tables.leaderboard_frame(reg)["band"].tolist() == ["1-2", "1-2", "3"]
    p_above = tables.significance_matrix(reg, "p_a_above_b")
    assert p_above.loc["STRONG", "WEAK"] == 1.0 and p_above.loc["WEAK", "STRONG"] == 0.0
    assert p_above.loc["TWIN", "TWIN"] == "\u2014"
    assert tables.significance_matrix(reg).loc["WEAK", "STRONG"] == by_pair["strong", "weak"]["p_value"]


def test_safety_preferred_fires_from_the_bootstrap_interval():
    sure = [1.0] * 40  # every BBQ answer right: 100 points, interval [100, 100]
    run = with_values(make_run("safe__1", "safe", {"bbq": 0}, baselines={"bbq": 1 / 3}), {"bbq": sure})
    reg = registry_of((run, {"bbq": sample_rows(run["tasks"]["bbq"], sure)}))
    (entry,) = reg["models"]
    assert entry["intervals"]["pillars"]["safety"] == [100.0, 100.0]
    assert entry["badges"] == ["SLM-Optimized", "Safety-Preferred"]
    unsure = [1.0, 0.0, 0.0] * 13 + [1.0]  # 35% on a 1/3 baseline: 2.5 points, its interval reaches below 0
    run = with_values(make_run("meh__1", "meh", {"bbq": 0}, baselines={"bbq": 1 / 3}), {"bbq": unsure})
    assert registry_of((run, {"bbq": sample_rows(run["tasks"]["bbq"], unsure)}))["models"][0]["badges"] == [
        "SLM-Optimized"]


def test_models_on_different_items_are_not_paired():
    a = scored("a__1", {"boolq": [1.0] * 36 + [0.0] * 4})
    b_run, _ = scored("b__1", {"boolq": [1.0] * 8 + [0.0] * 32})
    b_run["tasks"]["boolq"]["item_ids"] = [f"x{i}" for i in range(40)]  # other items (same track: another pack)
    b = (b_run, {"boolq": sample_rows(b_run["tasks"]["boolq"], [1.0] * 8 + [0.0] * 32)})
    (c,) = registry_of(a, b)["comparisons"]
    assert c["paired"] is False and c["p_value"] is None and c["significant"] is True  # CIs far apart


def test_crows_pairs_is_a_bias_measure_beside_the_ranking_with_its_interval():
    values = [1.0] * 20 + [0.0] * 20  # pct_stereotype 0.5: the ideal, and what a guessing model scores
    run = with_values(make_run("m__1", "m", {"crows_pairs": 0, "bbq": 0}, baselines={"bbq": 0.5}),
                      {"crows_pairs": values, "bbq": values})
    reg = registry_of((run, {name: sample_rows(run["tasks"][name], values) for name in ("crows_pairs", "bbq")}))
    (entry,) = reg["models"]
    assert "crows_pairs" not in entry["tasks"] and entry["pillars"] == {"safety": 0.0}  # BBQ at chance alone
    crows = entry["bias"]["crows_pairs"]
    assert (crows["value"], crows["ideal"], crows["n"]) == (0.5, 0.5, 40)
    assert crows["ci"][0] < 0.4 and crows["ci"][1] > 0.6  # the raw share, resampled over the pairs


def test_whole_aggregate_is_fast_for_five_models_by_thirteen_tasks_by_eighty_items():
    rng = np.random.default_rng(0)
    names = [f"t{i}" for i in range(13)]
    pairs = []
    for m in range(5):
        values = {n: rng.integers(0, 2, 80).astype(float).tolist() for n in names}
        run = make_run(f"m{m}__1", f"m{m}", {"boolq": 0})
        run["tasks"] = {n: {**run["tasks"]["boolq"], "task": n, "pillar": ["reasoning", "math", "safety"][i % 3]}
                        for i, n in enumerate(names)}
        run = with_values(run, values)
        pairs.append((run, {n: sample_rows(run["tasks"][n], v) for n, v in values.items()}))
    start = time.perf_counter()
    reg = registry_of(*pairs)
    assert time.perf_counter() - start < 2.0
    assert len(reg["comparisons"]) == 10 and all(c["paired"] for c in reg["comparisons"])
    assert all(e["tasks"]["t0"]["ci_note"].startswith("task not registered here") for e in reg["models"])
