"""Measurements beside the study, run from the command line: `bench` (how fast each backend scores
and decodes here, `make bench`) and `agreement` (does llama.cpp choose what transformers float32
chooses, `python -m slmlib agree`). Import the module you need: each loads lm-eval and torch."""

__all__ = ["agreement", "bench"]
