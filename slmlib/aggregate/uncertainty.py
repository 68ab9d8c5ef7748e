"""Aggregate stage: bootstrap confidence intervals, paired comparisons and rank bands.

Pure numpy over per-item values (the `value` column of `samples/<task>.jsonl`); nothing here
reads or writes files. Each task's items are resampled with an index matrix drawn from a
generator seeded by (`SEED`, task name, number of items), so every model evaluated on the
same items gets the same indices: comparing two models replicate by replicate is then a
paired bootstrap, and adding a model never changes another model's intervals.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .scoring import aggregate_score, normalize, pillar_means

RESAMPLES = 1000  # bootstrap replicates per task
SEED = 1234  # seeds every task's index matrix (with the task name and item count)
CONFIDENCE = 0.95  # two-sided percentile interval
ALPHA = 0.05  # significance level of the paired test
METHOD = ("percentile bootstrap over items: each task's items are resampled with replacement, the "
          "task's raw metric is recomputed and mapped through the benchmark's score transform, "
          "normalized against the recorded baseline; pillars and the aggregate are recomputed per "
          "replicate from the same indices")
TEST = ("paired bootstrap of the aggregate difference (same indices for both models): "
        "p = min(1, 2 * min(#(d <= 0) + 1, #(d >= 0) + 1) / (B + 1)); P(A > B) = share of d > 0 "
        "plus half the ties; significant when p < 0.05. Models on different items cannot be "
        "paired: no p-value, and they count as separable only when their 95% CIs do not overlap")
BANDS = ("rank band = 1 + the number of models significantly better; rank range = "
         "[rank band, number of models - the number significantly worse]; models whose ranges "
         "overlap are tied")


def resample_indices(task: str, n: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """A (resamples, n) matrix of item indices drawn with replacement, seeded by (seed, task, n)."""
    rng = np.random.default_rng([seed, zlib.crc32(task.encode()), n])
    return rng.integers(0, n, size=(resamples, n))


def task_replicates(values: Sequence[float], baseline: float, idx: np.ndarray,
                    transform: Callable[[float], float] | None = None) -> np.ndarray:
    """Normalized task score per replicate: mean of resampled values, score transform, baseline."""
    raw = np.asarray(values, dtype=float)[idx].mean(axis=1)
    score = raw if transform is None else np.array([transform(float(x)) for x in raw])
    return normalize(score, baseline)


def bootstrap_entry(tasks: Mapping[str, dict], weights: Mapping[str, float],
                    resamples: int = RESAMPLES, seed: int = SEED) -> dict:
    """Replicates of every task, pillar and the aggregate of one model.

    `tasks` maps name -> {"pillar", "baseline", "values" (None when unavailable), "transform"}.
    A pillar has replicates only when all its tasks do; the aggregate only when all pillars do.
    """
    reps = {name: task_replicates(t["values"], t["baseline"],
                                  resample_indices(name, len(t["values"]), resamples, seed), t["transform"])
            for name, t in sorted(tasks.items()) if t["values"]}
    pillar_of = {name: t["pillar"] for name, t in tasks.items()}
    complete = {p for p in pillar_of.values()
                if all(name in reps for name, q in pillar_of.items() if q == p)}
    pillars = {p: v for p, v in pillar_means(reps, pillar_of).items() if p in complete}
    aggregate = aggregate_score(pillars, weights) if pillars and complete == set(pillar_of.values()) else None
    return {"tasks": reps, "pillars": pillars, "aggregate": aggregate}


def interval(replicates: np.ndarray, confidence: float = CONFIDENCE) -> list[float]:
    """Two-sided percentile interval [lo, hi] of the replicates."""
    tail = (100 - 100 * confidence) / 2
    lo, hi = np.percentile(replicates, [tail, 100 - tail])
    return [float(lo), float(hi)]


def intervals(replicates: dict) -> dict:
    """`bootstrap_entry` replicates -> {"tasks": {name: [lo, hi]}, "pillars": {...}, "aggregate": [lo, hi] | None}."""
    agg = replicates["aggregate"]
    return {"tasks": {k: interval(v) for k, v in replicates["tasks"].items()},
            "pillars": {k: interval(v) for k, v in replicates["pillars"].items()},
            "aggregate": None if agg is None else interval(agg)}


def paired_test(a: np.ndarray, b: np.ndarray) -> dict:
    """Two-sided paired-bootstrap p-value and P(A > B) from replicates on the same indices."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    below, above = int((d <= 0).sum()), int((d >= 0).sum())
    p = min(1.0, 2 * min(below + 1, above + 1) / (len(d) + 1))
    return {"p_value": p, "p_a_above_b": float((d > 0).mean() + 0.5 * (d == 0).mean()),
            "difference_ci": interval(d)}


def compare(a: dict, b: dict, alpha: float = ALPHA) -> dict:
    """Compare two models, each {"entry_id", "aggregate", "ci", "replicates", "items"}.

    Paired (same tasks, same item ids, replicates for both): paired bootstrap. Otherwise no
    p-value, and significant only when the two 95% intervals do not overlap.
    """
    out = {"a": a["entry_id"], "b": b["entry_id"], "difference": a["aggregate"] - b["aggregate"]}
    paired = a["items"] == b["items"] and a["replicates"] is not None and b["replicates"] is not None
    if paired:
        test = paired_test(a["replicates"], b["replicates"])
        return {**out, **test, "paired": True, "significant": test["p_value"] < alpha}
    apart = bool(a["ci"] and b["ci"]) and (a["ci"][0] > b["ci"][1] or b["ci"][0] > a["ci"][1])
    return {**out, "p_value": None, "p_a_above_b": None, "difference_ci": None,
            "paired": False, "significant": apart}


def compare_all(models: Sequence[dict], alpha: float = ALPHA) -> list[dict]:
    """`compare` for every pair, in the order given (a before b)."""
    return [compare(a, b, alpha) for i, a in enumerate(models) for b in models[i + 1:]]


def rank_bands(aggregates: Mapping[str, float], comparisons: Sequence[dict]) -> dict[str, list[int]]:
    """Per entry id, [rank band, worst rank]: 1 + models significantly better, N - models significantly worse."""
    better = {k: 0 for k in aggregates}
    worse = {k: 0 for k in aggregates}
    for c in comparisons:
        if c["significant"]:
            top, low = (c["a"], c["b"]) if c["difference"] > 0 else (c["b"], c["a"])
            better[low] += 1
            worse[top] += 1
    n = len(aggregates)
    return {k: [1 + better[k], n - worse[k]] for k in aggregates}
