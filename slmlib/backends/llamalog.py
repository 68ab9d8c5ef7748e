"""llama.cpp's log, kept to its errors.

llama-cpp-python 0.3.36 installs a log callback that numbers ggml's levels as an older ggml
did (its ERROR is today's WARN), so it prints warnings and hides errors, and its quiet mode
closes stderr while a model loads. `quiet()` replaces that callback: errors (and their
continued lines) go to stderr, the rest (load and conversion chatter) is dropped.
"""

from __future__ import annotations

import sys

LOG_ERROR, LOG_CONT = 4, 5  # ggml_log_level: NONE, DEBUG, INFO, WARN, ERROR, CONT
_state = {"level": 0, "callback": None}  # the ctypes callback must outlive every llama.cpp call


def message(level: int, text: bytes, _user_data=None) -> None:
    """One piece of llama.cpp's log: printed to stderr when it belongs to an error."""
    if level != LOG_CONT:
        _state["level"] = level
    if _state["level"] == LOG_ERROR:
        print(text.decode("utf-8", errors="replace"), end="", file=sys.stderr, flush=True)


def quiet() -> None:
    """Route llama.cpp's log through `message` (once per process)."""
    import ctypes

    import llama_cpp

    if _state["callback"] is None:
        _state["callback"] = llama_cpp.llama_log_callback(message)
        llama_cpp.llama_log_set(_state["callback"], ctypes.c_void_p(0))
