"""lm-eval's hf backend with shared prefixes: each context is evaluated once for all its choices.

lm-eval's `HFLM` evaluates every (context, continuation) pair as its own padded sequence and
takes the log-softmax over the vocabulary at every position. Here the requests that share a
context become one packed sequence: the context, then each continuation, with position ids
that restart after the context and a 4D attention mask that lets a continuation see the
context and itself only (several such groups share a row, each masked from the others).
Logits are computed only at the scored positions (`logits_to_keep`). Same tokens, same
model, same truncation; only the work changes.
"""

from __future__ import annotations

from lm_eval.models.huggingface import HFLM
from tqdm import tqdm

from .prefixes import prefix_groups

ROW_TOKENS = 512  # groups are packed into rows of up to this many tokens (a longer group gets its own row)


def pack_rows(groups: list[tuple[list[int], list[list[int]]]], row_tokens: int = ROW_TOKENS) -> list[list[int]]:
    """Indices of `groups` [(prefix, suffixes)] per row, in order, each row at most `row_tokens`
    tokens unless one group alone is longer."""
    rows: list[list[int]] = []
    used = row_tokens
    for g, (prefix, suffixes) in enumerate(groups):
        n = len(prefix) + sum(map(len, suffixes))
        if used + n > row_tokens:
            rows.append([])
            used = 0
        rows[-1].append(g)
        used += n
    return rows


def row_layout(groups, members: list[int]) -> tuple[list[int], list[int], list[tuple[int, int]], list[int]]:
    """One row: token ids, position ids, (group, segment) per token (segment 0 is the prefix,
    j the j-th continuation), and the indices of the tokens whose logits are scored, in the
    order `score_rows` reads them: each group's last prefix token, then each continuation's."""
    ids, pos, owner, keep = [], [], [], []
    for g in members:
        prefix, suffixes = groups[g]
        ids += prefix
        pos += range(len(prefix))
        owner += [(g, 0)] * len(prefix)
        keep.append(len(ids) - 1)
        for j, suffix in enumerate(suffixes, 1):
            keep += range(len(ids), len(ids) + len(suffix))
            ids += suffix
            pos += range(len(prefix), len(prefix) + len(suffix))
            owner += [(g, j)] * len(suffix)
    return ids, pos, owner, keep


def attention_mask(owner: list[tuple[int, int]], pos: list[int], length: int, dtype):
    """Additive 4D mask (1, 1, length, length): a token sees the earlier tokens of its own
    group's prefix and of its own segment; padding (beyond `owner`) sees only itself."""
    import torch

    n = len(owner)
    group = torch.tensor([g for g, _ in owner] + [-1 - i for i in range(length - n)])
    seg = torch.tensor([s for _, s in owner] + [0] * (length - n))
    p = torch.tensor(pos + [0] * (length - n))
    same_group = group[:, None] == group[None, :]
    visible = same_group & (p[None, :] <= p[:, None]) & ((seg[None, :] == 0) | (seg[None, :] == seg[:, None]))
    mask = torch.full((length, length), torch.finfo(dtype).min, dtype=dtype)
    return mask.masked_fill(visible, 0.0)[None, None]


class SharedPrefixHFLM(HFLM):
    """lm-eval's `HFLM` whose log-likelihoods evaluate each shared context once (see module)."""

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None) -> list[tuple[float, bool]]:
        import torch
        import torch.nn.functional as F

        items, grouped = prefix_groups([(ctx, cont) for _, ctx, cont in requests], self.max_length)
        groups = [(prefix, [items[i][1] for i in members]) for prefix, members in grouped]
        rows = pack_rows(groups)
        out: list[tuple[float, bool]] = [(0.0, False)] * len(items)
        batch = override_bs or self.batch_size
        batch = batch if isinstance(batch, int) else 1  # lm-eval's "auto" batch sizes are not probed here
        dtype = self.model.dtype
        bar = tqdm(total=len(items), desc="loglikelihood (hf, shared prefixes)", disable=disable_tqdm)
        for lo in range(0, len(rows), batch):
            layouts = [row_layout(groups, members) for members in rows[lo:lo + batch]]
            length = max(len(ids) for ids, *_ in layouts)
            pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eot_token_id
            ids = torch.tensor([x + [pad] * (length - len(x)) for x, *_ in layouts])
            pos = torch.tensor([p + [0] * (length - len(p)) for _, p, *_ in layouts])
            mask = torch.cat([attention_mask(o, p, length, dtype) for _, p, o, _ in layouts])
            keep = torch.zeros(len(layouts), length, dtype=torch.bool)
            for r, (*_, k) in enumerate(layouts):
                keep[r, k] = True
            with torch.inference_mode():
                logits = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=keep).logits
            logp = F.log_softmax(logits.reshape(-1, logits.shape[-1]).float(), dim=-1)
            at = 0  # kept rows come in (row, position) order: per group its last prefix token, its continuations
            for members in rows[lo:lo + batch]:
                for g in members:
                    first, at = at, at + 1
                    for i in grouped[g][1]:
                        cont = items[i][2]
                        picked = torch.cat([logp[first:first + 1], logp[at:at + len(cont) - 1]])
                        at += len(cont) - 1
                        tokens = torch.tensor(cont)
                        total = float(picked.gather(1, tokens[:, None]).sum())
                        out[i] = (total, bool((picked.argmax(-1) == tokens).all()))
                        if requests[i][0] is not None:  # rolling windows have no request string
                            self.cache_hook.add_partial("loglikelihood", requests[i][0], out[i])
                    bar.update(len(grouped[g][1]))
        bar.close()
        return out
