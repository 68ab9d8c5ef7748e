"""Aggregate notebook display: the registry as pandas tables (pure; nothing is written).

Leaderboard with intervals and rank bands, the pairwise significance matrix, what quantization
costs, and the runs that need attention (DISPUTED, nondeterministic, rejected).
"""

from __future__ import annotations

from ..benchmarks import PILLARS


def fmt_interval(ci: list[float] | None) -> str | None:
    """`[lo, hi]` with one decimal, or None."""
    return None if not ci else f"[{ci[0]:.1f}, {ci[1]:.1f}]"


def fmt_band(rank_range: list[int] | None) -> str | None:
    """A rank range as `2` or `1-3` (tied with the models whose ranges overlap)."""
    if not rank_range:
        return None
    lo, hi = rank_range
    return str(lo) if lo == hi else f"{lo}-{hi}"


def leaderboard_frame(registry: dict):
    """One row per model, best first: rank, rank band, aggregate with its 95% CI, pillars, badges."""
    import pandas as pd

    columns = ["rank", "band", "model", "parameters", "quantization", "aggregate", "aggregate_ci", *PILLARS,
               "badges", "disputed"]
    rows = [{
        "rank": e["rank"], "band": fmt_band(e.get("rank_range")), "model": e["name"],
        "parameters": e["parameters"], "quantization": e["quantization"], "aggregate": e["aggregate"],
        "aggregate_ci": fmt_interval((e.get("intervals") or {}).get("aggregate")),
        **{p: e["pillars"].get(p) for p in PILLARS},
        "badges": ", ".join(e["badges"]), "disputed": e["disputed"],
    } for e in registry["models"]]
    return pd.DataFrame(rows, columns=columns)


def intervals_frame(registry: dict):
    """Per model and pillar: score and 95% CI (pillars evaluated only)."""
    import pandas as pd

    rows = [{"model": e["name"], "pillar": p, "score": e["pillars"][p],
             "ci": fmt_interval(e["intervals"]["pillars"].get(p))}
            for e in registry["models"] for p in PILLARS if p in e["pillars"]]
    return pd.DataFrame(rows, columns=["model", "pillar", "score", "ci"])


def significance_matrix(registry: dict, value: str = "p_value"):
    """Square table of `p_value` or `p_a_above_b` (row model vs column model, em dash on the
    diagonal; entry ids label the rows when model names repeat); unpaired pairs are marked `unpaired (CIs apart)` / `unpaired (CIs overlap)`."""
    import pandas as pd

    ranked = [e for e in registry["models"] if e["aggregate"] is not None]
    unique = len({e["name"] for e in ranked}) == len(ranked)
    names = {e["entry_id"]: e["name"] if unique else e["entry_id"] for e in ranked}
    labels = list(names.values())
    table = pd.DataFrame([["\u2014" if r == c else "" for c in labels] for r in labels], index=labels,
                         columns=labels, dtype=object)
    for c in registry["comparisons"]:
        for row, col, flip in ((c["a"], c["b"], False), (c["b"], c["a"], True)):
            if not c["paired"]:
                cell = "unpaired (CIs apart)" if c["significant"] else "unpaired (CIs overlap)"
            elif value == "p_a_above_b" and flip:
                cell = round(1 - c[value], 4)
            else:
                cell = c[value]
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
    """Per quantization of a model (the registry's `quantizations` section): size, peak memory, decode speed,
    aggregate with its 95% CI, and its differences to the reference (the highest precision) per pillar
    and overall (`*`: significant, paired bootstrap on the same items)."""
    import pandas as pd

    columns = ["model", "quantization", "reference", "size_mb", "peak_rss_mb", "decode_tokens_per_s", "aggregate",
               "aggregate_ci", "vs_reference", *PILLARS]
    rows = []
    for group in registry.get("quantizations") or []:
        for v in group["variants"]:
            diffs = v["differences"] or {"aggregate": None, "pillars": {}}
            rows.append({"model": group["name"], "quantization": v["name"], "reference": v["reference"],
                         "size_mb": round(v["size_bytes"] / 1e6, 1) if v["size_bytes"] else None,
                         "peak_rss_mb": v["peak_rss_mb"], "decode_tokens_per_s": v["decode_tokens_per_s"],
                         "aggregate": v["aggregate"], "aggregate_ci": fmt_interval(v["aggregate_ci"]),
                         "vs_reference": fmt_difference(diffs["aggregate"]),
                         **{p: fmt_difference(diffs["pillars"].get(p)) for p in PILLARS}})
    return pd.DataFrame(rows, columns=columns)


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
