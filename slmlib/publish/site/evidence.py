"""Publish stage: what a model page shows from the entry's run folders, beyond the registry.

Reads `outputs/runs/<run_id>/results.json` (the card from detect, provenance, per-task data
digests and settings) and `samples/<task>.jsonl` (per-item logs: the worst-scored items are
picked from them), and finds each run's executed notebooks, whose HTML reports the runner
writes to `reports/<run_id>/`. A run folder that is not on this machine (only its registry
entry is) gives a page without those parts, never an error.
"""

from __future__ import annotations

import os
from pathlib import Path

from ... import artifacts, paths
from ...benchmarks import PILLARS, all_benchmarks

WORST_ITEMS = 3  # worst-scored items shown per task
PROMPT_TAIL = 600  # characters of a prompt shown (its end: the question is last)
ANSWER_CHARS = 400  # characters of a generated answer or expected output shown


def read_results(runs_dir: Path, run_id: str) -> dict | None:
    """A run's results.json, or None when the run folder is not here."""
    path = paths.results_file(Path(runs_dir) / run_id)
    return artifacts.read_json(path) if path.is_file() else None


def sample_files(runs_dir: Path, run_id: str) -> list[Path]:
    """A run's per-item logs (`samples/<task>.jsonl`)."""
    return sorted(paths.samples_dir(Path(runs_dir) / run_id).glob("*.jsonl"))


def report_links(runs_dir: Path, reports_dir: Path, run_id: str, from_dir: Path) -> list[dict]:
    """The run's stage reports, relative to `from_dir`: one per executed notebook (the runner and
    `python -m slmlib report` export each to `reports/<run_id>/<notebook>.html` and `.no-code.html`)."""
    out = []
    for nb in sorted(paths.executed_dir(Path(runs_dir) / run_id).glob("*.ipynb")):
        base = Path(reports_dir) / run_id / nb.stem
        out.append({"stage": nb.stem, "href": relative(f"{base}.html", from_dir),
                    "no_code": relative(f"{base}.no-code.html", from_dir)})
    return out


def relative(target: str | Path, from_dir: Path) -> str:
    """`target` as a URL path relative to `from_dir`."""
    return Path(os.path.relpath(Path(target).resolve(), Path(from_dir).resolve())).as_posix()


def _truncate_tail(text: str, limit: int) -> str:
    return text if len(text) <= limit else "\u2026" + text[-limit:]


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "\u2026"


def _letter(i: int) -> str:
    return chr(ord("A") + i) if 0 <= i < 26 else str(i)


def is_choice(row: dict) -> bool:
    """A multiple-choice item: the response is one [log-likelihood, is_greedy] pair per choice."""
    resp = row.get("response")
    return (isinstance(row.get("target"), int) and isinstance(resp, list) and bool(resp)
            and all(isinstance(r, list) and len(r) == 2 for r in resp))


def describe(row: dict) -> dict:
    """What the model answered and what was expected, as plain text, and how wrong it was.

    Multiple choice: the choice (A = the first continuation scored) with the highest log-likelihood
    against the target; `margin` is how much more likely the model found its choice than the right
    one. The per-item log holds the prompt, not the choices' texts. Generation: the output.
    """
    prompt = _truncate_tail(str(row.get("prompt") or ""), PROMPT_TAIL)
    if is_choice(row):
        lls = [float(r[0]) for r in row["response"]]
        target = row["target"]
        picked = max(range(len(lls)), key=lls.__getitem__)
        n = len(lls)
        return {"prompt": prompt, "answer": f"choice {_letter(picked)} of {n} (log-likelihood {lls[picked]:.2f})",
                "expected": f"choice {_letter(target)} of {n} (log-likelihood {lls[target]:.2f})" if target < n
                else str(target), "margin": lls[picked] - lls[target] if target < n else 0.0}
    response = row.get("response")
    answer = response[0] if isinstance(response, list) and len(response) == 1 else response
    return {"prompt": prompt, "answer": _truncate(str(answer if answer is not None else ""), ANSWER_CHARS),
            "expected": _truncate(str(row.get("target") if row.get("target") is not None else ""), ANSWER_CHARS),
            "margin": 0.0}


def worst_items(rows: list[dict], k: int = WORST_ITEMS) -> list[dict]:
    """The `k` lowest-scored items (value below 1), most confidently wrong first; log order on ties."""
    failed = [(i, r) for i, r in enumerate(rows) if isinstance(r.get("value"), (int, float)) and r["value"] < 1]
    shown = [{"item_id": r.get("item_id"), "value": r["value"], "order": i, **describe(r)} for i, r in failed]
    shown.sort(key=lambda d: (d["value"], -d["margin"], d["order"]))
    return shown[:k]


def task_worst(entry: dict, runs_dir: Path, k: int = WORST_ITEMS) -> dict[str, dict]:
    """Per task (in pillar order): the worst items of the run whose samples give its interval, or a note
    why there are none."""
    benches = all_benchmarks()
    out = {}
    pillar_order = {p: i for i, p in enumerate(PILLARS)}
    tasks = sorted((entry.get("tasks") or {}).items(), key=lambda kv: (pillar_order.get(kv[1].get("pillar"), 99), kv[0]))
    for name, task in tasks:
        bench = benches.get(name)
        path = paths.samples_file(Path(runs_dir) / str(task.get("samples_run")), name)
        if bench is not None and bench.score is not None:
            out[name] = {"items": [], "note": "per-item values are not scores here (the task's score transforms "
                                              "the mean), so no item is worse than another"}
        elif not path.is_file():
            out[name] = {"items": [], "note": "per-item log not on this machine"}
        else:
            items = worst_items(artifacts.read_jsonl(path), k)
            out[name] = {"items": items, "note": None if items else "every item scored 1"}
    return out


def model_evidence(entry: dict, runs_dir: Path, reports_dir: Path, page_dir: Path) -> dict:
    """Everything a model page shows beyond the registry: the first run's card, the worst items,
    the energy method, and per run its results, report links and per-item log links (the logs
    are copied into the site as `samples/<run_id>/<task>.jsonl`, one folder above `page_dir`)."""
    runs = []
    for run_id in entry.get("run_ids") or []:
        results = read_results(runs_dir, run_id)
        runs.append({"run_id": run_id, "results": results,
                     "reports": report_links(runs_dir, reports_dir, run_id, page_dir),
                     "samples": [(f.stem, f"../samples/{run_id}/{f.name}") for f in sample_files(runs_dir, run_id)]})
    first = next((r["results"] for r in runs if r["results"]), None) or {}
    return {"card": first.get("model_card"), "worst": task_worst(entry, runs_dir),
            "energy_method": (first.get("energy") or {}).get("method"), "runs": runs}
