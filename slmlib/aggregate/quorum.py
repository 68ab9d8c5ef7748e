"""Quorum (aggregate stage, issue 18): an entry is settled only when enough independent runners agree.

A runner is who made a run: its signer when the run came signed by a trusted key
(`reconcile.Study.signers`), else the machine it ran on (the random id `provenance.machine_id` records
in each run; runs that predate it count as one unknown machine). An entry is `confirmed` once `quorum`
distinct runners made its runs and they agree on every task (not DISPUTED); with fewer runners, or
disputed, it is `provisional`: shown as such and not ranked. A foreign run (from an archive) with
`require_audit` counts only once an audit of it passed (`tools.audit`, `outputs/audits/`).
`todo` lists what the leaderboard still needs, as commands.
"""

from __future__ import annotations

from .. import artifacts, paths

UNKNOWN_MACHINE = "machine:unrecorded"
AUDIT_MAX_BYTES = 1 << 20


def runner_of(run: dict, signers: dict[str, str]) -> str:
    """`signer:<name>` for a run signed by a trusted key, else `machine:<id>` (or `UNKNOWN_MACHINE`)."""
    if run["run_id"] in signers:
        return f"signer:{signers[run['run_id']]}"
    machine = (run.get("provenance") or {}).get("machine_id")
    return f"machine:{machine}" if isinstance(machine, str) and machine else UNKNOWN_MACHINE


def audit_verdict(run_id: str) -> str | None:
    """The verdict (`pass`/`fail`) of the latest audit of a run, None when it was never audited (or the
    audit file is unreadable, which counts as not audited)."""
    path = paths.audit_file(run_id)
    try:
        record = artifacts.read_json_bounded(path, AUDIT_MAX_BYTES, 8, follow_symlinks=False)
    except (OSError, ValueError):
        return None
    verdict = record.get("verdict") if isinstance(record, dict) else None
    return verdict if verdict in ("pass", "fail") else None


def quorum_status(runs: list[dict], disputed: bool, required: int, signers: dict[str, str],
                  foreign: set[str], require_audit: bool) -> dict:
    """The entry's quorum record: who made its runs, how many count, and `confirmed` or `provisional`."""
    counted, waiting = set(), []
    for run in runs:
        if require_audit and run["run_id"] in foreign and audit_verdict(run["run_id"]) != "pass":
            waiting.append(run["run_id"])
            continue
        counted.add(runner_of(run, signers))
    confirmed = len(counted) >= required and not disputed
    return {"required": required, "runners": sorted(counted), "unaudited": sorted(waiting),
            "status": "confirmed" if confirmed else "provisional"}


def rerun_command(entry: dict, submission: str, proto: dict) -> str:
    """The command that runs an entry's track again (its track's protocol: suite, tasks, limits, seed and
    chat-template policy; the entry's submission and quantization)."""
    def value(v):
        return "null" if v is None else str(v).lower() if isinstance(v, bool) else v
    quant = f" --set quantization={entry['quantization_name']}" if entry.get("quantization_name") else ""
    tasks = ", ".join(proto.get("tasks") or sorted(entry.get("tasks") or {}))
    chat = proto.get("apply_chat_template")
    return (f"python -m slmlib run params/default.yaml --set submission={submission}{quant} "
            f"--set suite={proto.get('suite', entry['suite'])} --set 'tasks=[{tasks}]' "
            f"--set limit={value(proto.get('limit', entry['limit']))} "
            f"--set limit_generative={value(proto.get('limit_generative', entry['limit_generative']))} "
            f"--set seed={proto.get('seed', entry['seed'])}" + (f" --set apply_chat_template={value(chat)}"
                                                                 if chat is not None else ""))


def todo(registry: dict, submissions: dict[str, str]) -> list[str]:
    """What the leaderboard still needs, one runnable command (with a comment) per line: entries below
    quorum, disputed tasks, foreign runs waiting for an audit. `submissions` maps model id -> submission file."""
    lines, protos = [], {tr["id"]: tr.get("protocol") or {} for tr in registry.get("tracks", [])}
    for e in registry.get("models", []):
        q = e.get("quorum") or {}
        sub = submissions.get(e["model_id"], f"params/submissions/{e['model_id']}.yaml")
        rerun = rerun_command(e, sub, protos.get(e.get("track"), {}))
        for run_id in q.get("unaudited", []):
            lines.append(f"python -m slmlib audit {run_id}  # {e['entry_id']}: a foreign run waiting for its audit")
        if e.get("disputed"):
            lines.append(f"{rerun}  # {e['entry_id']}: tasks {', '.join(e['disputed_tasks'])} disputed; "
                         "another runner's run settles them")
        elif q.get("status") == "provisional":
            more = q["required"] - len(q.get("runners", []))
            lines.append(f"{rerun}  # {e['entry_id']}: {more} more independent runner(s) needed "
                         f"(has {len(q.get('runners', []))} of {q['required']})")
    return lines
