"""A synthetic model that guesses uniformly at random, behind lm-eval's `LM` interface like the real
backends: the test of the chance rule (a guessing model scores 0 in expectation on every ranked task,
pillar and the aggregate; tests/test_benchmarks_chance.py) runs it through the real pipeline.

Multiple choice: for each item (lm-eval's task name and document id) it draws one choice uniformly
with a generator seeded by (seed, task, document), gives that choice log-likelihood 0 and every other
choice `LOSER`. Generation: the empty string, every time.

Why not the same log-likelihood for every choice: lm-eval scores an item by the argmax over the
choices, and the argmax of equal values is the first choice, so a model that scores every choice the
same is the constant strategy "always the first option", not a guesser (TruthfulQA MC1 and HHH list
the right answer first: it scores 1.0 on both). `equal=True` gives that model, to show it. With all the
probability on the drawn choice, every metric that reads the log-likelihoods sees the same uniform pick:
accuracy, the length-normalized argmax of acc_norm, TruthfulQA MC2's probability mass on the true
answers, CrowS-Pairs' comparison of its two sentences.
"""

from __future__ import annotations

import zlib
from collections import Counter

import numpy as np
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

LOSER = -1e4  # log-likelihood of every choice but the drawn one: exp(LOSER) is 0 in float64


@register_model("slm-guessing")
class GuessingLM(LM):
    """Uniform guessing (or, with `equal`, the same log-likelihood for every choice) and empty generations."""

    def __init__(self, seed: int = 0, equal: bool = False) -> None:
        super().__init__()
        self.seed, self.equal = int(seed), bool(equal)

    def pick(self, task: str, doc_id: int, choices: int) -> int:
        """The choice drawn for one item: uniform over `choices`, seeded by (seed, task, document)."""
        return int(np.random.default_rng([self.seed, zlib.crc32(task.encode()), doc_id]).integers(choices))

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        choices = Counter((r.task_name, r.doc_id) for r in requests)  # lm-eval sends every choice of an item at once
        out = []
        for r in requests:
            if self.equal:
                out.append((0.0, False))
                continue
            won = r.idx == self.pick(r.task_name, r.doc_id, choices[r.task_name, r.doc_id])
            out.append((0.0 if won else LOSER, won))
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        raise NotImplementedError("GuessingLM has no perplexity: it guesses among choices and generates nothing")

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        return ["" for _ in requests]
