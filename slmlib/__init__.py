"""SLM Study: a notebook-driven benchmark and leaderboard for small language models."""

__version__ = "0.1.0"

import warnings

# tqdm.auto inside a Jupyter kernel without ipywidgets falls back to text bars (which papermill
# streams to the terminal) and warns about it once per kernel; the text bars are what we want.
warnings.filterwarnings("ignore", message="IProgress not found")
