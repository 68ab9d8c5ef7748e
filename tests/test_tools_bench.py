"""`make bench`'s pieces (the bench itself is a measurement, not a test): a child process is its
own, the bandwidth figure is sane, and the committed docs/bench.md is what docs/bench.json renders,
with every decoding configuration timed in every round."""

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
    report = artifacts.read_json(bench.OUT_DIR / "bench.json")
    assert (bench.OUT_DIR / "bench.md").read_text() == bench.markdown(report)
    assert set(report["configs"]) == set(bench.CONFIGS) and report["configs"][bench.BASELINE]["speedup"] == 1
    assert bench.headline(report) in bench.markdown(report)
    decoded = {n: r["decode"] for n, r in report["configs"].items() if r["decode"]}
    assert set(decoded) == {n for n, c in bench.CONFIGS.items() if c.get("decode")}
    assert all(len(d["rounds"]) == report["rounds"] for d in decoded.values())
    assert decoded[bench.BASELINE]["ratio_to_baseline"] == 1
