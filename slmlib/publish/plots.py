"""Figures for the aggregate and publish stages, built from the registry.

Plot functions take the registry and a track id and return a matplotlib `Figure` of that track's entries
(without an id, the track shown first: `aggregate.track_of`), named in the title: scores of different
tracks never share a chart; they never touch pyplot's global state (no backend switch, safe
inside notebooks). `save_figure` writes a figure as SVG with stable bytes (no date, fixed
element ids, text as paths so a submitted name can never become markup), atomically.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from .. import artifacts
from ..aggregate import track_entries, track_of
from ..benchmarks import PILLARS

AXIS_SCORE = "aggregate (0 = chance, 100 = perfect)"


def model_label(entry: dict) -> str:
    """Legend label of a model: its name, with the quantization when there is one."""
    name = entry.get("name") or entry.get("model_id") or "?"
    return f"{name} [{entry['quantization']}]" if entry.get("quantization") else name


def colors(registry: dict) -> dict[str, str]:
    """One colour per entry, by its place in the registry, so a model keeps its colour in every chart."""
    return {e["entry_id"]: f"C{i % 10}" for i, e in enumerate(registry.get("models", []))}


def labels(models: list[dict]) -> list[str]:
    """Legend labels, made unique: entries of one model on other items get their limits appended."""
    base = [model_label(e) for e in models]
    return [f"{b} (limit {e.get('limit')}/{e.get('limit_generative')})" if base.count(b) > 1 else b
            for b, e in zip(base, models)]


def shown(registry: dict, track: str | None = None) -> tuple[list[dict], str]:
    """The entries of one track (default: the one shown first) and a title line naming it."""
    found = track_of(registry, track)
    return track_entries(registry, track), f"track {found['name']}" if found else "no track"


def _empty(ax, text: str = "no models yet") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center")


def _legend(ax) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small", frameon=False)


def pillar_bars(registry: dict, track: str | None = None) -> Figure:
    """Grouped bars: one group per pillar, one bar per model (normalized score, 0-100), with the
    95% bootstrap interval as an error bar where the registry has one.

    A model without a pillar has no bar there. An empty registry gives a captioned empty plot.
    """
    models, title = shown(registry, track)
    color = colors(registry)
    fig = Figure(figsize=(9, 4.5), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / max(len(models), 1)
    for i, (entry, label) in enumerate(zip(models, labels(models))):
        present = [(j, p) for j, p in enumerate(PILLARS) if entry["pillars"].get(p) is not None]
        xs = [j - 0.4 + width * (i + 0.5) for j, _ in present]
        ys = [entry["pillars"][p] for _, p in present]
        cis = ((entry.get("intervals") or {}).get("pillars") or {})
        err = [[max(0.0, y - cis[p][0]) if cis.get(p) else 0.0 for (_, p), y in zip(present, ys)],
               [max(0.0, cis[p][1] - y) if cis.get(p) else 0.0 for (_, p), y in zip(present, ys)]]
        ax.bar(xs, ys, width=width, label=label, color=color.get(entry.get("entry_id"), f"C{i % 10}"),
               yerr=err if any(map(any, err)) else None,
               error_kw={"elinewidth": 1, "capsize": 2, "ecolor": "#333333"})
    ax.set_xticks(range(len(PILLARS)), [p.capitalize() for p in PILLARS])
    ax.set_ylim(0, 100)
    ax.set_ylabel("normalized score (0 = chance, 100 = perfect)")
    ax.set_title(f"Pillar scores by model (error bars: 95% bootstrap interval)\n{title}")
    _legend(ax) if models else _empty(ax)
    return fig


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point dominates (fewer or equal x and higher or equal y,
    strictly better in one), sorted by x: the best score for each size."""
    front = [i for i, (x, y) in enumerate(points)
             if not any((x2 <= x and y2 >= y) and (x2, y2) != (x, y) for x2, y2 in points)]
    return sorted(front, key=lambda i: points[i])


def _aggregate_against(registry: dict, models: list[dict], xs: list[float], xlabel: str, title: str,
                       empty: str) -> tuple[Figure, list[tuple[float, float]]]:
    """A scatter of the models' aggregates (95% interval as error bars) against `xs`; returns the
    figure and the points (none for no models: the plot says `empty`)."""
    fig = Figure(figsize=(9, 4.5), layout="constrained")
    ax = fig.add_subplot()
    if not models:
        _empty(ax, empty)
        return fig, []
    color = colors(registry)
    points = [(x, e["aggregate"]) for x, e in zip(xs, models)]
    for (x, y), entry, label in zip(points, models, labels(models)):
        ci = (entry.get("intervals") or {}).get("aggregate")
        yerr = [[y - ci[0]], [ci[1] - y]] if ci else None
        ax.errorbar([x], [y], yerr=yerr, fmt="o", capsize=3, label=label, color=color.get(entry.get("entry_id")))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(AXIS_SCORE)
    ax.set_title(title)
    return fig, points


def aggregate_vs_parameters(registry: dict, track: str | None = None) -> Figure:
    """Aggregate (with its 95% interval) against parameter count (log scale), Pareto frontier drawn."""
    entries, title = shown(registry, track)
    models = [e for e in entries if e.get("aggregate") is not None]
    fig, points = _aggregate_against(registry, models, [e["parameter_count"] for e in models],
                                     "parameters (log scale; ticks at the models' sizes)",
                                     f"Aggregate against size\n{title}", "no models yet")
    if points:
        ax = fig.axes[0]
        front = [points[i] for i in pareto_front(points)]
        ax.step([x for x, _ in front], [y for _, y in front], where="post", color="#555555", linestyle="--",
                linewidth=1, label="Pareto frontier (best score for its size)")
        ax.set_xscale("log")
        ticks = size_ticks(models)
        ax.set_xticks([c for c, _ in ticks], [label for _, label in ticks])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.margins(x=0.15)
        _legend(ax)
    return fig


def size_ticks(models: list[dict], gap: float = 1.15) -> list[tuple[int, str]]:
    """X ticks at the models' parameter counts, labelled like `135M`; a size within `gap` (ratio) of
    the previous tick gets none, so labels never overlap."""
    ticks: list[tuple[int, str]] = []
    for count, label in sorted((e["parameter_count"], e.get("parameters") or f"{e['parameter_count']:,}")
                               for e in models):
        if not ticks or count > ticks[-1][0] * gap:
            ticks.append((count, label))
    return ticks


def aggregate_vs_energy(registry: dict, track: str | None = None) -> Figure:
    """Aggregate against the energy of evaluation (kWh, model load excluded; an estimate)."""
    entries, title = shown(registry, track)
    models = [e for e in entries if e.get("aggregate") is not None and e.get("energy")]
    fig, points = _aggregate_against(
        registry, models, [e["energy"]["kwh"] * 1000 for e in models],
        "energy of the evaluation, Wh (estimate; hardware-dependent, never ranked)",
        f"Aggregate against energy\n{title}", "no energy measurements")
    if points:
        _legend(fig.axes[0])
    return fig


def co2_per_model(registry: dict, track: str | None = None) -> Figure:
    """Horizontal bars: estimated CO2 of each model's evaluation (grams)."""
    entries, title = shown(registry, track)
    models = [e for e in entries if e.get("energy")]
    fig = Figure(figsize=(9, 1.5 + 0.45 * max(len(models), 1)), layout="constrained")
    ax = fig.add_subplot()
    if not models:
        _empty(ax, "no energy measurements")
        return fig
    names = labels(models)
    grams = [e["energy"]["co2_kg"] * 1000 for e in models]
    color = colors(registry)
    ax.barh(range(len(models)), grams, color=[color.get(e.get("entry_id"), "C0") for e in models])
    ax.set_yticks(range(len(models)), names)
    ax.invert_yaxis()
    for i, g in enumerate(grams):
        ax.text(g, i, f" {g:.2f} g", va="center", fontsize="small")
    ax.set_xlabel("CO\u2082 of the evaluation, grams (estimate from the grid's carbon intensity)")
    ax.set_title(f"CO\u2082 per model\n{title}")
    ax.margins(x=0.15)
    return fig


CHARTS = {  # file name in the site's charts/ folder -> (figure builder, what it shows)
    "pillars.svg": (pillar_bars, "pillar scores of every model with 95% intervals"),
    "aggregate_vs_parameters.svg": (aggregate_vs_parameters, "aggregate against parameter count, Pareto frontier"),
    "aggregate_vs_energy.svg": (aggregate_vs_energy, "aggregate against energy of the evaluation"),
    "co2.svg": (co2_per_model, "estimated CO2 per model"),
}


def figure_svg(fig: Figure) -> str:
    """The figure as SVG text with stable bytes (no creation date, fixed id salt)."""
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "slm-study", "svg.fonttype": "path"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def save_figure(fig: Figure, path: Path) -> Path:
    """Write `fig` as SVG to `path` atomically (temp file, then rename); returns the path."""
    return artifacts.write_text_atomic(Path(path), figure_svg(fig))
