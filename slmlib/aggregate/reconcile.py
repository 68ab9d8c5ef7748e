"""Aggregate stage: run folders (from this or another machine) -> validated runs and samples.

Reads `outputs/runs/<run_id>/results.json` and `samples/<task>.jsonl`, and archives of run
folders (`*.tar.gz`, `*.tgz`, `*.zip`) dropped directly in `outputs/`: a valid run from an
archive is extracted into `outputs/runs/<run_id>/` unless that folder exists (the only write).
Every run is checked against the run JSON Schema, the pinned data packs and its own samples;
a failing run is rejected with a reason, never dropped silently. Also finds runs that should
be identical but whose outputs differ.
"""

from __future__ import annotations

import math
import shutil
import stat
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .. import artifacts, datapacks, paths
from . import schemas
from ..benchmarks import all_benchmarks

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip")
ARCHIVE_MAX_BYTES = 2 << 30  # uncompressed size cap per archive
INCOMPLETE = "incomplete: no results.json (interrupted or still running?)"


@dataclass
class Study:
    """Everything the registry is built from (in memory; not an artifact)."""

    runs: list[dict] = field(default_factory=list)  # valid results.json records, by run_id
    samples: dict[str, dict[str, list[dict]]] = field(default_factory=dict)  # run_id -> task -> rows
    rejected: list[dict] = field(default_factory=list)  # {"run_id", "source", "reason"}
    incomplete: list[str] = field(default_factory=list)  # run folders without results.json
    extracted: list[str] = field(default_factory=list)  # run ids taken from archives on this call


def load_study(runs_dir: Path | None = None, inbox: Path | None = None) -> Study:
    """Take in archives from `inbox` (default `outputs/`), then load every run under `runs_dir`."""
    runs_dir = Path(runs_dir) if runs_dir is not None else paths.runs_dir()
    inbox = Path(inbox) if inbox is not None else paths.outputs_root()
    study = Study()
    if inbox.is_dir():
        for archive in sorted(p for p in inbox.iterdir() if p.is_file() and p.name.endswith(ARCHIVE_SUFFIXES)):
            take_archive(archive, runs_dir, study)
    folders = sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if runs_dir.is_dir() else []
    for folder in folders:
        run, rows, reason = read_run(folder)
        if reason == INCOMPLETE:
            study.incomplete.append(folder.name)
        elif reason:
            study.rejected.append({"run_id": folder.name, "source": f"runs/{folder.name}", "reason": reason})
        else:
            study.runs.append(run)
            study.samples[run["run_id"]] = rows
    return study


def read_run(folder: Path) -> tuple[dict | None, dict[str, list[dict]], str | None]:
    """A run folder's record and samples (task -> rows), or the reason it is unusable."""
    path = paths.results_file(folder)
    if not path.is_file():
        return None, {}, INCOMPLETE
    try:
        run = artifacts.read_json(path)
    except (OSError, ValueError) as exc:
        return None, {}, f"unreadable results.json: {exc}"
    reason = check_run(run, folder.name)
    if reason:
        return None, {}, reason
    try:
        rows = {name: artifacts.read_jsonl(f) for name in sorted(run["tasks"])
                if (f := paths.samples_file(folder, name)).is_file()}
    except (OSError, ValueError) as exc:
        return None, {}, f"unreadable samples: {exc}"
    for name, task_rows in rows.items():
        reason = check_samples(run["tasks"][name], task_rows)
        if reason:
            return None, {}, f"samples/{name}.jsonl: {reason}"
    return run, rows, None


def check_run(run, folder_name: str | None = None) -> str | None:
    """Why a results.json record is unusable (schema, folder name, data packs), or None."""
    error = schemas.first_error(run, schemas.run_schema())
    if error:
        return f"results.json does not match params/run.schema.json: {error}"
    if folder_name is not None and run["run_id"] != folder_name:
        return f"run_id {run['run_id']!r} does not match its folder {folder_name!r}"
    return check_data_packs(run)


def check_data_packs(run: dict) -> str | None:
    """Why a run's data differs from the pinned packs, naming task, pack and both hashes; or None.

    Checks each task's `data_sha256` against its benchmark's pinned digest (when registered
    here) and the recorded version of each pack a task reads against `datapacks.pack_manifest()`.
    """
    benches, manifest = all_benchmarks(), datapacks.pack_manifest()
    recorded = run["provenance"]["data_packs"]
    for name, task in sorted(run["tasks"].items()):
        bench = benches.get(name)
        if run["suite"] == "standard" and task["pack"] == "hub":  # lm-eval's Hub copy: nothing pinned to check
            continue
        if bench and task["data_sha256"] != bench.sha256:
            return (f"task {name}: data_sha256 {task['data_sha256']} does not match the pinned "
                    f"{bench.sha256} (pack {bench.pack})")
        pinned, used = manifest.get(task["pack"]), recorded.get(task["pack"])
        if pinned and (not used or (used["version"], used["sha256"]) != (pinned["version"], pinned["sha256"])):
            got = f"{used['version']} ({used['sha256']})" if used else "not recorded"
            return (f"task {name}: data pack {task['pack']} is {got}, the study pins "
                    f"{pinned['version']} ({pinned['sha256']})")
    return None


def check_samples(task: dict, rows: list[dict]) -> str | None:
    """Why a task's sample rows disagree with its record (items, values, outputs hash), or None."""
    for row in rows:
        value = row.get("value") if isinstance(row, dict) else None
        if not isinstance(row, dict) or not isinstance(row.get("item_id"), str) or "response" not in row \
                or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return "every row needs item_id (string), response and a finite numeric value"
    if sorted(r["item_id"] for r in rows) != sorted(task["item_ids"]):
        return "its items do not match the task's item_ids"
    if task.get("outputs_sha256") and artifacts.outputs_digest(rows) != task["outputs_sha256"]:
        return f"outputs hash {artifacts.outputs_digest(rows)} does not match the recorded {task['outputs_sha256']}"
    return None


def take_archive(archive: Path, runs_dir: Path, study: Study) -> None:
    """Extract an archive's valid run folders into `runs_dir` (new ones only); record rejections."""
    def reject(run_id: str, reason: str) -> None:
        study.rejected.append({"run_id": run_id, "source": archive.name, "reason": reason})

    runs_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".intake-", dir=runs_dir) as tmp:
        try:
            extract_safely(archive, Path(tmp))
        except (ValueError, OSError, tarfile.TarError, zipfile.BadZipFile) as exc:
            return reject(archive.name, f"archive not accepted: {exc}")
        folders = sorted(p for p in Path(tmp).iterdir() if p.is_dir())
        if not folders:
            return reject(archive.name, "archive holds no run folder (<run_id>/results.json)")
        for folder in folders:
            target = runs_dir / folder.name
            _, _, reason = read_run(folder)
            if reason:
                reject(folder.name, reason)
            elif target.exists():
                if paths.results_file(target).read_bytes() != paths.results_file(folder).read_bytes():
                    reject(folder.name, f"runs/{folder.name} already exists with a different results.json")
            else:
                shutil.move(str(folder), str(target))
                study.extracted.append(folder.name)


def safe_member(name: str) -> PurePosixPath:
    """An archive member name as a relative path; raises on absolute paths and `..`."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts or "\\" in name:
        raise ValueError(f"unsafe member path {name!r}")
    return path


def extract_safely(archive: Path, dest: Path, max_bytes: int = ARCHIVE_MAX_BYTES) -> None:
    """Extract regular files and folders only: no links or devices, no path traversal, size capped."""
    total = 0
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise ValueError(f"{info.filename}: links are not accepted")
                total += info.file_size
                if total > max_bytes:
                    raise ValueError(f"more than {max_bytes:,} bytes uncompressed")
                _write_member(dest, safe_member(info.filename), None if info.is_dir() else zf.open(info))
        return
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if not (member.isfile() or member.isdir()):
                raise ValueError(f"{member.name}: only regular files and folders are accepted")
            total += member.size
            if total > max_bytes:
                raise ValueError(f"more than {max_bytes:,} bytes uncompressed")
            _write_member(dest, safe_member(member.name), tar.extractfile(member) if member.isfile() else None)


def _write_member(dest: Path, rel: PurePosixPath, source) -> None:
    out = dest.joinpath(*rel.parts)
    if source is None:
        out.mkdir(parents=True, exist_ok=True)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    with source, open(out, "wb") as fh:
        shutil.copyfileobj(source, fh)


def first_difference(rows_a: list[dict], rows_b: list[dict]) -> str | None:
    """The first item id (in `rows_a` order) whose response or value differs between two runs."""
    other = {r["item_id"]: (r["response"], r["value"]) for r in rows_b}
    return next((r["item_id"] for r in rows_a if other.get(r["item_id"]) != (r["response"], r["value"])), None)


def find_nondeterminism(entry_id: str, runs: list[dict], samples: dict) -> list[dict]:
    """Tasks whose outputs differ between runs that should be identical (same group and settings).

    Each run is compared with the earliest run (by run_id) of its group with equal settings; the
    outputs hash is the recorded `outputs_sha256` or, for older runs, computed from the samples.
    """
    flags = []
    for i, run in enumerate(runs):
        ref = next((r for r in runs[:i] if r["settings"] == run["settings"]), None)
        for name in sorted(set(run["tasks"]) & set(ref["tasks"]) if ref else ()):
            rows_ref, rows_run = (samples.get(r["run_id"], {}).get(name) for r in (ref, run))
            hashes = [r["tasks"][name].get("outputs_sha256") or (artifacts.outputs_digest(rows) if rows else None)
                      for r, rows in ((ref, rows_ref), (run, rows_run))]
            if None not in hashes and hashes[0] != hashes[1]:
                flags.append({"entry_id": entry_id, "task": name, "run_ids": [ref["run_id"], run["run_id"]],
                              "first_differing_item": first_difference(rows_ref, rows_run)
                              if rows_ref and rows_run else None})
    return flags
