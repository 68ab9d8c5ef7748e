"""Who brought which runs (aggregate stage, issue 18): the signed runs taken in from archives, by signer,
model and time, as the archive memory (`outputs/archive_intake.json`, under `KEY`) records them, also for
an archive whose outcome is not remembered (so a run over a limit cannot hide the runs taken with it).

Two rules read it, and both count signers, never the self-declared `submitted_by`: a signer brings at
most `RUNS_PER_WEEK` runs in any 7 days (`run_limit_problem`), and with the community preset's
`earn_submit: N` a contributor may submit a model only after bringing verified runs (signed, re-scored,
taken in) of N other models within the last `EARN_WINDOW_HOURS` (`earn_submit_problem`, the seeds'
"earn your submit").
"""

from __future__ import annotations

import time

from .. import paths, signing
from . import archives

KEY = "contributions"  # in the archive memory: run_id -> {signer, model_id, taken_at}
RUNS_PER_WEEK = 50
WEEK_SECONDS = 7 * 86400
EARN_WINDOW_HOURS = 24


def contributions(memory: dict) -> list[dict]:
    """Every signed run the memory says was taken in: {run_id, signer, model_id, taken_at}."""
    records = memory.get(KEY)
    return [{"run_id": run_id, "signer": who.get("signer"), "model_id": who.get("model_id"),
             "taken_at": who.get("taken_at")}
            for run_id, who in sorted(records.items() if isinstance(records, dict) else ())
            if isinstance(who, dict) and isinstance(who.get("taken_at"), (int, float))]


def run_limit_problem(signer: str, memory: dict, now: float, pending: int = 0) -> str | None:
    """Why one more run of `signer` is refused (over `RUNS_PER_WEEK` in the last 7 days), or None;
    `pending` counts this signer's runs already accepted from the archive being taken in."""
    recent = sum(c["signer"] == signer and c["taken_at"] > now - WEEK_SECONDS for c in contributions(memory))
    if recent + pending < RUNS_PER_WEEK:
        return None
    return (f"signer {signer} already brought {recent + pending} runs in the last 7 days (limit {RUNS_PER_WEEK}); "
            "send the rest later")


def earn_submit_problem(submitted_by: str | None, model_id: str, required: int, now: float | None = None) -> str | None:
    """Why a submission is refused under `earn_submit: required`, or None: its submitter must be a listed
    contributor who brought verified runs of `required` other models in the last `EARN_WINDOW_HOURS`."""
    if required <= 0:
        return None
    names = set(signing.read_contributors(signing.CONTRIBUTORS_FILE).values())
    if submitted_by not in names:
        return (f"model.submitted_by: {submitted_by!r} is not a contributor in params/contributors.yaml; with "
                f"earn_submit {required}, a submitter first evaluates {required} other models and sends the runs "
                "signed (python -m slmlib pack RUN_ID --sign KEY)")
    now = time.time() if now is None else now
    try:
        memory = archives.read_intake(paths.outputs_root() / archives.INTAKE_FILE)
    except archives.IntakeError as exc:  # fail closed: no record, no credit
        return f"earn_submit: cannot count the submitter's runs: {exc}"
    models = {c["model_id"] for c in contributions(memory) if c["signer"] == submitted_by
              and c["taken_at"] > now - EARN_WINDOW_HOURS * 3600 and c["model_id"] != model_id}
    if len(models) >= required:
        return None
    return (f"model.submitted_by: {submitted_by} brought verified runs of {len(models)} other model(s) in the last "
            f"{EARN_WINDOW_HOURS} h; earn_submit asks for {required} before a submission of your own")
