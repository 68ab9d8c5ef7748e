"""`make bench`'s pieces (the bench itself is a measurement, not a test): a child process is its
own, the bandwidth figure is sane, the committed docs/bench.md is what docs/bench.json renders (one
section per CPU kind), with every decoding configuration timed in every round, and batched decoding
measures what it says."""

from __future__ import annotations

import os

from slmlib import artifacts
from slmlib.tools import bench


def test_in_child_runs_in_another_process():
    assert bench.in_child(os.getpid) != os.getpid()


def test_measure_bandwidth_is_sane():
    bw = bench.measure_bandwidth(n_bytes=2**26, repeats=1)
    assert 0.5 < bw["read_gb_s"] < 2000 and 0.5 < bw["copy_gb_s"] < 2000 and bw["threads"] >= 1


def test_committed_markdown_is_rendered_from_the_committed_json():
    doc = artifacts.read_json(bench.OUT_DIR / "bench.json")
    assert doc["schema_version"] == 3 and doc["machines"]
    latest = max(doc["machines"], key=lambda k: doc["machines"][k]["date"])
    assert (bench.OUT_DIR / "bench.md").read_text() == bench.document(doc["machines"], latest)
    for kind, report in doc["machines"].items():
        assert f"## {kind}" in bench.markdown(report)
        assert set(report["configs"]) == set(bench.CONFIGS) and report["configs"][bench.BASELINE]["speedup"] == 1
        assert bench.headline(report) in bench.markdown(report)
        decoded = {n: r["decode"] for n, r in report["configs"].items() if r["decode"]}
        assert set(decoded) == {n for n, c in bench.CONFIGS.items() if c.get("decode")}
        assert all(len(d["rounds"]) == report["rounds"] for d in decoded.values())
        assert decoded[bench.BASELINE]["ratio_to_baseline"] == 1
    batched = doc["machines"][latest]["batched"]
    assert sorted(int(b) for b in batched["batches"]) == list(bench.DECODE_BATCHES)
    assert batched["batches"]["1"]["ratio_to_one"] == 1
    assert all(len(r["rounds"]) == batched["rounds"] for r in batched["batches"].values())


def test_a_run_replaces_its_own_cpu_kinds_section_and_keeps_the_others(tmp_path):
    doc = artifacts.read_json(bench.OUT_DIR / "bench.json")
    mine = max(doc["machines"].values(), key=lambda r: r["date"])
    other = {**mine, "cpu_kind": "Intel Xeon: x86_64 avx2 avx512f", "date": "2026-01-01 00:00 UTC"}
    bench.write_bench(other, tmp_path)
    again = {**mine, "date": "2026-12-01 00:00 UTC"}
    bench.write_bench(again, tmp_path)
    written = artifacts.read_json(tmp_path / "bench.json")["machines"]
    assert written == {other["cpu_kind"]: other, mine["cpu_kind"]: again}
    text = (tmp_path / "bench.md").read_text()
    assert text.index(f"## {mine['cpu_kind']}") < text.index("## Intel Xeon")  # this run's kind first


def test_a_batched_round_decodes_every_batch_and_measures_the_ceiling(monkeypatch):
    """Real model, a short round: B prompts decode exactly DECODE_NEW tokens together, after the first
    (how fast is the bench's to measure, not a test's)."""
    monkeypatch.setattr(bench, "DECODE_NEW", 8)
    monkeypatch.setattr(bench, "CEILING_TOKENS", 64)
    weights = bench.agreement.default_weights()
    out = bench.batched_round(bench.CONFIGS[bench.BATCHED], weights, batches=(1, 8))
    one, eight = out["batches"][1], out["batches"][8]
    assert (one["tokens"], eight["tokens"]) == (7, 8 * 7)  # every sequence decodes DECODE_NEW tokens
    assert one["tokens_per_s"] > 0 and eight["tokens_per_s"] > 0 and out["ceiling_tokens_per_s"] > 0
    assert eight["per_sequence_tokens_per_s"] == round(eight["tokens_per_s"] / 8, 1)
