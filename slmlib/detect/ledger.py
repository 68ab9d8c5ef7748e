"""The submissions ledger and the registry checks of the detect stage.

`outputs/submissions_ledger.jsonl` is append-only: one line per accepted submission
(model id + weights), written when detect saves a card, never rewritten, and not
derived from runs, so rebuilding or deleting the registry leaves it intact.

Rules (the methodology page quotes these docstrings):

- rate limit: a submitter may have at most `RATE_LIMIT` distinct submissions accepted
  in any rolling `RATE_WINDOW_DAYS` days. Re-running an accepted submission (same model
  id and weights) is not a new submission: repeated runs are how DISPUTED scores are found.
  Nor is another listed quantization of it: a submission is its own weights (`source_weights`).
- duplicates: a submission is a duplicate when the registry already lists the same
  weights (same SHA-256, or same hf_repo + hf_revision + quantization) under a
  *different* model id. The same model id is a re-run of that entry, which is allowed.
- both checks fail closed: a damaged ledger or registry (not UTF-8, a line or file that is
  not valid JSON, an entry of the wrong shape, over its size cap, not a regular file) is an
  error naming the file and the fix, never skipped. A missing one (a fresh study) is empty.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .. import artifacts, paths
from ..weights import model_digest

RATE_LIMIT = 3
RATE_WINDOW_DAYS = 7
ANONYMOUS = "(anonymous)"
LEDGER_MAX_BYTES = 64 << 20
REGISTRY_MAX_BYTES = 256 << 20
MAX_DEPTH = 64


class LedgerError(ValueError):
    """The ledger or the registry is damaged; the message names the file and the fix."""


class Entries(list):
    """Entries read from the ledger or the registry; when the file is damaged, none, and `error` says
    why (naming the file and the fix), so a check given them reports it instead of passing."""

    def __init__(self, entries=(), error: str | None = None):
        super().__init__(entries)
        self.error = error


def ledger_path() -> Path:
    return paths.outputs_root() / "submissions_ledger.jsonl"


def submitter_key(submitted_by: str | None) -> str:
    return " ".join(str(submitted_by or "").lower().split()) or ANONYMOUS


def load_ledger(path: Path | None = None) -> list[dict]:
    """Entries of the ledger ([] when it does not exist yet); raises LedgerError naming the file, the
    line and the fix when it is damaged (nothing is skipped: a skipped line would reset a count)."""
    path = Path(path) if path is not None else ledger_path()
    if not os.path.lexists(path):
        return []
    fix = ("the rate limit fails closed until it is repaired: restore the file from a backup or correct "
           "that line (accepted lines are never removed)")
    try:
        data = artifacts.read_bytes_bounded(path, LEDGER_MAX_BYTES)
    except (OSError, ValueError) as exc:
        raise LedgerError(f"{path}: unreadable ({artifacts.error_line(exc)}); {fix.replace(' or correct that line', '')}") from None
    entries = []
    for number, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            entry = artifacts.parse_json_bounded(line, MAX_DEPTH)
        except ValueError as exc:
            raise LedgerError(f"{path}: line {number} {exc}; {fix}") from None
        problem = _entry_problem(entry)
        if problem:
            raise LedgerError(f"{path}: line {number} is not a ledger entry ({problem}); {fix}")
        entries.append(entry)
    return entries


def _entry_problem(entry) -> str | None:
    if not isinstance(entry, dict):
        return "not a JSON object"
    time_ = entry.get("time")
    if isinstance(time_, bool) or not isinstance(time_, (int, float)):
        return "time: not a number"
    for key in ("submitter", "model_id"):
        if not isinstance(entry.get(key), str):
            return f"{key}: not a string"
    for key in ("sha256", "hf_repo", "hf_revision", "quantization"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            return f"{key}: not a string or null"
    return None


def read_ledger(path: Path | None = None) -> Entries:
    """`load_ledger` for the checks: the entries, or none with `error` set when the ledger is damaged."""
    try:
        return Entries(load_ledger(path))
    except LedgerError as exc:
        return Entries(error=str(exc))


def submission_digest(card: dict) -> str | None:
    """The submission's own weights (with its adapter): for a quantization run `source_weights`, so every
    listed quantization of a submission is the same submission."""
    return model_digest({"weights": card.get("source_weights") or card.get("weights"),
                                "adapter": card.get("adapter")})


def _same_submission(entry: dict, card: dict) -> bool:
    return entry.get("model_id") == card["model_id"] and entry.get("sha256") == submission_digest(card)


def rate_limit_errors(card: dict, entries: list[dict], now: float | None = None) -> list[str]:
    """An error when accepting `card` would exceed the submitter's limit for the window (or, fail closed,
    when `entries` came from a damaged ledger)."""
    if getattr(entries, "error", None):
        return [entries.error]
    if any(_same_submission(e, card) for e in entries):
        return []
    now = time.time() if now is None else now
    who = submitter_key(card.get("submitted_by"))
    since = now - RATE_WINDOW_DAYS * 86400
    recent = sorted(e["time"] for e in entries
                    if e.get("submitter") == who and isinstance(e.get("time"), (int, float)) and since < e["time"] <= now)
    if len(recent) < RATE_LIMIT:
        return []
    reopen = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(recent[-RATE_LIMIT] + RATE_WINDOW_DAYS * 86400))
    return [f"model.submitted_by: {who} already has {len(recent)} submissions in the last {RATE_WINDOW_DAYS} "
            f"days (limit {RATE_LIMIT}); the next one is accepted after {reopen}"]


def append(card: dict, now: float | None = None) -> bool:
    """Record an accepted submission (once per model id + weights); True when a line was added.
    Raises LedgerError when the ledger is damaged (appending to it would hide the damage) or when the
    submitter's rate limit was reached since the submission was checked (by a concurrent intake)."""
    path = ledger_path()
    with artifacts.file_lock(path):  # the check and the append, one intake after the other
        return _append_unlocked(path, card, now)


def _append_unlocked(path: Path, card: dict, now: float | None) -> bool:
    entries = load_ledger(path)
    if any(_same_submission(e, card) for e in entries):
        return False
    over = rate_limit_errors(card, entries, now)  # again: another intake may have appended since the check
    if over:
        raise LedgerError(over[0])
    entry = {"time": round(time.time() if now is None else now, 3), "model_id": card["model_id"],
             "submitter": submitter_key(card.get("submitted_by")), "sha256": submission_digest(card),
             "hf_repo": card.get("hf_repo"), "hf_revision": card.get("hf_revision"),
             "quantization": card.get("quantization")}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:  # append only: never rewritten
        fh.write(json.dumps(entry, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return True


def load_registry_models(path: Path | None = None) -> list[dict]:
    """The registry's model entries ([] when there is no registry yet); raises LedgerError naming the
    file and the fix when it is damaged."""
    path = Path(path) if path is not None else paths.registry_path()
    if not os.path.lexists(path):
        return []
    try:
        registry = artifacts.read_json_bounded(path, REGISTRY_MAX_BYTES, MAX_DEPTH)
        problem = _registry_problem(registry)
    except (OSError, ValueError) as exc:
        problem = artifacts.error_line(exc)
    if problem:
        raise LedgerError(f"{path}: damaged registry ({problem}); the duplicate check fails closed until it is "
                          "rebuilt: run the aggregate stage (make aggregate) or restore the file")
    return registry["models"]


def _registry_problem(registry) -> str | None:
    if not isinstance(registry, dict) or not isinstance(registry.get("models"), list):
        return "not an object with a models list"
    for i, model in enumerate(registry["models"]):
        adapter = model.get("adapter") if isinstance(model, dict) else None
        if not isinstance(model, dict) or not isinstance(model.get("weights") or {}, dict) \
                or adapter and not (isinstance(adapter, dict) and isinstance(adapter.get("sha256"), str)) \
                or not isinstance(model.get("model_id"), str):
            return f"models/{i}: not a model entry (a model_id, and weights and adapter objects)"
    return None


def registry_models(path: Path | None = None) -> Entries:
    """`load_registry_models` for the checks: the entries, or none with `error` set when it is damaged."""
    try:
        return Entries(load_registry_models(path))
    except LedgerError as exc:
        return Entries(error=str(exc))


def _same_repo(entry: dict, card: dict) -> bool:
    repo = card.get("hf_repo")
    return (bool(repo) and str(entry.get("hf_repo") or "").lower() == repo.lower()
            and entry.get("hf_revision") == card.get("hf_revision")
            and entry.get("quantization") == card.get("quantization"))


def duplicate_errors(card: dict, entries: list[dict]) -> list[str]:
    """Errors for registry entries holding the same weights under another model id (or, fail closed,
    the error of a damaged registry `entries` came from)."""
    if getattr(entries, "error", None):
        return [entries.error]
    sha = model_digest(card)
    errors = []
    for entry in entries:
        if entry.get("model_id") == card["model_id"]:
            continue
        same_file = sha and model_digest(entry) == sha
        if same_file or _same_repo(entry, card):
            why = f"weights SHA-256 {sha[:12]}…" if same_file else \
                f"{card['hf_repo']} at {card.get('hf_revision') or 'the default revision'}, {card.get('quantization')}"
            errors.append(f"weights: duplicate of {entry.get('model_id')!r} already in the registry ({why}); "
                          f"re-run it under model id {entry.get('model_id')!r} instead")
    return errors
