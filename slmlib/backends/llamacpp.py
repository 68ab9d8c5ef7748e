"""The llama.cpp backend: a GGUF model behind lm-eval's `LM` interface, with prefix reuse.

lm-eval's tasks, metrics and samples logs stay lm-eval's; only the forward passes move to
llama.cpp (llama-cpp-python). Text is tokenized exactly as lm-eval's hf backend does (the
same transformers tokenizer and encoding rules), so both backends score the same token ids.
Requests are ordered so that shared prefixes are adjacent and the KV cache of the longest
common prefix with the previous request is kept: only the new suffix is evaluated, and only
the positions whose logits are needed are computed.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import numpy as np
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.models.utils import (_add_special_kwargs, handle_stop_sequences, has_bos_prefix,
                                  normalize_gen_kwargs, postprocess_generated_text)
from tqdm import tqdm

from ..params import MAX_DECODE_BATCH
from . import llamalog
from .prefixes import common_prefix, prefix_groups

N_BATCH = 512  # tokens per llama_decode call
N_SEQ = MAX_DECODE_BATCH + 1  # sequences in the KV cache: the shared context (0) and up to 31 others at once
MAX_GEN_TOKS = 256  # lm-eval's hf default
KV_BUDGET = 4 << 30  # bytes of KV cells batched decoding may take; fewer sequences decode together beyond it


@dataclass
class Counters:
    """Tokens asked for by requests vs tokens llama.cpp evaluated (the rest came from the cache)."""

    requested: int = 0
    evaluated: int = 0
    decode_calls: int = 0


def log_softmax_at(row: np.ndarray, token: int) -> tuple[float, bool]:
    """Log-probability of `token` under logits `row`, and whether it is the argmax."""
    top = float(row.max())
    lse = top + float(np.log(np.exp(row.astype(np.float64) - top).sum()))
    return float(row[token]) - lse, int(row.argmax()) == token


@register_model("slm-llamacpp")
class LlamaCppLM(TemplateLM):
    """A GGUF file evaluated by llama.cpp on the CPU, tokenized by `tokenizer` (transformers)."""

    def __init__(self, gguf_path: str, tokenizer, max_length: int, threads: int | None = None,
                 add_bos_token: bool | None = None, prefix_reuse: bool = True, decode_batch: int = 1):
        super().__init__()
        import llama_cpp
        from llama_cpp import _internals

        if not 1 <= decode_batch < N_SEQ:
            raise ValueError(f"decode_batch: {decode_batch} sequences; use 1 to {N_SEQ - 1}")

        llamalog.quiet()
        llama_cpp.llama_backend_init()
        self.threads = threads or os.cpu_count() or 1
        self.model = _internals.LlamaModel(path_model=gguf_path, params=llama_cpp.llama_model_default_params(),
                                           verbose=True)  # verbose: stderr stays open for llama.cpp's errors
        cp = self._context_params()
        cp.n_ctx, cp.n_seq_max, cp.kv_unified = max_length, N_SEQ, True  # choices share their context's cells
        self.context = _internals.LlamaContext(model=self.model, params=cp, verbose=True)
        self.ctx, self.mem = self.context.ctx, self.context.memory
        self.vocab = llama_cpp.llama_model_get_vocab(self.model.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.batch = llama_cpp.llama_batch_init(N_BATCH, 0, N_SEQ)
        self.tokenizer = tokenizer
        self.add_bos_token = add_bos_token
        self.prefix_reuse = prefix_reuse
        self.decode_batch = decode_batch  # prompts decoded together by generate_until (1: one at a time)
        self._max_length = max_length
        self.cached: list[int] = []  # the tokens whose keys and values sequence 0 holds
        self.counters = Counters()
        atexit.register(self.close)  # before the interpreter tears down the ctypes bindings

    # --- what lm-eval asks of a model --------------------------------------------------------

    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def prefix_token_id(self) -> int:
        bos = self.tokenizer.bos_token_id
        return bos if bos is not None else self.tokenizer.eos_token_id

    @property
    def max_length(self) -> int:
        return self._max_length

    @property
    def tokenizer_name(self) -> str:
        return self.tokenizer.name_or_path.replace("/", "__")

    def tok_encode(self, string: str, add_special_tokens: bool | None = None,
                   left_truncate_len: int | None = None, **kwargs) -> list[int]:
        """As lm-eval's hf backend: the tokenizer's own special tokens unless told, none when the
        string already starts with BOS."""
        special = _add_special_kwargs(add_special_tokens, self.add_bos_token)
        if add_special_tokens is None and has_bos_prefix(string, self.tokenizer.decode(self.prefix_token_id)):
            special["add_special_tokens"] = False
        ids = self.tokenizer.encode(string, **special)
        return ids[-left_truncate_len:] if left_truncate_len else ids

    def tok_decode(self, tokens: list[int], skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=skip_special_tokens)

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(chat_history, tokenize=False,
                                                  add_generation_prompt=add_generation_prompt,
                                                  continue_final_message=not add_generation_prompt)

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs) -> list[tuple[float, bool]]:
        """Sum of log-probabilities of each continuation and whether greedy decoding gives it, with
        the input truncated on the left to `max_length` as the hf backend does. Requests sharing a
        context are scored together: the context once, each continuation on its cached cells."""
        items, groups = prefix_groups([(ctx, cont) for _, ctx, cont in requests], self.max_length)
        out: list[tuple[float, bool]] = [(0.0, False)] * len(items)
        bar = tqdm(total=len(items), desc="loglikelihood (llama.cpp)", disable=disable_tqdm)
        for prefix, group in groups:
            for i, rows in zip(group, self.score_group(prefix, [items[i][1] for i in group])):
                total, greedy = 0.0, True
                for row, tok in zip(rows, items[i][2]):
                    lp, top = log_softmax_at(row, tok)
                    total, greedy = total + lp, greedy and top
                out[i] = (total, greedy)
            bar.update(len(group))
        bar.close()
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        from lm_eval import utils

        results = []
        for (string,) in tqdm([r.args for r in requests], desc="rolling loglikelihood (llama.cpp)",
                              disable=disable_tqdm):
            windows = map(utils.make_disjoint_window, utils.get_rolling_token_windows(
                token_list=self.tok_encode(string), prefix_token=self.prefix_token_id,
                max_seq_len=self.max_length, context_len=1))
            scored = self._loglikelihood_tokens([(None, ctx, cont) for ctx, cont in windows], disable_tqdm=True)
            results.append(sum(lp for lp, _ in scored))
        return results

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Greedy generation until a stop sequence (lm-eval's `until` plus EOS), an end-of-generation
        token or `max_gen_toks`; the text is cut at the first stop sequence as the hf backend does."""
        args = [r.args for r in requests]
        encoded = []
        for context, gen_kwargs in args:
            kwargs = normalize_gen_kwargs(dict(gen_kwargs), MAX_GEN_TOKS)
            if kwargs.get("do_sample") or kwargs.get("temperature", 0.0) > 0:
                raise ValueError("backend llamacpp: only greedy generation (do_sample false, temperature 0) "
                                 "is implemented; use backend: hf for sampling")
            until = handle_stop_sequences(kwargs.pop("until", None), eos=self.tok_decode(
                self.eot_token_id, skip_special_tokens=False))
            max_gen = kwargs.pop("max_gen_toks")
            encoded.append((self.tok_encode(context, left_truncate_len=self.max_length - max_gen), until, max_gen))
        order = sorted(range(len(args)), key=lambda i: encoded[i][0])
        bar = tqdm(total=len(args), desc="generate_until (llama.cpp)", disable=disable_tqdm)
        if self.decode_batch == 1:
            new = {}
            for i in order:
                ids, until, max_gen = encoded[i]
                new[i] = self.greedy(ids, max_gen, until)
                bar.update()
        else:
            new = self.greedy_batched([encoded[i] for i in order], on_done=lambda _: bar.update())
            new = {order[k]: tokens for k, tokens in new.items()}
        bar.close()
        return [postprocess_generated_text(generation=self.tok_decode(new[i]), stop=encoded[i][1], think_end_token=None)
                for i in range(len(args))]

    # --- llama.cpp ---------------------------------------------------------------------------

    def set_threads(self, threads: int) -> None:
        """Use `threads` threads from the next evaluation on (the loaded context is kept)."""
        import llama_cpp

        llama_cpp.llama_set_n_threads(self.ctx, threads, threads)
        self.threads = threads

    def reset(self) -> None:
        """Forget every cached cell: what follows is evaluated as in a freshly loaded context (a task
        then gives the same bits whichever task ran before it in this process, or none)."""
        import llama_cpp

        llama_cpp.llama_memory_clear(self.mem, True)
        self.cached = []

    def greedy(self, ids: list[int], max_new: int, stop: list[str] = (), eog: bool = True) -> list[int]:
        """Greedy continuation of `ids`: at most `max_new` tokens, ending at an end-of-generation
        token (not included; with `eog` false, one is kept and decoding goes on: speed measurements) or
        once the decoded text contains a stop string."""
        import llama_cpp

        new: list[int] = []
        seq = list(ids)
        while len(new) < max_new and len(seq) < self.max_length:
            (row,) = self.logits(seq, [len(seq) - 1])
            tok = int(row.argmax())
            if eog and llama_cpp.llama_vocab_is_eog(self.vocab, tok):
                break
            new.append(tok)
            seq.append(tok)
            if stop and any(s in self.tok_decode(new) for s in stop):
                break
        return new

    def greedy_batched(self, prompts: list[tuple[list[int], list[str], int]], on_done=None,
                       eog: bool = True) -> dict[int, list[int]]:
        """Greedy continuations of (ids, stop strings, max new tokens) prompts, up to `decode_batch` of
        them decoded together: each llama_decode evaluates the next token of every active sequence, so
        the weights are read once for all of them (continuous batching: a finished sequence's slot
        takes the next prompt). Decoding runs in a context of its own with one KV stream per sequence
        (`kv_unified` off): each sequence attends to its own cells only, where a shared cache would
        make every step attend to all sequences' cells. The prefix all prompts share is evaluated
        once on sequence 0 and its stream copied to each new sequence. Returns prompt index -> new
        tokens; each stops as `greedy` stops (`eog` as there)."""
        import llama_cpp

        if not prompts:
            return {}
        shared = min([common_prefix(prompts[0][0], ids) for ids, _, _ in prompts] +
                     [len(ids) - 1 for ids, _, _ in prompts])  # each prompt's last token is its own
        base = prompts[0][0][:shared]
        span = -(-max(min(len(ids) + max_new, self.max_length) for ids, _, max_new in prompts) // 256) * 256
        slots = max(1, min(self.decode_batch, KV_BUDGET // (span * self._cell_bytes()) - 1))
        context = self._stream_context(slots + 1, span)
        ctx, mem = context.ctx, context.memory
        try:
            self._decode([(tok, pos, (0,), False) for pos, tok in enumerate(base)], ctx)
            waiting = list(range(len(prompts)))[::-1]
            active: dict[int, dict] = {}  # sequence id (1..decode_batch) -> the prompt it decodes
            out: dict[int, list[int]] = {}
            while waiting or active:
                self._fill_slots(mem, slots, active, waiting, prompts, len(base))
                entries, wanting = [], []
                for seq in sorted(active):  # ascending ids: one ubatch for all (llama.cpp's equal split)
                    st = active[seq]
                    take = min(len(st["ids"]) - st["fed"], N_BATCH - len(entries))
                    if take <= 0:
                        continue
                    done = st["fed"] + take == len(st["ids"])
                    entries += [(st["ids"][st["fed"] + k], st["fed"] + k, (seq,), done and k == take - 1)
                                for k in range(take)]
                    st["fed"] += take
                    wanting += [seq] if done else []
                self.counters.requested += len(entries)
                for seq, row in zip(wanting, self._decode(entries, ctx)):
                    st = active[seq]
                    _, stop, max_new = prompts[st["i"]]
                    tok = int(row.argmax())
                    ended = eog and llama_cpp.llama_vocab_is_eog(self.vocab, tok)
                    if not ended:
                        st["new"].append(tok)
                        st["ids"].append(tok)
                    stopped = not ended and bool(stop) and any(s in self.tok_decode(st["new"]) for s in stop)
                    if ended or stopped or len(st["new"]) >= max_new or len(st["ids"]) >= self.max_length:
                        out[st["i"]] = st["new"]
                        llama_cpp.llama_memory_seq_rm(mem, seq, -1, -1)
                        del active[seq]
                        if on_done:
                            on_done(st["i"])
        finally:
            context.close()
        return out

    def _fill_slots(self, mem, slots: int, active: dict[int, dict], waiting: list[int], prompts, shared: int) -> None:
        """Give free sequence ids, lowest first, to waiting prompts (a copy of sequence 0's stream, the
        shared prefix); with none waiting, move the highest active sequences into the gaps, so that the
        active ids stay 1..n: llama.cpp puts only consecutive sequence ids into one ubatch."""
        import llama_cpp

        for seq in range(1, slots + 1):
            if seq in active:
                continue
            if waiting:
                i = waiting.pop()
                llama_cpp.llama_memory_seq_cp(mem, 0, seq, -1, -1)
                active[seq] = {"i": i, "ids": list(prompts[i][0]), "fed": shared, "new": []}
            elif active and max(active) > seq:
                top = max(active)
                llama_cpp.llama_memory_seq_cp(mem, top, seq, -1, -1)
                llama_cpp.llama_memory_seq_rm(mem, top, -1, -1)
                active[seq] = active.pop(top)

    def _stream_context(self, n_seq: int, span: int):
        """A context on the loaded model with one KV stream of `span` cells (a multiple of llama.cpp's
        256) per sequence, set up as the scoring context is (f32 cells, no flash attention)."""
        from llama_cpp import _internals

        cp = self._context_params()
        cp.n_ctx, cp.n_seq_max, cp.kv_unified = span * n_seq, n_seq, False
        return _internals.LlamaContext(model=self.model, params=cp, verbose=True)

    def _cell_bytes(self) -> int:
        """Bytes of one KV cell: f32 keys and values of every layer."""
        import llama_cpp

        m = self.model.model
        kv_width = llama_cpp.llama_model_n_embd(m) // llama_cpp.llama_model_n_head(m) * llama_cpp.llama_model_n_head_kv(m)
        return 2 * 4 * kv_width * llama_cpp.llama_model_n_layer(m)

    def logits(self, tokens: list[int], positions) -> list[np.ndarray]:
        """Logits after each position in `positions` of `tokens` (ascending) on sequence 0,
        evaluating only what the KV cache does not already hold."""
        positions = list(positions)
        keep = self._reuse(tokens, positions[0])
        self.counters.requested += len(tokens)
        wanted = set(positions)
        rows = self._decode([(t, p, (0,), p in wanted) for p, t in enumerate(tokens) if p >= keep])
        self.cached = list(tokens)
        return rows

    def score_group(self, prefix: list[int], suffixes: list[list[int]]) -> list[list[np.ndarray]]:
        """For each suffix, the logits after every position of prefix[-1:] + suffix. The prefix is
        evaluated once on sequence 0; the suffixes, up to N_SEQ - 1 at a time, each on its own
        sequence sharing the prefix's cells."""
        import llama_cpp

        last = len(prefix) - 1
        keep = self._reuse(prefix, last)
        self.counters.requested += len(prefix) * len(suffixes) + sum(map(len, suffixes))
        out: list[list[np.ndarray]] = []
        pending = [(tuple(range(keep, len(prefix))), None)]  # prefix positions still to evaluate
        for lo in range(0, len(suffixes), N_SEQ - 1):
            chunk = suffixes[lo:lo + N_SEQ - 1]
            seqs = tuple(range(1, len(chunk) + 1))
            for j in seqs:  # each sequence sees the cells already cached for the prefix
                llama_cpp.llama_memory_seq_cp(self.mem, 0, j, 0, keep if pending else len(prefix))
            entries = [(prefix[p], p, (0, *seqs), p == last) for p in pending[0][0]] if pending else []
            for j, suffix in zip(seqs, chunk):
                entries += [(t, len(prefix) + k, (j,), True) for k, t in enumerate(suffix)]
            rows = self._decode(entries)
            if pending:
                first_row, rows, pending = rows[0], rows[1:], []
            for suffix in chunk:
                out.append([first_row, *rows[:len(suffix)]])
                rows = rows[len(suffix):]
            for j in seqs:
                llama_cpp.llama_memory_seq_rm(self.mem, j, -1, -1)
        self.cached = list(prefix)
        return out

    def _context_params(self):
        """llama.cpp context parameters both contexts share: batch, threads, f32 cells, no flash attention."""
        import llama_cpp

        cp = llama_cpp.llama_context_default_params()
        cp.n_batch = cp.n_ubatch = N_BATCH
        cp.n_threads = cp.n_threads_batch = self.threads
        cp.swa_full = True
        cp.type_k = cp.type_v = llama_cpp.GGML_TYPE_F32  # keys and values as computed
        cp.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED  # its CPU kernel rounds queries to f16
        return cp

    def _reuse(self, tokens: list[int], first_needed: int) -> int:
        """Keep sequence 0's cells of the longest common prefix with `tokens` (but none at or after
        `first_needed`, whose logits must be computed now); returns how many are kept."""
        import llama_cpp

        keep = min(common_prefix(self.cached, tokens), first_needed) if self.prefix_reuse else 0
        if not llama_cpp.llama_memory_seq_rm(self.mem, 0, keep, -1):
            llama_cpp.llama_memory_clear(self.mem, True)
            keep = 0
        self.cached = tokens[:keep]
        return keep

    def _decode(self, entries: list[tuple[int, int, tuple[int, ...], bool]], ctx=None) -> list[np.ndarray]:
        """Evaluate (token, position, sequence ids, want logits) entries in order, N_BATCH at a time, in
        `ctx` (default: the scoring context); the logits rows of the wanted entries."""
        import llama_cpp

        ctx = ctx or self.ctx
        rows = []
        b = self.batch
        for lo in range(0, len(entries), N_BATCH):
            chunk = entries[lo:lo + N_BATCH]
            b.n_tokens = len(chunk)
            for j, (tok, pos, seqs, want) in enumerate(chunk):
                b.token[j], b.pos[j], b.n_seq_id[j], b.logits[j] = tok, pos, len(seqs), want
                for k, seq in enumerate(seqs):
                    b.seq_id[j][k] = seq
            if llama_cpp.llama_decode(ctx, b) != 0:
                raise RuntimeError(f"llama.cpp could not evaluate {len(chunk)} tokens at positions "
                                   f"{chunk[0][1]}..{chunk[-1][1]} (context {self.max_length})")
            self.counters.decode_calls += 1
            self.counters.evaluated += len(chunk)
            rows += [np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, j), shape=(self.n_vocab,)).copy()
                     for j, e in enumerate(chunk) if e[3]]
        return rows

    def close(self) -> None:
        """Free the batch, context and model (idempotent)."""
        import llama_cpp

        if self.batch is not None:
            llama_cpp.llama_batch_free(self.batch)
            self.batch = None
        self.context.close()
        self.model.close()


def library_version() -> str:
    import importlib.metadata as md

    return md.version("llama_cpp_python")
