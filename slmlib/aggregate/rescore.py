"""Re-scoring a run from its own per-item log (aggregate stage, issue 18): a run from another machine
is believed only as far as its log proves it.

For each task, the items the run's limit and seed imply are drawn again from the pinned data
(`evaluate.prepare_task`), and lm-eval runs the task with `backends.ReplayLM` answering every
request from the log: the task's own filters, `process_results`, aggregation and, for code, the
sandboxed execution recompute each item's value, response and the task's raw metric. Any difference
from what the run recorded, a missing or short log, or other items than the seeded sample is the
reason the run is refused.
"""

from __future__ import annotations

import math

from .. import artifacts, evaluate
from ..backends import ReplayLM, ReplayMismatch
from ..benchmarks import get_benchmark

TOLERANCE = 1e-9  # |recomputed - recorded| of a value or a raw metric (both are means of the same numbers)


def rescore_problem(run: dict, rows: dict[str, list[dict]]) -> str | None:
    """Why the run's recorded metrics are not what its per-item log gives, or None when every task agrees."""
    if run.get("suite") != "embedded":
        return f"suite {run.get('suite')!r}: only embedded-suite runs (pinned data) can be re-scored here"
    for name in sorted(run["tasks"]):
        try:
            problem = _task_problem(run, name, rows.get(name))
        except Exception as exc:  # a hostile log lm-eval cannot digest is a refusal, never a crashed aggregate
            problem = f"cannot be re-scored ({type(exc).__name__}: {artifacts.error_line(exc)})"
        if problem:
            return f"re-scoring task {name}: {problem}"
    return None


def _task_problem(run: dict, name: str, rows: list[dict] | None) -> str | None:
    task = run["tasks"][name]
    try:
        bench = get_benchmark(name)
    except KeyError:
        return "not a benchmark registered in this study"
    if not rows:
        return f"no per-item log (samples/{name}.jsonl)"
    limit = run["limit_generative"] if bench.generative and run.get("limit_generative") else run["limit"]
    prep = evaluate.prepare_task(name, limit, run["seed"])
    logged = [r.get("item_id") for r in rows]
    if sorted(map(str, logged)) != sorted(prep.item_ids):
        return (f"the log holds {len(rows)} items, the seeded sample of limit {limit} and seed {run['seed']} is "
                f"{len(prep.item_ids)} other or more items (first logged: {str(logged[0])[:60]})")
    chat = bool(task.get("apply_chat_template"))
    try:
        record, again = evaluate.run_task(ReplayLM(rows, prep.indices, check_prompts=not chat), prep, run["seed"], chat)
    except ReplayMismatch as exc:
        return str(exc)
    by_id = {r["item_id"]: r for r in rows}
    for new in again:
        old = by_id[new["item_id"]]
        if not _close(old.get("value"), new["value"]):
            return f"item {new['item_id']}: logged value {old.get('value')}, its response gives {new['value']}"
        if old.get("response") != new["response"]:
            return f"item {new['item_id']}: the logged response is not what the task's filter makes of its output"
    if not _close(task.get("raw"), record["raw"]):
        return f"recorded {task.get('metric')} = {task.get('raw')}, the log gives {record['raw']}"
    return None


def _close(a, b) -> bool:
    return isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) and abs(a - b) <= TOLERANCE
