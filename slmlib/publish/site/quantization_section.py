"""Publish stage: the quantization table of the model and compare pages (HTML, pure).

Renders one set of the registry's `quantizations` section: every quantization of a model side
by side (size, peak memory, load time, decode speed, aggregate with its interval) and each one's
difference to the reference per pillar and overall, with its 95% interval and a mark when the
paired bootstrap finds it significant. Every string is escaped.
"""

from __future__ import annotations

from ...benchmarks import PILLARS
from .data import entry_slug
from .html import DASH, esc, fmt, fmt_bytes, fmt_ci, table

NOTE = ("Each quantization beside the reference, the highest precision evaluated alike (same suite, items, "
        "seed, backend and chat template). \u0394 is quantization minus reference (0\u2013100 points) with the "
        "95% interval of the paired bootstrap on the same items; <b>*</b> marks a significant difference "
        "(p &lt; 0.05). Hardware figures are from each run's machine and never change a rank.")


def fmt_delta(d: dict | None) -> str:
    """A difference to the reference: signed value, interval, and `*` when significant (p in the title)."""
    if d is None:
        return DASH
    if not d["paired"]:
        return f'{d["difference"]:+.1f} <span class="muted" title="different items: no paired test">unpaired</span>'
    title = f'p = {d["p_value"]:.3f}, paired bootstrap on the same items'
    mark = ' <b class="sig" title="significant (p &lt; 0.05)">*</b>' if d["significant"] else ""
    return (f'<span title="{esc(title)}">{d["difference"]:+.1f}</span> '
            f'<span class="ci">{fmt_ci(d["difference_ci"])}</span>{mark}')


def quantization_table(qset: dict, href_prefix: str, current: str | None = None) -> str:
    """The set's rows; names link to each quantization's model page (`href_prefix` + slug), `current` is
    the entry of the page showing it."""
    heads = ["Quantization", "Size", "Peak memory (MiB)", "Load (s)", "Decode (tokens/s)", "Aggregate [95% CI]",
             "\u0394 aggregate", *(f"\u0394 {p.capitalize()}" for p in PILLARS)]
    rows = []
    for v in qset["variants"]:
        name = f'<a href="{esc(href_prefix + entry_slug(v["entry_id"]))}.html">{esc(v["name"])}</a>'
        if v["entry_id"] == current:
            name = f"<b>{esc(v['name'])}</b> (this page)"
        diffs = v["differences"]
        deltas = ([fmt_delta(diffs["aggregate"]), *(fmt_delta(diffs["pillars"].get(p)) for p in PILLARS)]
                  if diffs else ['<span class="muted">reference</span>'] * (1 + len(PILLARS)))
        rows.append([name, fmt_bytes(v["size_bytes"]), fmt(v["peak_rss_mb"], 0), fmt(v["load_seconds"], 2),
                     fmt(v["decode_tokens_per_s"]), f'{fmt(v["aggregate"])} <span class="ci">'
                     f'{fmt_ci(v["aggregate_ci"])}</span>', *deltas])
    return table(heads, rows, cls="quantizations", numeric=set(range(1, len(heads))))


def settings_note(qset: dict) -> str:
    """The note under a set's heading: how to read it, and what the set was measured with."""
    return (f'<p class="note">{NOTE} Suite {esc(qset["suite"])}, limit {esc(qset["limit"])}/'
            f'{esc(qset["limit_generative"])}, seed {esc(qset["seed"])}, backend {esc(qset["backend"])}.</p>\n')


def quantization_section(qset: dict | None, current: str) -> str:
    """The model page's section for the set holding entry `current`; empty without one."""
    if not qset:
        return ""
    return ('<h2 id="quantizations">Quantizations</h2>\n' + settings_note(qset)
            + quantization_table(qset, "", current))
