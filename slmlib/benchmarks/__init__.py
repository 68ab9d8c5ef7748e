"""Benchmark definitions and their registry (evaluate and aggregate stages).

A benchmark names its pillar, where its data lives (a pinned pack, files inside it,
and their SHA-256), how the files become lm-eval documents, which lm-eval task
definition it follows, its few-shot setting, its primary metric and its random
baseline. The pillar mapping, the methodology, the suites and the runtime estimate
all read from this registry.

Besides the built-in definitions (the modules below), benchmarks come from plugins:
packages that declare an entry point in the group `slm_study.benchmarks` (importing
it registers its benchmarks) and definition files named in `SLM_BENCHMARK_FILES`
(os.pathsep-separated). docs/adding-a-benchmark.md shows how to write one.
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import paths

PILLARS = ("reasoning", "coding", "math", "language", "safety")
ENTRY_POINT_GROUP = "slm_study.benchmarks"  # entry-point group of third-party benchmark packages


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: data, lm-eval task definition, primary metric, baseline."""

    name: str  # task name, lm-eval's where lm-eval has the benchmark
    title: str  # human-readable name
    pillar: str  # one of PILLARS
    pack: str  # data pack name (slmlib.datapacks.PACKS), or "local" with `root`
    files: tuple[str, ...]  # glob patterns relative to the pack root
    sha256: str  # pinned digest over the matched files (datapacks.digest_files)
    load: Callable[[list[Path]], list[dict]]  # files -> documents in lm-eval's schema, each with "item_id"
    lm_eval_yaml: str | None  # lm-eval task YAML (relative to lm_eval/tasks) the config starts from
    overrides: dict = field(default_factory=dict)  # config keys set on top of lm-eval's
    chat_overrides: dict = field(default_factory=dict)  # further keys when the chat template is applied
    generative: bool = False  # generate_until (uses `limit_generative`) rather than loglikelihood
    # few-shot examples before each item (lm-eval's num_fewshot): always set from here, over
    # the lm-eval YAML's value, so state the YAML's value when you follow it; not in `overrides`
    num_fewshot: int = 0
    metric: str = "acc"  # primary metric as lm-eval reports it
    metric_filter: str = "none"  # lm-eval filter name of the primary metric
    n_choices: Callable[[dict], int] | None = None  # choices per document (multiple choice) for the baseline
    score: Callable[[float], float] | None = None  # maps the raw metric to [0, 1] where 1 is best
    stratify: str | None = None  # document field to stratify subsamples by
    # items per `stratify` group in these integer proportions instead of the groups' sizes: groups of gold
    # answers balanced so that a model always giving one answer (BoolQ's "yes", MMLU's "D", BBQ's "unknown")
    # scores the chance level, not that answer's share of the split ({}: proportional)
    balance: dict[str, int] = field(default_factory=dict)
    # set: a bias measure, and the value of its primary metric for an unbiased model (CrowS-Pairs: 0.5, no
    # preference); reported beside the ranking with its interval, never in a pillar, since a guessing
    # model has no preference either and would score the ideal
    bias_ideal: float | None = None
    license: str = ""  # dataset license
    source_note: str = ""  # where the data comes from and which split
    root: str | None = None  # folder `files` are relative to, for local benchmarks (pack "local")
    # lm-eval's task for this benchmark on Hub data, which the standard suite runs (None: lm-eval has none)
    lm_eval_task: str | None = None

    @property
    def ranked(self) -> bool:
        """Whether the task counts in its pillar (every task but the bias measures)."""
        return self.bias_ideal is None

    def baseline(self, docs: list[dict]) -> float:
        """Expected primary score of uniform guessing on `docs` (0 for generation)."""
        if self.n_choices is None or not docs:
            return 0.0
        return sum(1.0 / self.n_choices(d) for d in docs) / len(docs)


_REGISTRY: dict[str, Benchmark] = {}


class PluginError(ImportError):
    """A benchmark plugin (entry point or definition file) failed to load; the message names it."""


def register(bench: Benchmark) -> Benchmark:
    """Add `bench` to the registry; raises ValueError naming the field and the fix."""
    paths.check_id(bench.name, f"benchmark {bench.name!r}: name")  # it names files in the run folder
    if bench.pillar not in PILLARS:
        raise ValueError(f"benchmark {bench.name}: pillar {bench.pillar!r} is not one of {PILLARS}")
    if (bench.pack == "local") != bool(bench.root):
        raise ValueError(f"benchmark {bench.name}: pack \"local\" and `root` (the data folder) go together; "
                         f"got pack={bench.pack!r}, root={bench.root!r}")
    if isinstance(bench.num_fewshot, bool) or not isinstance(bench.num_fewshot, int) or bench.num_fewshot < 0:
        raise ValueError(f"benchmark {bench.name}: num_fewshot must be an integer >= 0, got {bench.num_fewshot!r}")
    if "num_fewshot" in bench.overrides or "num_fewshot" in bench.chat_overrides:
        raise ValueError(f"benchmark {bench.name}: set the few-shot count as the field num_fewshot=..., "
                         "not as an lm-eval override")
    if bench.balance and (not bench.stratify or not all(
            isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in bench.balance.values())):
        raise ValueError(f"benchmark {bench.name}: balance needs `stratify` (the field whose groups it weighs) and "
                         f"positive integer weights, got stratify={bench.stratify!r}, balance={bench.balance!r}")
    if bench.name in _REGISTRY:
        raise ValueError(f"benchmark {bench.name!r} is registered twice")
    _REGISTRY[bench.name] = bench
    return bench


def get_benchmark(name: str) -> Benchmark:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(sorted(_REGISTRY))} "
                       "(add one: docs/adding-a-benchmark.md)") from None


def all_benchmarks() -> dict[str, Benchmark]:
    return dict(_REGISTRY)


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSON-lines file, gzip-compressed or not."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def read_arrow(files: list[Path]) -> list[dict]:
    """Rows of `datasets.save_to_disk` arrow files, in file order."""
    import datasets

    rows: list[dict] = []
    for f in sorted(files):
        rows.extend(datasets.Dataset.from_file(str(f)).to_list())
    return rows


def request_docs(path: Path) -> list[dict]:
    """The distinct `doc`s of an OLMo request dump, in first-seen order."""
    seen, docs = set(), []
    for row in read_jsonl(path):
        doc = row["doc"]
        key = json.dumps(doc.get("id", doc.get("task_id", doc)), sort_keys=True)
        if key not in seen:
            seen.add(key)
            docs.append(doc)
    return docs


def load_plugin_files(spec: str) -> None:
    """Import benchmark definition files named in `spec` (os.pathsep-separated paths)."""
    import importlib.util

    for i, path in enumerate(p for p in spec.split(os.pathsep) if p):
        module_spec = importlib.util.spec_from_file_location(f"slm_benchmark_plugin_{i}", path)
        if module_spec is None or not Path(path).is_file():
            raise PluginError(f"SLM_BENCHMARK_FILES: {path} is not a Python file")
        try:
            module_spec.loader.exec_module(importlib.util.module_from_spec(module_spec))
        except Exception as exc:
            raise PluginError(f"SLM_BENCHMARK_FILES: benchmark file {path} failed: "
                              f"{type(exc).__name__}: {exc}") from exc


def load_entry_points() -> list[str]:
    """Import every entry point of the group `slm_study.benchmarks` (its module registers its
    benchmarks when imported); returns their names. A failing one raises PluginError naming it."""
    from importlib.metadata import entry_points

    names = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            ep.load()
        except Exception as exc:
            dist = ep.dist.name if ep.dist else "its package"
            raise PluginError(f"benchmark plugin entry point {ep.name!r} ({ep.value}, group {ENTRY_POINT_GROUP}, "
                              f"from {dist}) failed: {type(exc).__name__}: {exc}; fix or uninstall {dist}") from exc
        names.append(ep.name)
    return names


from . import coding, language, math, reasoning, safety  # noqa: E402,F401  (registers the benchmarks)

__all__ = ["Benchmark", "ENTRY_POINT_GROUP", "PILLARS", "PluginError", "all_benchmarks", "get_benchmark",  # the
           "load_entry_points", "load_plugin_files", "read_jsonl", "register"]  # plugin API and the registry

load_entry_points()
load_plugin_files(os.environ.get("SLM_BENCHMARK_FILES", ""))
