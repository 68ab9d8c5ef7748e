"""One evaluate-stage run: the resumable task loop, energy per task, edge metrics, the results.

Reads the run's model card; writes each task's record and per-item log as it finishes (so a
restarted run skips finished tasks), the edge figures, and finally the results with everything
the aggregate stage needs and the provenance (file names: `slmlib.paths`). Progress: a live bar of
tasks, and one `[evaluate]` line per task with its result and time, which is what the executed
notebook keeps (the runner removes every bar's refreshes from it).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .. import artifacts, backends, datapacks, paths, provenance, weights as wts
from ..params import DEFAULT_DECODE_BATCH, parse_shard
from . import edge, energy, harness, standard, suites
from ..benchmarks import get_benchmark
from .suites import PreparedTask


def backend_of(p, card: dict) -> str:
    """The backend that evaluates the card's weights: `p.backend`, with "auto" resolved to
    llama.cpp for GGUF weights without an adapter and transformers otherwise."""
    gguf, adapter = card["weights"]["kind"] == "gguf", bool(card.get("adapter"))
    if p.backend == "llamacpp" and (not gguf or adapter):
        why = "a LoRA adapter" if adapter else f"{card['weights']['kind']} weights, not a GGUF file"
        raise ValueError(f"backend: llamacpp cannot evaluate {card['model_id']} ({why}); use backend: hf or auto")
    if p.backend == "auto":
        return "llamacpp" if gguf and not adapter else "hf"
    return p.backend


def settings_of(p, card: dict) -> dict:
    """The settings that change scores; recorded with each task and the run. The hf backend's
    numbers depend on its dtype; llama.cpp's on the file (the card's weights) and its version. A run cut
    into slices of at most `shard_size` items on a cluster records it: a slice starts from an empty cache
    and other neighbours, which moved CrowS-Pairs log-likelihoods by up to 1e-2 nats (docs/cluster.md)."""
    backend = backend_of(p, card)
    common = {"apply_chat_template": p.apply_chat_template, "seed": p.seed,
              **({"shard_size": p.shard_size} if p.cluster and p.shard_size else {})}
    if backend == "hf":
        if p.decode_batch > 1:
            raise ValueError(f"decode_batch: {p.decode_batch} applies to the llama.cpp backend, but {card['model_id']} "
                             "is evaluated by transformers (backend hf); leave decode_batch 1")
        return {"backend": "hf", "dtype": p.dtype, "batch_size": p.batch_size, "shared_prefixes": True, **common}
    batch = decode_batch_of(p)
    return {"backend": "llamacpp", "format": card.get("quantization"),
            "llama_cpp_python": backends.library_version(), **common,
            **({"decode_batch": batch} if batch > 1 else {})}  # 1: as the runs before batched decoding


def decode_batch_of(p) -> int:
    """The llama.cpp decode batch of `p`: its own, or DEFAULT_DECODE_BATCH for 0 (auto)."""
    return p.decode_batch or DEFAULT_DECODE_BATCH


def llamacpp_threads() -> int:
    """The cores this process may use, less those other processes keep busy right now (chosen again
    before each task: a job that was busy when the run started may have ended). llama.cpp's
    threads wait for each other by spinning, so a thread sharing its core stalls every step:
    ARC-Challenge took 113 s with 2 threads and 18 s with 1 on a busy 2-core machine. Results do
    not depend on the count (identical log-likelihoods with 1 and 2)."""
    cores = provenance.usable_cores()
    return max(1, min(cores, int(cores - busy_cores() + 0.5)))


def run_threads(p) -> int:
    """llama.cpp's (and torch's) threads for the next task: `p.threads`, or the cores idle now when it is 0."""
    return p.threads or llamacpp_threads()


def busy_cores(seconds: float = 0.5) -> float:
    """How many cores other processes use, from /proc/stat over `seconds` (this process sleeps)."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # all ticks, idle + iowait ticks

    (total0, idle0), _, (total1, idle1) = sample(), time.sleep(seconds), sample()
    if total1 <= total0:
        return 0.0
    return (1 - (idle1 - idle0) / (total1 - total0)) * (os.cpu_count() or 1)


def uses_chat_template(mode: bool | str, card: dict, bench) -> bool:
    """Whether a task's prompts go through the model's chat template.

    "auto": only generative tasks of instruct models (`model_type`) that have a template (multiple
    choice by log-likelihood is scored on raw text); True/False: every task or none.
    """
    has_template = bool(card.get("has_chat_template"))
    if mode is True and not has_template:
        raise ValueError(f"apply_chat_template: {card['model_id']} has no chat template; "
                         "use false or \"auto\"")
    if mode == "auto":
        instruct = card.get("model_type") == "instruct"
        return bench.generative and instruct and has_template
    return bool(mode)


def finished_record(run_path: Path, prep: PreparedTask, settings: dict) -> dict | None:
    """The saved record of a task already evaluated with the same items and settings."""
    path = paths.task_file(run_path, prep.bench.name)
    if not path.exists() or not paths.samples_file(run_path, prep.bench.name).exists():
        return None
    record = artifacts.read_json(path)
    same = record.get("item_ids") == prep.item_ids and record.get("settings") == settings
    return record if same else None


def prepare_tasks(p, pillars: list[str] | None = None) -> list[PreparedTask]:
    """The run's tasks of `pillars` (the card's categories; None: all) with their chosen items (generative
    tasks use `limit_generative`; `p.shard` keeps one slice of them). The standard suite first checks that the
    Hub is reachable: offline it fails within seconds."""
    names = suites.suite_tasks(p.suite, p.tasks, pillars)
    if p.suite == "standard":  # never sharded (params.validate)
        if any(get_benchmark(n).lm_eval_task for n in names):
            wts.require_hub("suite: standard", standard.STANDARD_FIX)
        return [standard.prepare_standard(name, p.limit_for(get_benchmark(name).generative), p.seed) for name in names]
    shard = parse_shard(p.shard)
    return [suites.prepare_task(name, p.limit_for(get_benchmark(name).generative), p.seed, shard) for name in names]


def evaluate_run(p, card: dict, run_path: Path, progress: bool = True) -> dict:
    """Evaluate every task of the run's suite on the card's model; write and return results.

    The model is loaded once; tasks already finished in `run_path` with the same items and
    settings are kept, so an interrupted run resumes.
    """
    import torch
    from tqdm import tqdm

    if p.suite != "standard":  # the standard suite loads its data from the Hub
        harness.set_offline_env()
    started = time.time()
    settings = settings_of(p, card)
    prepared = prepare_tasks(p, card.get("categories"))
    records = {prep.bench.name: rec for prep in prepared
               if (rec := finished_record(run_path, prep, settings))}
    todo = [prep for prep in prepared if prep.bench.name not in records]
    if records:
        print(f"[evaluate] {len(records)} of {len(prepared)} tasks kept from an earlier run with the same items "
              f"and settings: {', '.join(records)}", flush=True)
    weights = wts.Weights(**card["weights"])
    edge_path = paths.edge_file(run_path)
    if todo:
        torch.manual_seed(p.seed)
        if p.threads:
            torch.set_num_threads(p.threads)
        lm, tokenizer, load_s, generate_seconds = load_backend(settings["backend"], p, card, weights)
        llama = settings["backend"] == "llamacpp"
        bar = tqdm(todo, desc="tasks", unit="task", disable=not progress)
        for prep in bar:
            name = prep.bench.name
            bar.set_postfix_str(f"{name} ({len(prep.indices)} items)")
            chat = uses_chat_template(p.apply_chat_template, card, prep.bench)
            if llama:  # the cores idle now: another job may have started or ended since the last task
                lm.set_threads(run_threads(p))
                lm.reset()  # no cells of the previous task: a task's bits do not depend on what ran before it
            with energy.track(p.energy_country) as used:
                record, rows = harness.run_task(lm, prep, p.seed, chat)
            record.update(settings=settings, energy=used, **({"threads": lm.threads} if llama else {}))
            harness.save_task(run_path, record, rows)
            records[name] = record
            print(f"[evaluate] {len(records)}/{len(prepared)} {name}: {record['metric']} = "
                  f"{record['raw']:.3f} on {record['n']} items in {record['seconds']:.0f} s"
                  + (f" ({lm.threads} thread{'s' * (lm.threads != 1)})" if llama else ""), flush=True)
        bar.close()
        print(f"[evaluate] {len(todo)} task{'s' * (len(todo) != 1)} evaluated in {time.time() - started:.0f} s",
              flush=True)
        if p.edge:
            if llama:
                lm.set_threads(run_threads(p))
            print("[evaluate] measuring edge metrics (time to first token, tokens/s)", flush=True)
            cold = wts.conversion_seconds(weights) if settings["backend"] == "hf" else None
            figures = {"load_seconds": round(load_s, 3), "cold_load_seconds": cold,
                       "size_bytes": size_bytes(card),
                       **edge.measure_edge(generate_seconds, tokenizer, card.get("context_length")),
                       "backend": settings["backend"],
                       **({"dtype": p.dtype} if settings["backend"] == "hf" else
                          {"format": settings["format"], "threads": lm.threads}),
                       "system": provenance.system_info()}
            artifacts.write_json(edge_path, figures)
        if llama:
            lm.close()
    return write_results(p, card, run_path, [prep.bench.name for prep in prepared], records, started)


def write_results(p, card: dict, run_path: Path, tasks: list[str], records: dict[str, dict], started: float) -> dict:
    """The run's record (`results.json`) from its finished task records (in `tasks`' order), the edge figures in
    the run folder and this machine's provenance; written and returned. Both the evaluate notebook and a
    cluster's client (from what its units returned) end a run with it."""
    edge_path = paths.edge_file(run_path)
    results = {
        "schema_version": 1, "run_id": run_path.name, "model_id": card["model_id"], "model_card": card,
        "suite": p.suite, "limit": p.limit, "limit_generative": p.limit_generative, "seed": p.seed,
        "settings": settings_of(p, card), "tasks": {name: records[name] for name in tasks},
        "adapter": adapter_record(card),
        "edge": artifacts.read_json(edge_path) if edge_path.exists() else {"size_bytes": size_bytes(card)},
        "energy": energy.total([r.get("energy") for r in records.values()]),
        "provenance": {**provenance.collect(), "machine_id": provenance.machine_id(),
                       "data_packs": datapacks.pack_manifest()},
        "started_at": _iso(started), "finished_at": _iso(time.time()),
        "wall_seconds": round(time.time() - started, 1),
    }
    artifacts.write_json(paths.results_file(run_path), results)
    return results


def load_backend(backend: str, p, card: dict, weights: wts.Weights):
    """The lm-eval model for the run (loaded once), its tokenizer, the load time and the edge
    metrics' `generate_seconds`."""
    if backend == "llamacpp":
        tokenizer = wts.load_tokenizer(weights)
        start = time.perf_counter()
        lm = backends.LlamaCppLM(weights.path, tokenizer, max_length=card["context_length"],
                                 threads=run_threads(p), decode_batch=decode_batch_of(p))
        print(f"[evaluate] llama.cpp {backends.library_version()}: {Path(weights.path).name} "
              f"({card.get('quantization')}), {lm.threads} threads", flush=True)
        return lm, tokenizer, time.perf_counter() - start, edge.llamacpp_generator(lm)
    location, _ = wts.model_dir(weights)
    model, tokenizer, load_s = wts.load_model(location, p.dtype, weights.revision)
    if card.get("adapter"):
        model, adapter_s = wts.apply_adapter(model, card["adapter"])
        print(f"[evaluate] LoRA adapter {card['adapter']['path']} applied and merged in {adapter_s:.1f} s",
              flush=True)
    lm = harness.make_lm(model, tokenizer, p.batch_size, share_prefixes=True)
    return lm, tokenizer, load_s, edge.hf_generator(model, tokenizer)


def size_bytes(card: dict) -> int | None:
    """Size on disk of what is evaluated: the weights, plus the adapter's files."""
    base, adapter = card["weights"].get("size_bytes"), card.get("adapter")
    return base + adapter["size_bytes"] if base is not None and adapter else base


def adapter_record(card: dict) -> dict | None:
    """The LoRA adapter a run applied (folder, SHA-256, rank, targets) and how: peft's version, merged."""
    import importlib.metadata as md

    if not card.get("adapter"):
        return None
    return {**card["adapter"], "peft_version": md.version("peft"), "merged": True}


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def results_frame(results: dict):
    """Per-task table for display: pillar, task, metric, raw, stderr, baseline (3 decimals, as the site
    shows them), n."""
    import pandas as pd

    def three(x):  # the site's f"{x:.3f}" (pandas' round would halve to even); None and text as they are
        return float(f"{x:.3f}") if isinstance(x, (int, float)) and not isinstance(x, bool) else x

    rows = [{"pillar": r["pillar"], "task": t, "metric": r["metric"], "raw": three(r["raw"]),
             "stderr": three(r["stderr"]), "baseline": three(r["baseline"]), "n": r["n"]}
            for t, r in results["tasks"].items()]
    return pd.DataFrame(rows).sort_values(["pillar", "task"]).reset_index(drop=True)


def cost_frame(results: dict):
    """Per-task time and energy estimate (this machine; informational), with units and the site's decimals."""
    import pandas as pd

    from ..publish import fmt_figure

    rows = []
    for t, r in sorted(results["tasks"].items()):
        e = r.get("energy") or {}
        rows.append({"task": t, "items": r["n"], "time (s)": round(r["seconds"]),
                     "energy (Wh)": fmt_figure("energy_wh", e["kwh"] * 1000 if e.get("kwh") is not None else None),
                     "CO\u2082 (g)": fmt_figure("co2_g", e["co2_kg"] * 1000 if e.get("co2_kg") is not None else None)})
    return pd.DataFrame(rows, columns=["task", "items", "time (s)", "energy (Wh)", "CO\u2082 (g)"])
