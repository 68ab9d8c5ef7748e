"""Prepared tasks through lm-evaluation-harness on a model loaded once (evaluate stage).

Each benchmark's config starts from lm-eval's own task definition (its YAML in the installed
package) and is re-pointed at the verified local documents; the chosen items go to
`simple_evaluate(samples=...)`. Each finished task is written at once (its record and per-item
log in the run folder), so an interrupted run restarts where it stopped.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import time
from pathlib import Path
from typing import Any, Callable

from .. import artifacts, paths
from ..benchmarks import Benchmark
from .suites import PreparedTask

# Keys of lm-eval's task YAML that say where data comes from; replaced by the local file.
DATA_KEYS = ("dataset_path", "dataset_name", "dataset_kwargs", "training_split",
             "validation_split", "test_split", "fewshot_split", "tag", "include", "task_alias")


def set_offline_env() -> None:
    """No Hub access and a datasets cache under the study's cache."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("HF_DATASETS_CACHE", str(paths.cache_root() / "hf_datasets"))


def lm_eval_tasks_dir() -> Path:
    return Path(importlib.util.find_spec("lm_eval").origin).parent / "tasks"


def definition(bench: Benchmark, chat: bool = False) -> dict:
    """The benchmark's lm-eval config without its data: lm-eval's YAML (if it follows one) minus
    the data keys, its overrides and few-shot count, and with `chat` lm-eval's *_instruct settings."""
    cfg: dict[str, Any] = {}
    if bench.lm_eval_yaml:
        from lm_eval.tasks._yaml_loader import load_yaml

        cfg = load_yaml(lm_eval_tasks_dir() / bench.lm_eval_yaml)
    for key in DATA_KEYS:
        cfg.pop(key, None)
    cfg.update(bench.overrides, num_fewshot=bench.num_fewshot)
    if chat:
        cfg.update(bench.chat_overrides)
    return cfg


def task_config(prep: PreparedTask, chat: bool = False) -> dict:
    """lm-eval task config for a prepared task (a dict `simple_evaluate` accepts) over its
    verified local documents; `chat` as in `definition`."""
    return {**definition(prep.bench, chat), "task": prep.bench.name, "dataset_path": "json",
            "test_split": "test", "dataset_kwargs": {"data_files": {"test": str(prep.data_file)}}}


def jsonable(value: Any) -> Any:
    """A JSON-safe copy of a config: callables become `module:qualname`."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Callable):
        return f"{getattr(value, '__module__', '?')}:{getattr(value, '__qualname__', repr(value))}"
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def make_lm(model, tokenizer, batch_size: int, max_length: int | None = None, share_prefixes: bool = False):
    """Wrap an already-loaded transformers model in lm-eval's hf backend (on the CPU); with
    `share_prefixes`, the variant that evaluates each shared context once (`hfprefix`)."""
    from lm_eval.models.huggingface import HFLM

    from ..backends import SharedPrefixHFLM

    cls = SharedPrefixHFLM if share_prefixes else HFLM
    return cls(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device="cpu", max_length=max_length)


@functools.cache
def task_manager():
    """An lm-eval TaskManager without its ~14,000 bundled task files (indexing them takes ~10 s);
    our configs are complete dicts."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_defaults=False)


@functools.cache
def hub_task_manager():
    """lm-eval's TaskManager with its bundled task definitions (indexing them takes ~8 s)."""
    from lm_eval.tasks import TaskManager

    return TaskManager()


def lm_eval_request(prep: PreparedTask, chat: bool) -> tuple[list, dict[str, list[int]], Any]:
    """The tasks, chosen items per task and TaskManager `simple_evaluate` gets for `prep`: the
    config over the local documents (embedded), or lm-eval's task(s) on Hub data (standard)."""
    if prep.spec is None:
        return [task_config(prep, chat)], {prep.bench.name: prep.indices}, task_manager()
    if isinstance(prep.spec, dict):  # the benchmark's own definition on lm-eval's data (code tasks)
        spec = {**prep.spec, **(prep.bench.chat_overrides if chat else {})}
        return [spec], prep.samples, task_manager()
    return list(prep.samples), prep.samples, hub_task_manager()  # lm-eval's subtasks that have items


def run_task(lm, prep: PreparedTask, seed: int, apply_chat_template: bool = False) -> tuple[dict, list[dict]]:
    """Evaluate one prepared task; returns its result record and per-sample rows."""
    from lm_eval import simple_evaluate

    bench = prep.bench
    tasks, samples, manager = lm_eval_request(prep, apply_chat_template)
    start = time.perf_counter()
    out = simple_evaluate(
        model=lm, tasks=tasks, samples=samples,
        log_samples=True, bootstrap_iters=1000, apply_chat_template=apply_chat_template,
        random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed,
        verbosity="WARNING", task_manager=manager,
    )
    seconds = time.perf_counter() - start
    hub = prep.spec is not None
    rows = [sample_row(s, bench.metric, leaf if hub else None) for leaf in samples
            for s in out["samples"][leaf] if s["filter"] == bench.metric_filter]
    if len(rows) != len(prep.indices):
        raise RuntimeError(f"{bench.name}: {len(rows)} samples logged for {len(prep.indices)} items")
    if len(samples) == 1:
        (leaf,) = samples
        metrics, config = out["results"][leaf], out["configs"][leaf]
        key = f"{bench.metric},{bench.metric_filter}"
        if key not in metrics:
            raise KeyError(f"{bench.name}: lm-eval reported no {key!r}; it reported {sorted(metrics)}")
        raw, stderr = float(metrics[key]), metrics.get(f"{bench.metric}_stderr,{bench.metric_filter}")
        extra = extra_metrics(config, metrics, bench)
    else:  # several subtasks (MMLU's subjects): the mean over all items, as lm-eval's size-weighted group
        metrics = {leaf: out["results"][leaf] for leaf in samples}
        config = {leaf: out["configs"][leaf] for leaf in samples}
        raw, stderr = mean_and_stderr([r["value"] for r in rows])
        extra = {}
    record = {
        "task": bench.name, "pillar": bench.pillar, "metric": bench.metric,
        "filter": bench.metric_filter, "raw": raw,
        "stderr": float(stderr) if isinstance(stderr, (int, float)) else None,
        "score": bench.score(raw) if bench.score else raw,
        "baseline": prep.baseline, "n": len(rows), "n_total": prep.n_total,
        "item_ids": prep.item_ids, "data_sha256": prep.data_sha256, "pack": "hub" if hub else bench.pack,
        "lm_eval_task": bench.lm_eval_task if hub else None,
        "seconds": round(seconds, 2), "all_metrics": jsonable(metrics), "extra_metrics": extra,
        "config": jsonable(config),
        "n_fewshot": ({leaf: out.get("n-shot", {}).get(leaf) for leaf in samples} if hub
                      else out.get("n-shot", {}).get(bench.name)),
        "apply_chat_template": apply_chat_template,
    }
    record["outputs_sha256"] = artifacts.outputs_digest(rows)
    return record, rows


def mean_and_stderr(values: list[float]) -> tuple[float, float | None]:
    """Mean and standard error of the mean (sample standard deviation, as lm-eval's mean_stderr)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    return mean, (sum((v - mean) ** 2 for v in values) / (n - 1) / n) ** 0.5


def extra_metrics(config: dict, metrics: dict, bench) -> dict[str, float | None]:
    """The task's metrics besides the primary one (e.g. BBQ's accuracy per context condition),
    under the primary metric's filter; None where lm-eval reported NaN (no items of a kind)."""
    out = {}
    for entry in config.get("metric_list") or ():
        name = entry.get("metric")
        value = metrics.get(f"{name},{bench.metric_filter}")
        if isinstance(name, str) and name != bench.metric and isinstance(value, (int, float)):
            out[name] = None if value != value else float(value)
    return out


def sample_row(sample: dict, metric: str, task: str | None = None) -> dict:
    """The per-item log kept with a run: ids, prompt, target, response (after the task's filters), the
    generated text before them (generative tasks) and the metric. Documents
    from the Hub (`task` given) have no item_id: theirs is `<lm-eval task>/<document index>`."""
    first_args = sample["arguments"][0]
    prompt = first_args[0] if isinstance(first_args, (list, tuple)) else first_args
    item_id = sample["doc"]["item_id"] if task is None else f"{task}/{sample['doc_id']}"
    row = {
        "doc_id": sample["doc_id"], "item_id": item_id, "prompt": prompt,
        "target": jsonable(sample["target"]), "response": jsonable(sample["filtered_resps"]),
        "value": float(sample[metric]),
    }
    if isinstance(first_args, (list, tuple)) and len(first_args) > 1 and isinstance(first_args[1], dict):
        row["generated"] = [r[0] for r in sample["resps"]]  # the text before the task's filters (re-scoring)
    return row


def lm_eval_version() -> str:
    import importlib.metadata as md

    return md.version("lm_eval")


def save_task(run_path: Path, record: dict, rows: list[dict]) -> None:
    artifacts.write_jsonl(paths.samples_file(run_path, record["task"]), rows)
    artifacts.write_json(paths.task_file(run_path, record["task"]), record)
