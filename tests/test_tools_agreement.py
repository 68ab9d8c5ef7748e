"""The agreement check (issue #8): llama.cpp (F16, the default, and F32) picks the answers transformers float32
picks on real requests of the default model, and the check reports it when they do not.
Real model (the default GGUF and its cached conversions); ~1 minute."""

from __future__ import annotations

import pytest

from slmlib.tools import agreement
from slmlib import cli
from slmlib.backends import llamacpp

MC_TASKS = ["arc_challenge", "winogrande"]


@pytest.fixture(scope="module")
def report():
    return agreement.check_agreement(agreement.default_weights(), ["F16", "F32"], [*MC_TASKS, "arithmetic"],
                                     limit=10, limit_generative=3, max_new_tokens=8)


@pytest.mark.parametrize("fmt, max_diff", [("F16", 0.1), ("F32", 0.01)])
def test_llamacpp_agrees_with_float32(report, fmt, max_diff):
    f = report["formats"][fmt]
    assert set(f["multiple_choice"]) == set(MC_TASKS)
    for task, row in f["multiple_choice"].items():
        assert row["items"] == 10 and row["same_choice"] == 1 and row["differing"] == [], (fmt, task)
        assert row["same_choice_norm"] == (1 if task == "arc_challenge" else None)  # winogrande has no acc_norm
        assert 0 < row["max_abs_diff"] < max_diff
        assert row["tokenizer_mismatches"] == 0 and row["tokenizer_strings"] > row["items"]
    gen = f["generative"]["arithmetic"]
    assert gen["prompts"] == 3 and gen["identical"] == 3 and gen["tokenizer_mismatches"] == 0
    assert gen["min_leading_identical"] >= 1  # the continuations are not empty
    batched = f["generative_batched"]["arithmetic"]
    assert batched["decode_batch"] == agreement.DECODE_BATCH and batched["prompts"] == 3
    assert batched["identical"] == 3 and batched["identical_to_one_at_a_time"] == 3
    assert agreement.all_agree(report)
    table = agreement.format_table(report)
    assert f"{fmt:7} arc_challenge" in table and "100.0%" in table
    assert f"{fmt:7} {'arithmetic':15} {agreement.DECODE_BATCH:>12} {3:>7} {3:>9}" in table


def test_the_check_reports_disagreement(monkeypatch):
    """llama.cpp's loglikelihoods perturbed (each choice favoured by its index): the check must see it."""
    real = agreement.loglikelihoods

    def perturbed(lm, requests):
        lls = real(lm, requests)
        if isinstance(lm, llamacpp.LlamaCppLM):
            return [ll + 20.0 * r.idx for ll, r in zip(lls, requests)]
        return lls

    monkeypatch.setattr(agreement, "loglikelihoods", perturbed)
    out = agreement.check_agreement(agreement.default_weights(), ["F32"], ["arc_challenge"], limit=6)
    row = out["formats"]["F32"]["multiple_choice"]["arc_challenge"]
    assert row["same_choice"] < 1 and row["max_abs_diff"] > 20
    assert all(d["llamacpp"] > d["reference"] and d["reference_margin"] > 0 for d in row["differing"])
    assert len(row["differing"]) == round((1 - row["same_choice"]) * row["items"])
    assert not agreement.all_agree(out)


def test_generation_and_tokenizer_comparisons_can_fail():
    assert agreement.compare_generations([[5, 6, 7], [1]], [[5, 6, 8], [1]], 3) == {
        "prompts": 2, "max_new_tokens": 3, "identical": 1, "leading_identical": [2, 1], "min_leading_identical": 1}
    weights = agreement.gguf_in_format(agreement.default_weights(), "F32")
    lm = llamacpp.LlamaCppLM(weights.path, agreement.wts.load_tokenizer(agreement.default_weights()),
                             max_length=512)
    strings = ["Hello world", "The answer is:"]
    assert agreement.tokenizer_mismatches(strings, lm.tok_encode, lm) == 0
    assert agreement.tokenizer_mismatches(strings, lambda s: lm.tok_encode(s)[1:], lm) == 2
    lm.close()


def test_a_check_of_generative_tasks_alone_prints_and_agrees():
    """`agree --tasks arithmetic ...` (no multiple-choice task) printed nothing: the table raised on the empty
    summary, and the check exited 1 for want of multiple-choice items."""
    gen = agreement.compare_generations([[5, 6]], [[5, 6]], 2)
    report = {"formats": {"F16": {"multiple_choice": {}, "summary": agreement.summarize({}),
                                  "generative": {"arithmetic": {**gen, "tokenizer_strings": 1, "tokenizer_mismatches": 0}},
                                  "generative_batched": {"arithmetic": {**gen, "decode_batch": 16,
                                                                        "identical_to_one_at_a_time": 1}}}}}
    table = agreement.format_table(report)
    assert "F16     arithmetic" in table and " all " not in table and agreement.all_agree(report)


def test_cli_rejects_unknown_tasks_and_formats(capsys):
    assert cli.main(["agree", "--tasks", "arc_challenge", "nope"]) == 2
    assert "nope not in the embedded suite" in capsys.readouterr().err
    assert cli.main(["agree", "--tasks", "arc_challenge", "--format", "Q3"]) == 2
    assert "cannot convert to 'Q3'" in capsys.readouterr().err
