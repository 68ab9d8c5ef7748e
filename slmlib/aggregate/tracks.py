"""Tracks: the protocol a score was measured under, so that only comparable entries are ranked together.

A track's protocol is what decides which items and prompts are scored: suite, task set, `limit`,
`limit_generative` (as evaluated: `limit` when unset), seed, chat-template policy and each task's
few-shot count. Backend, dtype, format and decode batch are not protocol (they separate entries
within a track). The default track is the protocol of `params/default.yaml`, derived at run time
from that file and the suite's definition. Ids are short, stable (a digest of the protocol) and
URL-safe; names are readable ("embedded · 16 tasks · 80/80 items · seed 1234").
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter

from .. import artifacts, params, paths
from ..benchmarks import get_benchmark

DEFAULT_PARAMS = "default.yaml"  # in params/: its protocol is the default track
LISTED_TASKS = 3  # a task set this small is named task by task, a larger one by its size
MAX_ID = 56  # characters of a track id (the registry schema allows 64)
NAME_PART = 40  # characters of a suite or task name in a track's name (a recorded run may hold any string)
TRACK_RULE = ("A track is the protocol a score was measured under: suite, task set, items per multiple-choice "
              "and per generative task, seed, chat-template policy and each task's few-shot count. Only entries "
              "of one track are ranked, tested against each other and compared for badges; backend, dtype, "
              "quantization format and decode batch separate entries within a track.")
CHAT_TEMPLATE = {"auto": None, True: "chat template always", False: "chat template never",
                 None: "chat template not recorded"}  # the name's word on the policy ("auto" says nothing)


def shots(value) -> int | None:
    """A recorded few-shot count as one integer: the count, the common count of a standard-suite task's
    subtasks, or None when unrecorded or mixed."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, dict) and value:
        counts = set(map(shots, value.values()))
        return counts.pop() if len(counts) == 1 else None
    return None


def protocol(suite: str, tasks, limit: int | None, limit_generative: int | None, seed: int,
             apply_chat_template, fewshot: dict) -> dict:
    """A protocol in its one canonical form (sorted tasks, the generative limit as evaluated)."""
    policy = apply_chat_template if isinstance(apply_chat_template, bool) or apply_chat_template == "auto" else None
    return {"suite": suite, "tasks": sorted(tasks), "limit": limit,
            "limit_generative": limit_generative if limit_generative else limit, "seed": seed,
            "apply_chat_template": policy, "fewshot": {t: shots(fewshot.get(t)) for t in sorted(tasks)}}


def entry_protocol(runs: list[dict]) -> dict:
    """The protocol of one registry entry (its runs, sorted by run_id): the first run's suite, limits,
    seed and chat-template policy, every task its runs evaluated (ranked or not), and each task's
    few-shot count as the first run evaluating it recorded."""
    first = runs[0]
    names = sorted({name for r in runs for name in r["tasks"]})
    fewshot = {name: next(r["tasks"][name] for r in runs if name in r["tasks"]).get("n_fewshot") for name in names}
    return protocol(first["suite"], names, first.get("limit"), first.get("limit_generative"), first["seed"],
                    (first.get("settings") or {}).get("apply_chat_template"), fewshot)


def params_protocol(p) -> dict:
    """The protocol a study's params would run: the suite's tasks (or the subset given) with the few-shot
    counts of their benchmark definitions."""
    from ..evaluate import suite_tasks  # evaluate's import is heavy; only the default track needs it

    names = suite_tasks(p.suite, p.tasks)
    return protocol(p.suite, names, p.limit, p.limit_generative, p.seed, p.apply_chat_template,
                    {n: get_benchmark(n).num_fewshot for n in names})


def default_protocol() -> dict:
    """The protocol of `params/default.yaml`, as the code defines its suite today."""
    return params_protocol(params.load(paths.PARAMS_DIR / DEFAULT_PARAMS))


def default_track() -> dict:
    """The default track as it would be listed: id, name and protocol of params/default.yaml."""
    proto = default_protocol()
    return {"id": track_id(proto), "name": track_name(proto), "protocol": proto}


def items(n: int | None) -> str:
    """A limit as a name or id shows it: the number, or "all"."""
    return "all" if n is None else str(n)


def track_id(proto: dict) -> str:
    """`<suite>-<n>t-<limit>-<generative limit>-s<seed>-<6 hex of the protocol's digest>`, URL-safe, at most
    `MAX_ID` characters (a readable part too long for it is cut; the digest keeps ids apart)."""
    digest = hashlib.sha256(artifacts.dumps(proto).encode()).hexdigest()[:6]
    suite = re.sub(r"[^a-z0-9]+", "-", str(proto["suite"]).lower()).strip("-")[:16] or "suite"
    readable = (f"{suite}-{len(proto['tasks'])}t-{items(proto['limit'])}-{items(proto['limit_generative'])}"
                f"-s{proto['seed']}")
    return f"{readable[:MAX_ID - 7].rstrip('-')}-{digest}"


def track_name(proto: dict) -> str:
    """A readable name: suite, tasks (named when few), items per multiple-choice/generative task, seed, and
    the chat-template policy unless it is "auto"; recorded strings printable and cut to `NAME_PART`."""
    tasks = proto["tasks"]
    what = (", ".join(params.printable(t, NAME_PART) for t in tasks) if len(tasks) <= LISTED_TASKS
            else f"{len(tasks)} tasks")
    counts = f"{items(proto['limit'])}/{items(proto['limit_generative'])} items"
    parts = [params.printable(proto["suite"], NAME_PART), what, counts, f"seed {proto['seed']}",
             CHAT_TEMPLATE[proto["apply_chat_template"]]]
    return " \u00b7 ".join(p for p in parts if p)


def build_tracks(protocols: dict[str, dict], default: dict) -> list[dict]:
    """The registry's `tracks`: one per protocol among `protocols` (entry_id -> protocol), plus the default
    track (even without entries), ordered default first, then by entries (most first), name and id.
    Names two tracks would share get their id appended."""
    counts = Counter(track_id(p) for p in protocols.values())
    found = {track_id(p): p for p in (default, *protocols.values())}
    default_id = track_id(default)
    tracks = [{"id": tid, "name": track_name(p), "protocol": p, "default": tid == default_id,
               "entries": counts.get(tid, 0)} for tid, p in found.items()]
    names = Counter(t["name"] for t in tracks)
    for t in tracks:
        if names[t["name"]] > 1:
            t["name"] += f" \u00b7 {t['id']}"
    return sorted(tracks, key=lambda t: (not t["default"], -t["entries"], t["name"], t["id"]))
