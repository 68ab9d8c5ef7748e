"""Aggregate notebook display: the registry as pandas tables (pure; nothing is written).

The tracks, the pillar weights, one leaderboard per track with intervals and rank bands, the pairwise
significance matrix of a track, what quantization costs, and the runs that need attention (DISPUTED,
nondeterministic, rejected). Numbers are rounded as the site shows them: scores to 1 decimal,
p-values to 4, P(A > B) to 3.
"""

from __future__ import annotations

from ..benchmarks import PILLARS

SCORE_DIGITS = 1  # aggregate, pillars and their differences, as on the site
P_DIGITS = 4  # p-values, as on the compare page
ABOVE_DIGITS = 3  # P(A ranks above B), as on the compare page


def _round(value: float | None, digits: int = SCORE_DIGITS) -> float | None:
    return None if value is None else round(value, digits)


def track_of(registry: dict, track: str | None = None) -> dict | None:
    """The track `track` (an id) of the registry, or without one the track shown first: the first with
    entries (the default when it has any), else the default."""
    tracks = registry.get("tracks") or []
    if track is not None:
        found = next((t for t in tracks if t["id"] == track), None)
        if found is None:
            raise ValueError(f"track: no track {track!r} in the registry; its tracks: "
                             + (", ".join(t["id"] for t in tracks) or "none"))
        return found
    return next((t for t in tracks if t["entries"]), tracks[0] if tracks else None)


def track_entries(registry: dict, track: str | None = None) -> list[dict]:
    """The entries of one track (`track_of`), in rank order."""
    shown = track_of(registry, track)
    return [e for e in registry["models"] if shown and e.get("track") == shown["id"]]


def tracks_frame(registry: dict):
    """One row per track, the default first: id, name, whether it is the default, entries and ranked ones."""
    import pandas as pd

    rows = [{"track": t["id"], "name": t["name"], "default": t["default"], "entries": t["entries"],
             "ranked": t["ranked"]} for t in registry.get("tracks") or []]
    return pd.DataFrame(rows, columns=["track", "name", "default", "entries", "ranked"])


def weights_frame(weights: dict[str, float]):
    """The pillar weights as a table: weight, and its share when every pillar is evaluated (in %)."""
    import pandas as pd

    total = sum(weights.values())
    rows = [{"pillar": p, "weight": weights.get(p, 0.0), "share_%": round(100 * weights.get(p, 0.0) / total, 1)}
            for p in PILLARS]
    return pd.DataFrame(rows, columns=["pillar", "weight", "share_%"])


def fmt_interval(ci: list[float] | None) -> str | None:
    """`[lo, hi]` with one decimal, or None."""
    return None if not ci else f"[{ci[0]:.1f}, {ci[1]:.1f}]"


def fmt_band(rank_range: list[int] | None) -> str | None:
    """A rank range as `2` or `1-3` (tied with the models whose ranges overlap)."""
    if not rank_range:
        return None
    lo, hi = rank_range
    return str(lo) if lo == hi else f"{lo}-{hi}"


def leaderboard_frame(registry: dict, track: str | None = None):
    """The leaderboard of one track (`track_of`: by default the one shown first), best first: rank, rank
    band, aggregate with its 95% CI, pillars, badges. Entries of other tracks are never in it."""
    import pandas as pd

    columns = ["rank", "band", "model", "parameters", "quantization", "aggregate", "aggregate_ci", *PILLARS,
               "badges", "disputed"]
    rows = [{
        "rank": e["rank"], "band": fmt_band(e.get("rank_range")), "model": e["name"],
        "parameters": e["parameters"], "quantization": e["quantization"], "aggregate": _round(e["aggregate"]),
        "aggregate_ci": fmt_interval((e.get("intervals") or {}).get("aggregate")),
        **{p: _round(e["pillars"].get(p)) for p in PILLARS},
        "badges": ", ".join(e["badges"]), "disputed": e["disputed"],
    } for e in track_entries(registry, track)]
    return pd.DataFrame(rows, columns=columns)


def intervals_frame(registry: dict, track: str | None = None):
    """Per model of one track and pillar: score and 95% CI (pillars evaluated only)."""
    import pandas as pd

    rows = [{"model": e["name"], "pillar": p, "score": _round(e["pillars"][p]),
             "ci": fmt_interval(e["intervals"]["pillars"].get(p))}
            for e in track_entries(registry, track) for p in PILLARS if p in e["pillars"]]
    return pd.DataFrame(rows, columns=["model", "pillar", "score", "ci"])


def significance_matrix(registry: dict, value: str = "p_value", track: str | None = None):
    """Square table of `p_value` or `p_a_above_b` over the ranked models of one track (row model vs column
    model, em dash on the diagonal; entry ids label the rows when model names repeat); unpaired pairs are
    marked `unpaired (CIs apart)` / `unpaired (CIs overlap)`."""
    import pandas as pd

    ranked = [e for e in track_entries(registry, track) if e["aggregate"] is not None]
    unique = len({e["name"] for e in ranked}) == len(ranked)
    names = {e["entry_id"]: e["name"] if unique else e["entry_id"] for e in ranked}
    labels = list(names.values())
    digits = P_DIGITS if value == "p_value" else ABOVE_DIGITS
    table = pd.DataFrame([["\u2014" if r == c else "" for c in labels] for r in labels], index=labels,
                         columns=labels, dtype=object)
    for c in registry["comparisons"]:
        if c["a"] not in names or c["b"] not in names:
            continue
        for row, col, flip in ((c["a"], c["b"], False), (c["b"], c["a"], True)):
            if not c["paired"]:
                cell = "unpaired (CIs apart)" if c["significant"] else "unpaired (CIs overlap)"
            else:
                cell = round(1 - c[value] if value == "p_a_above_b" and flip else c[value], digits)
            table.loc[names[row], names[col]] = cell
    return table


def fmt_difference(d: dict | None) -> str | None:
    """A difference to the reference as `-1.2 [-3.4, 0.8] p=0.210`, `*` when significant; unpaired
    differences (no p-value) say so."""
    if not d:
        return None
    test = f"p={d['p_value']:.3f}" if d["paired"] else "unpaired"
    interval = fmt_interval(d["difference_ci"])
    return f"{d['difference']:+.1f}{' ' + interval if interval else ''} {test}{'*' if d['significant'] else ''}"


def quantization_frame(registry: dict):
    """Per quantization of a model (the registry's `quantizations` section, each set within one track):
    size, peak memory, decode speed, aggregate with its 95% CI, and its difference to the reference (the
    highest precision; `*`: significant, paired bootstrap on the same items). Narrow enough for a page;
    the per-pillar differences are `quantization_pillars_frame`."""
    import pandas as pd

    columns = ["model", "quantization", "size_mb", "peak_rss_mb", "decode_tokens_per_s", "aggregate",
               "aggregate_ci", "vs_reference"]
    rows = [{"model": group["name"], "quantization": v["name"] + (" (reference)" if v["reference"] else ""),
             "size_mb": round(v["size_bytes"] / 1e6, 1) if v["size_bytes"] else None,
             "peak_rss_mb": _round(v["peak_rss_mb"], 0), "decode_tokens_per_s": _round(v["decode_tokens_per_s"]),
             "aggregate": _round(v["aggregate"]), "aggregate_ci": fmt_interval(v["aggregate_ci"]),
             "vs_reference": fmt_difference((v["differences"] or {}).get("aggregate")) or "\u2014"}
            for group in registry.get("quantizations") or [] for v in group["variants"]]
    return pd.DataFrame(rows, columns=columns)


def quantization_pillars_frame(registry: dict):
    """Per quantization that is not a reference and per pillar: its difference to the reference (as
    `fmt_difference`), one row each, so the table stays narrow."""
    import pandas as pd

    rows = [{"model": group["name"], "quantization": v["name"], "pillar": p,
             "vs_reference": fmt_difference(v["differences"]["pillars"].get(p))}
            for group in registry.get("quantizations") or [] for v in group["variants"] if v["differences"]
            for p in PILLARS if p in v["differences"]["pillars"]]
    return pd.DataFrame(rows, columns=["model", "quantization", "pillar", "vs_reference"])


def attention_frame(registry: dict):
    """Everything to look at: DISPUTED entries, nondeterministic outputs, rejected runs."""
    import pandas as pd

    rows = [{"kind": "DISPUTED", "what": e["entry_id"], "detail": "spread > "
             f"{registry['dispute_points']} points on " + ", ".join(e["disputed_tasks"])}
            for e in registry["models"] if e["disputed"]]
    rows += [{"kind": "nondeterministic", "what": f"{f['entry_id']} {f['task']}",
              "detail": f"runs {' vs '.join(f['run_ids'])} differ; first at item {f['first_differing_item']}"}
             for f in registry["nondeterministic"]]
    rows += [{"kind": "rejected", "what": r["run_id"], "detail": f"{r['source']}: {r['reason']}"}
             for r in registry["rejected"]]
    return pd.DataFrame(rows, columns=["kind", "what", "detail"])


def registry_summary(registry: dict, path) -> str:
    """One sentence on what was written: the file (relative to the outputs folder's parent, never an
    absolute local path), entries, models, tracks and rejected runs."""
    from pathlib import Path

    from .. import paths

    path = Path(path)
    try:
        shown = path.resolve().relative_to(paths.outputs_root().resolve().parent).as_posix()
    except ValueError:
        shown = path.name
    entries = registry["models"]
    used = [t for t in registry.get("tracks") or [] if t["entries"]]
    return (f"Wrote {shown}: {len(entries)} entries of {len({e['model_id'] for e in entries})} models in "
            f"{len(used)} track{'s' * (len(used) != 1)}, {len(registry['rejected'])} rejected runs.")
