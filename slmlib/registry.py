"""Aggregate stage: evaluated run folders -> the model registry (`outputs/registry.json`).

Reads `outputs/runs/<run_id>/results.json` (written by the evaluate stage); runs of the
same weights, suite, limit and seed are one model entry whose per-task values are
medians over its runs. Writes `outputs/registry.json` (only through `write_registry`).
The registry is deterministic: no timestamps, sorted keys, floats rounded to
`DECIMALS`, models sorted by rank then model_id, so rebuilding gives identical bytes.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from . import artifacts, paths
from .benchmarks import PILLARS
from .scoring import (BADGES, NORMALIZATION, SIZE_BUCKETS, WEIGHTS, aggregate_score, award_badges,
                      check_weights, normalize, pillar_scores, size_bucket)

SCHEMA_VERSION = 1  # version of results.json this module reads and of registry.json it writes
DECIMALS = 4  # every float in the registry is rounded to this many decimals
DISPUTE_POINTS = 0.5  # a task whose normalized score spreads more than this across runs is disputed
CARD_FIELDS = ("name", "family", "hf_repo", "parameters", "parameter_count", "architecture",
               "context_length", "license", "categories", "quantization")
RUN_TYPES = {"run_id": str, "model_id": str, "model_card": dict, "suite": str, "limit": (int, type(None)),
             "seed": int, "tasks": dict, "settings": dict, "edge": (dict, type(None))}


def load_runs(runs_dir: Path | None = None) -> tuple[list[dict], list[dict]]:
    """Valid runs under `runs_dir` (default `paths.runs_dir()`) and the folders skipped.

    Each problem is `{"run_id": <folder name>, "reason": ...}`: an incomplete folder (no
    results.json yet), unreadable JSON, or a record that fails `check_run`.
    """
    runs_dir = Path(runs_dir) if runs_dir is not None else paths.runs_dir()
    runs: list[dict] = []
    problems: list[dict] = []
    if not runs_dir.is_dir():
        return runs, problems
    for folder in sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        path = folder / "results.json"
        if not path.is_file():
            problems.append({"run_id": folder.name, "reason": "incomplete: no results.json (interrupted?)"})
            continue
        try:
            run = artifacts.read_json(path)
        except (OSError, ValueError) as exc:
            problems.append({"run_id": folder.name, "reason": f"unreadable results.json: {exc}"})
            continue
        reason = check_run(run, folder.name)
        if reason:
            problems.append({"run_id": folder.name, "reason": reason})
        else:
            runs.append(run)
    return runs, problems


def check_run(run: Any, folder_name: str | None = None) -> str | None:
    """Why `run` is not a usable schema-1 results record, or None if it is."""
    if not isinstance(run, dict):
        return "results.json is not a JSON object"
    if run.get("schema_version") != SCHEMA_VERSION:
        return f"schema_version {run.get('schema_version')!r} is not {SCHEMA_VERSION}"
    for key, types in RUN_TYPES.items():
        if key == "edge" and key not in run:
            continue
        if key not in run:
            return f"missing key {key!r}"
        if not is_type(run[key], types):
            return f"{key} has type {type(run[key]).__name__}"
    if folder_name is not None and run["run_id"] != folder_name:
        return f"run_id {run['run_id']!r} does not match its folder {folder_name!r}"
    card = run["model_card"]
    weights = card.get("weights")
    if not isinstance(weights, dict) or not isinstance(weights.get("sha256"), str) or not weights["sha256"]:
        return "model_card.weights.sha256 is missing"
    count = card.get("parameter_count")
    if not is_type(count, int):
        return "model_card.parameter_count is not an integer"
    try:
        size_bucket(count)
    except ValueError as exc:
        return f"model_card: {exc}"
    if not run["tasks"]:
        return "no tasks"
    for name, rec in run["tasks"].items():
        reason = check_task(rec)
        if reason:
            return f"task {name!r}: {reason}"
    return None


def check_task(rec: Any) -> str | None:
    """Why a task record is unusable, or None."""
    if not isinstance(rec, dict):
        return "not a JSON object"
    if rec.get("pillar") not in PILLARS:
        return f"pillar {rec.get('pillar')!r} is not one of {PILLARS}"
    for key in ("raw", "score", "baseline"):
        if not is_number(rec.get(key)):
            return f"{key} is not a finite number"
    if not (0 <= rec["score"] <= 1 and 0 <= rec["baseline"] <= 1):
        return "score and baseline must lie in [0, 1]"
    if not is_type(rec.get("n"), int):
        return "n is not an integer"
    if rec.get("stderr") is not None and not is_number(rec["stderr"]):
        return "stderr is neither null nor a finite number"
    return None


def is_type(value: Any, types: type | tuple[type, ...]) -> bool:
    """isinstance that does not let a bool pass for an int."""
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in _as_tuple(types))


def is_number(value: Any) -> bool:
    return is_type(value, (int, float)) and math.isfinite(value)


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def group_key(run: dict) -> tuple:
    """Runs with the same key are repeats of one model entry: weights digest, suite, limit, seed."""
    return (run["model_card"]["weights"]["sha256"], run["suite"], run["limit"], run["seed"])


def build_registry(runs: list[dict], weights: dict[str, float] = WEIGHTS) -> dict:
    """The registry: one entry per model (see `build_entry`), ranked by aggregate score."""
    check_weights(weights)
    groups: dict[tuple, list[dict]] = {}
    for run in sorted(runs, key=lambda r: r["run_id"]):
        groups.setdefault(group_key(run), []).append(run)
    entries = rank_entries([build_entry(group, weights) for group in groups.values()])
    entries.sort(key=lambda e: (e["rank"] is None, e["rank"] or 0, e["model_id"], e["suite"],
                                -1 if e["limit"] is None else e["limit"], e["seed"], e["weights"]["sha256"]))
    return round_floats({
        "schema_version": SCHEMA_VERSION, "pillar_weights": dict(weights), "normalization": NORMALIZATION,
        "dispute_points": DISPUTE_POINTS, "decimals": DECIMALS, "badge_rules": list(BADGES),
        "size_buckets": list(SIZE_BUCKETS), "models": entries,
    })


def build_entry(runs: list[dict], weights: dict[str, float] = WEIGHTS) -> dict:
    """One model entry from the runs of one group (sorted by run_id; the first gives the card)."""
    first = runs[0]
    card = first["model_card"]
    tasks = merge_tasks(runs)
    pillars = pillar_scores(tasks)
    disputed = sorted(name for name, t in tasks.items() if round(t["spread"], DECIMALS) > DISPUTE_POINTS)
    entry = {
        "model_id": first["model_id"], **{f: card.get(f) for f in CARD_FIELDS},
        "weights": {k: card["weights"].get(k) for k in ("kind", "sha256", "size_bytes")},
        "size_bucket": size_bucket(card["parameter_count"]),
        "suite": first["suite"], "limit": first["limit"], "seed": first["seed"],
        "tasks": tasks, "pillars": pillars,
        "aggregate": aggregate_score(pillars, weights) if pillars else None,
        "run_ids": [r["run_id"] for r in runs],
        "settings": first["settings"], "settings_vary": settings_vary(runs),
        "edge": median_edge(runs), "disputed": bool(disputed), "disputed_tasks": disputed,
        "rank": None,
    }
    entry["name"] = entry["name"] or entry["model_id"]
    entry["badges"] = award_badges(entry)
    return round_floats(entry)


def merge_tasks(runs: list[dict]) -> dict[str, dict]:
    """Per task, the median over runs of raw, score, baseline, stderr and n, plus the spread.

    `normalized` is computed from the median score and baseline; `spread` is max - min of
    the per-run normalized scores (0-100 points).
    """
    names = sorted({name for r in runs for name in r["tasks"]})
    merged = {}
    for name in names:
        recs = [r["tasks"][name] for r in runs if name in r["tasks"]]
        per_run = [normalize(t["score"], t["baseline"]) for t in recs]
        stderrs = [t["stderr"] for t in recs if is_number(t.get("stderr"))]
        score = statistics.median(t["score"] for t in recs)
        baseline = statistics.median(t["baseline"] for t in recs)
        merged[name] = {
            "task": name, "pillar": recs[0]["pillar"], "metric": recs[0].get("metric"),
            "raw": statistics.median(t["raw"] for t in recs), "score": score, "baseline": baseline,
            "normalized": normalize(score, baseline),
            "stderr": statistics.median(stderrs) if stderrs else None,
            "n": statistics.median_low(t["n"] for t in recs), "n_runs": len(recs),
            "spread": max(per_run) - min(per_run),
        }
    return merged


def median_edge(runs: list[dict]) -> dict[str, float]:
    """Median of each numeric edge figure over the runs that report it (never used for rank)."""
    values: dict[str, list[float]] = {}
    for run in runs:
        for key, value in (run.get("edge") or {}).items():
            if is_number(value):
                values.setdefault(key, []).append(value)
    return {key: statistics.median(v) for key, v in sorted(values.items())}


def settings_vary(runs: list[dict]) -> list[str]:
    """Names of the settings that differ between the runs of one entry."""
    keys = sorted({k for r in runs for k in r["settings"]})
    return [k for k in keys if len({artifacts.dumps(r["settings"].get(k)) for r in runs}) > 1]


def rank_entries(entries: list[dict]) -> list[dict]:
    """Set `rank` (1 = best aggregate; equal aggregates share a rank, the next rank skips)."""
    scored = [round(e["aggregate"], DECIMALS) for e in entries if e["aggregate"] is not None]
    for e in entries:
        if e["aggregate"] is not None:
            e["rank"] = 1 + sum(s > round(e["aggregate"], DECIMALS) for s in scored)
    return entries


def round_floats(value: Any, decimals: int = DECIMALS) -> Any:
    """`value` with every float rounded (and -0.0 made 0.0), recursively through dicts and lists."""
    if isinstance(value, float):
        return round(value, decimals) + 0.0
    if isinstance(value, dict):
        return {k: round_floats(v, decimals) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [round_floats(v, decimals) for v in value]
    return value


def write_registry(registry: dict, path: Path | None = None) -> Path:
    """Write the registry atomically (default `paths.registry_path()`); returns the path."""
    return artifacts.write_json(Path(path) if path is not None else paths.registry_path(), registry)


def leaderboard_frame(registry: dict):
    """The registry as a pandas DataFrame for display: one row per model, best first."""
    import pandas as pd

    rows = [{
        "rank": e["rank"], "model": e["name"], "parameters": e["parameters"],
        "quantization": e["quantization"], "aggregate": e["aggregate"],
        **{p: e["pillars"].get(p) for p in PILLARS},
        "badges": ", ".join(e["badges"]), "disputed": e["disputed"],
    } for e in registry["models"]]
    columns = ["rank", "model", "parameters", "quantization", "aggregate", *PILLARS, "badges", "disputed"]
    return pd.DataFrame(rows, columns=columns)
