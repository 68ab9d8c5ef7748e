"""Publish stage: the registry -> what the site's pages show (pure; nothing is read or written).

`site_data` is embedded in the site as `data.js` (it sets the global `SLM`; pages opened as
files cannot fetch() JSON) and drives the leaderboard's sorting and filters, the radar charts
and the compare page. `leaderboard_json` is the same leaderboard as plain JSON for machines.
Registry entries are per model x settings (quantization, limits, seed, dtype) and each belongs to one
track (the protocol it was measured under; the registry's `tracks`, the shown-first track first). The
pages show one track at a time; within a track, entries of one model (same Hugging Face repo, else same
model id: `aggregate.model_key`) form a group shown as one leaderboard row, its best-ranked entry, with
the others expandable. No group, ranking or filter holds entries of two tracks.
"""

from __future__ import annotations

import json

from ...benchmarks import PILLARS, all_benchmarks
from ...aggregate import BADGES, NORMALIZATION, SIZE_BUCKETS, WEIGHTS, model_key, track_of
from ...detect import HF_REPO_FORMAT

SCHEMA_VERSION = 3  # version of leaderboard.json and data.js (3: tracks)
MODEL_FIELDS = ("entry_id", "rank", "rank_range", "model_id", "name", "family", "parameters", "parameter_count",
                "size_bucket", "quantization", "quantization_name", "aggregate", "pillars", "badges", "license",
                "hf_repo", "disputed", "track", "suite", "limit", "limit_generative", "seed", "quorum")
# Compare-page spec rows and the model page's edge table: (key in an entry's `spec`, label, unit,
# which value is best, decimals). Lower is better for latency, memory, energy and CO2.
SPEC_ROWS = (
    ("parameter_count", "Parameters", "", None, 0),
    ("size_mb", "Size on disk", "MB", "lower", 1),
    ("peak_rss_mb", "Peak memory (evaluation process)", "MiB", "lower", 0),
    ("load_seconds", "Load time (cached)", "s", "lower", 2),
    ("cold_load_seconds", "Load time (first, converting)", "s", "lower", 1),
    ("ttft_32", "Time to first token, 32-token prompt", "s", "lower", 3),
    ("ttft_128", "Time to first token, 128-token prompt", "s", "lower", 3),
    ("ttft_512", "Time to first token, 512-token prompt", "s", "lower", 3),
    ("prefill_tokens_per_s", "Prefill", "tokens/s", "higher", 0),
    ("decode_tokens_per_s", "Decode (greedy)", "tokens/s", "higher", 1),
    ("energy_wh", "Energy of the evaluation (estimate)", "Wh", "lower", 2),
    ("co2_g", "CO\u2082 of the evaluation (estimate)", "g", "lower", 2),
)
_EDGE_KEYS = {"peak_rss_mb": "peak_rss_mb", "load_seconds": "load_seconds", "cold_load_seconds": "cold_load_seconds",
              "ttft_32": "ttft_seconds.32", "ttft_128": "ttft_seconds.128", "ttft_512": "ttft_seconds.512",
              "prefill_tokens_per_s": "prefill_tokens_per_s", "decode_tokens_per_s": "decode_tokens_per_s"}


def entry_slug(entry_id: str) -> str:
    """File name stem of an entry's model page: `<model_id>--<8 hex>` (ids are `<model_id>@<8 hex>`)."""
    return entry_id.replace("@", "--")


def source_url(hf_repo: str | None) -> str | None:
    """The model's page on the Hugging Face Hub, when `hf_repo` looks like owner/name."""
    return f"https://huggingface.co/{hf_repo}" if hf_repo and HF_REPO_FORMAT.match(hf_repo) else None


def group_entries(entries: list[dict]) -> list[dict]:
    """Groups in registry order (by track, then rank), one per model and track: `primary` is the group's
    best-ranked entry id, `variants` the rest of that model's entries in the same track."""
    groups: dict[tuple, dict] = {}
    for e in entries:
        g = groups.setdefault((e.get("track"), model_key(e)), {"key": model_key(e), "track": e.get("track"),
                                                               "primary": e["entry_id"], "variants": []})
        if g["primary"] != e["entry_id"]:
            g["variants"].append(e["entry_id"])
    return list(groups.values())


def spec_values(entry: dict) -> dict[str, float | None]:
    """An entry's hardware and cost figures in display units (keys of `SPEC_ROWS`)."""
    edge = entry.get("edge") or {}
    energy = entry.get("energy") or {}
    size = edge.get("size_bytes") or (entry.get("weights") or {}).get("size_bytes")
    return {
        "parameter_count": entry.get("parameter_count"),
        "size_mb": size / 1e6 if size else None,
        **{key: edge.get(source) for key, source in _EDGE_KEYS.items()},
        "energy_wh": energy["kwh"] * 1000 if energy.get("kwh") is not None else None,
        "co2_g": energy["co2_kg"] * 1000 if energy.get("co2_kg") is not None else None,
        **{f"bias_{name}": b.get("value") for name, b in (entry.get("bias") or {}).items()},
    }


def bias_rows(entry: dict) -> list[dict]:
    """An entry's bias measures (CrowS-Pairs): value, ideal, interval, items; never ranked."""
    benches = all_benchmarks()
    return [{"task": name, "title": benches[name].title if name in benches else name, **b}
            for name, b in sorted((entry.get("bias") or {}).items())]


def bias_spec_rows() -> list[dict]:
    """Compare-page rows of the registered bias measures (no best value: their ideal is a middle)."""
    return [{"key": f"bias_{b.name}", "label": f"{b.title}: {b.metric} (bias measure, ideal {b.bias_ideal:g}; "
             "never ranked)", "unit": "", "better": None, "digits": 3}
            for b in all_benchmarks().values() if not b.ranked]


def task_rows(entry: dict) -> list[dict]:
    """An entry's tasks in pillar order: raw, stderr, baseline, normalized, interval, items, runs."""
    benches = all_benchmarks()
    order = {p: i for i, p in enumerate(PILLARS)}
    keys = ("task", "pillar", "metric", "raw", "stderr", "baseline", "normalized", "ci", "ci_note", "n", "n_runs",
            "spread")
    rows = [{**{k: t.get(k) for k in keys}, "title": benches[name].title if name in benches else name}
            for name, t in (entry.get("tasks") or {}).items()]
    return sorted(rows, key=lambda r: (order.get(r["pillar"], len(order)), r["task"]))


def track_names(registry: dict) -> dict[str, str]:
    """Track id -> its readable name."""
    return {t["id"]: t["name"] for t in registry.get("tracks") or []}


def entry_view(entry: dict, names: dict[str, str] | None = None) -> dict:
    """One entry as the pages use it (`names`: track id -> name, `track_names`)."""
    intervals = entry.get("intervals") or {}
    keys = ("entry_id", "model_id", "name", "family", "parameters", "parameter_count", "size_bucket", "quantization",
            "quantization_name", "license", "hf_repo", "architecture", "context_length", "categories", "aggregate",
            "pillars", "rank", "rank_band", "rank_range", "badges", "disputed", "disputed_tasks", "track", "suite",
            "limit", "limit_generative", "seed", "settings", "run_ids", "efficiency")
    return {**{k: entry.get(k) for k in keys}, "slug": entry_slug(entry["entry_id"]),
            "track_name": (names or {}).get(entry.get("track"), entry.get("track")),
            "source_url": source_url(entry.get("hf_repo")), "group": model_key(entry),
            "quantization_label": entry.get("quantization_name") or entry.get("quantization"),
            "aggregate_ci": intervals.get("aggregate"), "pillar_cis": intervals.get("pillars") or {},
            "tasks": task_rows(entry), "spec": spec_values(entry), "bias": bias_rows(entry),
            "quorum": entry.get("quorum"), "provisional": (entry.get("quorum") or {}).get("status") == "provisional"}


def site_data(registry: dict) -> dict:
    """Everything the pages' scripts read: tracks with entries (the one shown first first), entries by id,
    groups, comparisons, filters, spec rows."""
    entries = registry.get("models") or []
    distinct = lambda field: sorted({e.get(field) for e in entries if e.get(field)}, key=str.lower)  # noqa: E731
    names = track_names(registry)
    shown = track_of(registry)
    return {
        "schema_version": SCHEMA_VERSION, "pillars": list(PILLARS),
        "tracks": [{k: t[k] for k in ("id", "name", "default", "entries", "ranked", "protocol")}
                   for t in registry.get("tracks") or [] if t["entries"]],
        "shown_track": shown["id"] if shown and shown["entries"] else None,
        "entries": {e["entry_id"]: entry_view(e, names) for e in entries},
        "order": [e["entry_id"] for e in entries], "groups": group_entries(entries),
        "comparisons": registry.get("comparisons") or [],
        "filters": {"size_bucket": [b["name"] for b in SIZE_BUCKETS], "family": distinct("family"),
                    "license": distinct("license"), "badge": [b["name"] for b in BADGES], "pillar": list(PILLARS)},
        "spec_rows": [{"key": k, "label": label, "unit": unit, "better": better, "digits": digits}
                      for k, label, unit, better, digits in SPEC_ROWS] + bias_spec_rows(),
        "bootstrap": registry.get("bootstrap"),
    }


def data_js(data: dict) -> str:
    """`data` as a script setting the global `SLM`; `<`, `>`, `&` and line separators are escaped so
    no submitted string can end a script element or open a comment wherever the text is placed."""
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for char, code in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                       ("\u2029", "\\u2029")):
        text = text.replace(char, code)
    return f"window.SLM = {text};\n"


def leaderboard_json(registry: dict) -> dict:
    """The leaderboard for machines: weights, normalization, badge rules, the tracks and one row per entry
    (ranked within its track)."""
    primaries = {g["primary"] for g in group_entries(registry.get("models") or [])}
    return {
        "schema_version": SCHEMA_VERSION,
        "pillar_weights": registry.get("pillar_weights", WEIGHTS),
        "normalization": registry.get("normalization", NORMALIZATION),
        "badge_rules": registry.get("badge_rules", list(BADGES)),
        "tracks": registry.get("tracks") or [],
        "models": [{**{f: e.get(f) for f in MODEL_FIELDS},
                    "aggregate_ci": (e.get("intervals") or {}).get("aggregate"),
                    "group": model_key(e), "primary": e["entry_id"] in primaries}
                   for e in registry.get("models") or []],
    }
