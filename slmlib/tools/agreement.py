"""Agreement check: does the llama.cpp backend choose what transformers float32 chooses?

Serves `python -m slmlib agree`, `make bench` and tests/test_tools_agreement.py. The same lm-eval
requests of the embedded suite go through the reference, lm-eval's hf backend on the float32
transformers copy of the GGUF (`weights.model_dir`, batch 8), and through `backends.LlamaCppLM` on
the GGUF in a given format (llama.cpp's conversion, or the file itself in its own format).
Multiple-choice tasks: per item the choice with the highest loglikelihood (and lm-eval's
length-normalized acc_norm choice where the task reports acc_norm), the largest |difference| of
loglikelihoods, and how many request strings llama.cpp's own tokenizer splits differently from
the transformers tokenizer both backends use. Generative tasks: how many leading tokens of the
greedy continuations are identical. Reads the model and the pinned data; writes nothing.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np

from .. import backends, detect, evaluate, paths, provenance, weights as wts
from ..benchmarks import get_benchmark
from ..params import StudyParams

REFERENCE = {"backend": "hf", "dtype": "float32", "batch_size": 8}  # what the study treats as exact
MAX_NEW_TOKENS = 32  # greedy tokens compared per generative prompt
DECODE_BATCH = 16  # the batched configuration checked beside one-at-a-time decoding


def default_weights() -> wts.Weights:
    """The weights of the default params' submission (SmolLM2-135M-Instruct, the shipped Q4_1 GGUF)."""
    return wts.resolve_weights(detect.read_submission(paths.REPO_ROOT / StudyParams().submission)["weights"])


def gguf_in_format(weights: wts.Weights, fmt: str) -> wts.Weights:
    """The GGUF `weights` as `fmt`: the file itself when that is its own format (its header's
    file type), else llama.cpp's conversion (`weights.convert_gguf`, cached)."""
    if fmt == wts.gguf_metadata(Path(weights.path))["quantization"]:
        return weights
    return wts.convert_gguf(weights, fmt)[0]


def embedded_tasks(tasks: list[str] | None) -> tuple[list[str], list[str]]:
    """The multiple-choice and the generative tasks among `tasks` (default: the embedded suite)."""
    suite = evaluate.SUITES["embedded"]
    unknown = [t for t in tasks or () if t not in suite]
    if unknown:
        raise ValueError(f"tasks: {', '.join(unknown)} not in the embedded suite ({', '.join(suite)})")
    names = list(tasks or suite)
    generative = [n for n in names if get_benchmark(n).generative]
    return [n for n in names if n not in generative], generative


def build_requests(name: str, limit: int | None, seed: int, chat_template: Callable | None = None):
    """lm-eval's task object for the chosen items of embedded benchmark `name` and its requests
    (Instances), built as `simple_evaluate` builds them; with `chat_template` (an lm's
    `apply_chat_template`) the prompts go through it, few-shot examples as turns."""
    prep = evaluate.prepare_task(name, limit, seed)
    chat = chat_template is not None
    task = evaluate.task_manager().load([evaluate.task_config(prep, chat)])["tasks"][name]
    task.build_all_requests(samples=prep.indices, apply_chat_template=chat, fewshot_as_multiturn=chat,
                            chat_template=chat_template)
    return task, list(task.instances)


def loglikelihoods(lm, requests) -> list[float]:
    return [ll for ll, _ in lm.loglikelihood(requests, disable_tqdm=True)]


def scores_by_item(requests, lls: list[float]) -> dict[int, np.ndarray]:
    """Per document, the loglikelihoods of its requests in choice order."""
    by_doc: dict[int, dict[int, float]] = defaultdict(dict)
    for req, ll in zip(requests, lls, strict=True):
        by_doc[req.doc_id][req.idx] = ll
    return {d: np.array([c[i] for i in range(len(c))]) for d, c in sorted(by_doc.items())}


def disagreements(ref: dict[int, np.ndarray], ours: dict[int, np.ndarray]) -> list[dict]:
    """Items whose highest-scoring choice differs: each side's choice and the reference's margin
    (how much the reference prefers its choice to ours; small margins are near ties)."""
    out = []
    for d, a in ref.items():
        mine, theirs = int(ours[d].argmax()), int(a.argmax())
        if mine != theirs:
            out.append({"doc_id": d, "reference": theirs, "llamacpp": mine,
                        "reference_margin": round(float(a[theirs] - a[mine]), 6)})
    return out


def compare_choices(task, requests, ref_lls: list[float], lls: list[float]) -> dict:
    """Items, share with the same chosen answer (and the same acc_norm answer: loglikelihood per
    character of the choice, where the task reports acc_norm), the items that differ, and the
    largest |loglikelihood difference| of any request."""
    ref, ours = scores_by_item(requests, ref_lls), scores_by_item(requests, lls)
    differ = disagreements(ref, ours)
    row = {"items": len(ref), "requests": len(requests), "same_choice": 1 - len(differ) / len(ref),
           "differing": differ, "same_choice_norm": None, "differing_norm": None,
           "max_abs_diff": round(max(abs(x - y) for x, y in zip(ref_lls, lls, strict=True)), 6)}
    if any(m.get("metric") == "acc_norm" for m in task.config.metric_list or ()):
        docs = {r.doc_id: r.doc for r in requests}
        chars = {d: np.array([float(len(c)) for c in task.doc_to_choice(docs[d])]) for d in ref}
        differ = disagreements({d: v / chars[d] for d, v in ref.items()}, {d: v / chars[d] for d, v in ours.items()})
        row.update(same_choice_norm=1 - len(differ) / len(ref), differing_norm=differ)
    return row


def scored_strings(requests) -> set[str]:
    """The strings lm-eval tokenizes for loglikelihood requests: the context (trailing whitespace
    moved to the continuation) and context + continuation."""
    return {s for r in requests for s in (r.args[0].rstrip(), r.args[0] + r.args[1])}


def tokenizer_mismatches(strings, encode: Callable[[str], list[int]], lm: backends.LlamaCppLM) -> int:
    """How many `strings` llama.cpp's own tokenizer (the GGUF's vocabulary, its BOS rule, special
    tokens parsed as transformers parses them) splits into other ids than `encode`."""
    bos = lm.model.add_bos_token()
    return sum(encode(s) != lm.model.tokenize(s.encode(), bos, True) for s in strings)


def hf_greedy(model, ids: list[int], max_new: int) -> list[int]:
    """transformers' greedy continuation of `ids`, at most `max_new` tokens, ending before EOS."""
    import torch

    eos = model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos])
    x = torch.tensor([ids])
    with torch.inference_mode():
        out = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=max_new, do_sample=False,
                             pad_token_id=next(iter(eos)), temperature=None, top_p=None, top_k=None)
    new = out[0, len(ids):].tolist()
    return next((new[:i] for i, t in enumerate(new) if t in eos), new)


def compare_generations(ref: list[list[int]], ours: list[list[int]], max_new: int) -> dict:
    """Prompts, how many continuations are identical, leading identical tokens per prompt."""
    leading = [backends.common_prefix(a, b) for a, b in zip(ref, ours, strict=True)]
    return {"prompts": len(ref), "max_new_tokens": max_new, "identical": sum(a == b for a, b in zip(ref, ours)),
            "leading_identical": leading, "min_leading_identical": min(leading, default=None)}


def scored_agreement(row: dict) -> float:
    """Share of items with the same answer under the task's primary metric: the acc_norm choice
    where that is the metric, else the highest-loglikelihood choice."""
    return row["same_choice_norm"] if row["metric"] == "acc_norm" else row["same_choice"]


def summarize(tasks: dict) -> dict:
    """Totals over the multiple-choice tasks of one format (shares weighted by items)."""
    def share(rows, value) -> float | None:
        rows = [r for r in rows if value(r) is not None]
        return sum(value(r) * r["items"] for r in rows) / sum(r["items"] for r in rows) if rows else None

    rows = list(tasks.values())
    return {"items": sum(r["items"] for r in rows), "same_choice": share(rows, lambda r: r["same_choice"]),
            "same_choice_norm": share(rows, lambda r: r["same_choice_norm"]),
            "same_scored_choice": share(rows, scored_agreement),
            "max_abs_diff": max((r["max_abs_diff"] for r in rows), default=None),
            "tokenizer_mismatches": sum(r["tokenizer_mismatches"] for r in rows)}


def check_agreement(weights: wts.Weights, formats: list[str], tasks: list[str] | None = None,
                    limit: int | None = StudyParams.limit, limit_generative: int | None = StudyParams.limit_generative,
                    seed: int = StudyParams.seed, max_new_tokens: int = MAX_NEW_TOKENS,
                    decode_batch: int = DECODE_BATCH, log: Callable[[str], None] = lambda _: None) -> dict:
    """The agreement report of llama.cpp at each of `formats` with the float32 reference, on the
    multiple-choice and generative `tasks` (default: the embedded suite) at the given limits. Greedy
    continuations are compared one prompt at a time and `decode_batch` prompts decoded together
    (`generative_batched`: against the reference and against one at a time)."""
    start = time.perf_counter()
    evaluate.set_offline_env()
    mc, gen = embedded_tasks(tasks)
    files = {fmt: gguf_in_format(weights, fmt) for fmt in formats}  # converts (once) before the long part
    model, tokenizer, _ = wts.load_model(wts.model_dir(weights)[0], REFERENCE["dtype"])
    ref = evaluate.make_lm(model, tokenizer, REFERENCE["batch_size"])
    mc_requests = {n: build_requests(n, limit, seed) for n in mc}
    gen_requests = {n: build_requests(n, limit_generative, seed, ref.apply_chat_template)[1] for n in gen}
    ref_lls = {}
    for n, (_, reqs) in mc_requests.items():
        log(f"reference (hf float32): {n}, {len(reqs)} requests")
        ref_lls[n] = loglikelihoods(ref, reqs)
    prompts = {n: [ref.tok_encode(r.args[0]) for r in reqs] for n, reqs in gen_requests.items()}
    log(f"reference (hf float32): greedy continuations of {sum(map(len, prompts.values()))} prompts")
    ref_gen = {n: [hf_greedy(model, ids, max_new_tokens) for ids in p] for n, p in prompts.items()}
    report = {"schema_version": 1, "weights": {"path": weights.path, "sha256": weights.sha256},
              "reference": REFERENCE, "limit": limit, "limit_generative": limit_generative, "seed": seed,
              "formats": {}}
    for fmt, w in files.items():
        lm = backends.LlamaCppLM(w.path, tokenizer, max_length=ref.max_length)
        per_task = {}
        for n, (task, reqs) in mc_requests.items():
            log(f"llama.cpp {fmt}: {n}")
            per_task[n] = {"metric": get_benchmark(n).metric,
                           **compare_choices(task, reqs, ref_lls[n], loglikelihoods(lm, reqs)),
                           "tokenizer_strings": len(strings := scored_strings(reqs)),
                           "tokenizer_mismatches": tokenizer_mismatches(strings, ref.tok_encode, lm)}
        generative, batched = {}, {}
        lm.decode_batch = decode_batch
        for n, p in prompts.items():
            log(f"llama.cpp {fmt}: greedy {n}, one at a time and {decode_batch} together")
            contexts = {r.args[0] for r in gen_requests[n]}
            alone = [lm.greedy(ids, max_new_tokens) for ids in p]
            together = lm.greedy_batched([(ids, [], max_new_tokens) for ids in p])
            together = [together[i] for i in range(len(p))]
            generative[n] = {**compare_generations(ref_gen[n], alone, max_new_tokens),
                             "tokenizer_strings": len(contexts),
                             "tokenizer_mismatches": tokenizer_mismatches(contexts, ref.tok_encode, lm)}
            batched[n] = {**compare_generations(ref_gen[n], together, max_new_tokens), "decode_batch": decode_batch,
                          "identical_to_one_at_a_time": sum(a == b for a, b in zip(alone, together))}
        lm.close()
        report["formats"][fmt] = {"file": Path(w.path).name, "sha256": w.sha256, "summary": summarize(per_task),
                                  "multiple_choice": per_task, "generative": generative,
                                  "generative_batched": batched}
    report.update(seconds=round(time.perf_counter() - start, 1), provenance=provenance.collect(),
                  llama_cpp_python=backends.library_version())
    return report


def all_agree(report: dict) -> bool:
    """Every multiple-choice item of every format chose the reference's answer."""
    return all(f["summary"]["same_choice"] in (1, None) for f in report["formats"].values())  # None: no such task


def format_table(report: dict) -> str:
    """The report as text tables: multiple choice, then generative."""
    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}%"

    lines = [f"{'format':7} {'task':15} {'metric':>14} {'items':>5} {'same choice':>11} {'same acc_norm':>13} "
             f"{'same scored':>11} {'max |Δll|':>9} {'tokenizer mismatches':>20}"]
    for fmt, f in report["formats"].items():
        for n, r in [*f["multiple_choice"].items(), *([("all", f["summary"])] if f["multiple_choice"] else [])]:
            scored = r["same_scored_choice"] if n == "all" else scored_agreement(r)
            strings = f"/{r['tokenizer_strings']}" if "tokenizer_strings" in r else ""
            lines.append(f"{fmt:7} {n:15} {r.get('metric', ''):>14} {r['items']:>5} {pct(r['same_choice']):>11} "
                         f"{pct(r['same_choice_norm']):>13} {pct(scored):>11} {r['max_abs_diff']:>9.4f} "
                         f"{str(r['tokenizer_mismatches']) + strings:>20}")
    if any(f["generative"] for f in report["formats"].values()):
        lines += ["", f"{'format':7} {'task':15} {'prompts':>7} {'identical':>9} {'leading identical tokens (min, mean)':>37} "
                      f"{'tokenizer mismatches':>20}"]
        for fmt, f in report["formats"].items():
            for n, r in f["generative"].items():
                mean = sum(r["leading_identical"]) / max(len(r["leading_identical"]), 1)
                leading = f"{r['min_leading_identical']}, {mean:.1f} of {r['max_new_tokens']}"
                tokens = f"{r['tokenizer_mismatches']}/{r['tokenizer_strings']}"
                lines.append(f"{fmt:7} {n:15} {r['prompts']:>7} {r['identical']:>9} {leading:>37} {tokens:>20}")
        lines += ["", f"{'format':7} {'task':15} {'decode batch':>12} {'prompts':>7} {'identical':>9} "
                      f"{'identical to one at a time':>26}"]
        for fmt, f in report["formats"].items():
            for n, r in f.get("generative_batched", {}).items():
                lines.append(f"{fmt:7} {n:15} {r['decode_batch']:>12} {r['prompts']:>7} {r['identical']:>9} "
                             f"{r['identical_to_one_at_a_time']:>26}")
    return "\n".join(lines)
