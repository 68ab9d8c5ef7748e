"""Publish stage: the registry and the run folders -> the static site (`reports/site/`).

Reads the registry built by the aggregate stage (`outputs/registry.json`, passed in as a dict)
and, for the model pages, each entry's run folders `outputs/runs/<run_id>/` (results.json:
card, provenance; samples/*.jsonl: worst items, copied into the site as per-item logs) and
executed notebooks (linked as their HTML reports in `reports/<run_id>/`). Writes, each file
atomically: index.html (leaderboard), compare.html, methodology.html, submit.html,
model/<model_id>--<hash>.html per entry, data.js (the page data as a script, so the site
works opened as files), leaderboard.json, submission.schema.json, charts/*.svg, the CSS and
JavaScript from `slmlib/publish/site/assets/`, and samples/<run_id>/*.jsonl. Files of entries no
longer in the registry are removed. No page requests anything outside the site folder.
"""

from __future__ import annotations

from pathlib import Path

from .. import artifacts, paths
from .. import detect
from .plots import CHARTS, save_figure
from .site import data, evidence, model_page, pages, reference

ASSETS = Path(__file__).parent / "site" / "assets"


def write_pages(site: Path, registry: dict, board: dict, reports_href: str) -> list[Path]:
    """The four top-level pages, data.js, leaderboard.json, the submission schema and the assets."""
    weights = registry.get("pillar_weights")
    texts = {
        "index.html": pages.render_leaderboard(board, reports_href),
        "compare.html": pages.render_compare(board, registry.get("quantizations") or [], reports_href),
        "methodology.html": reference.render_methodology(weights, reports_href),
        "submit.html": reference.render_submit(reports_href),
        "data.js": data.data_js(board),
        "submission.schema.json": detect.schema_text(),
        **{asset.name: asset.read_text(encoding="utf-8") for asset in sorted(ASSETS.iterdir()) if asset.is_file()},
    }
    written = [artifacts.write_text_atomic(site / name, text) for name, text in texts.items()]
    return written + [artifacts.write_json(site / "leaderboard.json", data.leaderboard_json(registry))]


def write_model_pages(site: Path, registry: dict, board: dict, reports_href: str, runs_dir: Path,
                      reports_dir: Path, progress: bool = True) -> list[Path]:
    """One page per entry (with its set of quantizations, if any), and the per-item logs of its runs copied
    to samples/<run_id>/."""
    from tqdm import tqdm

    written = []
    entries = registry.get("models") or []
    sets = {v["entry_id"]: qset for qset in registry.get("quantizations") or [] for v in qset["variants"]}
    for entry in tqdm(entries, desc="model pages", unit="page", disable=not progress or not entries):
        view = board["entries"][entry["entry_id"]]
        ev = evidence.model_evidence(entry, runs_dir, reports_dir, site / "model")
        siblings = [board["entries"][e] for e in board["order"]
                    if board["entries"][e]["group"] == view["group"] and e != entry["entry_id"]]
        html = model_page.render_model(view, ev, siblings, reports_href, sets.get(entry["entry_id"]))
        page = site / "model" / f"{paths.check_id(view['slug'], 'entry_id')}.html"
        written.append(artifacts.write_text_atomic(page, html))
        for run_id in entry.get("run_ids") or []:
            for src in evidence.sample_files(runs_dir, paths.check_id(run_id, "run_ids")):
                written.append(artifacts.write_bytes_atomic(site / "samples" / run_id / src.name, src.read_bytes()))
    return written


def write_charts(site: Path, registry: dict) -> list[Path]:
    """The matplotlib charts (`plots.CHARTS`) as SVG under charts/."""
    return [save_figure(make(registry), site / "charts" / name) for name, (make, _) in CHARTS.items()]


def prune(site: Path, keep: list[Path]) -> None:
    """Remove files under the site's generated folders that this publish did not write."""
    keep_set = {p.resolve() for p in keep}
    for folder in ("model", "samples", "charts"):
        for path in sorted((site / folder).rglob("*"), reverse=True) if (site / folder).exists() else []:
            if path.is_file() and path.resolve() not in keep_set:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()


def read_registry() -> dict:
    """The registry the aggregate stage wrote (`outputs/registry.json`)."""
    path = paths.registry_path()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no registry; run the aggregate stage first")
    return artifacts.read_json(path)


def site_path(p) -> Path:
    """The site folder params `p` name (`site_dir`, else reports/site)."""
    return paths.site_dir(p.site_dir)


def write_site(registry: dict, site_dir: Path | None = None, runs_dir: Path | None = None,
               reports_dir: Path | None = None, progress: bool = True) -> list[Path]:
    """Write the whole site (default `paths.site_dir()`, run folders from `paths.runs_dir()`,
    reports from `paths.reports_root()`); returns the files written."""
    site = Path(site_dir) if site_dir is not None else paths.site_dir()
    runs_dir = Path(runs_dir) if runs_dir is not None else paths.runs_dir()
    reports_dir = Path(reports_dir) if reports_dir is not None else paths.reports_root()
    board = data.site_data(registry)
    reports_href = evidence.relative(reports_dir / "index.html", site)
    written = write_pages(site, registry, board, reports_href)
    written += write_charts(site, registry)
    written += write_model_pages(site, registry, board, reports_href, runs_dir, reports_dir, progress)
    prune(site, written)
    return written

