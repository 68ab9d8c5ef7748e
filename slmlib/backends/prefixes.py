"""Shared prefixes of scoring requests: both backends evaluate a context once for all of its
continuations, and llama.cpp keeps the cache of the longest prefix shared with the previous request."""

from __future__ import annotations


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens `a` and `b` share."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def prefix_groups(pairs, max_length: int) -> tuple[list[tuple], list[tuple[list[int], list[int]]]]:
    """Loglikelihood requests [(context ids, continuation ids)] as lm-eval's hf backend feeds them
    (context + continuation cut on the left to `max_length` + 1, last token dropped), split into
    (prefix through the first scored position, the rest of the input, continuation) per request;
    and the groups of requests with the same prefix [(prefix, request indices)], sorted so that
    shared prefixes are adjacent."""
    items = []
    for ctx, cont in pairs:
        inp = (ctx + cont)[-(max_length + 1):][:-1]
        first = len(inp) - len(cont)
        items.append((inp[:first + 1], inp[first + 1:], cont))
    groups: list[tuple[list[int], list[int]]] = []
    for i in sorted(range(len(items)), key=lambda i: items[i][:2]):
        if groups and groups[-1][0] == items[i][0]:
            groups[-1][1].append(i)
        else:
            groups.append((items[i][0], [i]))
    return items, groups
