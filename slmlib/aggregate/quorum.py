"""Quorum (aggregate stage, issue 18): an entry is settled only when enough independent runners agree.

A runner is who made a run: its signer when the run came signed by a trusted key
(`reconcile.Study.signers`), else the machine it ran on (the random id `provenance.machine_id` records
in each run; runs that predate it count as one unknown machine). An entry is `confirmed` once `quorum`
distinct runners made runs that agree with its median on every task (within the dispute threshold);
with fewer it is `provisional`: shown as such and not ranked. The median still wins and a spread is
still DISPUTED, as before. A foreign run (from an archive) with
`require_audit` counts only once an audit of it passed (`tools.audit`, `outputs/audits/`).
`todo` lists what the leaderboard still needs, as commands.
"""

from __future__ import annotations

from .. import artifacts, paths
from .scoring import normalize

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


def agrees(run: dict, tasks: dict[str, dict], points: float) -> bool:
    """Whether the run's normalized score is within `points` of the entry's (median) on every task it
    evaluated that the entry ranks."""
    return all(abs(normalize(rec["score"], rec["baseline"]) - tasks[name]["normalized"]) <= points
               for name, rec in run["tasks"].items() if name in tasks)


def quorum_status(runs: list[dict], tasks: dict[str, dict], required: int, signers: dict[str, str],
                  foreign: set[str], require_audit: bool, points: float) -> dict:
    """The entry's quorum record: its runners, those whose runs agree with its median on every task
    (within `points`), the foreign runs still waiting for an audit, and `confirmed` or `provisional`.

    With `required` 1 (a study on one machine) any counted run confirms the entry: disagreeing repeats
    of one machine are nondeterminism, flagged DISPUTED as before. With more, `required` distinct
    runners must agree."""
    counted = [r for r in runs if not (require_audit and r["run_id"] in foreign and audit_verdict(r["run_id"]) != "pass")]
    agreeing = sorted({runner_of(r, signers) for r in counted if agrees(r, tasks, points)})
    confirmed = bool(counted) if required == 1 else len(agreeing) >= required
    audits = {r["run_id"]: v for r in runs if (v := audit_verdict(r["run_id"]))}
    return {"required": required, "runners": sorted({runner_of(r, signers) for r in counted}), "agreeing": agreeing,
            "unaudited": sorted(r["run_id"] for r in runs if r not in counted), "audits": audits,
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


def todo(registry: dict, submissions: dict[str, str] | None = None) -> list[str]:
    """What the leaderboard still needs, one runnable command (with a comment) per line: entries below
    quorum, disputed tasks, foreign runs waiting for an audit. `submissions` maps model id -> submission
    file (default `params/submissions/<model id>.yaml`)."""
    submissions = submissions or {}
    lines, protos = [], {tr["id"]: tr.get("protocol") or {} for tr in registry.get("tracks", [])}
    for e in registry.get("models", []):
        q = e.get("quorum") or {}
        sub = submissions.get(e["model_id"], f"params/submissions/{e['model_id']}.yaml")
        rerun = rerun_command(e, sub, protos.get(e.get("track"), {}))
        for run_id in q.get("unaudited", []):
            failed = (q.get("audits") or {}).get(run_id) == "fail"
            lines.append(f"python -m slmlib audit {run_id}  # {e['entry_id']}: " + (
                f"its audit failed (outputs/audits/{run_id}.json): it does not count; audit again or drop it"
                if failed else "a foreign run waiting for its audit"))
        if e.get("disputed"):
            lines.append(f"{rerun}  # {e['entry_id']}: tasks {', '.join(e['disputed_tasks'])} disputed; "
                         "another runner's run settles them")
        elif q.get("status") == "provisional":
            agreeing = len(q.get("agreeing", []))
            lines.append(f"{rerun}  # {e['entry_id']}: {q['required'] - agreeing} more independent runner(s) "
                         f"needed ({agreeing} of {q['required']} agree)")
    return lines
