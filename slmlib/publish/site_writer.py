"""Publish stage: the registry and the run folders -> the static site (`reports/site/`).

Reads the registry built by the aggregate stage (`outputs/registry.json`, passed in as a dict)
and, for the model pages, each entry's run folders `outputs/runs/<run_id>/` (results.json:
card, provenance; samples/*.jsonl: worst items, copied into the site as per-item logs) and
executed notebooks (linked as their HTML reports in `reports/<run_id>/`). Writes, each file
atomically: index.html (leaderboard), compare.html, methodology.html, submit.html,
model/<model_id>--<hash>.html per entry, data.js (the page data as a script, so the site
works opened as files), leaderboard.json, submission.schema.json, charts/<track>/*.svg, the CSS and
JavaScript from `slmlib/publish/site/assets/`, and samples/<run_id>/*.jsonl. No page requests
anything outside the site folder.

Publish writes only into a folder it owns: a new or empty folder, which it marks as the site's
with `.slm-site` (`MARKER`: the list of files the last publish wrote), or one it marked before.
Any other non-empty folder is refused (SiteFolderError), except the default `reports/site` of a
study published before the marker existed, recognised by the site's own index.html, data.js and
leaderboard.json: it is adopted, as that folder has only ever been publish's. Files the previous
publish wrote and this one did not (entries no longer in the registry) are removed; nothing else is.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from .. import artifacts, paths
from .. import detect
from .plots import CHARTS, save_figure
from .site import data, evidence, model_page, pages, reference

ASSETS = Path(__file__).parent / "site" / "assets"
MARKER = ".slm-site"  # in the site folder: marks it as publish's, and lists the files publish wrote
MARKER_KIND = "SLM Study site (written by slmlib publish; lists the files it wrote)"
MARKER_MAX_BYTES = 16 << 20
OWN_FILES = ("index.html", "data.js", "leaderboard.json")  # an older study's unmarked site has these
GENERATED = ("model/*.html", "charts/*.svg", "charts/*/*.svg", "samples/*/*.jsonl")  # what an unmarked site's publish wrote


class SiteFolderError(ValueError):
    """The site folder is not publish's own (or its marker is damaged); the message names the folder and the fix."""


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
        kin = [board["entries"][e] for e in board["order"]
               if board["entries"][e]["group"] == view["group"] and e != entry["entry_id"]]
        html = model_page.render_model(view, ev, [s for s in kin if s["track"] == view["track"]], reports_href,
                                       sets.get(entry["entry_id"]), [s for s in kin if s["track"] != view["track"]])
        page = site / "model" / f"{paths.check_id(view['slug'], 'entry_id')}.html"
        written.append(artifacts.write_text_atomic(page, html))
        for run_id in entry.get("run_ids") or []:
            for src in evidence.sample_files(runs_dir, paths.check_id(run_id, "run_ids")):
                written.append(artifacts.write_bytes_atomic(site / "samples" / run_id / src.name, src.read_bytes()))
    return written


def write_charts(site: Path, registry: dict, board: dict) -> list[Path]:
    """The matplotlib charts (`plots.CHARTS`) of each track with entries, as SVG under charts/<track id>/."""
    return [save_figure(make(registry, t["id"]), site / "charts" / paths.check_id(t["id"], "track") / name)
            for t in board["tracks"] for name, (make, _) in CHARTS.items()]


def claim_site(site: Path) -> list[str]:
    """Make sure `site` is publish's own folder and return the files (relative, POSIX) the last publish wrote.

    A new or empty folder is created and marked; a marked one gives its marker's list; the default
    site folder of an older study (unmarked, with OWN_FILES) is adopted with the GENERATED files in it.
    Anything else raises SiteFolderError naming the folder and the fix.
    """
    fix = ("publish writes only into a folder it owns: set site_dir to a new or empty folder, or to the "
           "folder publish made (it holds a .slm-site file)")
    if os.path.lexists(site) and not site.is_dir():
        raise SiteFolderError(f"{site}: not a folder; {fix}")
    marker = site / MARKER
    if os.path.lexists(marker):
        try:
            record = artifacts.read_json_bounded(marker, MARKER_MAX_BYTES, 4)
        except (OSError, ValueError) as exc:
            record = {"error": artifacts.error_line(exc)}
        if not (isinstance(record, dict) and record.get("kind") == MARKER_KIND and isinstance(record.get("files"), list)
                and all(isinstance(f, str) and _safe_relative(f) for f in record["files"])):
            why = record.get("error") if isinstance(record, dict) and "error" in record else "not a site marker"
            raise SiteFolderError(f"{marker}: damaged site marker ({why}); publish cannot tell which files in {site} "
                                  "are its own: set site_dir to a new or empty folder, or delete that folder and "
                                  "publish again")
        return sorted(set(record["files"]))
    if site.is_dir() and any(site.iterdir()):
        if not _older_default_site(site):
            raise SiteFolderError(f"{site}: not empty and not a site folder publish made (no {MARKER} file); {fix}")
        previous = sorted({p.relative_to(site).as_posix() for pattern in GENERATED for p in site.glob(pattern)
                           if p.is_file() and not p.is_symlink()})
    else:
        previous = []
    mark_site(site, previous)
    return previous


def _older_default_site(site: Path) -> bool:
    """The default site folder (reports/site) as an older publish left it, before the marker existed."""
    try:
        default = site.resolve() == paths.site_dir().resolve()
    except OSError:
        return False
    return default and all((site / name).is_file() and not (site / name).is_symlink() for name in OWN_FILES)


def _safe_relative(name: str) -> bool:
    path = PurePosixPath(name)
    return bool(path.parts) and not path.is_absolute() and ".." not in path.parts and "\\" not in name \
        and "\0" not in name and path.parts[0] != MARKER


def mark_site(site: Path, files) -> Path:
    """Write the marker (atomically): this folder is publish's, and these are the files it wrote."""
    return artifacts.write_json(site / MARKER, {"kind": MARKER_KIND, "files": sorted(set(files))})


def _relative(site: Path, written: list[Path]) -> list[str]:
    root = site.resolve()
    return sorted({p.resolve().relative_to(root).as_posix() for p in written})


def prune(site: Path, keep: list[Path], previous: list[str] = ()) -> list[str]:
    """Remove the files the previous publish wrote (`previous`, from the marker) that this one did not
    (`keep`), then the folders that left empty; returns what was removed. Nothing else is touched:
    only files inside `site`, never through a link to a folder outside it."""
    root = site.resolve()
    kept = set(_relative(site, keep))
    removed = []
    for name in sorted(set(previous) - kept):
        path = site.joinpath(*PurePosixPath(name).parts)
        if not _safe_relative(name) or not (path.is_file() or path.is_symlink()):
            continue
        try:
            inside = path.parent.resolve().is_relative_to(root)
        except OSError:
            inside = False
        if inside:
            path.unlink()
            removed.append(name)
            for folder in path.parents:
                if folder == site or not folder.is_dir() or any(folder.iterdir()):
                    break
                folder.rmdir()
    return removed


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
    reports from `paths.reports_root()`) into a folder publish owns (`claim_site`; SiteFolderError
    otherwise); returns the files written. A registry from before tracks is refused with the fix."""
    if registry.get("models") and not registry.get("tracks"):
        raise ValueError("registry: entries without tracks (a registry written before schema version 4); run the "
                         "aggregate stage again (notebooks/03_aggregate.ipynb, or python -m slmlib run --stages "
                         "aggregate,publish)")
    site = Path(site_dir) if site_dir is not None else paths.site_dir()
    runs_dir = Path(runs_dir) if runs_dir is not None else paths.runs_dir()
    reports_dir = Path(reports_dir) if reports_dir is not None else paths.reports_root()
    previous = claim_site(site)  # raises SiteFolderError unless the folder is publish's own
    board = data.site_data(registry)
    reports_href = evidence.relative(reports_dir / "index.html", site)
    written = write_pages(site, registry, board, reports_href)
    mark_site(site, [*previous, *_relative(site, written)])  # an interrupted publish still knows its files
    written += write_charts(site, registry, board)
    written += write_model_pages(site, registry, board, reports_href, runs_dir, reports_dir, progress)
    mark_site(site, [*previous, *_relative(site, written)])
    prune(site, written, previous)
    mark_site(site, _relative(site, written))
    return written

