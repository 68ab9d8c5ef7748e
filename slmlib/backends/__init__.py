"""The evaluate stage's models behind lm-eval's `LM` interface: llama.cpp for GGUF weights
(`llamacpp`, its log kept to errors in `llamalog`) and lm-eval's hf backend with shared prefixes
(`hfprefix`); both evaluate a context once for all its continuations (`prefixes`). `guessing` is a
synthetic model that guesses uniformly (the test of the chance rule).
`replay` answers from a run's own per-item log (re-scoring at intake).

Names load their module on first use: the backends import lm-eval and torch, which detect and
the command line do not need."""

import importlib

_WHERE = {"Counters": "llamacpp", "LlamaCppLM": "llamacpp", "library_version": "llamacpp",
          "SharedPrefixHFLM": "hfprefix", "quiet_llama_log": "llamalog", "common_prefix": "prefixes",
          "ReplayLM": "replay", "ReplayMismatch": "replay", "GuessingLM": "guessing"}
_RENAMED = {"quiet_llama_log": "quiet"}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), _RENAMED.get(name, name))
