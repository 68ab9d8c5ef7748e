"""Evaluate stage: prepared tasks through lm-evaluation-harness on a model loaded once.

The only module that imports lm_eval. Each benchmark's config starts from lm-eval's
own task definition (its YAML in the installed package) and is re-pointed at the
verified local documents; the chosen items go to `simple_evaluate(samples=...)`.
Each finished task is written at once (`tasks/<name>.json`, `samples/<name>.jsonl`),
so an interrupted run restarts where it stopped.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import time
from pathlib import Path
from typing import Any, Callable

from . import artifacts, paths
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


def task_config(prep: PreparedTask, chat: bool = False) -> dict:
    """lm-eval task config for a prepared task (a dict `simple_evaluate` accepts); `chat`
    adds the benchmark's settings for chat-formatted prompts (lm-eval's *_instruct variants)."""
    bench = prep.bench
    cfg: dict[str, Any] = {}
    if bench.lm_eval_yaml:
        from lm_eval.tasks._yaml_loader import load_yaml

        cfg = load_yaml(lm_eval_tasks_dir() / bench.lm_eval_yaml)
    for key in DATA_KEYS:
        cfg.pop(key, None)
    cfg.update(bench.overrides, num_fewshot=bench.num_fewshot)
    if chat:
        cfg.update(bench.chat_overrides)
    cfg.update(task=bench.name, dataset_path="json", test_split="test",
               dataset_kwargs={"data_files": {"test": str(prep.data_file)}})
    return cfg


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


def make_lm(model, tokenizer, batch_size: int, max_length: int | None = None):
    """Wrap an already-loaded transformers model in lm-eval's hf backend (on the CPU)."""
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device="cpu",
                max_length=max_length)


@functools.cache
def task_manager():
    """An lm-eval TaskManager without its ~14,000 bundled task files (indexing them takes ~10 s);
    our configs are complete dicts."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_defaults=False)


def run_task(lm, prep: PreparedTask, seed: int, apply_chat_template: bool = False) -> tuple[dict, list[dict]]:
    """Evaluate one prepared task; returns its result record and per-sample rows."""
    from lm_eval import simple_evaluate

    bench = prep.bench
    start = time.perf_counter()
    out = simple_evaluate(
        model=lm, tasks=[task_config(prep, apply_chat_template)], samples={bench.name: prep.indices},
        log_samples=True, bootstrap_iters=1000, apply_chat_template=apply_chat_template,
        random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed,
        verbosity="WARNING", task_manager=task_manager(),
    )
    seconds = time.perf_counter() - start
    metrics = out["results"][bench.name]
    key = f"{bench.metric},{bench.metric_filter}"
    if key not in metrics:
        raise KeyError(f"{bench.name}: lm-eval reported no {key!r}; it reported {sorted(metrics)}")
    raw = float(metrics[key])
    stderr = metrics.get(f"{bench.metric}_stderr,{bench.metric_filter}")
    rows = [sample_row(s, bench.metric) for s in out["samples"][bench.name]
            if s["filter"] == bench.metric_filter]
    record = {
        "task": bench.name, "pillar": bench.pillar, "metric": bench.metric,
        "filter": bench.metric_filter, "raw": raw,
        "stderr": float(stderr) if isinstance(stderr, (int, float)) else None,
        "score": bench.score(raw) if bench.score else raw,
        "baseline": prep.baseline, "n": len(rows), "n_total": prep.n_total,
        "item_ids": prep.item_ids, "data_sha256": prep.data_sha256, "pack": bench.pack,
        "seconds": round(seconds, 2), "all_metrics": jsonable(metrics),
        "extra_metrics": extra_metrics(out["configs"][bench.name], metrics, bench),
        "config": jsonable(out["configs"][bench.name]),
        "n_fewshot": out.get("n-shot", {}).get(bench.name),
        "apply_chat_template": apply_chat_template,
    }
    if len(rows) != len(prep.indices):
        raise RuntimeError(f"{bench.name}: {len(rows)} samples logged for {len(prep.indices)} items")
    record["outputs_sha256"] = outputs_digest(rows)
    return record, rows


def extra_metrics(config: dict, metrics: dict, bench) -> dict[str, float | None]:
    """The task's metrics besides the primary one (e.g. BBQ's accuracy per context condition),
    under the primary metric's filter; None where lm-eval reported NaN (no items of a kind)."""
    out = {}
    for entry in config.get("metric_list") or ():
        value = metrics.get(f"{entry['metric']},{bench.metric_filter}")
        if entry["metric"] != bench.metric and isinstance(value, (int, float)):
            out[entry["metric"]] = None if value != value else float(value)
    return out


def outputs_digest(rows: list[dict]) -> str:
    """SHA-256 of the per-item outputs (item id, response, value): equal runs have equal digests."""
    canon = [{"item_id": r["item_id"], "response": r["response"], "value": r["value"]} for r in rows]
    return hashlib.sha256(artifacts.dumps(canon).encode()).hexdigest()


def sample_row(sample: dict, metric: str) -> dict:
    """The per-item log kept with a run: ids, prompt, target, response and the metric."""
    first_args = sample["arguments"][0]
    prompt = first_args[0] if isinstance(first_args, (list, tuple)) else first_args
    return {
        "doc_id": sample["doc_id"], "item_id": sample["doc"]["item_id"], "prompt": prompt,
        "target": jsonable(sample["target"]), "response": jsonable(sample["filtered_resps"]),
        "value": float(sample[metric]),
    }


def lm_eval_version() -> str:
    import importlib.metadata as md

    return md.version("lm_eval")


def save_task(run_path: Path, record: dict, rows: list[dict]) -> None:
    artifacts.write_jsonl(run_path / "samples" / f"{record['task']}.jsonl", rows)
    artifacts.write_json(run_path / "tasks" / f"{record['task']}.json", record)

