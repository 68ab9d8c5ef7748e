"""SLM Study: a notebook-driven benchmark and leaderboard for small language models."""

__version__ = "0.1.0"
