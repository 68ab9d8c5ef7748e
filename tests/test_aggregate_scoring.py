"""Unit tests for slmlib.aggregate.scoring: hand-computed numbers, no files."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from slmlib.benchmarks import PILLARS  # noqa: E402
from slmlib.aggregate.scoring import BADGES, RENORMALIZATION, SAFETY_PREFERRED_MIN, SIZE_BUCKETS, WEIGHTS, aggregate_score, award_badges, is_ranked, normalize, pillar_means, pillar_scores, size_bucket


def task(name: str, pillar: str, score: float, baseline: float = 0.0) -> dict:
    return {"task": name, "pillar": pillar, "score": score, "baseline": baseline}


def test_weights_cover_the_pillars():
    assert set(WEIGHTS) == set(PILLARS)
    # the specified weights sum to 1.10; only their ratios matter (renormalized)
    assert sum(WEIGHTS.values()) == pytest.approx(1.10)
    assert "1.10" in RENORMALIZATION and "divided by their sum" in RENORMALIZATION


@pytest.mark.parametrize("score, baseline, expected", [
    (0.5, 0.25, 100 / 3),  # (0.5 - 0.25) / 0.75
    (0.25, 0.25, 0.0),  # exactly chance
    (0.1, 0.25, -20.0),  # below chance is negative, not clipped: chance scores 0 in expectation
    (0.75, 0.5, 50.0),
    (1.0, 0.5, 100.0),
    (0.4, 0.5, -20.0),
    (0.0, 0.5, -100.0),  # always wrong on a two-choice task
    (0.3, 0.0, 30.0),  # generation: baseline 0 keeps the raw score
    (0.9, 1.0, 0.0),  # baseline 1 leaves nothing to normalize
    (0.9, 1.5, 0.0),
])
def test_normalize(score, baseline, expected):
    assert normalize(score, baseline) == pytest.approx(expected)


def test_normalize_at_chance_is_a_float_zero():
    value = normalize(0.25, 0.25)
    assert value == 0.0 and isinstance(value, float) and str(value) == "0.0"


def test_clipping_at_chance_would_give_a_guessing_model_points():
    """Why normalize does not clip: the mean of a guesser's normalized replicates is 0, the mean of
    their positive part is not (about 0.4 of a standard deviation)."""
    rng = np.random.default_rng(0)
    guesses = rng.binomial(80, 0.25, size=20_000) / 80  # accuracy of uniform guessing, 80 four-choice items
    values = normalize(guesses, 0.25)
    assert abs(values.mean()) < 0.2 and np.maximum(values, 0).mean() > 2.0


def test_normalize_works_on_replicate_arrays():
    out = normalize(np.array([0.1, 0.25, 0.5, 1.0]), 0.25)
    assert np.allclose(out, [-20.0, 0.0, 100 / 3, 100.0])
    assert np.array_equal(normalize(np.array([0.5, 0.9]), 1.0), [0.0, 0.0])


def test_pillar_means_take_replicate_arrays():
    reps = pillar_means({"a": np.array([10.0, 20.0]), "b": np.array([30.0, 40.0]), "c": np.array([5.0, 5.0])},
                        {"a": "reasoning", "b": "reasoning", "c": "math"})
    assert list(reps) == ["reasoning", "math"] and np.allclose(reps["reasoning"], [20.0, 30.0])
    assert np.allclose(aggregate_score(reps), [(0.35 * 20 + 0.15 * 5) / 0.5, (0.35 * 30 + 0.15 * 5) / 0.5])


def test_pillar_scores_are_means_of_normalized_tasks():
    records = [
        task("arc_challenge", "reasoning", 0.5, 0.25),  # 33.33
        task("hellaswag", "reasoning", 0.75, 0.5),  # 50
        task("gsm8k_cot", "math", 0.2),  # 20
    ]
    pillars = pillar_scores(records)
    assert set(pillars) == {"reasoning", "math"}  # pillars without tasks are absent
    assert pillars["reasoning"] == pytest.approx((100 / 3 + 50) / 2)
    assert pillars["math"] == pytest.approx(20.0)


def test_pillar_scores_count_each_task_once():
    records = [task("gsm8k_cot", "math", 0.2), task("gsm8k_cot", "math", 0.2), task("arithmetic", "math", 0.6)]
    assert pillar_scores(records) == {"math": pytest.approx(40.0)}
    as_mapping = {"gsm8k_cot": task("gsm8k_cot", "math", 0.2), "arithmetic": task("arithmetic", "math", 0.6)}
    assert pillar_scores(as_mapping) == {"math": pytest.approx(40.0)}


def test_bias_measures_stay_out_of_the_pillars():
    records = [task("bbq", "safety", 0.5, 1 / 3), task("crows_pairs", "safety", 0.5)]  # CrowS at its ideal
    assert not is_ranked("crows_pairs") and is_ranked("bbq") and is_ranked("not_registered_here")
    assert pillar_scores(records) == {"safety": pytest.approx(25.0)}  # BBQ alone
    assert pillar_scores([task("crows_pairs", "safety", 0.5)]) == {}


def test_pillar_scores_reject_conflicting_duplicates_and_unknown_pillars():
    with pytest.raises(ValueError, match="twice"):
        pillar_scores([task("gsm8k_cot", "math", 0.2), task("gsm8k_cot", "math", 0.3)])
    with pytest.raises(ValueError, match="pillar"):
        pillar_scores([task("x", "vibes", 0.2)])


def test_aggregate_with_all_pillars_is_the_weighted_mean():
    pillars = {"reasoning": 50.0, "coding": 10.0, "math": 20.0, "language": 60.0, "safety": 40.0}
    expected = (0.35 * 50 + 0.20 * 10 + 0.15 * 20 + 0.20 * 60 + 0.20 * 40) / 1.10  # = 42.5 / 1.1
    assert aggregate_score(pillars) == pytest.approx(expected)


def test_aggregate_renormalizes_weights_over_present_pillars():
    expected = (0.35 * 50 + 0.15 * 20) / 0.5  # = 41.0
    assert aggregate_score({"reasoning": 50.0, "math": 20.0}) == pytest.approx(expected)
    assert expected == pytest.approx(41.0)
    assert aggregate_score({"coding": 12.5}) == pytest.approx(12.5)
    assert aggregate_score({p: 70.0 for p in PILLARS}) == pytest.approx(70.0)


def test_aggregate_takes_other_weights():
    weights = {"reasoning": 1.0, "math": 3.0}
    assert aggregate_score({"reasoning": 40.0, "math": 80.0}, weights) == pytest.approx(70.0)
    # a pillar the weights leave out weighs nothing
    assert aggregate_score({"reasoning": 40.0, "coding": 0.0}, weights) == pytest.approx(40.0)


def test_aggregate_rejects_bad_weights_and_empty_pillars():
    with pytest.raises(ValueError, match="unknown pillar"):
        aggregate_score({"reasoning": 1.0}, {"reasoning": 1.0, "vibes": 1.0})
    with pytest.raises(ValueError, match=">= 0"):
        aggregate_score({"reasoning": 1.0}, {"reasoning": -1.0})
    with pytest.raises(ValueError, match="no weight"):
        aggregate_score({})
    with pytest.raises(ValueError, match="no weight"):
        aggregate_score({"coding": 1.0}, {"reasoning": 1.0})


@pytest.mark.parametrize("count, bucket", [
    (1, "tiny"), (99_999_999, "tiny"),
    (100_000_000, "small"), (134_515_008, "small"), (500_000_000, "small"),
    (500_000_001, "medium"), (999_999_999, "medium"),
    (1_000_000_000, "large"), (3_000_000_000, "large"),
])
def test_size_bucket_boundaries(count, bucket):
    assert size_bucket(count) == bucket


@pytest.mark.parametrize("count", [0, -5, 3_000_000_001])
def test_size_bucket_rejects_counts_outside_the_study(count):
    with pytest.raises(ValueError, match="outside"):
        size_bucket(count)


def test_size_buckets_are_documented_in_order():
    assert [b["name"] for b in SIZE_BUCKETS] == ["tiny", "small", "medium", "large"]
    assert all(b["rule"] for b in SIZE_BUCKETS)


def test_slm_optimized_badge_at_the_500m_boundary():
    assert [b["name"] for b in BADGES] == ["SLM-Optimized", "Safety-Preferred", "Eco-Efficient"]
    assert all(b["rule"] and b["why"] for b in BADGES)
    assert award_badges({"parameter_count": 134_515_008}) == ["SLM-Optimized"]
    assert award_badges({"parameter_count": 500_000_000}) == ["SLM-Optimized"]
    assert award_badges({"parameter_count": 500_000_001}) == []
    assert award_badges({"parameter_count": None}) == []
    assert award_badges({}) == []


def safety(lo: float) -> dict:
    return {"parameter_count": 2_000_000_000, "intervals": {"pillars": {"safety": [lo, lo + 10]}}}


def test_safety_preferred_needs_the_ci_lower_bound_above_chance():
    assert SAFETY_PREFERRED_MIN == 0.0  # a guessing model's expected safety pillar
    assert award_badges(safety(0.1)) == ["Safety-Preferred"]
    assert award_badges(safety(0.0)) == [] and award_badges(safety(-3.0)) == []  # not measurably above chance
    assert award_badges({"parameter_count": 2_000_000_000, "intervals": {"pillars": {}}}) == []
    assert award_badges({"parameter_count": 2_000_000_000, "intervals": None}) == []


def eco(model: str, aggregate: float, efficiency: float | None, limit: int = 40) -> dict:
    return {"model_id": model, "parameter_count": 2_000_000_000, "aggregate": aggregate, "efficiency": efficiency,
            "suite": "embedded", "limit": limit, "limit_generative": 16}


def test_eco_efficient_is_at_least_the_median_of_same_items_peers():
    a, b, c = eco("a", 30.0, 3000.0), eco("b", 20.0, 2000.0), eco("c", 40.0, 1000.0)
    other_limit = eco("d", 50.0, 9000.0, limit=80)  # other items: not a peer
    peers = [a, b, c, other_limit]
    assert [award_badges(e, peers) for e in (a, b, c)] == [["Eco-Efficient"], ["Eco-Efficient"], []]
    assert award_badges(other_limit, peers) == ["Eco-Efficient"]  # alone among its peers
    assert award_badges(eco("e", 9.9, 1e9), [eco("e", 9.9, 1e9)]) == []  # below the 10-point floor
    assert award_badges(eco("f", 50.0, None), peers) == []  # no energy data: never fires
