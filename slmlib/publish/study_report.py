"""Publish stage: the study report, one page a reader can cite (`reports/study.html`).

Reads the registry (passed in), each entry's run folders `outputs/runs/<run_id>/` (results.json:
per-task items and data digests; notebooks/: which reports to link) and the summary of the last
publication (`reports/study.json`). Writes the page and the new summary, atomically. The page holds
what was evaluated (models, tracks, tasks with item counts and data digests), the leaderboard with
intervals and bands, the charts of each track (inline SVG images), the pairwise comparisons, what changed since the
last publication, the caveats and links to every run's reports. Numbers are rounded as the site
rounds them: the site's own view of the registry (`site.data`) and formats (`site.html`) are used.
"""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path

from .. import artifacts, paths, provenance
from ..benchmarks import PILLARS, all_benchmarks
from .plots import CHARTS, figure_svg
from .site import data, evidence
from .site.html import DASH, esc, fmt, fmt_ci, table
from .site.reports_index import STUDY_REPORT, standalone_page

SUMMARY = "study.json"  # beside the report: what it showed, for the next publication's "what changed"
SUMMARY_KIND = "SLM Study report summary"
DIGITS = {key: digits for key, _, _, _, digits in data.SPEC_ROWS}  # decimals the site shows each figure with


def fmt_figure(key: str, value: float | None) -> str:
    """A hardware or cost figure (a key of the site's `SPEC_ROWS`) with the site's decimals."""
    return fmt(value, DIGITS[key])


def figure_rows(spec: dict) -> list[dict]:
    """The site's spec rows of `spec` (`data.spec_values`) present in it: figure, value (site decimals), unit."""
    return [{"figure": label, "value": fmt_figure(k, spec[k]), "unit": unit}
            for k, label, unit, _, _ in data.SPEC_ROWS if spec.get(k) is not None]


def registry_digest(registry: dict) -> str:
    """SHA-256 of the registry's canonical JSON: which registry a report shows."""
    return hashlib.sha256(artifacts.dumps(registry).encode()).hexdigest()


def summary(registry: dict) -> dict:
    """What a publication showed, per entry: name, quantization, track, aggregate, rank."""
    return {"kind": SUMMARY_KIND, "registry_sha256": registry_digest(registry),
            "entries": {e["entry_id"]: {k: e.get(k) for k in ("name", "quantization", "track", "aggregate", "rank")}
                        for e in registry.get("models") or []}}


def _entry_summary(e: object) -> bool:
    """Shaped as `summary` writes an entry: text or None for the names, numbers or None for aggregate and rank."""
    def number(v: object) -> bool:
        return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))

    return (isinstance(e, dict) and all(e.get(k) is None or isinstance(e[k], str) for k in ("name", "quantization", "track"))
            and number(e.get("aggregate")) and number(e.get("rank")))


def changes(previous: dict | None, current: dict) -> list[str]:
    """Sentences: entries added and removed, aggregates and ranks that moved, since `previous`."""
    if not previous:
        return ["First publication: no earlier report to compare with."]
    before, now = previous.get("entries") or {}, current["entries"]

    def name(eid: str, e: dict) -> str:
        return f"{e.get('name') or eid}" + (f" [{e['quantization']}]" if e.get("quantization") else "")

    out = [f"New: {name(eid, e)} (aggregate {fmt(e.get('aggregate'))}, rank {e.get('rank') or DASH})."
           for eid, e in now.items() if eid not in before]
    out += [f"Removed: {name(eid, e)}." for eid, e in before.items() if eid not in now]
    for eid, e in now.items():
        old = before.get(eid)
        if not old:
            continue
        moved = []
        if fmt(old.get("aggregate")) != fmt(e.get("aggregate")):
            moved.append(f"aggregate {fmt(old.get('aggregate'))} \u2192 {fmt(e.get('aggregate'))}")
        if old.get("rank") != e.get("rank"):
            moved.append(f"rank {old.get('rank') or DASH} \u2192 {e.get('rank') or DASH}")
        if moved:
            out.append(f"Changed: {name(eid, e)}: {', '.join(moved)}.")
    return out or ["No entry was added, removed or changed."]


def read_previous(reports_dir: Path) -> dict | None:
    """The last publication's summary, or None (none yet, unreadable, or not shaped as `write_study_report`
    writes it)."""
    path = Path(reports_dir) / SUMMARY
    try:
        record = artifacts.read_json_bounded(path, 64 << 20, 8) if path.is_file() else None
    except (OSError, ValueError):
        return None
    if not (isinstance(record, dict) and record.get("kind") == SUMMARY_KIND and isinstance(record.get("entries"), dict)
            and all(_entry_summary(e) for e in record["entries"].values())
            and all(isinstance(record.get(k), str) for k in ("registry_sha256", "published_at"))
            and isinstance(record.get("changes", []), list) and all(isinstance(c, str) for c in record.get("changes", []))):
        return None
    return record


def task_rows(registry: dict, runs: dict[str, dict]) -> list[list[str]]:
    """One row per task of the study: pillar, task, metric, items scored, items in its data, few-shot, the
    SHA-256 of its data (several when runs read different data), and how many entries' scores use it (0: a
    task reported beside the scores)."""
    benches = all_benchmarks()
    found: dict[str, dict] = {}
    for results in runs.values():
        for name, t in ((results or {}).get("tasks") or {}).items():
            f = found.setdefault(name, {"n": set(), "n_total": set(), "sha": set(), "fewshot": set()})
            f["n"].add(t.get("n"))
            f["n_total"].add(t.get("n_total"))
            f["sha"].add(t.get("data_sha256"))
            f["fewshot"].add(t.get("n_fewshot"))
    counts: dict[str, int] = {}
    for e in registry.get("models") or []:
        for name in e.get("tasks") or {}:
            counts[name] = counts.get(name, 0) + 1
    order = {p: i for i, p in enumerate(PILLARS)}

    def joined(values: set, short: bool = False) -> str:
        shown = sorted(str(v)[:12] if short else str(v) for v in values if v is not None)
        return esc(", ".join(shown)) if shown else DASH

    rows = []
    for name in sorted(counts.keys() | found.keys(), key=lambda n: (order.get(getattr(benches.get(n), "pillar", ""), 99), n)):
        bench, f = benches.get(name), found.get(name) or {"n": set(), "n_total": set(), "sha": set(), "fewshot": set()}
        rows.append([esc(bench.pillar if bench else DASH), esc(name), esc(bench.metric if bench else DASH),
                     joined(f["n"]), joined(f["n_total"]), joined(f["fewshot"]),
                     f"<code>{joined(f['sha'], short=True)}</code>", esc(counts.get(name, 0))])
    return rows


def leaderboard_rows(registry: dict, board: dict, tracks: dict[str, str]) -> list[list[str]]:
    """The leaderboard in registry order: rank, band, model, quantization, track, aggregate [CI], pillars [CI]."""
    rows = []
    for e in registry.get("models") or []:
        v = board["entries"][e["entry_id"]]
        band = v.get("rank_range")
        rows.append([esc(v.get("rank") or DASH), esc(f"{band[0]}\u2013{band[1]}" if band and band[0] != band[1]
                                                     else band[0] if band else DASH),
                     esc(v.get("name")), esc(v.get("quantization_label") or DASH),
                     esc(tracks.get(e.get("track") or "", e.get("track") or DASH)),
                     f"<b>{fmt(v.get('aggregate'))}</b> {fmt_ci(v.get('aggregate_ci'))}",
                     *(f"{fmt(v['pillars'].get(p))} <span class=muted>{fmt_ci(v['pillar_cis'].get(p))}</span>"
                       for p in PILLARS)])
    return rows


def comparison_rows(registry: dict, board: dict) -> list[list[str]]:
    """Every pair the aggregate stage tested: difference of aggregates with its interval, p, P(A > B)."""
    def label(eid: str) -> str:
        v = board["entries"].get(eid) or {}
        return esc(f"{v.get('name') or eid}" + (f" [{v['quantization_label']}]" if v.get("quantization_label") else ""))

    rows = []
    for c in registry.get("comparisons") or []:
        verdict = ("significant" if c.get("significant") else "not significant") if c.get("paired") else \
            ("unpaired: CIs apart" if c.get("significant") else "unpaired: CIs overlap")
        rows.append([label(c["a"]), label(c["b"]),
                     f"{c['difference']:+.1f} {fmt_ci(c.get('difference_ci'))}" if c.get("difference") is not None
                     else DASH, fmt(c.get("p_value"), 3) if c.get("paired") else DASH,
                     fmt(c.get("p_a_above_b"), 3) if c.get("paired") else DASH, esc(verdict)])
    return rows


def caveats(registry: dict, board: dict) -> list[str]:
    """What a reader must keep in mind, from the registry itself."""
    limits = sorted({(e.get("limit"), e.get("limit_generative")) for e in registry.get("models") or []}, key=str)
    sampled = [f"{_items(a)} items per multiple-choice task and {_items(b)} per generative task" for a, b in limits
               if (a, b) != (None, None)]
    out = [
        (f"Scores are on subsamples ({'; '.join(sampled)})" if sampled else "Scores are on every item of each task")
        + ". The 95% intervals show how much the items leave open; models whose rank ranges overlap are tied.",
        "Scores are normalized against random guessing (0 = chance, 100 = perfect) and weighted by pillar "
        f"({esc(', '.join(f'{p} {w:.2f}' for p, w in (registry.get('pillar_weights') or {}).items()))}).",
        "Time, memory, energy and CO\u2082 are measured on each run's own machine (energy and CO\u2082 are CodeCarbon "
        "estimates) and never change a rank.",
    ]
    out += [f"DISPUTED: {esc(e['entry_id'])}: repeated runs differ by more than {registry.get('dispute_points')} "
            f"points on {esc(', '.join(e.get('disputed_tasks') or []))}."
            for e in registry.get("models") or [] if e.get("disputed")]
    out += [f"Nondeterministic: {esc(f.get('entry_id'))} {esc(f.get('task'))} (runs {esc(' vs '.join(f.get('run_ids') or []))})."
            for f in registry.get("nondeterministic") or []]
    out += [f"Rejected run {esc(r.get('run_id'))}: {esc(r.get('reason'))}." for r in registry.get("rejected") or []]
    return out


def _items(limit: int | None) -> str:
    return "all" if limit is None else str(limit)


def charts(registry: dict) -> str:
    """Every site chart of every track with entries, as inline SVG images (data URIs: the page stays one
    file); a registry without tracks gives one set."""
    tracks = [t for t in registry.get("tracks") or [] if isinstance(t, dict) and t.get("entries")]

    def images(track: str | None) -> str:
        return "".join(
            f'<figure><img alt="{esc(what)}" src="data:image/svg+xml;base64,'
            f'{base64.b64encode(figure_svg(make(registry, track)).encode()).decode()}">'
            f"<figcaption>{esc(what[0].upper() + what[1:])}.</figcaption></figure>" for make, what in CHARTS.values())

    if not tracks:
        return images(None)
    return "".join((f"<h3>{esc(t.get('name') or t['id'])}</h3>" if len(tracks) > 1 else "") + images(t["id"])
                   for t in tracks)


def run_rows(entries: list[dict], board: dict, runs_dir: Path, reports_dir: Path) -> list[list[str]]:
    """Per run of every entry: the model, the run id, and each stage's report (for readers, with code)."""
    rows = []
    for e in entries:
        for run_id in e.get("run_ids") or []:
            links = evidence.report_links(runs_dir, reports_dir, run_id, reports_dir)
            rows.append([esc(board["entries"][e["entry_id"]].get("name")), f"<code>{esc(run_id)}</code>",
                         " \u00b7 ".join(f'<a href="{esc(r["no_code"])}">{esc(r["stage"])}</a> '
                                         f'(<a href="{esc(r["href"])}">with code</a>)' for r in links) or DASH])
    return rows


def cite_line(registry: dict, published_at: str) -> str:
    """How to cite this report: its date, the registry's digest, slmlib's version and commit."""
    commit = provenance.git_revision()
    return (f"SLM Study, report published {published_at}, registry SHA-256 {registry_digest(registry)[:12]}, slmlib "
            f"{provenance.versions().get('slmlib', DASH)}" + (f", commit {commit[:12]}" if commit else ""))


def render_study_report(registry: dict, runs_dir: Path, reports_dir: Path, changed: list[str], since: str | None,
                        published_at: str) -> str:
    """The study report's HTML: `changed` are the sentences of what changed `since` (the last publication)."""
    board = data.site_data(registry)
    tracks = {t["id"]: t.get("name") or t["id"] for t in registry.get("tracks") or [] if isinstance(t, dict)}
    entries = registry.get("models") or []
    run_ids = list(dict.fromkeys(r for e in entries for r in e.get("run_ids") or []))
    runs = {r: evidence.read_results(runs_dir, r) for r in run_ids}
    models = [[esc(v.get("name")), esc(v.get("parameters") or DASH), esc(v.get("quantization_label") or DASH),
               esc(tracks.get(e.get("track") or "", e.get("track") or DASH)),
               esc(f"{_items(e.get('limit'))}/{_items(e.get('limit_generative'))}"), esc(e.get("seed")),
               esc(len(e.get("run_ids") or []))]
              for e in entries for v in [board["entries"][e["entry_id"]]]]
    track_rows = [[esc(t.get("name") or t.get("id")), f"<code>{esc(t.get('id'))}</code>", esc(t.get("entries", DASH)),
                   "yes" if t.get("default") else ""] for t in registry.get("tracks") or [] if isinstance(t, dict)]
    n_entries, n_runs = len(entries), len(run_ids)
    body = (
        f"<h1>SLM Study: report</h1><p>Published {esc(published_at)}: {n_entries} entr{'y' if n_entries == 1 else 'ies'}"
        f" from {n_runs} run{'s' * (n_runs != 1)}. <b>Cite as:</b> {esc(cite_line(registry, published_at))}.</p>"
        '<p><a href="index.html">Every run\'s reports</a> \u00b7 <a href="site/index.html">the leaderboard site</a>'
        " (sortable, with model pages and comparisons).</p>"
        "<h2>What was evaluated</h2><h3>Models</h3>"
        + table(["Model", "Params", "Quant.", "Track", "Items (MC/gen.)", "Seed", "Runs"], models, numeric={6})
        + ("<h3>Tracks</h3><p>A track is one protocol (suite, tasks, items, seed, prompts); ranks compare entries of "
           "one track.</p>" + table(["Track", "Id", "Entries", "Default"], track_rows, numeric={2}) if track_rows else "")
        + "<h3>Tasks</h3><p>Items scored per run, items in the task's data, few-shot examples, and the SHA-256 (first 12 "
          "hex digits) of the data the items came from; <i>Entries</i>: how many entries' scores use the task (0: a "
          "measure reported beside the ranking, such as a bias measure).</p>"
        + table(["Pillar", "Task", "Metric", "Items scored", "Items in data", "Few-shot", "Data SHA-256", "Entries"],
                task_rows(registry, runs), numeric={3, 4, 5, 7})
        + "<h2>Leaderboard</h2><p>Aggregate and pillars: 0 = chance, 100 = perfect, with 95% bootstrap intervals; "
          "<i>band</i> is the rank range of the models not significantly different.</p>"
        + table(["Rank", "Band", "Model", "Quant.", "Track", "Aggregate [95% CI]", *(p.capitalize() for p in PILLARS)],
                leaderboard_rows(registry, board, tracks), numeric={0, 5, *range(6, 6 + len(PILLARS))})
        + f"<h2>Charts</h2>{charts(registry)}"
        + "<h2>Pairwise comparisons</h2><p>Difference of aggregates (A \u2212 B) with its 95% interval; paired "
          "bootstrap on the same items (p, and the probability that A is better), else whether the intervals overlap."
          "</p>" + (table(["A", "B", "A \u2212 B [95% CI]", "p", "P(A > B)", "Verdict"], comparison_rows(registry, board),
                          numeric={2, 3, 4}) if registry.get("comparisons") else
                    "<p>Fewer than two ranked entries: nothing to compare.</p>")
        + "<h2>What changed</h2>" + (f"<p>Since the publication of {esc(since)}:</p>" if since else "")
        + "<ul>" + "".join(f"<li>{esc(c)}</li>" for c in changed) + "</ul>"
        + "<h2>Caveats</h2><ul>" + "".join(f"<li>{c}</li>" for c in caveats(registry, board)) + "</ul>"
        + "<h2>Runs and their reports</h2>"
        + table(["Model", "Run", "Reports (for readers; with code)"], run_rows(entries, board, runs_dir, reports_dir))
    )
    return standalone_page("SLM Study: report", body)


def write_study_report(registry: dict, reports_dir: Path | None = None, runs_dir: Path | None = None) -> Path:
    """Write `reports/study.html` and its summary `study.json`; returns the page's path. What changed is
    told against the last publication of a different registry (republishing the same one keeps it)."""
    reports_dir = Path(reports_dir) if reports_dir is not None else paths.reports_root()
    runs_dir = Path(runs_dir) if runs_dir is not None else paths.runs_dir()
    previous = read_previous(reports_dir)
    current = summary(registry)
    current["published_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    if previous and previous.get("registry_sha256") == current["registry_sha256"] and "changes" in previous:
        current.update(changes=previous["changes"], since=previous.get("since"))
    else:
        current.update(changes=changes(previous, current), since=(previous or {}).get("published_at"))
    page = render_study_report(registry, runs_dir, reports_dir, current["changes"], current["since"],
                               current["published_at"])
    path = artifacts.write_text_atomic(reports_dir / STUDY_REPORT, page)
    artifacts.write_json(reports_dir / SUMMARY, current)
    return path
