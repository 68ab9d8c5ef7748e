"""reports/index.html (one row per run, newest first, a failed stage marked and linked first) and the
study report (reports/study.html and what changed since the last publication), on the synthetic study."""

from __future__ import annotations

import copy
import json
import re
import shutil

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from site_study import HOSTILE_NAME, STAGE_NOTEBOOKS, TASKS, write_study
from slmlib import artifacts, paths
from slmlib.publish import study_report
from slmlib.publish import figure_rows, fmt_figure, render_reports_index, spec_values, write_site, write_study_report


def executed(run_id: str, start: str, seconds: list[float], failed: str | None = None) -> None:
    """Executed notebooks as papermill records them, and their two HTML reports."""
    for stem, s in zip(STAGE_NOTEBOOKS, seconds):
        meta = {"papermill": {"start_time": start, "duration": s, "exception": True if stem == failed else None}}
        artifacts.write_json(paths.executed_dir(paths.run_dir(run_id)) / f"{stem}.ipynb",
                             {"cells": [], "metadata": meta, "nbformat": 4, "nbformat_minor": 5})
        for suffix in (".html", ".no-code.html"):
            artifacts.write_text_atomic(paths.run_reports_dir(run_id) / f"{stem}{suffix}", "<html></html>")


@pytest.fixture(scope="module")
def study_registry(tmp_path_factory):
    runs = tmp_path_factory.mktemp("study") / "runs"
    return runs, write_study(runs)


@pytest.fixture
def study(study_registry, tmp_path):
    """The synthetic study in this test's output root, its site published."""
    runs, registry = study_registry
    shutil.copytree(runs, paths.runs_dir())
    write_site(registry, progress=False)
    return copy.deepcopy(registry)


def rows_of(page: str) -> list[str]:
    return re.findall(r"<tr><td.*?</tr>", page, flags=re.S)


def test_the_index_has_one_row_per_run_newest_first_with_what_a_maintainer_looks_for(study):
    executed("smol-f32__run0", "2026-11-30T10:00:00.000001", [5, 100, 3, 4.2])
    executed("qwen-05b__run0", "2026-11-30T12:00:00.5", [5, 7.5], failed="02_evaluate")
    executed("llama-1b__run0", "2026-11-29T09:00:00", [2])
    page = render_reports_index(paths.reports_root(), study)
    rows = rows_of(page)
    assert len(rows) == 3 and "qwen-05b__run0" in rows[0] and "smol-f32__run0" in rows[1] and "llama-1b" in rows[2]
    failed = rows[0]
    assert 'class="failed">failed at 02 evaluate</span>' in failed
    links = re.findall(r'href="([^"]+\.no-code\.html)"', failed)
    assert links == ["qwen-05b__run0/02_evaluate.no-code.html", "qwen-05b__run0/01_detect.no-code.html"]
    smol = rows[1]
    entry = next(e for e in study["models"] if "smol-f32__run0" in e["run_ids"])
    slug = entry["entry_id"].replace("@", "--")
    assert f'href="site/model/{slug}.html">SmolLM2-135M-Instruct</a>' in smol and (paths.site_dir() / "model" /
                                                                                  f"{slug}.html").is_file()
    track = next(t["name"] for t in study["tracks"] if t["id"] == entry["track"])
    assert f"<td>{track}</td>" in smol and "<td>F32</td>" in smol
    assert "2026-11-30 10:00 UTC" in smol and "1 min 52 s" in smol and "done (4 stages)" in smol
    assert f"<td class=num>{entry['aggregate']:.1f}</td>" in smol and '<td class="num nw">1 min 52 s</td>' in smol
    assert 'href="smol-f32__run0/04_publish.html">(code)</a>' in smol
    assert str(paths.reports_root()) not in page and 'href="site/index.html"' in page


def test_the_index_needs_no_registry_and_survives_a_damaged_notebook(study):
    executed("smol-f32__run0", "2026-11-30T10:00:00", [5])
    (paths.executed_dir(paths.run_dir("smol-f32__run0")) / "01_detect.ipynb").write_text("{not json")
    artifacts.write_text_atomic(paths.run_reports_dir("gone") / "01_detect.no-code.html", "<html></html>")
    no_tracks = {**study, "tracks": None, "models": [{k: v for k, v in e.items() if k != "track"}
                                                     for e in study["models"]]}
    for registry in (None, {"models": "garbage"}, no_tracks):
        page = render_reports_index(paths.reports_root(), registry)
        assert len(rows_of(page)) == 2 and "SmolLM2-135M-Instruct" in page and ">gone<" in page
    assert "No executed notebooks yet" in render_reports_index(paths.reports_root() / "missing")


def test_the_study_report_holds_what_a_reader_cites(study):
    path = write_study_report(study)
    assert path == paths.reports_root() / "study.html"
    page = path.read_text()
    for section in ("What was evaluated", "Tracks", "Tasks", "Leaderboard", "Charts", "Pairwise comparisons",
                    "What changed", "Caveats", "Runs and their reports"):
        assert f">{section}</h" in page, section
    assert "Cite as:" in page and "registry SHA-256" in page and "First publication" in page
    assert "Scores are on subsamples (30 items per multiple-choice task and 30 per generative task)" in page
    for task in TASKS:
        assert f"<td>{task}</td>" in page
    assert page.count("<code>dddddddddddd</code>") == len(TASKS)  # the data digest of every task
    shown = [t for t in study["tracks"] if t["entries"]]
    assert len(shown) == 2 and page.count("data:image/svg+xml;base64,") == 4 * len(shown)  # the charts of each track
    assert all(f"<h3>{t['name']}</h3>" in page for t in shown)
    assert HOSTILE_NAME not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert len(re.findall(r"<td>(not )?significant</td>|unpaired: CIs", page)) == len(study["comparisons"])
    first = study["models"][0]
    assert f"<b>{first['aggregate']:.1f}</b> [{first['intervals']['aggregate'][0]:.1f}, " in page
    banded = next(e for e in study["models"] if e["rank_range"][0] != e["rank_range"][1])
    assert f"<td>{banded['rank_range'][0]}\u2013{banded['rank_range'][1]}</td>" in page
    run_links = re.findall(r'href="([^"]+\.no-code\.html)"', page)
    assert len(run_links) == 4 * sum(len(e["run_ids"]) for e in study["models"])
    assert all(not link.startswith("/") and link.count("/") == 1 for link in run_links)
    assert str(paths.reports_root()) not in page and str(paths.outputs_root()) not in page
    assert 'href="study.html">Study report</a>' in render_reports_index(paths.reports_root(), study)


def test_what_changed_is_told_against_the_last_publication_of_another_registry(study):
    write_study_report(study)
    first = json.loads((paths.reports_root() / "study.json").read_text())
    changed = copy.deepcopy(study)
    removed = changed["models"].pop()
    moved = changed["models"][0]
    moved["aggregate"] += 2.0
    write_study_report(changed)
    summary = json.loads((paths.reports_root() / "study.json").read_text())
    assert summary["since"] == first["published_at"]
    assert f"Removed: {removed['name']}." in summary["changes"] or any(
        c.startswith(f"Removed: {removed['name']}") for c in summary["changes"])
    assert any(c.startswith(f"Changed: {moved['name']}") and f"\u2192 {moved['aggregate']:.1f}" in c
               for c in summary["changes"])
    write_study_report(changed)  # republishing the same registry keeps what changed
    again = json.loads((paths.reports_root() / "study.json").read_text())
    assert again["changes"] == summary["changes"] and again["since"] == first["published_at"]
    page = (paths.reports_root() / "study.html").read_text()
    assert f"Since the publication of {first['published_at']}" in page and "Removed: " in page
    for damaged in ("[1, 2", json.dumps({**again, "entries": {"x": 3}}), json.dumps({**again, "changes": "text"})):
        (paths.reports_root() / "study.json").write_text(damaged)  # the next one is a first publication
        write_study_report(study)
        assert json.loads((paths.reports_root() / "study.json").read_text())["changes"] == [
            "First publication: no earlier report to compare with."]


def test_figures_are_rounded_and_labelled_as_the_site_shows_them(study):
    entry = study["models"][0]
    rows = figure_rows(spec_values(entry))
    by_label = {r["figure"]: r for r in rows}
    assert by_label["Decode (greedy)"] == {"figure": "Decode (greedy)", "unit": "tokens/s",
                                           "value": f"{entry['edge']['decode_tokens_per_s']:,.1f}"}
    assert by_label["Energy of the evaluation (estimate)"]["value"] == f"{entry['energy']['kwh'] * 1000:,.2f}"
    assert fmt_figure("co2_g", 1.23456) == "1.23" and fmt_figure("prefill_tokens_per_s", 1234.5) == "1,234"
    assert fmt_figure("energy_wh", None) == "\u2014"
    with pytest.raises(KeyError):
        fmt_figure("no-such-figure", 1.0)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=3), max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(json_values, st.fixed_dictionaries(
    {"kind": st.just("SLM Study report summary"), "registry_sha256": st.text(max_size=4),
     "published_at": st.text(max_size=4),
     "entries": st.dictionaries(st.sampled_from(["m@1", "x"]), st.one_of(json_values, st.fixed_dictionaries(
         {}, optional={k: json_values for k in ("name", "quantization", "track", "aggregate", "rank")})), max_size=2)},
    optional={"changes": json_values})))
def test_any_last_summary_is_read_or_refused_and_never_breaks_what_changed(tmp_path, value):
    (tmp_path / "study.json").write_text(json.dumps(value))
    previous = study_report.read_previous(tmp_path)
    current = study_report.summary({"models": [{"entry_id": "m@1", "name": "M", "aggregate": 1.0, "rank": 1}]})
    told = study_report.changes(previous, current)
    assert told and all(isinstance(c, str) for c in told)
