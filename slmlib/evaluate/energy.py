"""Energy and CO2 estimates per task with CodeCarbon's offline tracker (evaluate stage).

Only `OfflineEmissionsTracker` is used: the online tracker probes the network. On
machines without RAPL, CodeCarbon estimates CPU power as TDP times load and RAM power
as a fixed figure; the method is recorded with every number, which is an estimate.
`energy_note` says so in a sentence for the report.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager


@contextmanager
def track(country: str):
    """Measure the enclosed work; yields a dict that holds the figures after the block."""
    from codecarbon import OfflineEmissionsTracker

    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    out: dict = {}
    tracker = OfflineEmissionsTracker(country_iso_code=country, output_methods=[], log_level="error",
                                      measure_power_secs=5, tracking_mode="process",
                                      allow_multiple_runs=True)
    tracker.start()
    try:
        yield out
    finally:
        co2 = tracker.stop() or 0.0
        data = tracker.final_emissions_data
        out.update({
            "kwh": data.energy_consumed, "co2_kg": co2, "cpu_kwh": data.cpu_energy,
            "ram_kwh": data.ram_energy, "duration_s": round(data.duration, 2), "country": country,
            "method": method(tracker, data), "estimate": True,
        })


def method(tracker, data) -> str:
    """How CodeCarbon estimated power (its CPU tracking mode and TDP, the RAM figure)."""
    parts = []
    for hw in getattr(tracker, "_hardware", []):
        if type(hw).__name__ == "CPU":
            tdp = getattr(hw, "_tdp", None)
            parts.append(f"CPU: {getattr(hw, '_mode', '?')}" + (f", TDP {tdp} W" if tdp else "")
                         + (" (generic TDP)" if getattr(hw, "_is_generic_tdp", False) else ""))
    parts.append(f"RAM: fixed estimate of {data.ram_power:.0f} W")
    return "; ".join(parts)


def total(records: list[dict]) -> dict | None:
    """Sum of per-task energy figures (tasks without figures are left out and counted)."""
    figures = [r for r in records if r]
    if not figures:
        return None
    return {"kwh": sum(f["kwh"] for f in figures), "co2_kg": sum(f["co2_kg"] for f in figures),
            "tasks": len(figures), "country": figures[0]["country"], "method": figures[0]["method"],
            "estimate": True}


def energy_note(results: dict) -> str:
    """One sentence on how the run's energy and CO2 were estimated (or that they were not)."""
    e = results.get("energy")
    if not e:
        return "No energy figures: CodeCarbon measured no task of this run."
    return (f"Energy and CO\u2082 of {e['tasks']} task{'s' * (e['tasks'] != 1)} (model load excluded) are CodeCarbon "
            f"estimates for the grid of {e['country']}: {e['method']}.")
