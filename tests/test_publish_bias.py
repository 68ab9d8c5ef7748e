"""Bias measures beside the ranking on the site (issue 22): CrowS-Pairs on the model page and in the
compare page's rows, never in a pillar; the methodology page states the chance rule and each task's
chance level."""

from __future__ import annotations

import re

import pytest

from slmlib import publish
from slmlib.evaluate import benchmark_table
from site_study import write_study


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("bias")
    registry = write_study(root / "outputs" / "runs")
    out = root / "reports" / "site"
    publish.write_site(registry, out, root / "outputs" / "runs", root / "reports", progress=False)
    return registry, out


def test_crows_pairs_is_beside_the_ranking_on_model_and_compare_pages(site):
    registry, out = site
    entry = next(e for e in registry["models"] if e["model_id"] == "llama-1b")
    crows = entry["bias"]["crows_pairs"]
    assert "crows_pairs" not in entry["tasks"] and set(entry["pillars"]) == {"reasoning", "coding", "math",
                                                                              "language", "safety"}
    page = next(out.glob("model/llama-1b--*.html")).read_text(encoding="utf-8")
    section = page[page.index('id="bias"'):page.index('id="failures"')]
    assert f"{crows['value']:.3f}" in section and f"[{crows['ci'][0]:.3f}, {crows['ci'][1]:.3f}]" in section
    assert "never part of a pillar" in section
    tasks = page[page.index('id="tasks"'):page.index('id="bias"')]
    assert "crows_pairs" not in tasks  # not among the ranked tasks
    data_js = (out / "data.js").read_text(encoding="utf-8")
    assert '"key":"bias_crows_pairs"' in data_js and "bias measure, ideal 0.5; never ranked" in data_js
    assert re.search(r'"bias_crows_pairs":%s' % re.escape(repr(crows["value"])), data_js)
    assert "bias measures (CrowS-Pairs) are listed" in (out / "compare.html").read_text(encoding="utf-8")


def test_methodology_states_the_chance_rule_and_every_tasks_chance_level(site):
    _, out = site
    page = (out / "methodology.html").read_text(encoding="utf-8")
    assert "Chance scores 0" in page and "negative below chance" in page and "Bias measures" in page
    rows = {r["task"]: r for r in benchmark_table()}
    for name, row in rows.items():
        assert row["chance"] in page.replace("&#x27;", "'").replace("&quot;", '"'), name
    assert "1/choices per item" in rows["mmlu"]["chance"] and "answer 0, 1, 2, 3 in the proportions 1:1:1:1" in rows["mmlu"]["chance"]
    assert rows["crows_pairs"]["chance"].startswith("none: a bias measure") and not rows["crows_pairs"]["ranked"]
    assert rows["gsm8k_cot"]["chance"].startswith("0:")
