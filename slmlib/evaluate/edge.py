"""Edge metrics of a loaded model on this machine (evaluate stage; informational, never ranked).

Time to first token at a few prompt lengths, prefill and greedy decode throughput, as
medians of repeated runs after a warm-up, with the peak resident memory of the process.
Both backends are timed the same way: `generate_seconds(ids, new_tokens)` with a cold cache.
`edge_frame` shows them (with the run's energy) as the site's model page does.
"""

from __future__ import annotations

import resource
import statistics
import time

PROMPT_LENGTHS = (32, 128, 512)  # tokens
DECODE_TOKENS = 32  # new tokens per decode measurement
REPEATS = 3  # measurements per figure; the median is reported
FILLER = "The quick brown fox jumps over the lazy dog while the small model counts tokens. "


def prompt_ids(tokenizer, length: int) -> list[int]:
    """`length` token ids cut from repeated filler text."""
    return tokenizer(FILLER * (length // 8 + 8), add_special_tokens=False)["input_ids"][:length]


def hf_generator(model, tokenizer):
    """`generate_seconds` for a transformers model: greedy, exactly `new_tokens` new tokens."""
    import torch

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def generate_seconds(ids: list[int], new_tokens: int) -> float:
        x = torch.tensor([ids])
        start = time.perf_counter()
        with torch.inference_mode():
            model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=new_tokens,
                           min_new_tokens=new_tokens, do_sample=False, pad_token_id=pad_id)
        return time.perf_counter() - start
    return generate_seconds


def llamacpp_generator(lm):
    """`generate_seconds` for a `backends.LlamaCppLM`: empty cache, then greedy token by token."""

    def generate_seconds(ids: list[int], new_tokens: int) -> float:
        lm.cached = []  # cold: nothing of the prompt is reused
        start = time.perf_counter()
        seq = list(ids)
        for _ in range(new_tokens):
            (row,) = lm.logits(seq, [len(seq) - 1])
            seq.append(int(row.argmax()))
        return time.perf_counter() - start
    return generate_seconds


def measure_edge(generate_seconds, tokenizer, max_len: int | None, lengths=PROMPT_LENGTHS,
                 decode_tokens=DECODE_TOKENS, repeats=REPEATS) -> dict:
    """TTFT per prompt length, prefill and decode tokens/s (medians), peak RSS."""
    lengths = [n for n in lengths if n + decode_tokens <= (max_len or max(lengths) + decode_tokens)]
    generate_seconds(prompt_ids(tokenizer, lengths[0]), 2)  # warm-up
    ttft = {}
    for n in lengths:
        ids = prompt_ids(tokenizer, n)
        ttft[n] = statistics.median(generate_seconds(ids, 1) for _ in range(repeats))
    mid = lengths[len(lengths) // 2]
    ids = prompt_ids(tokenizer, mid)
    total = statistics.median(generate_seconds(ids, decode_tokens) for _ in range(repeats))
    longest = lengths[-1]
    return {
        "ttft_seconds": {str(n): round(s, 4) for n, s in ttft.items()},
        "prefill_tokens_per_s": round(longest / ttft[longest], 1),
        "decode_tokens_per_s": round((decode_tokens - 1) / max(total - ttft[mid], 1e-9), 1),
        "decode_prompt_tokens": mid, "decode_new_tokens": decode_tokens, "repeats": repeats,
        "peak_rss_mb": peak_rss_mb(),
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def edge_frame(results: dict):
    """The run's size, memory, load, latency, throughput and energy figures as the site shows them (its
    labels, units and decimals, `publish.figure_rows`): one row per figure measured."""
    import pandas as pd

    from ..publish import figure_rows, spec_values

    edge = {f"{key}.{k}" if isinstance(value, dict) else key: v  # nested figures as the registry keeps them
            for key, value in (results.get("edge") or {}).items()
            for k, v in (value.items() if isinstance(value, dict) else [(None, value)])}
    spec = spec_values({"edge": edge, "energy": results.get("energy"),
                        "parameter_count": (results.get("model_card") or {}).get("parameter_count")})
    return pd.DataFrame(figure_rows(spec), columns=["figure", "value", "unit"])
