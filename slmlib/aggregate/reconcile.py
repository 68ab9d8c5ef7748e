"""Aggregate stage: run folders (from this or another machine) -> validated runs and samples.

Reads `outputs/runs/<run_id>/results.json` and `samples/<task>.jsonl`, and archives of run
folders (`*.tar.gz`, `*.tgz`, `*.zip`) dropped directly in `outputs/`: a valid run from an
archive is extracted into `outputs/runs/<run_id>/` unless that folder exists. Every run is
checked against the run JSON Schema, the pinned data packs and its own samples; a failing run
is rejected with a reason, never dropped silently, and never stops the others (files are read
bounded: regular files only, size caps, nesting at most `MAX_DEPTH` levels, strict JSON).
Each archive is examined once (`archives`: the memory of archives by SHA-256, the capped and
safe extraction); a known archive is never extracted again, its rejections are listed again
from that memory. Also finds runs that should be identical but whose outputs differ.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import artifacts, datapacks, paths, signing
from . import archives, contributions, rescore, schemas
from ..benchmarks import all_benchmarks

RESULTS_MAX_BYTES = 32 << 20  # a results.json
SAMPLES_MAX_BYTES = 256 << 20  # a samples/<task>.jsonl
MAX_DEPTH = 64  # lists/objects nesting in results.json and in a sample row
MAX_FLOAT = 1e15  # |number| in results.json (larger ones overflow medians and sums to infinity)
MAX_INT = 2 ** 63
INCOMPLETE = "incomplete: no results.json (interrupted or still running?)"


@dataclass
class Study:
    """Everything the registry is built from (in memory; not an artifact)."""

    runs: list[dict] = field(default_factory=list)  # valid results.json records, by run_id
    samples: dict[str, dict[str, list[dict]]] = field(default_factory=dict)  # run_id -> task -> rows
    rejected: list[dict] = field(default_factory=list)  # {"run_id", "source", "reason"}
    incomplete: list[str] = field(default_factory=list)  # run folders without results.json
    extracted: list[str] = field(default_factory=list)  # run ids taken from archives on this call
    signers: dict[str, str] = field(default_factory=dict)  # run_id -> trusted signer (signed runs only)
    foreign: set[str] | None = field(default_factory=set)  # run ids ever taken from archives (None: memory damaged)


def load_study(runs_dir: Path | None = None, inbox: Path | None = None,
               trusted: dict[str, str] | None = None, rescore_archives: bool = True) -> Study:
    """Take in archives from `inbox` (default `outputs/`), then load every run under `runs_dir`.

    With `trusted` (public key -> contributor, `signing.read_contributors`) signatures are required:
    an archive's run folder is taken in only when a trusted key signed it and nothing changed since, and
    a signed run folder is loaded only while its signature still holds; its signer is `signers[run_id]`.
    An archive's run is taken in only when its per-item log re-scores to its recorded metrics
    (`rescore.rescore_problem`; `rescore_archives=False` only for tests of intake on synthetic logs).

    Raises archives.IntakeError (naming the file and the fix) when the archive memory is damaged and an
    archive is waiting: taking archives in without it would extract known bombs again.
    """
    runs_dir = Path(runs_dir) if runs_dir is not None else paths.runs_dir()
    inbox = Path(inbox) if inbox is not None else paths.outputs_root()
    study = Study()
    waiting = sorted(p for p in inbox.iterdir() if p.name.endswith(archives.ARCHIVE_SUFFIXES) and p.is_file()) \
        if inbox.is_dir() else []
    memory_path, memory = inbox / archives.INTAKE_FILE, None
    if waiting:
        with artifacts.file_lock(memory_path):  # two aggregates at once take archives in one after the other
            memory = archives.read_intake(memory_path)
            for archive in waiting:
                take_archive(archive, runs_dir, study, memory, memory_path, trusted, rescore_archives)
    else:
        try:
            memory = archives.read_intake(memory_path)
        except archives.IntakeError:
            memory = None  # nothing waiting: a damaged memory only means the foreign runs are unknown
    study.foreign = None if memory is None else {r for rec in memory["archives"].values() for r in rec["runs"]}
    folders = sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.is_symlink()
                     and not p.name.startswith(".")) if runs_dir.is_dir() else []
    for folder in folders:
        run, rows, reason = read_run(folder)
        if not reason and trusted is not None and os.path.lexists(folder / signing.SIGNATURE_FILE):
            signer, reason = signing.check_signature(folder, trusted)
            if signer:
                study.signers[folder.name] = signer
        if reason == INCOMPLETE:
            study.incomplete.append(folder.name)
        elif reason:
            study.rejected.append({"run_id": folder.name, "source": f"runs/{folder.name}", "reason": reason})
        else:
            study.runs.append(run)
            study.samples[run["run_id"]] = rows
    return study


def read_run(folder: Path) -> tuple[dict | None, dict[str, list[dict]], str | None]:
    """A run folder's record and samples (task -> rows), or the reason it is unusable.

    Files are read bounded (regular files only, no symbolic links, `RESULTS_MAX_BYTES` /
    `SAMPLES_MAX_BYTES`, nesting at most `MAX_DEPTH`, strict UTF-8 JSON), so no content of a
    run folder can raise out of here or hang.
    """
    path = paths.results_file(folder)
    if not os.path.lexists(path):
        return None, {}, INCOMPLETE
    try:
        run = artifacts.read_json_bounded(path, RESULTS_MAX_BYTES, MAX_DEPTH, follow_symlinks=False)
    except (OSError, ValueError) as exc:
        return None, {}, f"unreadable results.json: {artifacts.error_line(exc)}"
    reason = check_run(run, folder.name)
    if reason:
        return None, {}, reason
    rows = {}
    for name in sorted(run["tasks"]):
        f = paths.samples_file(folder, name)
        if not os.path.lexists(f):
            continue
        try:
            rows[name] = artifacts.read_jsonl_bounded(f, SAMPLES_MAX_BYTES, MAX_DEPTH, follow_symlinks=False)
        except (OSError, ValueError) as exc:
            return None, {}, f"unreadable samples/{f.name}: {artifacts.error_line(exc)}"
    for name, task_rows in rows.items():
        reason = check_samples(run["tasks"][name], task_rows)
        if reason:
            return None, {}, f"samples/{name}.jsonl: {reason}"
    return run, rows, None


def check_run(run, folder_name: str | None = None) -> str | None:
    """Why a results.json record is unusable (schema, numbers out of range, folder name, data packs), or None."""
    error = schemas.first_error(run, schemas.run_schema())
    if error:
        return f"results.json does not match params/run.schema.json: {error}"
    error = number_out_of_range(run)
    if error:
        return f"results.json: {error}"
    if folder_name is not None and run["run_id"] != folder_name:
        return f"run_id {run['run_id']!r} does not match its folder {folder_name!r}"
    return check_data_packs(run)


def number_out_of_range(value) -> str | None:
    """The first number (by path) beyond `MAX_FLOAT` (floats) or `MAX_INT` (integers), as `path: why`."""
    stack, found = [(value, ())], []
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict):
            stack.extend((v, (*where, str(k))) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, (*where, str(i))) for i, v in enumerate(item))
        elif isinstance(item, float) and abs(item) > MAX_FLOAT or \
                isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_INT:
            found.append(where)
    if not found:
        return None
    where = min(found)
    item = value
    for key in where:
        item = item[int(key)] if isinstance(item, list) else item[key]
    shown = f"{item:.6g}" if isinstance(item, float) else str(item) if len(str(item)) < 24 else f"{str(item)[:20]}…"
    limit = f"{MAX_FLOAT:g}" if isinstance(item, float) else "2**63"
    return f"{'/'.join(where)}: {shown} is out of range (at most {limit} in size)"


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


def take_archive(archive: Path, runs_dir: Path, study: Study, memory: dict | None = None,
                 memory_path: Path | None = None, trusted: dict[str, str] | None = None,
                 rescore_archives: bool = True) -> None:
    """Extract an archive's valid run folders into `runs_dir` (new ones only); record rejections.

    With `memory` (from `archives.read_intake`) an archive whose SHA-256 is known is not extracted again:
    its remembered rejections are listed again. Each new outcome is remembered (written to
    `memory_path` atomically) unless it failed for a passing reason (disk full, permissions) or for its
    signature (which depends on `trusted`, the contributors file of the day).
    """
    def reject(run_id: str, reason: str) -> None:
        study.rejected.append({"run_id": run_id, "source": archive.name, "reason": reason})

    try:
        digest = archives.archive_digest(archive)
    except (OSError, ValueError) as exc:
        return reject(archive.name, f"archive not accepted: {artifacts.error_line(exc)}")
    known = (memory or {}).get("archives", {}).get(digest)
    if known is not None:
        for r in known["rejected"]:
            reject(r["run_id"], r["reason"])
        return
    before, extracted_before = len(study.rejected), len(study.extracted)
    signed: dict[str, dict] = {}  # run_id -> {signer, model_id} of the signed runs taken from this archive
    transient = _take_new_archive(archive, runs_dir, study, reject, trusted, rescore_archives, memory or {}, signed)
    if memory is None or memory_path is None:
        return
    if signed:  # who brought what: kept even when the archive's outcome is not (it is examined again)
        now = round(time.time())
        memory.setdefault(contributions.KEY, {}).update({r: {**who, "taken_at": now} for r, who in signed.items()})
    if not transient:
        runs, rejections = study.extracted[extracted_before:], study.rejected[before:]
        memory["archives"][digest] = {
            "name": archive.name, "outcome": "rejected" if rejections and not runs else "taken", "runs": list(runs),
            "rejected": [{"run_id": r["run_id"], "reason": r["reason"]} for r in rejections]}
    if signed or not transient:
        artifacts.write_json(memory_path, memory)


def _take_new_archive(archive: Path, runs_dir: Path, study: Study, reject, trusted: dict[str, str] | None,
                      rescore_archives: bool, memory: dict, signed: dict[str, dict]) -> bool:
    """Extract, check and move in (a signed run only while its signer is under the run limit: memory's
    contributions and this archive's `signed`, which collects the signed runs taken); returns True when
    the outcome is not to be remembered (a passing failure, or a signature judged against today's
    contributors file)."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".intake-", dir=runs_dir) as tmp:
        try:
            archives.extract_safely(archive, Path(tmp))
        except archives.ARCHIVE_ERRORS as exc:
            transient = isinstance(exc, OSError) and exc.errno in archives.TRANSIENT
            reject(archive.name, f"archive not accepted: {artifacts.error_line(exc)}" +
                   (" (not remembered: it is examined again next time)" if transient else ""))
            return transient
        folders = sorted(p for p in Path(tmp).iterdir() if p.is_dir())
        if not folders:
            reject(archive.name, "archive holds no run folder (<run_id>/results.json)")
            return False
        unsure = False
        for folder in folders:
            target = runs_dir / folder.name
            signer, reason = signing.check_signature(folder, trusted) if trusted is not None else (None, None)
            unsure = unsure or bool(reason)
            if not reason:
                run, rows, reason = read_run(folder)
                if not reason and rescore_archives:
                    reason = rescore.rescore_problem(run, rows)
            if not reason and signer:
                mine = sum(s["signer"] == signer for s in signed.values())
                reason = contributions.run_limit_problem(signer, memory, time.time(), pending=mine)
                unsure = unsure or bool(reason)  # a limit of this week: examined again later
            if reason:
                reject(folder.name, reason)
            elif os.path.lexists(target):
                if not _same_files(target, folder):
                    reject(folder.name, f"runs/{folder.name} already exists with other files: a second archive of "
                                        "one run id with other bytes is refused (pack a new run under its own id)")
            else:
                shutil.move(str(folder), str(target))
                study.extracted.append(folder.name)
                if signer:
                    signed[folder.name] = {"signer": signer, "model_id": run["model_id"]}
    return unsure


def _same_files(target: Path, folder: Path) -> bool:
    """Whether two run folders hold the same files with the same bytes, signature included."""
    def fingerprint(run: Path) -> tuple[dict, str | None]:
        sig = run / signing.SIGNATURE_FILE
        signed = artifacts.read_bytes_bounded(sig, signing.SIGNATURE_MAX_BYTES, follow_symlinks=False) \
            if os.path.lexists(sig) else None
        return signing.run_manifest(run)["files"], signed
    try:
        return fingerprint(target) == fingerprint(folder)
    except (OSError, ValueError):
        return False


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
