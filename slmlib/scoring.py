"""Scoring math for the aggregate stage: normalization, pillars, weights, sizes, badges.

Pure functions only: they take numbers and task records and return numbers; nothing
here reads or writes files. The pillar weights live here (`WEIGHTS`) and nowhere else;
the aggregate notebook may pass other weights as a parameter.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from .benchmarks import PILLARS

# Relative weight of each pillar in the aggregate. As specified these sum to 1.10, not 1;
# `aggregate_score` divides by the sum over the pillars present, so only ratios matter.
WEIGHTS: dict[str, float] = {"reasoning": 0.35, "coding": 0.20, "math": 0.15, "language": 0.20, "safety": 0.20}

NORMALIZATION = "max(0, (score - baseline) / (1 - baseline)) * 100"

# Size buckets by parameter count, as documented rules (logic in `size_bucket`).
MAX_PARAMETERS = 3_000_000_000
SIZE_BUCKETS: tuple[dict[str, str], ...] = (
    {"name": "tiny", "rule": "fewer than 100M parameters"},
    {"name": "small", "rule": "100M to 500M parameters (both included)"},
    {"name": "medium", "rule": "more than 500M and fewer than 1B parameters"},
    {"name": "large", "rule": "1B to 3B parameters (both included)"},
)

# Badges as documented rules (the methodology page prints name and rule).
SLM_OPTIMIZED_MAX = 500_000_000
BADGES: tuple[dict[str, str], ...] = (
    {"name": "SLM-Optimized", "rule": "at most 500M parameters (parameter_count <= 500,000,000)"},
)


def normalize(score: float, baseline: float) -> float:
    """Points above random guessing, 0-100: `max(0, (score - b) / (1 - b)) * 100`.

    A baseline of 1 or more leaves no room above chance, so the result is 0.
    """
    if baseline >= 1:
        return 0.0
    return float(max(0.0, (score - baseline) / (1.0 - baseline)) * 100.0)


def unique_tasks(task_records: Mapping[str, dict] | Iterable[dict]) -> dict[str, dict]:
    """Task records keyed by task name; a task given twice with different values is an error."""
    if isinstance(task_records, Mapping):
        return {name: {**rec, "task": rec.get("task", name)} for name, rec in task_records.items()}
    tasks: dict[str, dict] = {}
    for rec in task_records:
        name = rec["task"]
        if name in tasks and tasks[name] != rec:
            raise ValueError(f"task {name!r} appears twice with different results")
        tasks[name] = rec
    return tasks


def pillar_scores(task_records: Mapping[str, dict] | Iterable[dict]) -> dict[str, float]:
    """Mean normalized score (0-100) per pillar; each task counts once.

    `task_records` holds records with `task`, `pillar`, `score` and `baseline` (a list, or
    a mapping task name -> record). Pillars without tasks are absent from the result.
    """
    by_pillar: dict[str, list[float]] = {}
    for rec in unique_tasks(task_records).values():
        pillar = rec["pillar"]
        if pillar not in PILLARS:
            raise ValueError(f"task {rec['task']!r}: pillar {pillar!r} is not one of {PILLARS}")
        by_pillar.setdefault(pillar, []).append(normalize(rec["score"], rec["baseline"]))
    return {p: sum(v) / len(v) for p in PILLARS if (v := by_pillar.get(p))}


def aggregate_score(pillars: Mapping[str, float], weights: Mapping[str, float] = WEIGHTS) -> float:
    """Weighted mean of the pillars present.

    Weights are renormalized: each present pillar's weight is divided by the sum of the
    weights of the pillars present, so a model without (say) a coding score is ranked on
    the other pillars rather than given 0 for coding. A pillar missing from `weights`
    weighs 0.
    """
    check_weights(weights)
    total = sum(weights.get(p, 0.0) for p in pillars)
    if total <= 0:
        raise ValueError(f"no weight on the pillars present ({', '.join(pillars) or 'none'})")
    return sum(weights.get(p, 0.0) * v for p, v in pillars.items()) / total


def check_weights(weights: Mapping[str, float]) -> Mapping[str, float]:
    """Return `weights` if every key is a pillar and every value a finite number >= 0."""
    unknown = sorted(set(weights) - set(PILLARS))
    if unknown:
        raise ValueError(f"weights: unknown pillar(s) {unknown}; pillars are {PILLARS}")
    for pillar, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise ValueError(f"weights: {pillar} must be a finite number >= 0, got {w!r}")
    return weights


def size_bucket(parameter_count: int) -> str:
    """Size class: tiny <100M, small 100M-500M, medium >500M-<1B, large 1B-3B.

    500M counts as small (it earns SLM-Optimized) and 1B as large; counts that are not
    positive or above 3B are outside the study and raise ValueError.
    """
    if parameter_count <= 0 or parameter_count > MAX_PARAMETERS:
        raise ValueError(f"parameter_count {parameter_count} is outside 1..{MAX_PARAMETERS:,}")
    if parameter_count < 100_000_000:
        return "tiny"
    if parameter_count <= 500_000_000:
        return "small"
    if parameter_count < 1_000_000_000:
        return "medium"
    return "large"


def award_badges(entry: Mapping) -> list[str]:
    """Names of the badges (see `BADGES`) a registry entry earns, in `BADGES` order."""
    count = entry.get("parameter_count")
    earned = {"SLM-Optimized": isinstance(count, int) and 0 < count <= SLM_OPTIMIZED_MAX}
    return [b["name"] for b in BADGES if earned.get(b["name"])]
