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


def ledger_path() -> Path:
    return paths.outputs_root() / "submissions_ledger.jsonl"


def submitter_key(submitted_by: str | None) -> str:
    return " ".join(str(submitted_by or "").lower().split()) or ANONYMOUS


def read_ledger(path: Path | None = None) -> list[dict]:
    """Entries of the ledger (none when it does not exist yet); unreadable lines are skipped."""
    path = Path(path) if path is not None else ledger_path()
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def submission_digest(card: dict) -> str | None:
    """The submission's own weights (with its adapter): for a quantization run `source_weights`, so every
    listed quantization of a submission is the same submission."""
    return model_digest({"weights": card.get("source_weights") or card.get("weights"),
                                "adapter": card.get("adapter")})


def _same_submission(entry: dict, card: dict) -> bool:
    return entry.get("model_id") == card["model_id"] and entry.get("sha256") == submission_digest(card)


def rate_limit_errors(card: dict, entries: list[dict], now: float | None = None) -> list[str]:
    """An error when accepting `card` would exceed the submitter's limit for the window."""
    if any(_same_submission(e, card) for e in entries):
        return []
    now = time.time() if now is None else now
    who = submitter_key(card.get("submitted_by"))
    since = now - RATE_WINDOW_DAYS * 86400
    recent = sorted(e["time"] for e in entries
                    if e.get("submitter") == who and isinstance(e.get("time"), (int, float)) and e["time"] > since)
    if len(recent) < RATE_LIMIT:
        return []
    reopen = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(recent[-RATE_LIMIT] + RATE_WINDOW_DAYS * 86400))
    return [f"model.submitted_by: {who} already has {len(recent)} submissions in the last {RATE_WINDOW_DAYS} "
            f"days (limit {RATE_LIMIT}); the next one is accepted after {reopen}"]


def append(card: dict, now: float | None = None) -> bool:
    """Record an accepted submission (once per model id + weights); True when a line was added."""
    path = ledger_path()
    if any(_same_submission(e, card) for e in read_ledger(path)):
        return False
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


def registry_models(path: Path | None = None) -> list[dict]:
    """The registry's model entries ([] when there is no registry or it is unreadable)."""
    path = Path(path) if path is not None else paths.registry_path()
    try:
        entries = artifacts.read_json(path).get("models")
    except (OSError, ValueError, AttributeError):
        return []
    return [m for m in entries if isinstance(m, dict)] if isinstance(entries, list) else []


def _same_repo(entry: dict, card: dict) -> bool:
    repo = card.get("hf_repo")
    return (bool(repo) and str(entry.get("hf_repo") or "").lower() == repo.lower()
            and entry.get("hf_revision") == card.get("hf_revision")
            and entry.get("quantization") == card.get("quantization"))


def duplicate_errors(card: dict, entries: list[dict]) -> list[str]:
    """Errors for registry entries holding the same weights under another model id."""
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
