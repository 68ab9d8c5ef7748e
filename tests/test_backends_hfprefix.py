"""The hf backend with shared prefixes: the same log-likelihoods and greedy flags as lm-eval's
`HFLM` on the same requests, for less work; its packing and mask. Tiny random Llama and the
real SmolLM2 (float32)."""

from __future__ import annotations

import pytest
import torch
from lm_eval.api.instance import Instance

from slmlib import evaluate, weights as wts
from slmlib.backends import hfprefix
from tests.test_backends_llamacpp import DEFAULT_WEIGHTS, requests
from tests.tiny import build_tiny_model


def test_rows_pack_groups_up_to_the_budget():
    groups = [([1, 2, 3], [[4], [5, 6]]), ([1, 2, 7], [[8]]), ([9] * 10, [[1]])]
    assert hfprefix.pack_rows(groups, row_tokens=12) == [[0, 1], [2]]
    assert hfprefix.pack_rows(groups, row_tokens=4) == [[0], [1], [2]]  # a longer group gets its own row
    ids, pos, owner, keep = hfprefix.row_layout(groups, [0, 1])
    assert ids == [1, 2, 3, 4, 5, 6, 1, 2, 7, 8] and pos == [0, 1, 2, 3, 3, 4, 0, 1, 2, 3]
    assert owner[:6] == [(0, 0)] * 3 + [(0, 1), (0, 2), (0, 2)] and keep == [2, 3, 4, 5, 8, 9]


def test_mask_lets_a_continuation_see_its_context_and_itself_only():
    groups = [([1, 2], [[3], [4, 5]]), ([6], [[7]])]
    _, pos, owner, _ = hfprefix.row_layout(groups, [0, 1])
    seen = hfprefix.attention_mask(owner, pos, len(owner) + 1, torch.float32)[0, 0] == 0
    assert seen[3].tolist() == [True, True, False, True, False, False, False, False]  # 4 sees 1 2 and itself
    assert seen[4].tolist() == [True, True, False, True, True, False, False, False]   # 5 sees 1 2 4 5
    assert seen[2].tolist() == [True, True, True, False, False, False, False, False]  # 3 does not see 4 5
    assert seen[6].tolist() == [False] * 5 + [True, True, False]                      # the next group's 7
    assert seen[7].tolist() == [False] * 7 + [True]                                   # padding sees itself


def rolling_and_truncated(max_length: int) -> list[Instance]:
    long_ctx = "The quick brown fox jumps over the lazy dog. " * (max_length // 4)
    return [Instance("loglikelihood", {}, (long_ctx, " and runs"), 0, ("t", 20, 1)),
            Instance("loglikelihood", {}, (long_ctx, " and sleeps"), 1, ("t", 20, 1))]


def score_both(model, tok, reqs, batch_size=4, max_length=None):
    plain = evaluate.make_lm(model, tok, batch_size, max_length=max_length)
    shared = evaluate.make_lm(model, tok, batch_size, max_length=max_length, share_prefixes=True)
    counted = {"tokens": 0}
    hook = model.register_forward_pre_hook(
        lambda _m, args, kwargs: counted.update(tokens=counted["tokens"] + kwargs["input_ids"].numel()),
        with_kwargs=True)
    ours = shared.loglikelihood(reqs, disable_tqdm=True)
    hook.remove()
    return plain.loglikelihood(reqs, disable_tqdm=True), ours, counted["tokens"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = build_tiny_model(tmp_path_factory.mktemp("tiny"))
    model, tok, _ = wts.load_model(path, "float32")
    return model, tok


def test_tiny_model_same_numbers_with_truncation_and_rolling(tiny):
    model, tok = tiny
    reqs = requests() + rolling_and_truncated(64)
    theirs, ours, _ = score_both(model, tok, reqs, max_length=64)
    assert [g for _, g in ours] == [g for _, g in theirs]
    assert max(abs(a - b) for (a, _), (b, _) in zip(ours, theirs)) < 1e-4
    lm = evaluate.make_lm(model, tok, 2, max_length=64, share_prefixes=True)
    text = [Instance("loglikelihood_rolling", {}, ("Paris is the capital of France. " * 12,), 0, ("t", 0, 1))]
    ref = evaluate.make_lm(model, tok, 2, max_length=64).loglikelihood_rolling(text, disable_tqdm=True)
    assert abs(lm.loglikelihood_rolling(text, disable_tqdm=True)[0] - ref[0]) < 1e-3


def test_real_model_same_numbers_for_a_third_of_the_tokens():
    weights = wts.resolve_weights(DEFAULT_WEIGHTS)
    model, tok, _ = wts.load_model(wts.model_dir(weights)[0], "float32")
    theirs, ours, evaluated = score_both(model, tok, requests())
    assert [g for _, g in ours] == [g for _, g in theirs]
    assert max(abs(a - b) for (a, _), (b, _) in zip(ours, theirs)) < 1e-3
    requested = sum(len(tok(r.args[0] + r.args[1])["input_ids"]) for r in requests())
    assert evaluated < requested / 3  # the few-shot context once per question, not once per choice
