"""The standard suite: the same benchmarks as lm-eval's own tasks on Hub data (evaluate stage; online).

Offline it fails within seconds (`weights.require_hub`), naming the embedded suite.
"""

from __future__ import annotations

import hashlib
import json

from ..benchmarks import Benchmark, get_benchmark
from . import harness
from .suites import PreparedTask, prepare_task, stratified_sample

STANDARD_FIX = ("use `suite: embedded` (the same benchmarks from pinned packages, no network), "
                "or run where huggingface.co is reachable")


def hub_spec(bench: Benchmark) -> str | dict:
    """What the standard suite gives lm-eval for `bench`: the name of lm-eval's task. For a task
    that executes generated code (`unsafe_code` in lm-eval's YAML: its scorer runs the code in the
    harness process) it is this benchmark's own definition instead (the same prompts, scored in
    slmlib's sandbox) over the Hub dataset lm-eval's YAML names."""
    from lm_eval.tasks._yaml_loader import load_yaml

    entry = harness.hub_task_manager().task_index.get(bench.lm_eval_task)
    if entry is None:
        raise KeyError(f"{bench.name}: lm-eval {harness.lm_eval_version()} has no task {bench.lm_eval_task!r}")
    theirs = load_yaml(entry.yaml_path, resolve_func=False) if entry.yaml_path else {}
    if not theirs.get("unsafe_code"):
        return bench.lm_eval_task
    data = {k: theirs[k] for k in harness.DATA_KEYS if k in theirs and k not in ("tag", "include", "task_alias")}
    return {**harness.definition(bench), **data, "task": bench.name}


def prepare_standard(name: str, limit: int | None, seed: int) -> PreparedTask:
    """A benchmark of the standard suite, its documents downloaded by lm-eval (call
    `weights.require_hub` first). A benchmark lm-eval has no task for (basic arithmetic)
    runs its embedded definition on its pinned data."""
    bench = get_benchmark(name)
    if bench.lm_eval_task is None:
        return prepare_task(name, limit, seed)
    spec = hub_spec(bench)
    return prepare_lm_eval(bench, spec, harness.hub_task_manager() if isinstance(spec, str) else harness.task_manager(),
                           limit, seed)


def prepare_lm_eval(bench: Benchmark, spec: str | dict, manager, limit: int | None, seed: int) -> PreparedTask:
    """Load `spec` through lm-eval and choose its items: a seeded sample stratified by subtask
    (MMLU's subjects) or, for one task, by the benchmark's `stratify` field when the documents
    have it; the baseline is the task's own metric for a model guessing uniformly."""
    leaves = manager.load([spec])["tasks"]
    flat = [(leaf, i, doc) for leaf in sorted(leaves) for i, doc in enumerate(leaves[leaf].eval_docs)]
    field = bench.stratify if bench.stratify and all(bench.stratify in d for _, _, d in flat) else None
    strata = [{"s": leaf if len(leaves) > 1 else str(d[field]) if field else ""} for leaf, _, d in flat]
    chosen = stratified_sample(strata, limit, "s", f"{seed}:{bench.name}", bench.balance if len(leaves) == 1 and field else None)
    picked = [flat[j] for j in chosen]
    samples: dict[str, list[int]] = {}
    for leaf, i, _ in picked:
        samples.setdefault(leaf, []).append(i)
    baseline = 0.0
    if bench.n_choices is not None and picked:
        baseline = sum(uniform_score(leaves[leaf], d, bench.metric) for leaf, _, d in picked) / len(picked)
    canon = json.dumps([[leaf, d] for leaf, _, d in flat], sort_keys=True, default=str)
    return PreparedTask(bench, None, hashlib.sha256(canon.encode()).hexdigest(), len(flat), chosen,
                        [f"{leaf}/{i}" for leaf, i, _ in picked], baseline, spec=spec, samples=samples)


def uniform_score(task, doc: dict, metric: str) -> float:
    """Expected `metric` on `doc` of a model that picks each choice with equal probability: the
    task's own process_results with all the likelihood on one choice, averaged over the choices."""
    n = len(task.doc_to_choice(doc))
    picks = [task.process_results(doc, [(0.0 if j == i else -1e9, j == i) for j in range(n)])[metric]
             for i in range(n)]
    return float(sum(picks) / n)
