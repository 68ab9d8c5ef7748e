"""A run's own per-item log behind lm-eval's `LM` interface, for re-scoring it (aggregate stage).

`ReplayLM` answers each request lm-eval builds for a task with what the run logged for that item:
the log-likelihoods of its choices, or the text it generated. lm-eval then applies the task's own
filters, `process_results` and aggregation (and the sandboxed execution for code), so the values a
run claims are recomputed by the benchmark's metric, not by a copy of it. A request for an item the
log does not hold, or (without a chat template) whose prompt differs from the logged one, raises
`ReplayMismatch`.
"""

from __future__ import annotations

import math

from lm_eval.api.model import LM


class ReplayMismatch(ValueError):
    """The task asks for something the run's log does not hold; the message names the item."""


class ReplayLM(LM):
    """Answers lm-eval's requests from per-item rows (`doc_id`, `prompt`, `response`, `generated`).

    `indices` are the document indices the task was given (`samples=`): lm-eval numbers a request by its
    position among them and logs `indices[position]` as the row's `doc_id`."""

    def __init__(self, rows: list[dict], indices: list[int] | None = None, check_prompts: bool = True) -> None:
        super().__init__()
        self.indices = list(indices) if indices is not None else None
        self.rows = {}
        for row in rows:
            if row.get("doc_id") in self.rows or not isinstance(row.get("doc_id"), int):
                raise ReplayMismatch(f"item {str(row.get('item_id'))[:80]}: doc_id missing or repeated")
            self.rows[row["doc_id"]] = row
        self.check_prompts = check_prompts

    def _row(self, request) -> dict:
        position = request.doc_id
        doc = self.indices[position] if self.indices is not None and 0 <= position < len(self.indices) else position
        row = self.rows.get(doc)
        if row is None:
            raise ReplayMismatch(f"document {doc} is asked for but not in the log (other items than logged)")
        # the first request's context is the logged prompt (WinoGrande's choices each have their own)
        if self.check_prompts and request.idx == 0 and request.arguments[0] != row.get("prompt"):
            raise ReplayMismatch(f"item {str(row.get('item_id'))[:80]}: the logged prompt is not the one the task builds")
        return row

    def loglikelihood(self, requests) -> list[tuple[float, bool]]:
        out = []
        for request in requests:
            row, i = self._row(request), request.idx
            response = row.get("response")
            try:
                logp, greedy = response[i]
                logp = float(logp)
            except (TypeError, ValueError, IndexError, KeyError):
                raise ReplayMismatch(f"item {str(row.get('item_id'))[:80]}: no log-likelihood for choice {i}") from None
            if not math.isfinite(logp) or not isinstance(greedy, bool):
                raise ReplayMismatch(f"item {str(row.get('item_id'))[:80]}: choice {i} is not (finite number, bool)")
            out.append((logp, greedy))
        return out

    def loglikelihood_rolling(self, requests) -> list[float]:
        raise ReplayMismatch("rolling log-likelihoods (perplexity tasks) are not logged per item")

    def generate_until(self, requests) -> list[str]:
        out = []
        for request in requests:
            row = self._row(request)
            generated = row.get("generated")
            if not (isinstance(generated, list) and len(generated) == 1 and isinstance(generated[0], str)):
                raise ReplayMismatch(f"item {str(row.get('item_id'))[:80]}: no generated text in the log "
                                     "(logs made before re-scoring existed lack it: rerun the task)")
            out.append(generated[0])
        return out

    @property
    def tokenizer_name(self) -> str:
        return "replay"

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return "replay"

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """A stand-in rendering: the model's template is not needed, items are matched by document."""
        return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in chat_history)
