"""Figures for the aggregate and publish stages, built from the registry.

Plot functions take registry data and return a matplotlib `Figure`; they never touch
pyplot's global state (no backend switch, safe inside notebooks). `save_figure` writes
a figure as SVG with stable bytes (no date, fixed element ids), atomically.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from . import artifacts
from .benchmarks import PILLARS


def model_label(entry: dict) -> str:
    """Legend label of a model: its name, with the quantization when there is one."""
    name = entry.get("name") or entry.get("model_id") or "?"
    return f"{name} [{entry['quantization']}]" if entry.get("quantization") else name


def pillar_bars(registry: dict) -> Figure:
    """Grouped bars: one group per pillar, one bar per model (normalized score, 0-100).

    Accepts the registry or the leaderboard (both hold `models` with `name` and `pillars`).
    A model without a pillar has no bar there. An empty registry gives a captioned empty plot.
    """
    models = registry.get("models", [])
    fig = Figure(figsize=(9, 4.5), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / max(len(models), 1)
    for i, entry in enumerate(models):
        xs = [j - 0.4 + width * (i + 0.5) for j, p in enumerate(PILLARS) if entry["pillars"].get(p) is not None]
        ys = [entry["pillars"][p] for p in PILLARS if entry["pillars"].get(p) is not None]
        ax.bar(xs, ys, width=width, label=model_label(entry))
    ax.set_xticks(range(len(PILLARS)), [p.capitalize() for p in PILLARS])
    ax.set_ylim(0, 100)
    ax.set_ylabel("normalized score (0 = chance, 100 = perfect)")
    ax.set_title("Pillar scores by model")
    if models:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small", frameon=False)
    else:
        ax.text(0.5, 0.5, "no models yet", transform=ax.transAxes, ha="center", va="center")
    return fig


def figure_svg(fig: Figure) -> str:
    """The figure as SVG text with stable bytes (no creation date, fixed id salt)."""
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "slm-study", "svg.fonttype": "path"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def save_figure(fig: Figure, path: Path) -> Path:
    """Write `fig` as SVG to `path` atomically (temp file, then rename); returns the path."""
    return artifacts.write_text_atomic(Path(path), figure_svg(fig))
