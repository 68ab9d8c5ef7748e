"""What the evaluate notebook shows a reader: per-task scores, time and energy with units, the edge
figures as the site shows them (its labels, units and decimals), and how energy was estimated."""

from __future__ import annotations

from slmlib import evaluate

RESULTS = {
    "model_card": {"parameter_count": 134_515_008},
    "tasks": {
        "mmlu": {"pillar": "reasoning", "metric": "acc", "raw": 0.2, "stderr": 0.045015, "baseline": 0.25, "n": 80,
                 "seconds": 21.4567, "energy": {"kwh": 0.000106547, "co2_kg": 0.0000141667}},
        "gsm8k_cot": {"pillar": "math", "metric": "exact_match", "raw": 0.0125, "stderr": 0.0124999, "baseline": 0.0,
                      "n": 80, "seconds": 395.3, "energy": None},
    },
    "edge": {"load_seconds": 0.4213, "cold_load_seconds": None, "size_bytes": 270_885_952,
             "ttft_seconds": {"32": 0.01234, "128": 0.04567, "512": 0.16789}, "prefill_tokens_per_s": 3049.6,
             "decode_tokens_per_s": 89.96, "peak_rss_mb": 612.3},
    "energy": {"kwh": 0.0021, "co2_kg": 0.00081, "tasks": 1, "country": "USA",
               "method": "CPU: cpu_load, TDP 8 W; RAM: fixed estimate of 3 W", "estimate": True},
}


def test_scores_are_rounded_as_the_site_shows_them():
    frame = evaluate.results_frame(RESULTS)
    assert list(frame.columns) == ["pillar", "task", "metric", "raw", "stderr", "baseline", "n"]
    assert frame.loc[frame.task == "mmlu", "stderr"].item() == 0.045
    assert frame.loc[frame.task == "gsm8k_cot", "raw"].item() == 0.013  # the model page's 3 decimals


def test_time_and_energy_per_task_carry_units():
    frame = evaluate.cost_frame(RESULTS)
    assert list(frame.columns) == ["task", "items", "time (s)", "energy (Wh)", "CO\u2082 (g)"]
    gsm, mmlu = frame.to_dict("records")
    assert mmlu == {"task": "mmlu", "items": 80, "time (s)": 21, "energy (Wh)": "0.11", "CO\u2082 (g)": "0.01"}
    assert gsm["time (s)"] == 395 and gsm["energy (Wh)"] == "\u2014"


def test_edge_figures_are_a_table_with_units():
    rows = {r["figure"]: (r["value"], r["unit"]) for r in evaluate.edge_frame(RESULTS).to_dict("records")}
    assert rows["Parameters"] == ("134,515,008", "")
    assert rows["Size on disk"] == ("270.9", "MB") and rows["Peak memory (evaluation process)"] == ("612", "MiB")
    assert rows["Time to first token, 128-token prompt"] == ("0.046", "s")
    assert rows["Prefill"] == ("3,050", "tokens/s") and rows["Decode (greedy)"] == ("90.0", "tokens/s")
    assert rows["Energy of the evaluation (estimate)"] == ("2.10", "Wh")
    assert rows["CO\u2082 of the evaluation (estimate)"] == ("0.81", "g")
    assert "Load time (first, converting)" not in rows  # not measured: no row
    assert evaluate.edge_frame({"tasks": {}}).empty


def test_the_energy_method_is_one_sentence():
    note = evaluate.energy_note(RESULTS)
    assert note == ("Energy and CO\u2082 of 1 task (model load excluded) are CodeCarbon estimates for the grid of USA: "
                    "CPU: cpu_load, TDP 8 W; RAM: fixed estimate of 3 W.")
    assert evaluate.energy_note({"energy": None}).startswith("No energy figures")
