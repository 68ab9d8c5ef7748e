"""Measurements beside the study, run from the command line: `bench` (how fast each backend scores
and decodes here, `make bench`), `agreement` (does llama.cpp choose what transformers float32
chooses, `python -m slmlib agree`) and `audit` (does a run's seeded part come out the same when redone
here, `python -m slmlib audit`). Import the module you need: each loads lm-eval and torch."""

__all__ = ["agreement", "audit", "bench"]
