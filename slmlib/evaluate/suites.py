"""Suites: which benchmarks a run evaluates, their verified data and the items chosen.

Serves the evaluate stage. `prepare_task` finds a benchmark's files in its pinned
pack, checks their digest, turns them into lm-eval documents once (cached as JSON
lines keyed by the digest) and picks a deterministic, stratified subsample.
"""

from __future__ import annotations

import hashlib
import inspect
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from .. import artifacts, datapacks, paths
from ..benchmarks import PILLARS, Benchmark, all_benchmarks, get_benchmark

EMBEDDED = ("mmlu", "arc_challenge", "hellaswag", "truthfulqa_mc1", "humaneval", "mbpp", "gsm8k_cot",
            "arithmetic", "mathqa", "boolq", "piqa", "winogrande", "bbq", "crows_pairs", "hhh_alignment", "truthfulqa_mc2")
SUITES = {
    "embedded": EMBEDDED,  # every built-in benchmark, on data from pinned packages (no network)
    # the same benchmarks, each run as lm-eval's own task (`Benchmark.lm_eval_task`) on Hub data (online)
    "standard": EMBEDDED,
}


class DataIntegrityError(RuntimeError):
    """A benchmark's files do not match the digest pinned in its definition."""


@dataclass(frozen=True)
class PreparedTask:
    """A benchmark ready for lm-eval: its documents and the chosen items."""

    bench: Benchmark
    data_file: Path | None  # JSON lines of all documents, in lm-eval's schema (None: lm-eval loads them)
    data_sha256: str  # digest of the source files (pinned), or of the documents lm-eval loaded
    n_total: int  # documents in the split
    indices: list[int]  # chosen document indices, sorted
    item_ids: list[str]  # their stable ids
    baseline: float  # random baseline over the chosen items
    spec: str | dict | None = None  # standard suite: lm-eval's task name, or a config over its Hub data
    samples: dict[str, list[int]] | None = None  # standard suite: lm-eval (sub)task -> chosen document indices


def suite_tasks(suite: str, tasks: list[str] | None = None, pillars: list[str] | None = None) -> list[str]:
    """Task names of `suite`, or the given subset (each must exist), keeping only those of `pillars` (a
    submission's `categories`; None: every pillar)."""
    if suite not in SUITES:
        raise ValueError(f"suite: unknown suite {suite!r}; choose one of {', '.join(SUITES)}")
    names = list(tasks) if tasks else list(SUITES[suite])
    kept = [name for name in names if get_benchmark(name).pillar in (PILLARS if pillars is None else pillars)]
    if not kept:
        raise ValueError(f"categories: the submission asks for pillars {', '.join(map(str, pillars))}, but none of "
                         f"the run's tasks ({', '.join(names)}) is of them; add a pillar of those tasks to "
                         "model.categories, or run tasks of its pillars (tasks: [...])")
    return kept


def source_files(bench: Benchmark) -> tuple[Path, list[Path]]:
    """The pack root and the files of `bench` inside it."""
    root = Path(bench.root) if bench.root else datapacks.pack_root(bench.pack)
    files = sorted({f for pattern in bench.files for f in root.glob(pattern)})
    if not files:
        raise datapacks.DataPackError(
            f"{bench.name}: no files match {bench.files} in {root}; reinstall with `make setup`")
    return root, files


def verify(bench: Benchmark) -> tuple[str, list[Path]]:
    """Digest of the benchmark's files; raises unless it equals the pinned one."""
    root, files = source_files(bench)
    digest = datapacks.digest_files(files, root)
    if digest != bench.sha256:
        raise DataIntegrityError(
            f"{bench.name}: data digest {digest} does not match the pinned {bench.sha256} "
            f"(pack {bench.pack}); reinstall the pack with `make setup`")
    return digest, files


def loader_key(bench: Benchmark) -> str:
    """8 hex digits of the loader's source (its qualified name when the source cannot be read): the
    cached documents are keyed by it and the data digest, so a changed loader never reads stale ones."""
    try:
        text = inspect.getsource(bench.load)
    except (OSError, TypeError):
        text = f"{getattr(bench.load, '__module__', '')}:{getattr(bench.load, '__qualname__', repr(bench.load))}"
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def materialize(bench: Benchmark) -> tuple[Path, str, list[dict]]:
    """Write the benchmark's documents once to the cache; return file, digest, documents."""
    digest, files = verify(bench)
    out = paths.cache_root() / "tasks" / f"{bench.name}-{digest[:16]}-{loader_key(bench)}.jsonl"
    if out.exists():
        return out, digest, artifacts.read_jsonl(out)
    docs = bench.load(files)
    ids = [d["item_id"] for d in docs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{bench.name}: item ids are not unique")
    artifacts.write_jsonl(out, docs)
    return out, digest, docs


def stratified_sample(docs: list[dict], limit: int | None, key: str | None, seed: str,
                      balance: dict[str, int] | None = None) -> list[int]:
    """`limit` indices chosen at random with `seed` (any string or int), spread over the groups of `key` in
    proportion to their size (largest remainder); all indices when limit is None. With `balance` (group ->
    integer weight), in proportion to the weights instead, exactly: u * weight items per group with the
    largest u that `limit` and every group's size allow, so fewer than `limit` (and than the split, when
    limit is None) may be chosen; a limit under one unit takes one item from each of `limit` seeded groups."""
    n = len(docs)
    if not balance and (limit is None or limit >= n):
        return list(range(n))
    groups: dict[str, list[int]] = defaultdict(list)
    for i, d in enumerate(docs):
        groups[str(d.get(key)) if key else ""].append(i)
    names = sorted(groups)
    if balance:
        if set(groups) != set(balance):
            raise ValueError(f"balance: the groups of {key!r} are {names}, the weights name {sorted(balance)}; "
                             "give every group a weight")
        units = min([len(groups[g]) // balance[g] for g in names]
                    + ([limit // sum(balance.values())] if limit is not None else []))
        counts = {g: units * balance[g] for g in names}
        if units == 0 and limit:  # fewer items than one balanced unit: one item from each of `limit` groups,
            # the groups drawn with the seed (a quick run's 4 items of MathQA's 5 answer positions)
            drawn = set(random.Random(f"{seed}:groups").sample(names, min(limit, len(names))))
            counts = {g: int(g in drawn and bool(groups[g])) for g in names}
    else:
        quotas = {g: limit * len(groups[g]) / n for g in names}
        counts = {g: int(quotas[g]) for g in names}
        by_remainder = sorted(names, key=lambda g: (-(quotas[g] - counts[g]), g))
        for g in by_remainder[: limit - sum(counts.values())]:
            counts[g] += 1
    rng = random.Random(seed)
    chosen = [i for g in names for i in rng.sample(groups[g], counts[g])]
    return sorted(chosen)


def slice_count(items: int, shard_size: int | None) -> int:
    """How many slices of at most `shard_size` items a task of `items` chosen items is cut into on a cluster."""
    return max(1, -(-items // shard_size)) if shard_size else 1


def shard_slice(items: list, k: int, n: int) -> list:
    """The K-th of N contiguous slices of `items` (1-based), their sizes differing by at most one."""
    return items[(k - 1) * len(items) // n:k * len(items) // n]


def prepare_task(name: str, limit: int | None, seed: int, shard: tuple[int, int] | None = None) -> PreparedTask:
    """The benchmark's verified documents and its chosen items; with `shard` (K, N) only the K-th of N slices
    of them (in item order), as a cluster's unit evaluates them."""
    bench = get_benchmark(name)
    data_file, digest, docs = materialize(bench)
    indices = stratified_sample(docs, limit, bench.stratify, f"{seed}:{name}", bench.balance)
    if not indices:  # lm-eval reads an empty sample as "every document"
        raise ValueError(f"{name}: no items to evaluate at limit {limit} (seed {seed}); raise the limit")
    if shard:
        indices = shard_slice(indices, *shard)
        if not indices:
            raise ValueError(f"shard: {shard[0]}/{shard[1]} of {name} holds no item (fewer items than slices); "
                             "use fewer slices")
    chosen = [docs[i] for i in indices]
    return PreparedTask(bench, data_file, digest, len(docs), indices,
                        [d["item_id"] for d in chosen], bench.baseline(chosen))


def chance_rule(b: Benchmark) -> str:
    """How the benchmark's chance level is computed (the baseline its scores are normalized against)."""
    if not b.ranked:
        return (f"none: a bias measure beside the ranking, ideal {b.bias_ideal:g} (a guessing model has no "
                "preference and scores it too)")
    if b.n_choices is None:
        return "0: the expected score of uniform guessing (nothing to choose from; an empty answer scores 0)"
    rule = getattr(b, "BASELINE_RULE", "1/choices per item")
    balanced = (f"; the sample holds items with {b.stratify} {', '.join(b.balance)} in the proportions "
                f"{':'.join(str(w) for w in b.balance.values())}, so a model giving the same answer every time "
                "scores chance too") if b.balance else ""
    return f"the expected score of uniform guessing: {rule}, averaged over the items evaluated{balanced}"


def benchmark_table() -> list[dict]:
    """One row per registered benchmark, for the methodology page and the notebooks."""
    return [{"task": b.name, "title": b.title, "pillar": b.pillar, "metric": b.metric,
             "num_fewshot": b.num_fewshot,
             "baseline": getattr(b, "BASELINE_RULE", "1/choices per item" if b.n_choices else "0"),
             "chance": chance_rule(b), "ranked": b.ranked,
             "pack": b.pack, "license": b.license, "source": b.source_note}
            for b in all_benchmarks().values()]


def digest_report() -> dict[str, str]:
    """Current digest of each benchmark's files (for pinning a new pack version)."""
    return {name: datapacks.digest_files(*reversed(source_files(b)))
            for name, b in all_benchmarks().items()}


__all__ = ["SUITES", "PreparedTask", "prepare_task", "shard_slice", "slice_count", "suite_tasks", "stratified_sample",
           "benchmark_table", "digest_report", "DataIntegrityError"]
