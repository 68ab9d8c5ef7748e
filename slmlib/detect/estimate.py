"""Runtime estimate of a submission on this machine (detect stage; informational).

tokens: the chosen items of the run's tasks (`evaluate.prepare_task`, the same sample the
evaluate stage takes) tokenized with the model's own tokenizer (no weights loaded):
a multiple-choice item scores its text once per choice; a generative item reads its
prompt and may generate up to `max_gen_toks` tokens (an upper bound).

throughput, measured here, for scoring and for generation each by the first method that applies:
- "history": seconds per task recorded by earlier runs in `outputs/runs/*/results.json` (a task that ran
  on fewer threads than this machine's cores counted at its share of them), their items re-tokenized
  with this tokenizer, as parameter-tokens per second;
- "calibration": a float32 matrix product timed once per machine (cached), times an
  efficiency fitted to the default run (docs/default-run.md) of SmolLM2-135M (batch 8, float32, at
  184 GFLOP/s: ~760 of this estimator's scored tokens/s, 1.1; ~66 generation-budget
  tokens/s, 0.097, with 16 prompts decoded together: 0.07 one at a time, the four generative
  tasks 227 s against 313 s), at 2 FLOPs per parameter per token. Cruder: say so with the figure.

On a cluster (`cluster:`) the tasks run as units: `project_workers` gives the time on 1, 2 and 16 workers
(and the runner on the cluster's own count) from the same seconds, each unit's overhead added.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import platform
import time

from .. import artifacts, evaluate, paths, provenance
from ..benchmarks import get_benchmark
from ..weights import Weights, load_tokenizer

MC_EFFICIENCY = 1.1
GEN_EFFICIENCY = 0.097
# a unit's own cost on a cluster (a kernel, slmlib and lm-eval imported, the model loaded), measured here for the
# default model on llama.cpp (docs/cluster.md)
UNIT_SECONDS = 12.0
WORKERS = (1, 2, 16)  # the cluster sizes the estimate projects when the cluster's is not known


def _text(doc) -> str:
    if isinstance(doc, str):
        return doc
    if isinstance(doc, dict):
        return " ".join(_text(v) for k, v in doc.items() if k != "item_id")
    if isinstance(doc, list):
        return " ".join(_text(v) for v in doc)
    return ""


def count_tokens(tokenizer, bench, docs: list[dict]) -> dict:
    """Tokens the items will score (`scored`) and may generate (`generated`)."""
    lengths = [len(ids) for ids in tokenizer([_text(d) for d in docs])["input_ids"]] if docs else []
    shots = 1 + bench.num_fewshot  # each prompt carries its few-shot examples (of about its own length)
    if bench.generative:
        max_gen = int((bench.overrides.get("generation_kwargs") or {}).get("max_gen_toks", 256))
        return {"items": len(docs), "scored": shots * sum(lengths), "generated": max_gen * len(docs)}
    choices = [bench.n_choices(d) if bench.n_choices else 2 for d in docs]
    return {"items": len(docs), "scored": shots * sum(n * c for n, c in zip(lengths, choices)), "generated": 0}


def chosen_docs(name: str, limit: int | None, seed: int) -> tuple[object, list[dict]]:
    prep = evaluate.prepare_task(name, limit, seed)
    docs = artifacts.read_jsonl(prep.data_file)
    return prep.bench, [docs[i] for i in prep.indices]


def history_rates(tokenizer) -> dict[str, tuple[float, str]]:
    """Parameter-tokens per second, with its source, for the kinds ("scored", "generated") that
    earlier runs on this machine measured."""
    totals = {"scored": [0.0, 0.0], "generated": [0.0, 0.0]}  # kind -> [param-tokens, seconds]
    runs = 0
    for path in sorted(paths.results_file(run) for run in paths.runs_dir().glob("*")):
        try:
            run = artifacts.read_json(path)
            count = int(run["model_card"]["parameter_count"])
            for name, rec in run["tasks"].items():
                bench, docs = chosen_docs(name, rec["n"], run["seed"])
                if [d["item_id"] for d in docs] != rec.get("item_ids") or not rec.get("seconds"):
                    continue
                tokens = count_tokens(tokenizer, bench, docs)
                kind = "generated" if bench.generative else "scored"
                totals[kind][0] += tokens[kind] * count
                totals[kind][1] += machine_seconds(rec)
            runs += 1
        except (KeyError, TypeError, ValueError, OSError):
            continue
    where = f"history: {runs} earlier run(s) in {paths.runs_dir()}"
    return {k: (pt / sec, where) for k, (pt, sec) in totals.items() if sec and pt}


def machine_seconds(record: dict) -> float:
    """A task record's seconds as if it had used all of this machine's cores: a task evaluated on fewer threads
    (a busy machine, a unit of a local cluster) took about cores / threads times longer (2.02 times on one
    thread of 2 here, measured: docs/cluster.md)."""
    threads = record.get("threads")
    if isinstance(threads, int) and not isinstance(threads, bool) and 0 < threads < (cores := provenance.usable_cores()):
        return record["seconds"] * threads / cores
    return record["seconds"]


def matmul_gflops() -> float:
    """float32 matrix-product GFLOP/s on this machine, measured once and cached per machine."""
    import torch

    fingerprint = json.dumps([platform.node(), platform.machine(), platform.processor(),
                              torch.__version__, torch.get_num_threads()])
    cache = paths.cache_root() / "calibration" / f"{hashlib.sha256(fingerprint.encode()).hexdigest()[:16]}.json"
    if cache.exists():
        return json.loads(cache.read_text())["gflops"]
    a = torch.randn(1024, 1024)
    best = float("inf")
    for _ in range(6):  # the best of a few: a busy neighbour only slows some of them
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    gflops = 2 * 1024**3 / best / 1e9
    artifacts.write_json(cache, {"gflops": round(gflops, 1), "fingerprint": fingerprint})
    return gflops


def calibration_rates() -> dict[str, tuple[float, str]]:
    gflops = matmul_gflops()
    return {kind: (gflops * 1e9 * eff / 2, f"calibration: matmul {gflops:.0f} GFLOP/s on this machine x "
                                           f"efficiency {eff} fitted to one SmolLM2-135M run")
            for kind, eff in (("scored", MC_EFFICIENCY), ("generated", GEN_EFFICIENCY))}


def estimate_runtime(weights: Weights, parameter_count: int, p, pillars: list[str] | None = None) -> dict:
    """Per-task tokens and seconds for params `p` (suite, tasks, limits, seed) on this machine, over the
    tasks of `pillars` (the card's categories; None: all)."""
    tokenizer = load_tokenizer(weights)
    rates = history_rates(tokenizer)
    if len(rates) < 2:
        rates = {**calibration_rates(), **rates}
    tasks = {}
    for name in evaluate.suite_tasks(p.suite, p.tasks, pillars):
        bench, docs = chosen_docs(name, p.limit_for(get_benchmark(name).generative), p.seed)
        t = count_tokens(tokenizer, bench, docs)
        kind = "generated" if bench.generative else "scored"  # what the rate of its kind was measured on
        tasks[name] = {**t, "seconds": round(t[kind] * parameter_count / rates[kind][0], 1)}
    method = "; ".join(f"{kind}: {source}" for kind, (_, source) in rates.items())
    return {"method": method, "suite": p.suite, "limit": p.limit,
            "limit_generative": p.limit_generative, "tasks": tasks,
            "seconds": round(sum(t["seconds"] for t in tasks.values()), 1), "shard_size": p.shard_size,
            "workers": {str(n): round(project_workers(tasks, p.shard_size, n), 1) for n in WORKERS}}


def workers_line(estimate: dict | None) -> str:
    """The estimate on a cluster as one line: `on a cluster of workers like this machine: 1 worker ~13 h, ...`
    ("" without an estimate)."""
    if not estimate:
        return ""
    def shown(seconds: float) -> str:
        return f"~{seconds / 60:.0f} min" if seconds < 7200 else f"~{seconds / 3600:.1f} h"

    workers = ", ".join(f"{n} worker{'s' * (n != '1')} {shown(s)}" for n, s in estimate["workers"].items())
    slices = f"slices of {estimate['shard_size']} items" if estimate["shard_size"] else "one unit per task"
    return f"on a cluster of workers like this machine: {workers} ({slices}, {UNIT_SECONDS:.0f} s more per unit)"


def project_workers(tasks: dict[str, dict], shard_size: int | None, workers: int, speed: float = 1.0) -> float:
    """Projected seconds of `tasks` (items and seconds each, as `estimate_runtime` gives them) as units on a
    cluster of `workers` workers, each `speed` times as fast as this machine (a worker with one thread of this
    machine's 2 cores: 0.5): each task cut into slices of at most `shard_size` items (its seconds shared among
    them) plus UNIT_SECONDS each, the longest first onto the least busy worker."""
    if not speed > 0:
        raise ValueError(f"speed {speed}: a worker's speed relative to this machine must be above 0")
    units = []
    for t in tasks.values():
        n = evaluate.slice_count(t["items"], shard_size)
        units += [t["seconds"] / n / speed + UNIT_SECONDS] * n
    loads = [0.0] * workers  # a heap: the least busy worker first
    for seconds in sorted(units, reverse=True):
        heapq.heapreplace(loads, loads[0] + seconds)
    return max(loads)
