"""Publish stage: the registry -> the static leaderboard site (`reports/site/`).

Reads the registry built by the aggregate stage (`outputs/registry.json`, passed in as a
dict). `leaderboard_json` and `render_index` are pure; `write_site` writes
`leaderboard.json`, `index.html` and `pillars.svg` atomically. The page is one
self-contained file: inline CSS and JS, no external requests; every string from a
submission goes through `html.escape`.
"""

from __future__ import annotations

import re
from html import escape
from pathlib import Path

from . import artifacts, paths
from .benchmarks import PILLARS
from .plots import pillar_bars, save_figure
from .scoring import BADGES, NORMALIZATION, WEIGHTS

SCHEMA_VERSION = 1  # version of leaderboard.json
MODEL_FIELDS = ("rank", "model_id", "name", "family", "parameters", "parameter_count", "size_bucket",
                "quantization", "aggregate", "pillars", "badges", "license", "hf_repo", "disputed")
_HF_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:78rem;padding:0 1rem;color:#1b1b1b}
h1{font-size:1.6rem}table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{padding:.35rem .5rem;border-bottom:1px solid #ddd;text-align:left}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
th{cursor:pointer;user-select:none;background:#f4f4f4;position:sticky;top:0}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
.badge{display:inline-block;background:#e6f4ea;color:#1e6b34;border-radius:.6rem;padding:0 .5rem;margin:0 .1rem;font-size:.8rem}
.disputed{color:#a15c00;font-size:.8rem}.repo{color:#666;font-size:.8rem}
.note{color:#444;max-width:60rem}img{max-width:100%}
"""

JS = """
document.querySelectorAll("th[data-col]").forEach(function (th) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0], col = th.cellIndex, num = th.classList.contains("num");
    var asc = th.getAttribute("aria-sort") !== "ascending";
    th.closest("tr").querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].getAttribute("data-sort"), y = b.cells[col].getAttribute("data-sort");
      if (x === "" || y === "") { return (x === "") - (y === ""); }
      var c = num ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""


def leaderboard_json(registry: dict) -> dict:
    """What the site shows: per model rank, name, family, size, scores, badges, license, repo."""
    return {
        "schema_version": SCHEMA_VERSION,
        "pillar_weights": registry.get("pillar_weights", WEIGHTS),
        "normalization": registry.get("normalization", NORMALIZATION),
        "badge_rules": registry.get("badge_rules", list(BADGES)),
        "models": [{f: entry.get(f) for f in MODEL_FIELDS} for entry in registry.get("models", [])],
    }


def fmt_score(value: float | None) -> str:
    """A 0-100 score with one decimal, or an em dash when missing."""
    return "\u2014" if value is None else f"{value:.1f}"


def cell(text: str, sort: object = None, num: bool = False) -> str:
    """One table cell; `text` is already-escaped HTML, `sort` the raw sort key (escaped here)."""
    key = "" if sort is None else escape(str(sort))
    return f'<td{" class=num" if num else ""} data-sort="{key}">{text}</td>'


def model_cell(m: dict) -> str:
    """Model name, with its Hugging Face repo (linked only when it looks like owner/name)."""
    name = escape(str(m.get("name") or m.get("model_id") or ""))
    repo = m.get("hf_repo") or ""
    html = name
    if repo and _HF_REPO.match(repo):
        html += f'<br><a class="repo" href="https://huggingface.co/{escape(repo)}">{escape(repo)}</a>'
    elif repo:
        html += f'<br><span class="repo">{escape(str(repo))}</span>'
    if m.get("disputed"):
        html += ' <span class="disputed" title="runs disagree by more than 0.5 points">disputed</span>'
    return cell(html, m.get("name") or m.get("model_id"))


def render_row(m: dict) -> str:
    """One leaderboard row."""
    pillars = m.get("pillars") or {}
    badges = " ".join(f'<span class="badge">{escape(str(b))}</span>' for b in m.get("badges") or [])
    cells = [
        cell(escape(str(m.get("rank") or "\u2014")), m.get("rank"), num=True),
        model_cell(m),
        cell(escape(str(m.get("family") or "")), m.get("family") or ""),
        cell(escape(str(m.get("parameters") or "")), m.get("parameter_count"), num=True),
        cell(escape(str(m.get("quantization") or "\u2014")), m.get("quantization") or ""),
        cell(fmt_score(m.get("aggregate")), m.get("aggregate"), num=True),
        *(cell(fmt_score(pillars.get(p)), pillars.get(p), num=True) for p in PILLARS),
        cell(badges, " ".join(m.get("badges") or [])),
        cell(escape(str(m.get("license") or "")), m.get("license") or ""),
    ]
    return "<tr>" + "".join(cells) + "</tr>"


def render_table(models: list[dict]) -> str:
    """The sortable leaderboard table."""
    heads = [("Rank", True), ("Model", False), ("Family", False), ("Parameters", True),
             ("Quantization", False), ("Aggregate", True), *((p.capitalize(), True) for p in PILLARS),
             ("Badges", False), ("License", False)]
    head = "".join(f'<th data-col{" class=num" if num else ""} title="click to sort">{escape(h)}</th>'
                   for h, num in heads)
    rows = "\n".join(render_row(m) for m in models)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>"


def render_methodology(leaderboard: dict) -> str:
    """Short methodology: normalization formula, pillar weights, badge rules."""
    weights = leaderboard.get("pillar_weights") or WEIGHTS
    shares = ", ".join(f"{escape(str(p))} {float(w):.2f}" for p, w in weights.items())
    rules = "; ".join(f"<b>{escape(str(b['name']))}</b>: {escape(str(b['rule']))}"
                      for b in leaderboard.get("badge_rules") or [])
    return (
        '<h2>Methodology</h2>\n<p class="note">Each task score is normalized against random guessing: '
        "<code>max(0,(raw\u2212baseline)/(1\u2212baseline))\u00b7100</code>, so 0 is chance and 100 is "
        "perfect. A pillar is the mean of its tasks; the aggregate is the weighted mean of the pillars "
        f"({shares}), with the weights renormalized over the pillars a model has. Models with equal "
        "aggregates share a rank; hardware figures never affect rank. A model is marked disputed when "
        "repeated runs disagree on a task by more than 0.5 points; the reported values are medians."
        + (f"<br>Badges \u2014 {rules}." if rules else "") + "</p>\n" + render_licenses()
    )


def render_licenses() -> str:
    """The licence allowlist detect enforces (slmlib.submission.LICENSES), with the reason for each."""
    from .submission import LICENSES

    items = "".join(f"<li><code>{escape(k)}</code>: {escape(v)}</li>" for k, v in LICENSES.items())
    return ('<h3>Licences accepted</h3>\n<p class="note">A submission is rejected unless its licence '
            f"permits benchmarking the model and publishing the results:</p>\n<ul>{items}</ul>")


def render_index(leaderboard: dict) -> str:
    """The whole leaderboard page as one self-contained HTML document."""
    models = leaderboard.get("models") or []
    if models:
        body = render_table(models) + '\n<h2>Pillars</h2>\n<img src="pillars.svg" alt="pillar scores by model">'
    else:
        body = '<p class="note">No models yet: run the evaluate and aggregate stages, then publish.</p>'
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>SLM Study leaderboard</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        "<h1>SLM Study leaderboard</h1>\n"
        f"{body}\n{render_methodology(leaderboard)}\n"
        '<p><a href="../index.html">Per-run reports</a></p>\n'
        f"<script>{JS}</script>\n</body>\n</html>\n"
    )


def write_site(registry: dict, site_dir: Path | None = None) -> list[Path]:
    """Write leaderboard.json, index.html and pillars.svg (default `paths.site_dir()`)."""
    site_dir = Path(site_dir) if site_dir is not None else paths.site_dir()
    board = leaderboard_json(registry)
    fig = pillar_bars(board)
    return [
        artifacts.write_json(site_dir / "leaderboard.json", board),
        artifacts.write_text_atomic(site_dir / "index.html", render_index(board)),
        save_figure(fig, site_dir / "pillars.svg"),
    ]
