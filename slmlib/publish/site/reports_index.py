"""`reports/index.html`: one row per run, newest first (the runner writes it after every run).

Reads the report folders `reports/<run_id>/<NN_stage>.html` (and `.no-code.html`, the version for
readers) that the runner exports; for each run its executed notebooks (papermill's start, duration
and whether the stage raised), its model card or results (model, quantization), and the registry
entry that holds it (aggregate, track, model page). Links the leaderboard, the study report and, per
run, the model page and every stage's reports, a failed stage's first. A run folder or registry that
is missing or unreadable leaves its cells empty, never an error.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from ... import artifacts, paths
from .data import entry_slug
from .html import CSP, DASH, esc, fmt

STYLE = ("body{font-family:system-ui,sans-serif;max-width:78rem;margin:2rem auto;padding:0 1rem;line-height:1.4}"
         "table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .5rem;"
         "border-bottom:1px solid #ddd;vertical-align:top}th{background:#f3f4f6}td.num{text-align:right}"
         ".nw{white-space:nowrap}.rid{overflow-wrap:anywhere;font-size:.85em}.failed{color:#b91c1c;font-weight:600}.muted{color:#6b7280}.scroll{overflow-x:auto}"
         "img{max-width:100%}h2{margin-top:2rem}")
INLINE_STYLE_CSP = CSP.replace("style-src 'self'", "style-src 'unsafe-inline'")  # its one style is inline
STUDY_REPORT = "study.html"  # in the reports folder: the study report the publish stage writes


def standalone_page(title: str, body: str) -> str:
    """A page of the reports folder (not of the site): inline style, no script, no outside request."""
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{INLINE_STYLE_CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>\n")


def stage_runs(run: Path) -> list[dict]:
    """The run's executed notebooks in stage order: stem, start (ISO), seconds, failed (papermill's record)."""
    out = []
    for nb in sorted(paths.executed_dir(run).glob("*.ipynb")):
        try:
            meta = (artifacts.read_json(nb).get("metadata") or {}).get("papermill") or {}
        except (OSError, ValueError, AttributeError):
            meta = {}
        duration = meta.get("duration")
        out.append({"stem": nb.stem, "start": meta.get("start_time") if isinstance(meta.get("start_time"), str) else None,
                    "seconds": duration if isinstance(duration, (int, float)) else None,
                    "failed": meta.get("exception") is True})
    return out


def _read(path: Path) -> dict:
    try:
        value = artifacts.read_json(path) if path.is_file() else {}
    except (OSError, ValueError):
        value = {}
    return value if isinstance(value, dict) else {}


def run_card(run: Path) -> dict:
    """The run's model card: from results.json (evaluate), else model_card.json (detect)."""
    card = _read(paths.results_file(run)).get("model_card")
    return card if isinstance(card, dict) else _read(paths.model_card_file(run))


def fmt_started(start: str | None) -> str:
    """An ISO time as `2026-11-30 18:00 UTC`."""
    try:
        return datetime.fromisoformat(start).strftime("%Y-%m-%d %H:%M UTC") if start else DASH
    except ValueError:
        return DASH


def fmt_duration(seconds: float | None) -> str:
    """`42 s`, `9 min 30 s` or `1 h 02 min`."""
    if seconds is None:
        return DASH
    s = round(seconds)
    return f"{s} s" if s < 60 else f"{s // 60} min {s % 60:02d} s" if s < 3600 else f"{s // 3600} h {s % 3600 // 60:02d} min"


def run_row(run: Path, root: Path, entries: dict[str, dict], tracks: dict[str, str], site: Path) -> tuple[str, str]:
    """(sort key, table row) of one run."""
    stages = stage_runs(run)
    card = run_card(run)
    entry = entries.get(run.name) or {}
    starts = sorted(s["start"] for s in stages if s["start"])
    failed = next((s for s in stages if s["failed"]), None)
    stems = sorted({f.name.removesuffix(".html").removesuffix(".no-code") for f in (root / run.name).glob("*.html")})
    if failed and failed["stem"] in stems:
        stems.remove(failed["stem"])
        stems.insert(0, failed["stem"])

    def links(stem: str) -> str:
        label = f"{stem[:2]} {stem.split('_', 1)[-1]}"
        reader = f"{run.name}/{stem}.no-code.html"
        full = f"{run.name}/{stem}.html"
        mark = '<span class="failed">failed</span> ' if failed and stem == failed["stem"] else ""
        return (f'<span class=nw>{mark}<a href="{esc(reader)}">{esc(label)}</a>'
                + (f' <a class="muted" href="{esc(full)}">(code)</a>' if (root / full).is_file() else "") + "</span>")

    if failed:
        status = f'<span class="failed">failed at {esc(failed["stem"][:2])} {esc(failed["stem"].split("_", 1)[-1])}</span>'
    elif stages:
        status = f"done ({len(stages)} stage{'s' * (len(stages) != 1)})"
    else:
        status = '<span class="muted">no executed notebook</span>'
    page = site / "model" / f"{entry_slug(entry['entry_id'])}.html" if entry.get("entry_id") else None
    model = esc(card.get("name") or card.get("model_id") or DASH)
    if page is not None and page.is_file():
        model = f'<a href="{esc(Path(os.path.relpath(page, root)).as_posix())}">{model}</a>'
    agg = fmt(entry.get("aggregate")) if entry else DASH
    cells = [f'{model}<br><span class="muted rid">{esc(run.name)}</span>', esc(card.get("quantization") or DASH),
             esc(tracks.get(entry.get("track"), entry.get("track") or "")), esc(fmt_started(starts[0] if starts else None)),
             esc(fmt_duration(sum(timed) if (timed := [s["seconds"] for s in stages if s["seconds"] is not None])
                              else None)),
             status, agg, "<br>".join(links(s) for s in stems)]
    classes = {3: " class=nw", 4: ' class="num nw"', 5: " class=nw", 6: " class=num"}
    tds = "".join(f"<td{classes.get(i, '')}>{c}</td>" for i, c in enumerate(cells))
    return (starts[0] if starts else "", f"<tr>{tds}</tr>")


def registry_runs(registry: dict | None) -> tuple[dict[str, dict], dict[str, str]]:
    """Run id -> its registry entry, and track id -> track name (empty when the registry has none)."""
    registry = registry if isinstance(registry, dict) else {}
    entries = {run_id: e for e in registry.get("models") or [] if isinstance(e, dict)
               for run_id in e.get("run_ids") or []}
    tracks = {t["id"]: t.get("name") or t["id"] for t in registry.get("tracks") or []
              if isinstance(t, dict) and isinstance(t.get("id"), str)}
    return entries, tracks


def render_reports_index(root: Path, registry: dict | None = None, site: Path | None = None) -> str:
    """The index page of `root` (the reports folder): one row per run, newest first (by the start of its
    first stage). `registry` gives aggregates, tracks and model pages (in `site`, default root/site)."""
    site = Path(site) if site is not None else root / "site"
    entries, tracks = registry_runs(registry)
    runs = [d for d in root.iterdir() if d.is_dir() and d.name != "site" and any(d.glob("*.html"))] \
        if root.is_dir() else []
    rows = sorted((run_row(paths.runs_dir() / run.name, root, entries, tracks, site) for run in runs), reverse=True)
    heads = ["Model / run", "Quant.", "Track", "Started", "Wall time", "Status", "Aggregate", "Reports (for readers)"]
    table = ('<div class="scroll"><table><thead><tr>' + "".join(f"<th>{h}</th>" for h in heads)
             + "</tr></thead><tbody>" + "".join(r for _, r in rows) + "</tbody></table></div>"
             ) if rows else "<p>No executed notebooks yet.</p>"
    study = (f' \u00b7 <a href="{STUDY_REPORT}">Study report</a>' if (root / STUDY_REPORT).is_file() else "")
    return standalone_page("SLM Study reports", (
        "<h1>SLM Study reports</h1>"
        f'<p><a href="site/index.html">Leaderboard</a>{study} \u00b7 one row per run, newest first: each stage\'s '
        "report for readers (without code; <i>code</i>: the version with code), a failed stage first. Wall time is the sum "
        "of the stages' times; the aggregate is the run's registry entry's (0 = chance, 100 = perfect).</p>"
        + table))
