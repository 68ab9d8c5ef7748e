"""Publish stage: the leaderboard and compare pages (HTML from `data.site_data`, pure).

Rows and controls are rendered here with every string escaped; `leaderboard.js` shows one track at a
time (the track shown first unless the URL names another), sorts and filters its rows and keeps the view
in the URL's fragment; rows of the other tracks start hidden, so even without scripts no ranking mixes
tracks. `compare.js` draws the comparison of the models chosen on the compare page from the embedded
data (pairing only entries of one track), and shows the quantization table (rendered here, hidden) of a
model two or more of whose quantizations are chosen. Column order puts rank, model, track and aggregate
first: a phone's first screen shows them.
"""

from __future__ import annotations

from ..plots import CHARTS
from .html import DASH, esc, fmt, fmt_ci, link, page, quorum_text
from .quantization_section import quantization_table, settings_note


def rank_cell(v: dict) -> str:
    """Rank, with the rank range when the model is tied with others (not significantly different)."""
    rank, band = v.get("rank"), v.get("rank_range")
    text = esc(rank) if rank is not None else DASH
    if band and band[0] != band[1]:
        text += (f' <span class="band" title="tied: not significantly different from the models ranked '
                 f'{band[0]} to {band[1]}">({band[0]}\u2013{band[1]})</span>')
    return text


def model_cell(v: dict, variants: list[dict]) -> str:
    """Name linked to the model page, its source (Hugging Face repo), DISPUTED mark, and the button that
    shows the other variants (named by their quantizations)."""
    html = link(f"model/{v['slug']}.html", v.get("name") or v["model_id"], cls="model-link")
    if v.get("source_url"):
        html += "<br>" + link(v["source_url"], v["hf_repo"], cls="repo", external=True)
    elif v.get("hf_repo"):
        html += f'<br><span class="repo">{esc(v["hf_repo"])}</span>'
    if v.get("disputed"):
        html += (' <span class="flag disputed" title="repeated runs disagree by more than 0.5 points on: '
                 f'{esc(", ".join(v.get("disputed_tasks") or []))}">DISPUTED</span>')
    if v.get("provisional"):
        html += f' <span class="flag provisional" title="{esc(quorum_text(v["quorum"]))}">PROVISIONAL</span>'
    if variants:
        names = ", ".join(dict.fromkeys(w.get("quantization_label") or DASH for w in variants))
        html += (f' <button type="button" class="variants" aria-expanded="false" data-group="{esc(v["group"])}" '
                 f'title="other quantizations and settings of this model: {esc(names)}">+{len(variants)}</button>')
    return html


def track_cell(v: dict) -> str:
    """The entry's track, its name broken at its separators so the column stays narrow."""
    parts = str(v.get("track_name") or v.get("track") or "").split(" \u00b7 ")
    return (f'<span class="track" title="{esc(v.get("track"))}">'
            + "<wbr> \u00b7 ".join(esc(p) for p in parts) + "</span>")


def row(v: dict, pillars: list[str], variants: list[dict] = (), variant: bool = False, shown: bool = True) -> str:
    """One leaderboard row: a group's primary entry or (hidden until expanded) one of its variants; rows
    of a track not shown first start hidden."""
    badges = " ".join(f'<span class="badge">{esc(b)}</span>' for b in v.get("badges") or [])
    agg = fmt(v.get("aggregate"))
    if v.get("aggregate_ci"):
        agg += f' <span class="ci">{fmt_ci(v["aggregate_ci"])}</span>'
    cells = [
        f'<input type="checkbox" class="pick" value="{esc(v["entry_id"])}" '
        f'aria-label="compare {esc(v.get("name"))}">',
        rank_cell(v), model_cell(v, variants), track_cell(v), agg, esc(v.get("family") or ""),
        esc(v.get("parameters") or ""), esc(v.get("quantization_label") or DASH),
        *(fmt(v["pillars"].get(p)) for p in pillars), badges, esc(v.get("license") or ""),
    ]
    num = {1, 4, 6, *range(8, 8 + len(pillars))}
    tds = "".join(f'<td{" class=num" if i in num else ""}>{c}</td>' for i, c in enumerate(cells))
    cls = "variant" if variant else "model"
    hidden = " hidden" if variant or not shown else ""
    return (f'<tr class="{cls}" data-id="{esc(v["entry_id"])}" data-group="{esc(v["group"])}" '
            f'data-track="{esc(v.get("track"))}"{hidden}>{tds}</tr>')


def header(pillars: list[str]) -> str:
    """Sortable column heads (buttons; `data-key` names the sort key `leaderboard.js` uses)."""
    cols = [("", None, False), ("Rank", "rank", True), ("Model", "name", False), ("Track", None, False),
            ("Aggregate [95% CI]", "aggregate", True), ("Family", "family", False),
            ("Params", "parameter_count", True), ("Quant.", "quantization_label", False),
            *((p.capitalize(), f"pillar:{p}", True) for p in pillars),
            ("Badges", "badges", False), ("License", "license", False)]
    out = []
    for label, key, num in cols:
        cls = ' class="num"' if num else ""
        inner = (f'<button type="button" data-key="{key}">{esc(label)}</button>' if key
                 else esc(label) if label else '<span title="compare">\u2611</span>')
        out.append(f"<th{cls}>{inner}</th>")
    return "<tr>" + "".join(out) + "</tr>"


def select(name: str, label: str, options: list[str]) -> str:
    opts = "".join(f'<option value="{esc(o)}">{esc(o)}</option>' for o in options)
    return (f'<label>{esc(label)} <select id="f-{name}" data-filter="{name}"><option value="">any</option>'
            f"{opts}</select></label>")


def track_select(tracks: list[dict], element_id: str = "f-track") -> str:
    """The track selector: one option per track with entries, the one shown first first (no "any": one
    track at a time)."""
    opts = "".join(f'<option value="{esc(t["id"])}">{esc(t["name"])}{" (default)" if t["default"] else ""}'
                   f" \u2014 {t['entries']} entr{'y' if t['entries'] == 1 else 'ies'}</option>" for t in tracks)
    return f'<label class="track-choice">Track <select id="{element_id}">{opts}</select></label>'


def controls(filters: dict, tracks: list[dict], provisional: bool = False) -> str:
    """The track, search box, the five filters (size, family, license, badge, pillar with a minimum), the
    switch that shows provisional (unranked) entries when there are any, counters."""
    return (
        '<form class="controls" id="controls" role="search">' + track_select(tracks)
        + '<label>Search <input id="q" type="search" placeholder="name, family or repo" autocomplete="off"></label>'
        + select("bucket", "Size", filters["size_bucket"]) + select("family", "Family", filters["family"])
        + select("license", "License", filters["license"]) + select("badge", "Badge", filters["badge"])
        + select("pillar", "Pillar", filters["pillar"])
        + '<label>at least <input id="f-min" type="number" min="0" max="100" step="1" value="" '
          'placeholder="0" title="minimum score in the chosen pillar"></label>'
        + ('<label title="entries fewer independent runners have confirmed than the quorum asks: never ranked">'
           '<input type="checkbox" id="f-provisional"> provisional entries</label>' if provisional else "")
        + '<button type="reset" id="reset">Reset</button>'
        '<span id="count" aria-live="polite"></span>'
        '<a id="compare-link" class="button" href="compare.html">Compare selected</a></form>'
    )


def render_leaderboard(data: dict, reports_href: str) -> str:
    """index.html: the track selector and controls, the grouped table and the charts, one track at a time."""
    entries, pillars, first = data["entries"], data["pillars"], data["shown_track"]
    if not entries:
        body = '<p class="note">No models yet: run the evaluate and aggregate stages, then publish.</p>'
        return page("Leaderboard", body, "index.html", reports_href=reports_href)
    rows = []
    for g in data["groups"]:
        shown = g["track"] == first and not entries[g["primary"]].get("provisional")  # shown when asked for
        rows.append(row(entries[g["primary"]], pillars, [entries[v] for v in g["variants"]], shown=shown))
        rows.extend(row(entries[v], pillars, variant=True, shown=shown) for v in g["variants"])
    charts = "\n".join(
        f'<section class="charts-track" data-track="{esc(t["id"])}"{"" if t["id"] == first else " hidden"}>'
        f'<p class="note">Of the track {esc(t["name"])}.</p><div class="charts">'
        + "\n".join(f'<figure><img src="charts/{esc(t["id"])}/{esc(name)}" alt="{esc(what)}, track {esc(t["name"])}" '
                    f'loading="lazy"><figcaption>{esc(what[0].upper() + what[1:])}.</figcaption></figure>'
                    for name, (_, what) in CHARTS.items())
        + "</div></section>" for t in data["tracks"])
    body = (
        '<p class="note">One track at a time: a track is the protocol scores were measured under (suite, tasks, '
        "items per task, seed, chat template, few-shot), and models are ranked, filtered and compared only "
        "within one. One row per model (its best-ranked quantization or setting; <b>+n</b> shows the others). "
        "Aggregate and pillars are 0\u2013100 above random guessing, with 95% bootstrap intervals; a rank range "
        'marks models that are not significantly different. Click a column to sort; the view is kept in the '
        'address, so a link shares it. <a href="methodology.html">How scores are made</a>.</p>\n'
        + controls(data["filters"], data["tracks"], any(v.get("provisional") for v in entries.values()))
        + '\n<p id="track-protocol" class="note"></p>'
        + f'\n<div class="scroll"><table id="board">\n<thead>{header(pillars)}</thead>\n<tbody>\n'
        + "\n".join(rows) + "\n</tbody></table></div>\n"
        + '<p id="empty" class="note" hidden>No model matches these filters.</p>\n'
        + f'<h2>Charts</h2>\n{charts}'
    )
    return page("Leaderboard", body, "index.html", scripts=("leaderboard.js",), reports_href=reports_href)


def quantization_sets(qsets: list[dict]) -> str:
    """Every set of quantizations as a hidden section; `compare.js` shows a set when two or more of its
    entries are chosen."""
    return "".join(
        f'<section class="quantization-set" data-entries="{esc(" ".join(v["entry_id"] for v in q["variants"]))}" '
        f'hidden>\n<h3>{esc(q["name"])}</h3>\n' + settings_note(q) + quantization_table(q, "model/") + "</section>\n"
        for q in qsets)


def render_compare(data: dict, qsets: list[dict], reports_href: str) -> str:
    """compare.html: pick 2-4 entries (kept in the URL), listed by track; `compare.js` draws the rest and
    pairs only entries of one track. `qsets`: the registry's quantizations section."""
    def pick(eid: str) -> str:
        v = data["entries"][eid]
        return (f'<label class="pick-model"><input type="checkbox" value="{esc(eid)}" data-track="{esc(v.get("track"))}">'
                f' {esc(v.get("name"))} <span class="muted">{esc(v.get("quantization_label") or "")} \u00b7 rank '
                f'{esc(v.get("rank") or DASH)}</span></label>')

    picks = "".join(
        f'<fieldset class="picker-track" data-track="{esc(t["id"])}"><legend>Track {esc(t["name"])}</legend>'
        + "".join(pick(eid) for eid in data["order"] if data["entries"][eid].get("track") == t["id"])
        + "</fieldset>" for t in data["tracks"])
    body = (
        '<p class="note">Choose two to four models, from one track: entries of different tracks were measured '
        "under different protocols (tasks, items, seed), so they are never ranked or tested against each "
        "other. Differences are tested with the paired bootstrap of the aggregate stage; hardware figures are "
        "from each run's machine and never change a rank; bias measures (CrowS-Pairs) are listed with them, "
        "beside the ranking, with their ideal.</p>\n"
        f'<div id="picker"><p class="legend-title">Models</p>{picks or "No models yet."}</div>\n'
        '<p id="pick-status" class="note" aria-live="polite"></p>\n'
        '<p id="cross-track" class="note warning" hidden></p>\n'
        '<section id="comparison" hidden>\n'
        '<h2>Pillars</h2><figure class="radar-figure"><svg id="radar" class="radar" role="img" '
        'aria-label="pillar radar of the chosen models"></svg><div class="legend" id="radar-legend"></div></figure>\n'
        '<h2>Tasks</h2><p class="note">Normalized score per task with its 95% interval.</p>'
        '<div class="scroll"><svg id="task-bars" class="bars" role="img" aria-label="per-task scores"></svg></div>\n'
        '<h2>Significance</h2><div id="significance"></div>\n'
        f'<div id="quantizations" hidden><h2>Quantizations</h2>\n{quantization_sets(qsets)}</div>\n'
        '<h2>Specifications</h2><p class="note">Best value in bold (lower is better for time, memory, energy '
        "and CO\u2082; scores only within one track).</p><div id=\"specs\"></div>\n</section>"
    )
    return page("Compare", body, "compare.html", scripts=("compare.js",), reports_href=reports_href)
