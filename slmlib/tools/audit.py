"""Audit by re-execution (issue 18): a seeded random part of a run redone on this machine.

`audit_run` draws, per task, a seeded sample of the run's items (`fraction` of them, at least
`MIN_ITEMS`), loads the run's weights (the submission's file for the run's quantization, which must
have the SHA-256 the run's card records) with the run's backend and settings, evaluates those items
through the same lm-eval path as the evaluate stage, and compares item by item with the run's log:
the same prompt, every choice's log-likelihood within `LOGLIK_TOLERANCE` and the same value (the
chosen answer) for multiple choice, the same greedy text and value for generation, the same pass/fail
for code. The verdict is `pass` only when every audited item agrees. `write_audit` keeps it in
`outputs/audits/<run_id>.json` (`paths.audit_file`), outside the run folder, whose signature it
must not change.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from pathlib import Path

from .. import artifacts, aggregate, detect, evaluate, params, paths, provenance
from ..benchmarks import get_benchmark
from ..weights import Weights

AUDIT_VERSION = 1
DEFAULT_FRACTION = 0.05
MIN_ITEMS = 5
LOGLIK_TOLERANCE = 2e-3  # nats per choice, plus LOGLIK_RELATIVE of its size: llama.cpp's sums differ in the
LOGLIK_RELATIVE = 1e-4  # last bits with what the KV cache held before (a long CrowS-Pairs sentence: 4e-3 in 62)
SHOWN_DIFFERENCES = 5


class AuditError(ValueError):
    """The run cannot be audited here (unreadable, weights not on this machine); the message says why."""


def audit_sample(item_ids: list[str], fraction: float, seed: int, task: str) -> list[int]:
    """Positions (sorted) of the items to redo: `fraction` of them, at least `MIN_ITEMS` (all when fewer),
    drawn with a seed of the run's seed and the task, so an audit is repeatable."""
    n = len(item_ids)
    k = min(n, max(MIN_ITEMS, math.ceil(fraction * n)))
    return sorted(random.Random(f"audit:{seed}:{task}").sample(range(n), k))


def local_card(run: dict) -> dict:
    """The card this machine detects for the run's model and quantization, with the same weights."""
    claimed = run["model_card"]
    path = paths.SUBMISSIONS_DIR / f"{paths.check_id(claimed['model_id'], 'model_id')}.yaml"
    if not path.is_file():
        raise AuditError(f"{run['run_id']}: no submission {path.relative_to(paths.REPO_ROOT)} here to take the "
                         "weights from; add the model's submission first")
    card, report = detect.detect_submission(path, quantization=claimed.get("quantization") or None)
    if not report.ok:
        raise AuditError(f"{run['run_id']}: the submission does not validate here: {'; '.join(report.errors)}")
    mine, theirs = card["weights"]["sha256"], claimed["weights"]["sha256"]
    if mine != theirs:
        raise AuditError(f"{run['run_id']}: the weights here ({claimed.get('quantization')}, sha256 {mine[:12]}) are "
                         f"not the run's ({theirs[:12]}); an audit needs the same file")
    return card


def run_params(run: dict) -> params.StudyParams:
    """The study parameters that reproduce the run's settings."""
    s = run["settings"]
    values = {"seed": run["seed"], "suite": run["suite"], "limit": run["limit"],
              "limit_generative": run["limit_generative"], "backend": s["backend"],
              "apply_chat_template": s["apply_chat_template"]}
    values.update({k: s[k] for k in ("dtype", "batch_size") if k in s}, decode_batch=s.get("decode_batch", 1))
    return params.validate(values, source=f"{run['run_id']} settings")


def compare_item(old: dict, new: dict, generative: bool) -> str | None:
    """Why a redone item differs from the logged one, or None."""
    if old.get("prompt") != new["prompt"]:
        return "the prompt differs"
    if not generative:
        a, b = old.get("response"), new["response"]
        if not isinstance(a, list) or len(a) != len(b):
            return "another number of choices"
        over = [(abs(float(x[0]) - float(y[0])), LOGLIK_TOLERANCE + LOGLIK_RELATIVE * abs(float(x[0])))
                for x, y in zip(a, b)]
        worst = max(over, key=lambda d: d[0] - d[1])
        if worst[0] > worst[1]:
            return f"a log-likelihood differs by {worst[0]:.4g} (tolerance {worst[1]:.4g})"
    elif old.get("response") != new["response"]:
        return f"the text differs: {str(old.get('response'))[:60]!r} logged, {str(new['response'])[:60]!r} here"
    if old.get("value") != new["value"]:
        return f"value {old.get('value')} logged, {new['value']} here"
    return None


def audit_run(folder: Path, fraction: float = DEFAULT_FRACTION, log=print) -> dict:
    """Redo a seeded part of the run in `folder` on this machine and compare; returns the audit record."""
    if not 0 < fraction <= 1:
        raise AuditError(f"--fraction: {fraction} is not in (0, 1]")
    run, rows, reason = aggregate.read_run(folder)
    if reason:
        raise AuditError(f"{folder.name}: {reason}")
    card = local_card(run)
    p = run_params(run)
    started = time.time()
    if p.suite != "standard":
        evaluate.set_offline_env()
    lm, _, _, _ = evaluate.load_backend(run["settings"]["backend"], p, card, Weights(**card["weights"]))
    tasks, differences = {}, []
    for name in sorted(run["tasks"]):
        task, logged = run["tasks"][name], {r["item_id"]: r for r in rows.get(name, [])}
        prep = evaluate.prepare_task(name, p.limit_for(get_benchmark(name).generative), p.seed)
        if set(prep.item_ids) != set(logged):
            raise AuditError(f"{run['run_id']}: task {name}'s log is not the seeded sample; re-scoring refuses it")
        keep = audit_sample(prep.item_ids, fraction, p.seed, name)
        part = dataclasses.replace(prep, indices=[prep.indices[i] for i in keep],
                                   item_ids=[prep.item_ids[i] for i in keep])
        if hasattr(lm, "set_threads"):
            lm.set_threads(evaluate.llamacpp_threads())
        _, again = evaluate.run_task(lm, part, p.seed, bool(task.get("apply_chat_template")))
        differ = [(r["item_id"], why) for r in again
                  if (why := compare_item(logged[r["item_id"]], r, prep.bench.generative))]
        tasks[name] = {"audited": len(again), "agreeing": len(again) - len(differ), "of": len(prep.item_ids)}
        differences += [{"task": name, "item_id": i, "why": why} for i, why in differ]
        log(f"[audit] {name}: {tasks[name]['agreeing']}/{len(again)} items agree")
    if hasattr(lm, "close"):
        lm.close()
    audited = sum(t["audited"] for t in tasks.values())
    agreeing = sum(t["agreeing"] for t in tasks.values())
    return {
        "schema_version": AUDIT_VERSION, "run_id": run["run_id"], "verdict": "pass" if agreeing == audited else "fail",
        "fraction": fraction, "min_items": MIN_ITEMS, "audited": audited, "agreeing": agreeing,
        "agreement": round(agreeing / audited, 4) if audited else None,
        "loglik_tolerance": {"absolute": LOGLIK_TOLERANCE, "relative": LOGLIK_RELATIVE},
        "tasks": tasks, "first_differences": differences[:SHOWN_DIFFERENCES],
        "weights_sha256": card["weights"]["sha256"], "settings": run["settings"],
        "machine": provenance.system_info(), "seconds": round(time.time() - started, 1),
    }


def write_audit(record: dict) -> Path:
    return artifacts.write_json(paths.audit_file(record["run_id"]), record)
