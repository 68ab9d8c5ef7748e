"""Aggregate stage: validated runs -> the model registry (`outputs/registry.json`).

Takes the runs and samples `reconcile.load_study` read from `outputs/runs/`. Runs of the same
weights, suite, limits, seed and score-changing settings are one entry whose per-task values
are medians over its runs (DISPUTED when they spread more than 0.5 points); intervals come
from a seeded bootstrap over items (`uncertainty`). Writes `outputs/registry.json` only
through `write_registry`, which validates it against its JSON Schema. The registry is
deterministic: no timestamps, sorted keys, floats rounded to `DECIMALS`, so deleting it and
rebuilding gives identical bytes. Quantizations of one model are compared in its
`quantizations` section (`quantization_compare`). Every entry belongs to one track (`tracks`: the
protocol it was measured under); ranks, rank bands, pairwise tests, quantization sets and badges are
computed within a track only.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from .. import artifacts, paths
from . import quantization_compare as quantizations, quorum as quorums, schemas, tracks as protocols, uncertainty
from ..benchmarks import all_benchmarks
from ..weights import model_digest
from .reconcile import find_nondeterminism
from .scoring import (BADGES, NORMALIZATION, RENORMALIZATION, SIZE_BUCKETS, WEIGHTS, aggregate_score,
                      award_badges, check_weights, is_ranked, normalize, pillar_scores, size_bucket)

DECIMALS = 4  # every float in the registry is rounded to this many decimals
DISPUTE_POINTS = 0.5  # a task whose normalized score spreads more than this across runs is disputed
CARD_FIELDS = ("name", "family", "hf_repo", "parameters", "parameter_count", "architecture",
               "context_length", "license", "categories", "model_type", "quantization", "quantization_name")
SCORE_SETTINGS = ("backend", "dtype", "apply_chat_template")  # settings that define what is measured


def group_key(run: dict) -> tuple:
    """Runs with the same key are repeats of one entry: weights digest, suite, limits, seed, settings.

    Batch size is left out on purpose: it should not change results; if it does, the spread
    (DISPUTED) shows it. llama.cpp's decode batch can change greedy text, so a batched run (> 1) is
    its own entry, and so is a run cut into slices on a cluster (`shard_size`: its log-likelihoods
    differ in the last bits); other runs keep the key they always had.
    """
    settings = run.get("settings") or {}
    apart = tuple((k, settings[k]) for k in ("decode_batch", "shard_size") if settings.get(k))  # batched, sliced
    return (model_digest(run["model_card"]), run["suite"], run.get("limit"),
            run.get("limit_generative"), run["seed"], *(settings.get(k) for k in SCORE_SETTINGS), *apart)


def entry_id(run: dict, items: str | None = None) -> str:
    """`<model_id>@<8 hex digits of the group key>` (with `items`, the digest of the run's items, for an
    entry of the same key measured on other items): unique per entry, stable across rebuilds."""
    digest = hashlib.sha256(artifacts.dumps([*group_key(run), *([items] if items else [])]).encode()).hexdigest()[:8]
    return f"{run['model_id']}@{digest}"


def group_runs(runs: list[dict]) -> dict[str, list[dict]]:
    """Runs by entry id (each group sorted by run_id): repeats share `group_key` and, for every task they
    both evaluated, data, items and few-shot count. A run measured on other items than the earlier runs of
    its key (a task added to the suite, another sampling rule) is an entry of its own, with its own
    protocol and so its own track: upgrading the study never drops or mixes the older runs."""
    parts: dict[tuple, list[list[dict]]] = {}
    for run in sorted(runs, key=lambda r: r["run_id"]):
        groups = parts.setdefault(group_key(run), [])
        home = next((g for g in groups if not any(name in other["tasks"] and _items(other["tasks"][name]) != _items(t)
                                                  for other in g for name, t in run["tasks"].items())), None)
        if home is None:
            groups.append(home := [])
        home.append(run)
    return {entry_id(g[0], None if i == 0 else items_digest(g[0])): g
            for groups in parts.values() for i, g in enumerate(groups)}


def items_digest(run: dict) -> str:
    """16 hex digits of what the run's tasks were measured on (data digest, items, few-shot count)."""
    items = {name: list(map(str, _items(t))) for name, t in sorted(run["tasks"].items())}
    return hashlib.sha256(artifacts.dumps(items).encode()).hexdigest()[:16]


def _items(task: dict) -> tuple:
    """What makes two evaluations of a task comparable item by item: data digest, item ids and few-shot count."""
    return task.get("data_sha256"), tuple(task.get("item_ids") or ()), protocols.shots(task.get("n_fewshot"))


def build_registry(runs: list[dict], weights: dict[str, float] = WEIGHTS, samples: dict | None = None,
                   rejected: list[dict] = (), resamples: int = uncertainty.RESAMPLES,
                   seed: int = uncertainty.SEED, default_protocol: dict | None = None, quorum: int = 1,
                   signers: dict[str, str] | None = None, foreign: set[str] | None = frozenset(),
                   require_audit: bool = False) -> dict:
    """The registry: entries grouped by track, ranked by aggregate within their track, with intervals,
    pairwise tests and flags.

    `samples` maps run_id -> task -> sample rows (missing: no intervals); `rejected` lists runs
    the loader refused (kept in the registry's `rejected` section); `default_protocol` is the default
    track's protocol (None: that of params/default.yaml, `tracks.default_protocol`).
    An entry is ranked only once `quorum` distinct runners agree with its median (`quorum.quorum_status`,
    from `signers` and, with `require_audit`, passing audits of the `foreign` runs); else it is listed
    as provisional, after its track's ranked entries.
    """
    if require_audit and foreign is None:
        raise ValueError("require_audit: which runs came from other machines is unknown (outputs/archive_intake.json "
                         "is damaged); restore it, or set require_audit: false")
    check_weights(weights)
    samples = samples or {}
    groups = group_runs(runs)
    built = [build_entry(eid, g, weights, samples, resamples, seed) for eid, g in groups.items()]
    replicates = {e["entry_id"]: reps for e, reps in built}
    protos = {e["entry_id"]: protocols.entry_protocol(g) for g, (e, _) in zip(groups.values(), built)}
    track_list = protocols.build_tracks(protos, default_protocol or protocols.default_protocol())
    for g, (e, _) in zip(groups.values(), built):
        e["track"] = protocols.track_id(protos[e["entry_id"]])
        e["quorum"] = quorums.quorum_status(g, e["tasks"], quorum, signers or {}, set(foreign or ()), require_audit,
                                            DISPUTE_POINTS)
    place = {t["id"]: i for i, t in enumerate(track_list)}
    entries, comparisons, quantization_sets = [], [], []
    for track in track_list:
        members = rank_entries([e for e, _ in built if e["track"] == track["id"]
                                and e["quorum"]["status"] == "confirmed"])
        members.sort(key=lambda e: (e["rank"] is None, e["rank"] or 0, e["model_id"], e["entry_id"]))
        comparisons += compare_entries(members, replicates)
        quantization_sets += [{**q, "track": track["id"]}
                              for q in quantizations.compare_quantizations(members, replicates)]
        for e in members:
            e["badges"] = award_badges(e, members)
        track["ranked"] = sum(e["rank"] is not None for e in members)
        provisional = sorted((e for e, _ in built
                              if e["track"] == track["id"] and e["quorum"]["status"] != "confirmed"),
                             key=lambda e: (e["model_id"], e["entry_id"]))
        track["provisional"] = len(provisional)
        entries += members + provisional
    entries.sort(key=lambda e: place[e["track"]])  # stable: rank order within each track
    flags = [f for e in entries for f in find_nondeterminism(e["entry_id"], groups[e["entry_id"]], samples)]
    return round_floats({
        "schema_version": schemas.REGISTRY_SCHEMA_VERSION, "pillar_weights": dict(weights),
        "weights_sum": sum(weights.values()), "normalization": NORMALIZATION, "renormalization": RENORMALIZATION,
        "dispute_points": DISPUTE_POINTS, "decimals": DECIMALS, "badge_rules": list(BADGES),
        "size_buckets": list(SIZE_BUCKETS),
        "bootstrap": {"resamples": resamples, "seed": seed, "confidence": uncertainty.CONFIDENCE,
                      "alpha": uncertainty.ALPHA, "method": uncertainty.METHOD, "test": uncertainty.TEST,
                      "bands": uncertainty.BANDS},
        "quorum": {"required": quorum, "require_audit": require_audit},
        "tracks": track_list, "models": entries, "comparisons": comparisons, "quantizations": quantization_sets,
        "nondeterministic": flags,
        "rejected": sorted(rejected, key=lambda r: (r["run_id"], r["source"])),
    })


def build_entry(eid: str, runs: list[dict], weights: dict[str, float], samples: dict,
                resamples: int = uncertainty.RESAMPLES, seed: int = uncertainty.SEED) -> tuple[dict, dict]:
    """Entry `eid` from the runs of one group (sorted by run_id; the first gives the card), and its
    bootstrap replicates."""
    first = runs[0]
    card = first["model_card"]
    tasks = merge_tasks(runs)
    bias = bias_measures(tasks, runs, samples, resamples, seed)  # taken out of `tasks`
    inputs = bootstrap_inputs(tasks, runs, samples)
    reps = uncertainty.bootstrap_entry(inputs, weights, resamples, seed)
    cis = uncertainty.intervals(reps)
    for name, t in tasks.items():
        t.update(ci=cis["tasks"].get(name), ci_note=inputs[name]["note"])
    pillars = pillar_scores(tasks)
    disputed = sorted(name for name, t in tasks.items() if round(t["spread"], DECIMALS) > DISPUTE_POINTS)
    aggregate = aggregate_score(pillars, weights) if pillars else None
    energy = median_energy(runs)
    entry = {
        "entry_id": eid, "model_id": first["model_id"], **{f: card.get(f) for f in CARD_FIELDS},
        "weights": {k: card["weights"].get(k) for k in ("kind", "sha256", "size_bytes")},
        **({"adapter": {k: card["adapter"].get(k) for k in ("kind", "sha256", "r", "parameter_count")}}
           if card.get("adapter") else {}),
        "size_bucket": size_bucket(card["parameter_count"]),
        "suite": first["suite"], "limit": first.get("limit"), "limit_generative": first.get("limit_generative"),
        "seed": first["seed"], "tasks": tasks, "pillars": pillars, "aggregate": aggregate,
        "intervals": {"pillars": cis["pillars"], "aggregate": cis["aggregate"]},
        "run_ids": [r["run_id"] for r in runs],
        "settings": first["settings"], "settings_vary": settings_vary(runs),
        "edge": median_edge(runs), "energy": energy, "bias": bias,
        "efficiency": efficiency(aggregate, energy),
        "disputed": bool(disputed), "disputed_tasks": disputed,
        "rank": None, "rank_band": None, "rank_range": None, "badges": [],
    }
    entry["name"] = entry["name"] or entry["model_id"]
    items = {name: _items(next(r["tasks"][name] for r in runs if r["run_id"] == t["samples_run"]))
             for name, t in tasks.items()}
    return round_floats(entry), {"aggregate": reps["aggregate"], "pillars": reps["pillars"], "items": items}


def bias_measures(tasks: dict[str, dict], runs: list[dict], samples: dict,
                  resamples: int = uncertainty.RESAMPLES, seed: int = uncertainty.SEED) -> dict[str, dict]:
    """The bias measures (`scoring.is_ranked` False: CrowS-Pairs), removed from `tasks`: per task the
    raw value, the unbiased ideal and a 95% bootstrap interval of the raw value (the same seeded item
    indices as the ranked tasks). Reported beside the ranking like energy, never in a pillar."""
    out = {}
    for name in [n for n in tasks if not is_ranked(n)]:
        t = tasks.pop(name)
        values = bootstrap_inputs({name: t}, runs, samples)[name]["values"]
        idx = uncertainty.resample_indices(name, len(values), resamples, seed) if values else None
        out[name] = {"metric": t["metric"], "value": t["raw"], "ideal": all_benchmarks()[name].bias_ideal,
                     "ci": uncertainty.interval(np.asarray(values)[idx].mean(axis=1)) if values else None,
                     "n": t["n"], "n_runs": t["n_runs"]}
    return out


def merge_tasks(runs: list[dict]) -> dict[str, dict]:
    """Per task, the median over runs of raw, score, baseline, stderr and n, plus the spread.

    `normalized` is computed from the median score and baseline; `spread` is max - min of
    the per-run normalized scores (0-100 points); `samples_run` is the run whose samples
    give the interval: the one with the median (low) score, the earliest on ties.
    """
    names = sorted({name for r in runs for name in r["tasks"]})
    merged = {}
    for name in names:
        having = [r for r in runs if name in r["tasks"]]
        recs = [r["tasks"][name] for r in having]
        per_run = [normalize(t["score"], t["baseline"]) for t in recs]
        stderrs = [t["stderr"] for t in recs if t.get("stderr") is not None]
        score = statistics.median(t["score"] for t in recs)
        baseline = statistics.median(t["baseline"] for t in recs)
        middle = statistics.median_low(t["score"] for t in recs)
        merged[name] = {
            "task": name, "pillar": recs[0]["pillar"], "metric": recs[0].get("metric"),
            "raw": statistics.median(t["raw"] for t in recs), "score": score, "baseline": baseline,
            "normalized": normalize(score, baseline),
            "stderr": statistics.median(stderrs) if stderrs else None,
            "n": statistics.median_low(t["n"] for t in recs), "n_runs": len(recs),
            "spread": max(per_run) - min(per_run),
            "samples_run": next(r["run_id"] for r, t in zip(having, recs) if t["score"] == middle),
            "extra_metrics": median_extra_metrics(recs),
        }
    return merged


def median_extra_metrics(recs: list[dict]) -> dict[str, float | None]:
    """Per secondary metric (e.g. BBQ's accuracy by context condition), the median over the runs
    that report a number for it; None when none does. Informational: never ranked."""
    names = sorted({m for t in recs for m in t.get("extra_metrics") or {}})
    values = {m: [v for t in recs if (v := (t.get("extra_metrics") or {}).get(m)) is not None] for m in names}
    return {m: statistics.median(v) if v else None for m, v in values.items()}


def bootstrap_inputs(tasks: dict[str, dict], runs: list[dict], samples: dict) -> dict[str, dict]:
    """Per task, what `uncertainty.bootstrap_entry` needs, and a note when no (or a caveated)
    interval is possible."""
    benches = all_benchmarks()
    out = {}
    for name, t in tasks.items():
        rec = next(r["tasks"][name] for r in runs if r["run_id"] == t["samples_run"])
        rows = samples.get(t["samples_run"], {}).get(name)
        by_id = {r["item_id"]: r["value"] for r in rows or ()}
        values = [by_id[i] for i in rec["item_ids"]] if rows and "item_ids" in rec else [r["value"] for r in rows or ()]
        bench, note = benches.get(name), None
        if not values:
            note = "no per-sample results"
        elif abs(sum(values) / len(values) - rec["raw"]) > 1e-6:
            values, note = None, "per-item values do not average to the raw metric: no interval"
        elif bench is None and abs(rec["score"] - rec["raw"]) > 1e-9:
            values, note = None, "task not registered here and its score differs from raw: no interval"
        elif bench is None:
            note = "task not registered here: identity score transform (score equals raw)"
        out[name] = {"pillar": t["pillar"], "baseline": rec["baseline"], "values": values or None,
                     "transform": bench.score if bench else None, "note": note}
    return out


def compare_entries(entries: list[dict], replicates: dict) -> list[dict]:
    """Pairwise tests between ranked entries (in registry order); sets rank_band and rank_range.

    `replicates` maps entry_id -> {"aggregate": replicates or None, "pillars": ..., "items": task -> items key}.
    """
    ranked = [e for e in entries if e["aggregate"] is not None]
    models = [{"entry_id": e["entry_id"], "aggregate": e["aggregate"], "ci": e["intervals"]["aggregate"],
               "replicates": replicates[e["entry_id"]]["aggregate"], "items": replicates[e["entry_id"]]["items"]}
              for e in ranked]
    comparisons = uncertainty.compare_all(models)
    bands = uncertainty.rank_bands({e["entry_id"]: e["aggregate"] for e in ranked}, comparisons)
    for e in ranked:
        e["rank_band"], e["rank_range"] = bands[e["entry_id"]][0], bands[e["entry_id"]]
    return comparisons


def median_edge(runs: list[dict]) -> dict[str, float]:
    """Median of each numeric edge figure over the runs that report it (never used for rank);
    nested figures (time to first token per prompt length) become `key.sub`."""
    values: dict[str, list[float]] = {}
    for run in runs:
        for key, value in (run.get("edge") or {}).items():
            for k, v in (value.items() if isinstance(value, dict) else [(None, value)]):
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    values.setdefault(key if k is None else f"{key}.{k}", []).append(v)
    return {key: statistics.median(v) for key, v in sorted(values.items())}


def median_energy(runs: list[dict]) -> dict | None:
    """Median kWh and CO2 (kg) of evaluation (model load excluded) over the runs that measured it."""
    measured = [r["energy"] for r in runs if isinstance(r.get("energy"), dict)]
    if not measured:
        return None
    return {"kwh": statistics.median(e["kwh"] for e in measured),
            "co2_kg": statistics.median(e["co2_kg"] for e in measured), "runs": len(measured)}


def efficiency(aggregate: float | None, energy: dict | None) -> float | None:
    """Aggregate points per kWh; None without a measured, positive energy (or when it overflows)."""
    if aggregate is None or not energy or not energy["kwh"] > 0:
        return None
    value = aggregate / energy["kwh"]
    return value if math.isfinite(value) else None


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
    """Validate the registry against its JSON Schema, then write it atomically (default
    `paths.registry_path()`); returns the path."""
    schemas.check(registry, schemas.registry_schema(), "registry")
    return artifacts.write_json(Path(path) if path is not None else paths.registry_path(), registry)
