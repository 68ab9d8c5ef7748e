"""`reports/index.html`: every executed notebook's HTML report, by run and stage (runner writes it).

Reads the report folders `reports/<run_id>/<NN_stage>.html` (and `.no-code.html`, the version
for readers) that the runner exports; links the leaderboard at `reports/site/index.html`.
"""

from __future__ import annotations

from pathlib import Path

from .html import CSP, esc

STYLE = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
         "table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .6rem;"
         "border-bottom:1px solid #ddd}th{background:#f3f4f6}")
INLINE_STYLE_CSP = CSP.replace("style-src 'self'", "style-src 'unsafe-inline'")  # its one style is inline


def run_rows(run: Path) -> list[str]:
    """Table rows of one run: one per stage report, with and without code."""
    stems = sorted({f.name.removesuffix(".html").removesuffix(".no-code") for f in run.glob("*.html")})
    rows = []
    for i, stem in enumerate(stems):
        stage = stem.split("_", 1)[-1]
        code = f'<a href="{esc(run.name)}/{esc(stem)}.html">with code</a>' if (run / f"{stem}.html").exists() else ""
        plain = (f'<a href="{esc(run.name)}/{esc(stem)}.no-code.html">without code</a>'
                 if (run / f"{stem}.no-code.html").exists() else "")
        head = f'<th rowspan="{len(stems)}">{esc(run.name)}</th>' if i == 0 else ""
        rows.append(f"<tr>{head}<td>{esc(stem[:2])} {esc(stage)}</td><td>{plain}</td><td>{code}</td></tr>")
    return rows


def render_reports_index(root: Path) -> str:
    """The index page of `root` (the reports folder): runs newest first, then their stages in order."""
    runs = sorted((d for d in root.iterdir() if d.is_dir() and d.name != "site"),
                  key=lambda d: d.stat().st_mtime, reverse=True) if root.exists() else []
    rows = [r for run in runs for r in run_rows(run)]
    table = ("<table><thead><tr><th>Run</th><th>Stage</th><th>For readers</th><th>Full</th></tr></thead><tbody>"
             + "".join(rows) + "</tbody></table>") if rows else "<p>No executed notebooks yet.</p>"
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{INLINE_STYLE_CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1"><title>SLM Study reports</title>'
            f"<style>{STYLE}</style></head><body><h1>SLM Study reports</h1>"
            '<p><a href="site/index.html">Leaderboard</a> \u00b7 every executed notebook as HTML, by run and stage '
            "(for readers: without code cells).</p>" + table + "</body></html>\n")
