"""`make bench`: how fast each backend scores and decodes on this machine (a measurement, not a test).

The multiple-choice requests of the default suite (`agreement.build_requests`, a small limit) go
through lm-eval's hf backend (float32 at batch 8 and 32, bfloat16 at batch 8), the study's hf
backend with shared prefixes (`hfprefix`, float32 at batch 8) and the llama.cpp backend (F16, the
default, the shipped Q4_1 file, BF16 and F32 conversions with prefix reuse, and F16 without it to
show what reuse buys), each configuration in a fresh process so that its peak memory is its own.
Greedy decoding is timed afterwards in paired rounds (every decoding configuration once per
round, one after another) so that a slow minute on a shared machine hits a round's baseline and
default alike: the report gives each configuration's median over the rounds, its range, and the
median of the per-round ratios; decoding is set against its ceiling, the measured memory read
bandwidth over the bytes of weights read per token. Reads the model and the pinned data;
`write_bench` writes docs/bench.json and docs/bench.md.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable

from . import agreement
from .. import artifacts, backends, evaluate, paths, provenance, weights as wts

CONFIGS = {  # name -> backend settings; "decode": also measure greedy decoding
    "hf float32 b8": {"backend": "hf", "dtype": "float32", "batch_size": 8, "decode": True},
    "hf float32 b32": {"backend": "hf", "dtype": "float32", "batch_size": 32},
    "hf bfloat16 b8": {"backend": "hf", "dtype": "bfloat16", "batch_size": 8, "decode": True},
    "hf float32 b8 shared": {"backend": "hf", "dtype": "float32", "batch_size": 8, "share_prefixes": True},
    "llama.cpp F16": {"backend": "llamacpp", "format": "F16", "decode": True},
    "llama.cpp Q4_1": {"backend": "llamacpp", "format": "Q4_1", "decode": True},
    "llama.cpp BF16": {"backend": "llamacpp", "format": "BF16", "decode": True},
    "llama.cpp F32": {"backend": "llamacpp", "format": "F32", "decode": True},
    "llama.cpp F16 no reuse": {"backend": "llamacpp", "format": "F16", "prefix_reuse": False},
}
BASELINE = "hf float32 b8"  # raw lm-eval, the study's reference
DEFAULT = "llama.cpp F16"  # the study's default configuration (the default model's first quantization)
LIMIT = 20  # items per multiple-choice task: the whole bench (3 rounds) took 24.0 minutes on 2 quiet cores
DECODE_PROMPT, DECODE_NEW = 100, 128  # greedy decoding: prompt tokens, new tokens
ROUNDS = 5  # decoding rounds, each a fresh process per configuration timing one decode after a warm-up
BATCHED = "llama.cpp F16"  # the configuration whose batched decoding is timed
DECODE_BATCHES = (1, 4, 8, 16, 24)  # sequences decoded together (1: one at a time, `LlamaCppLM.greedy`)
CEILING_TOKENS = 512  # the compute ceiling: one prompt of this many tokens evaluated in one llama_decode
BANDWIDTH_BYTES = 2**30  # array size for the bandwidth measurement (far above any cache)
OUT_DIR = paths.REPO_ROOT / "docs"


def in_child(fn: Callable, *args):
    """`fn(*args)` in a fresh interpreter (spawned), so memory and imports are its own."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def measure_bandwidth(n_bytes: int = BANDWIDTH_BYTES, repeats: int = 5) -> dict:
    """Memory bandwidth in GB/s (medians): read, a sum over `n_bytes` of random floats with torch on
    all cores (as decoding reads weights), and copy, numpy's single-threaded read + write."""
    import numpy as np
    import torch

    a = np.random.default_rng(0).random(n_bytes // 4, dtype=np.float32)
    b = np.empty_like(a)
    t = torch.from_numpy(a)

    def median_seconds(fn) -> float:
        fn()
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - start)
        return statistics.median(runs)

    return {"read_gb_s": round(n_bytes / median_seconds(t.sum) / 1e9, 1),
            "copy_gb_s": round(2 * n_bytes / median_seconds(lambda: np.copyto(b, a)) / 1e9, 1),
            "threads": torch.get_num_threads()}


def open_backend(config: dict, weights: wts.Weights):
    """The lm-eval model of `config`, its tokenizer, token counters, bytes of weights read per
    token, and the edge metrics' `generate_seconds`."""
    if config["backend"] == "hf":
        model, tokenizer, _ = wts.load_model(wts.model_dir(weights)[0], config["dtype"])
        counters = backends.Counters()

        def count(_module, args, kwargs):  # every forward pass: the padded batch of input ids
            counters.evaluated += (args[0] if args else kwargs["input_ids"]).numel()
            counters.decode_calls += 1

        model.register_forward_pre_hook(count, with_kwargs=True)
        weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        lm = evaluate.make_lm(model, tokenizer, config["batch_size"], share_prefixes=config.get("share_prefixes", False))
        return (lm, tokenizer, counters, weight_bytes,
                evaluate.hf_generator(model, tokenizer))
    import gguf

    path = agreement.gguf_in_format(weights, config["format"]).path
    tokenizer = wts.load_tokenizer(weights)
    lm = backends.LlamaCppLM(path, tokenizer, max_length=wts.gguf_metadata(Path(path))["context_length"],
                             threads=evaluate.llamacpp_threads(), prefix_reuse=config.get("prefix_reuse", True))
    weight_bytes = sum(int(t.n_bytes) for t in gguf.GGUFReader(path).tensors)
    return lm, tokenizer, lm.counters, weight_bytes, evaluate.llamacpp_generator(lm)


def run_config(config: dict, weights: wts.Weights, tasks: list[str], limit: int, seed: int) -> dict:
    """One configuration (in its own process): score every task's requests; times, token counts,
    threads, the chosen answers, peak memory."""
    import torch

    evaluate.set_offline_env()
    load_average = os.getloadavg()[0]
    requests = {n: agreement.build_requests(n, limit, seed)[1] for n in tasks}
    start = time.perf_counter()
    lm, _, counters, _, _ = open_backend(config, weights)
    load_seconds = time.perf_counter() - start
    wall, answers = 0.0, {}
    for n, reqs in requests.items():
        start = time.perf_counter()
        lls = agreement.loglikelihoods(lm, reqs)
        wall += time.perf_counter() - start
        answers[n] = {d: int(v.argmax()) for d, v in agreement.scores_by_item(reqs, lls).items()}
    evaluated = counters.evaluated
    requested = sum(len(lm.tok_encode(r.args[0] + r.args[1])) for reqs in requests.values() for r in reqs)
    return {"config": config, "requests": sum(map(len, requests.values())), "requested_tokens": requested,
            "evaluated_tokens": evaluated, "wall_seconds": round(wall, 2), "load_seconds": round(load_seconds, 2),
            "peak_rss_mb": evaluate.peak_rss_mb(), "load_average_1min": load_average, "answers": answers,
            "threads": lm.threads if config["backend"] == "llamacpp" else torch.get_num_threads(),
            "decode": None}


def decode_config(config: dict, weights: wts.Weights) -> tuple[float, int]:
    """One configuration's greedy decoding (in its own process): tokens/s of DECODE_NEW new tokens
    after a DECODE_PROMPT-token prompt, and the bytes of weights read per token."""
    evaluate.set_offline_env()
    _, tokenizer, _, weight_bytes, generate_seconds = open_backend(config, weights)
    figures = evaluate.measure_edge(generate_seconds, tokenizer, None, lengths=(DECODE_PROMPT,),
                                decode_tokens=DECODE_NEW, repeats=1)
    return figures["decode_tokens_per_s"], weight_bytes


def decode_rounds(configs: dict, weights: wts.Weights, rounds: int, log: Callable[[str], None]) -> dict:
    """Decoding of every configuration with "decode", once per round in fresh processes: per
    configuration the tokens/s of each round, their median, and the median of its per-round ratios
    to BASELINE (a round's figures are minutes apart, so they share the machine's state)."""
    names = [n for n, c in configs.items() if c.get("decode")]
    figures: dict[str, list[float]] = {n: [] for n in names}
    weight_bytes = {}
    for k in range(rounds):
        for name in names:
            tokens_per_s, weight_bytes[name] = in_child(decode_config, configs[name], weights)
            figures[name].append(tokens_per_s)
        log(f"decoding round {k + 1}/{rounds}: " + ", ".join(f"{n} {figures[n][-1]}" for n in names))
    base = figures.get(BASELINE)
    return {n: {"tokens_per_s": statistics.median(f), "rounds": f, "weight_bytes": weight_bytes[n],
                "prompt_tokens": DECODE_PROMPT, "new_tokens": DECODE_NEW,
                "ratio_to_baseline": round(statistics.median(a / b for a, b in zip(f, base)), 2) if base else None}
            for n, f in figures.items()}


def batched_round(config: dict, weights: wts.Weights, batches=DECODE_BATCHES) -> dict:
    """One round of batched greedy decoding (in its own process): for each decode batch B, B prompts of
    DECODE_PROMPT tokens (no shared prefix) continued together by DECODE_NEW new tokens, and again by 1
    token; the difference of the two times is decoding alone (prefill and set-up cancel out), giving
    tokens/s in total and per sequence. And the compute ceiling: tokens/s of one CEILING_TOKENS-token
    prompt evaluated at once (every matrix product as large as llama.cpp makes it)."""
    evaluate.set_offline_env()
    lm, _, _, _, _ = open_backend(config, weights)
    reqs = [r for reqs in (agreement.build_requests(n, 40, 1234)[1] for n in ("hellaswag", "mmlu")) for r in reqs]
    stream = [t for text in sorted({r.args[0] for r in reqs}) for t in lm.tok_encode(text)]
    pool = [stream[k:k + DECODE_PROMPT] for k in range(0, len(stream) - DECODE_PROMPT + 1, DECODE_PROMPT)]
    if len(pool) < max(batches):
        raise RuntimeError(f"bench: {len(pool)} prompts of {DECODE_PROMPT} tokens, {max(batches)} needed")
    long = stream[:CEILING_TOKENS]
    lm.logits(long, [len(long) - 1])  # warm-up
    lm.reset()
    start = time.perf_counter()
    lm.logits(long, [len(long) - 1])
    ceiling = len(long) / (time.perf_counter() - start)

    def seconds(b: int, new: int) -> float:
        lm.reset()
        prompts = [(ids, [], new) for ids in pool[:b]]
        start = time.perf_counter()
        out = ([lm.greedy(ids, n, eog=False) for ids, _, n in prompts] if b == 1
               else list(lm.greedy_batched(prompts, eog=False).values()))  # every sequence `new` tokens
        assert sum(map(len, out)) == b * new
        return time.perf_counter() - start

    out = {}
    for b in batches:
        lm.decode_batch = b
        decoding = seconds(b, DECODE_NEW) - seconds(b, 1)
        tokens = b * (DECODE_NEW - 1)
        out[b] = {"tokens": tokens, "seconds": round(decoding, 2), "tokens_per_s": round(tokens / decoding, 1),
                  "per_sequence_tokens_per_s": round(tokens / decoding / b, 1)}
    lm.close()
    return {"ceiling_tokens_per_s": round(ceiling, 1), "batches": out, "threads": lm.threads}


def batched_rounds(weights: wts.Weights, rounds: int, log: Callable[[str], None]) -> dict:
    """BATCHED's batched decoding over `rounds` fresh processes: per B the median tokens/s (total, per
    sequence), the median per-round ratio to one at a time (B=1), and the share of the round's compute
    ceiling."""
    done = []
    for k in range(rounds):
        done.append(in_child(batched_round, CONFIGS[BATCHED], weights))
        log(f"batched decoding round {k + 1}/{rounds}: " + ", ".join(
            f"B={b} {r['tokens_per_s']}" for b, r in done[-1]["batches"].items()) + f"; ceiling {done[-1]['ceiling_tokens_per_s']}")
    ceiling = statistics.median(r["ceiling_tokens_per_s"] for r in done)
    rows = {}
    for b in DECODE_BATCHES:
        totals = [r["batches"][b]["tokens_per_s"] for r in done]
        rows[str(b)] = {"tokens_per_s": statistics.median(totals), "rounds": totals,
                        "per_sequence_tokens_per_s": round(statistics.median(totals) / b, 1),
                        "ratio_to_one": round(statistics.median(t / r["batches"][1]["tokens_per_s"]
                                                                for t, r in zip(totals, done)), 2),
                        "share_of_ceiling": round(statistics.median(t / r["ceiling_tokens_per_s"]
                                                                    for t, r in zip(totals, done)), 3)}
    return {"config": BATCHED, "prompt_tokens": DECODE_PROMPT, "new_tokens": DECODE_NEW, "rounds": rounds,
            "ceiling_tokens_per_s": ceiling, "ceiling_rounds": [r["ceiling_tokens_per_s"] for r in done],
            "threads": done[0]["threads"], "batches": rows}


def run_bench(limit: int = LIMIT, seed: int = 1234, configs: dict = CONFIGS, rounds: int = ROUNDS,
              command: str = "python -m slmlib bench", log: Callable[[str], None] = lambda _: None) -> dict:
    """Every configuration in its own process, the bandwidth, and the comparison with BASELINE;
    `command` is recorded as what produced the report."""
    evaluate.set_offline_env()
    started = time.time()
    weights = agreement.default_weights()
    tasks, _ = agreement.embedded_tasks(None)
    wts.model_dir(weights)  # one-time conversions happen here, outside any timing
    for config in configs.values():
        if config["backend"] == "llamacpp":
            agreement.gguf_in_format(weights, config["format"])
    load_start = os.getloadavg()
    log("measuring memory bandwidth")
    first = in_child(measure_bandwidth)
    results = {}
    batched = batched_rounds(weights, rounds, log) if BATCHED in configs else None
    for name, config in configs.items():
        log(f"{name}: scoring {len(tasks)} tasks at limit {limit}")
        results[name] = in_child(run_config, config, weights, tasks, limit, seed)
        log(f"{name}: {results[name]['wall_seconds']} s")
    for name, decode in decode_rounds(configs, weights, rounds, log).items():
        results[name]["decode"] = decode
    last = in_child(measure_bandwidth)
    # the ceiling's bandwidth: the higher read figure (other processes only ever lower it)
    bandwidth = {"read_gb_s": max(first["read_gb_s"], last["read_gb_s"]), "start": first, "end": last}
    answers = {name: r.pop("answers") for name, r in results.items()}
    base, items = results[BASELINE], sum(len(a) for a in answers[BASELINE].values())
    for name, r in results.items():
        same = sum(answers[name][t][d] == a for t, by_doc in answers[BASELINE].items() for d, a in by_doc.items())
        r.update(tokens_per_s=round(r["requested_tokens"] / r["wall_seconds"], 1),
                 speedup=round(base["wall_seconds"] / r["wall_seconds"], 2), same_answers=round(same / items, 4))
        if r["decode"]:
            ceiling = bandwidth["read_gb_s"] * 1e9 / r["decode"]["weight_bytes"]
            r["decode"].update(ceiling_tokens_per_s=round(ceiling, 1),
                               share_of_ceiling=round(r["decode"]["tokens_per_s"] / ceiling, 3))
    return {"schema_version": 3, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
            "cpu_kind": cpu_kind(), "batched": batched,
            "command": command, "niceness": os.nice(0), "tasks": tasks, "limit": limit, "seed": seed, "items": items, "rounds": rounds,
            "baseline": BASELINE, "bandwidth": bandwidth, "load_average_start": [round(x, 2) for x in load_start],
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
            "wall_seconds": round(time.time() - started, 1), "provenance": provenance.collect(),
            "llama_cpp_python": backends.library_version(), "configs": results}


def markdown(report: dict) -> str:
    """docs/bench.md: the machine, the command, the scoring table and the decoding table."""
    system, bw, base = report["provenance"]["system"], report["bandwidth"], report["configs"][BASELINE]
    order = [*CONFIGS, *sorted(set(report["configs"]) - set(CONFIGS))]  # the JSON's keys come back sorted
    configs = {n: report["configs"][n] for n in order if n in report["configs"]}
    lines = [
        f"## {report.get('cpu_kind') or system['cpu'] + ' (CPU flags not recorded)'}", "",
        f"Written by `{report['command']}` (niceness {report['niceness']}) on {report['date']}, "
        f"commit {report['provenance']['git_revision']}; do not edit by hand, rerun it. "
        f"Machine: {system['cpu']}, {system['cores']} cores, {system['ram_gb']} GB RAM; memory bandwidth "
        f"{bw['start']['read_gb_s']} GB/s read ({bw['start']['threads']} threads) and {bw['start']['copy_gb_s']} GB/s "
        f"copy (read + write, 1 thread) at the start, {bw['end']['read_gb_s']} and {bw['end']['copy_gb_s']} GB/s "
        f"at the end. Load average (1, 5, 15 min) {report['load_average_start']} at the start, "
        f"{report['load_average_end']} at the end; the whole bench took {report['wall_seconds'] / 60:.1f} min. "
        f"lm-eval {report['provenance']['lm_eval']}, torch {report['provenance']['torch']}, "
        f"llama-cpp-python {report['llama_cpp_python']}.", "",
        f"### Scoring: the {len(report['tasks'])} multiple-choice tasks of the default suite at limit {report['limit']}",
        "",
        f"{report['items']} items, {base['requests']} requests, {base['requested_tokens']:,} tokens "
        f"(seed {report['seed']}; tasks: {', '.join(report['tasks'])}). Tokens/s is requested tokens over "
        "the wall time of scoring (model loading excluded); evaluated tokens are what the model computed "
        "(hf: padded batches; llama.cpp: what the KV cache did not already hold); speed-up and same answers "
        f"(highest-loglikelihood choice per item) are against {BASELINE}; peak RSS is the process's.", "",
        "| configuration | wall s | tokens/s | evaluated tokens | speed-up | same answers | peak RSS MiB | load s "
        "| threads | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(f"| {n} | {r['wall_seconds']:.1f} | {r['tokens_per_s']:,.0f} | {r['evaluated_tokens']:,} | "
          f"{r['speedup']:.2f}x | {100 * r['same_answers']:.1f}% | {r['peak_rss_mb']:,.0f} | {r['load_seconds']:.1f} | "
          f"{r['threads']} | {r['load_average_1min']:.2f} |" for n, r in configs.items()), "",
        f"### Greedy decoding: {DECODE_NEW} new tokens after a {DECODE_PROMPT}-token prompt, "
        f"{report['rounds']} paired rounds", "",
        "Each round times every configuration below once, one after another, each in a fresh process after "
        "a warm-up; decode tokens/s is the median over the rounds (range: the slowest and fastest round) and "
        f"the ratio is the median of the per-round ratios to {BASELINE}. The ceiling is the read bandwidth "
        f"({bw['read_gb_s']} GB/s, the higher of the two) over the bytes of weights read per token (every weight "
        "once: hf, the parameters in their dtype; llama.cpp, the GGUF's tensors).", "",
        "| configuration | weights MB per token | decode tokens/s | range | ratio | ceiling tokens/s | share of ceiling |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(f"| {n} | {d['weight_bytes'] / 1e6:,.0f} | {d['tokens_per_s']:.1f} | {min(d['rounds']):.1f}–"
          f"{max(d['rounds']):.1f} | {d['ratio_to_baseline']:.2f}x | {d['ceiling_tokens_per_s']:.1f} | "
          f"{100 * d['share_of_ceiling']:.0f}% |" for n, d in ((n, r["decode"]) for n, r in configs.items())
          if d),
        *batched_lines(report.get("batched")),
        "", headline(report),
    ]
    return "\n".join(lines) + "\n"


def batched_lines(b: dict | None) -> list[str]:
    """The batched decoding table of a report (none before schema 3)."""
    if not b:
        return []
    return [
        "", f"### Batched greedy decoding ({b['config']}): {b['new_tokens']} new tokens after each "
        f"{b['prompt_tokens']}-token prompt, {b['rounds']} rounds", "",
        "B prompts with no shared prefix are decoded together (`decode_batch`; B = 1 is one at a time), each "
        "round in a fresh process; decoding time is the time of all new tokens less the time of the first "
        "(prefill and set-up cancel out). Total tokens/s is every sequence's new tokens after the first over "
        "that time (median over the rounds); per sequence is that over B; the ratio is the median of the "
        "per-round ratios to B = 1. The compute ceiling is the tokens/s of one "
        f"{CEILING_TOKENS}-token prompt evaluated at once ({b['ceiling_tokens_per_s']:.0f} tokens/s, median of "
        f"{', '.join(f'{x:.0f}' for x in b['ceiling_rounds'])}): decoding B sequences does the same work per "
        f"token, in matrix products B wide instead of {CEILING_TOKENS}. {b['threads']} threads.", "",
        "| B | total tokens/s | range | per sequence tokens/s | ratio to B = 1 | share of compute ceiling |",
        "|---:|---:|---:|---:|---:|---:|",
        *(f"| {n} | {r['tokens_per_s']:.1f} | {min(r['rounds']):.1f}–{max(r['rounds']):.1f} | "
          f"{r['per_sequence_tokens_per_s']:.1f} | {r['ratio_to_one']:.2f}x | {100 * r['share_of_ceiling']:.0f}% |"
          for n, r in sorted(b["batches"].items(), key=lambda kv: int(kv[0]))),  # JSON sorts the keys as text
    ]


def cpu_kind() -> str:
    """This machine's CPU and the features llama.cpp's kernels use, e.g. `AMD EPYC: x86_64 avx2 ... avx512_bf16`:
    speed (and, for some formats, bits) follow from it, so docs/bench.md keeps one section per kind."""
    from ..cluster import cpu_summary

    return f"{provenance.cpu_model()}: {cpu_summary()}"


def document(machines: dict[str, dict], first: str) -> str:
    """docs/bench.md: one section per CPU kind measured, `first` (this run's) on top."""
    order = [first, *sorted(k for k in machines if k != first)]
    return "\n".join(["# Backend speed (`make bench`)", "",
                      "One section per kind of CPU the bench ran on (its model and the features llama.cpp's kernels "
                      "use): speed-ups differ from one kind to another. A run replaces its own kind's section.", "",
                      *(markdown(machines[k]) for k in order)])


def headline(report: dict, ours: str = DEFAULT) -> str:
    """How much faster the study's default configuration is than BASELINE at scoring and at decoding."""
    a, b = report["configs"][ours], report["configs"][BASELINE]
    ratios = [x / y for x, y in zip(a["decode"]["rounds"], b["decode"]["rounds"])]
    return (f"{ours} (the study's default) against {BASELINE}: scoring {a['speedup']:.1f}x as fast "
            f"({a['wall_seconds']:.1f} s vs {b['wall_seconds']:.1f} s), decoding {a['decode']['ratio_to_baseline']:.1f}x "
            f"(median of {len(ratios)} rounds, {min(ratios):.1f}–{max(ratios):.1f}x; {a['decode']['tokens_per_s']:.1f} "
            f"vs {b['decode']['tokens_per_s']:.1f} tokens/s).")


def write_bench(report: dict, out_dir: Path = OUT_DIR) -> tuple[Path, Path]:
    """docs/bench.json (every CPU kind's latest report) and docs/bench.md, with `report` replacing its own
    kind's (atomic writes)."""
    path = out_dir / "bench.json"
    machines = {}
    if path.exists():
        old = artifacts.read_json(path)
        machines = old["machines"] if "machines" in old else {
            old.get("cpu_kind") or old["provenance"]["system"]["cpu"] + " (CPU flags not recorded)": old}
    machines[report["cpu_kind"]] = report
    return (artifacts.write_json(path, {"schema_version": 3, "machines": machines}),
            artifacts.write_text_atomic(out_dir / "bench.md", document(machines, report["cpu_kind"])))
