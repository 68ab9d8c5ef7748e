"""Unit tests for the publish stage: page data, pages, model pages, charts and the written site,
on a synthetic study (tests/site_study.py) built through the real registry."""
from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from matplotlib.figure import Figure

from site_study import HOSTILE_FAMILY, HOSTILE_NAME, TASKS, write_study
from slmlib import artifacts
from slmlib import aggregate, detect, publish
from slmlib.publish import plots
from slmlib.benchmarks import PILLARS, all_benchmarks
from slmlib.datapacks import PACKS, DataPack
from slmlib.aggregate import BADGES, WEIGHTS, build_registry
from slmlib.publish.site import data, evidence, reference

PAGES = ("index.html", "compare.html", "methodology.html", "submit.html")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The synthetic study's registry and its run folders, and the site written from them."""
    root = tmp_path_factory.mktemp("study")
    registry = write_study(root / "outputs" / "runs")
    site = root / "reports" / "site"
    written = publish.write_site(registry, site, root / "outputs" / "runs", root / "reports", progress=False)
    return {"registry": registry, "root": root, "site": site, "written": written}


class Refs(HTMLParser):
    """Collects src/href attributes and script/style/link tags of a page."""

    def __init__(self):
        super().__init__()
        self.refs, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self.refs += [(tag, k, v) for k, v in attrs if k in ("src", "href")]


def parse(path: Path) -> Refs:
    refs = Refs()
    refs.feed(path.read_text(encoding="utf-8"))
    return refs


def test_site_data_groups_entries_of_one_model(study):
    board = data.site_data(study["registry"])
    groups = {g["key"]: g for g in board["groups"]}
    smol = groups["repo:HuggingFaceTB/SmolLM2-135M-Instruct"]
    labels = lambda ids: [board["entries"][i]["quantization_label"] for i in ids]  # noqa: E731
    assert labels([smol["primary"]]) == ["F32"] and labels(smol["variants"]) == ["BF16", "Q4_1"]  # by rank
    assert len(board["groups"]) == len(study["registry"]["models"]) - 2
    assert [g["primary"] for g in board["groups"]] == [e for e in board["order"] if e in
                                                       {g["primary"] for g in board["groups"]}]
    view = board["entries"][smol["primary"]]
    assert view["slug"] == view["entry_id"].replace("@", "--") and view["source_url"].startswith("https://huggingface.co/")
    assert [t["task"] for t in view["tasks"]][:2] == ["arc_challenge", "hellaswag"]  # pillar order
    entry = next(e for e in study["registry"]["models"] if e["entry_id"] == smol["primary"])
    assert view["spec"]["co2_g"] == pytest.approx(entry["energy"]["co2_kg"] * 1000)
    assert view["spec"]["ttft_128"] == entry["edge"]["ttft_seconds.128"]
    assert data.source_url("not a repo") is None and data.source_url("<x>/y") is None


def test_leaderboard_json_has_one_row_per_entry(study):
    board = data.leaderboard_json(study["registry"])
    assert board["schema_version"] == data.SCHEMA_VERSION and board["pillar_weights"] == WEIGHTS
    assert [m["entry_id"] for m in board["models"]] == [e["entry_id"] for e in study["registry"]["models"]]
    assert sum(m["primary"] for m in board["models"]) == len(board["models"]) - 2
    assert all(set(data.MODEL_FIELDS) <= set(m) for m in board["models"])
    json.dumps(board, allow_nan=False)
    on_disk = json.loads((study["site"] / "leaderboard.json").read_text())
    assert on_disk == json.loads(json.dumps(board))


def test_data_js_cannot_end_a_script_and_round_trips():
    payload = {"name": "</script><!-- <b>&amp;\u2028", "n": 1.5}
    text = data.data_js(payload)
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert text.startswith("window.SLM = ") and text.endswith(";\n")
    assert json.loads(text[len("window.SLM = "):-2]) == payload


def test_every_page_links_only_to_files_in_the_site(study):
    site = study["site"]
    pages = [site / p for p in PAGES] + sorted((site / "model").glob("*.html"))
    assert len(pages) == len(PAGES) + len(study["registry"]["models"])
    reports = study["root"] / "reports"
    for page in pages:
        refs = parse(page)
        for tag, attr, url in refs.refs:
            if url == "data:,":  # the empty favicon: no request for /favicon.ico
                continue
            if url.startswith("https://"):  # only links to a model's source, never loaded by the page
                assert tag == "a" and url.startswith("https://huggingface.co/"), (page.name, url)
                continue
            assert "://" not in url and not url.startswith("//"), (page.name, url)
            target = (page.parent / url.split("#")[0]).resolve()
            if target.is_relative_to(site.resolve()):
                assert target.exists(), (page.name, url)
            else:  # HTML reports of the run, written by the runner next to the site
                assert target.is_relative_to(reports.resolve()), (page.name, url)
        csp = [a for t, a in refs.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
        assert csp and "default-src 'none'" in csp[0]["content"] and "connect-src 'none'" in csp[0]["content"]
        assert not any(t == "script" and "src" not in a for t, a in refs.tags), page.name  # no inline scripts


def test_hostile_strings_are_escaped_everywhere(study):
    site = study["site"]
    for path in [*site.glob("*.html"), *site.glob("model/*.html")]:
        text = path.read_text(encoding="utf-8")
        assert HOSTILE_NAME not in text and HOSTILE_FAMILY not in text, path.name
        assert "<img src=x" not in text and "<script>alert" not in text, path.name
    assert "<" not in (site / "data.js").read_text(encoding="utf-8")
    index = (site / "index.html").read_text()
    assert "&lt;img src=x onerror=alert(1)&gt;" in index and "&lt;/script&gt;&lt;script&gt;alert(2)" in index
    evil = next(site.glob("model/evil--*.html")).read_text()
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in evil  # a generated answer in the worst items
    for chart in site.glob("charts/*/*.svg"):
        assert HOSTILE_NAME not in chart.read_text()  # SVG text is drawn as paths


def test_leaderboard_rows_controls_and_charts(study):
    page = (study["site"] / "index.html").read_text()
    board = data.site_data(study["registry"])
    assert page.count('<tr class="model"') == len(board["groups"])
    assert page.count('<tr class="variant"') == sum(len(g["variants"]) for g in board["groups"])
    for name in ("bucket", "family", "license", "badge", "pillar"):
        assert f'id="f-{name}"' in page
    for badge in BADGES:
        assert f'<option value="{badge["name"]}">' in page
    assert "DISPUTED" in page and "(3\u20134)" in page  # a disputed entry; a tie from the rank ranges
    for t in board["tracks"]:  # the charts of every track, each in its own section (the first shown)
        for name in plots.CHARTS:
            assert f'src="charts/{t["id"]}/{name}"' in page
        hidden = "" if t["id"] == board["shown_track"] else " hidden"
        assert f'<section class="charts-track" data-track="{t["id"]}"{hidden}>' in page
    assert 'href="../index.html">Reports</a>' in page


def test_leaderboard_shows_one_track_even_without_scripts(study):
    """Rows of a track other than the one shown first are hidden in the HTML itself; every row names its
    track; leaderboard.json lists the tracks and each row's track."""
    registry, board = study["registry"], data.site_data(study["registry"])
    shown = aggregate.track_of(registry)
    assert board["shown_track"] == shown["id"] and [t["id"] for t in board["tracks"]] == \
        [t["id"] for t in registry["tracks"] if t["entries"]]
    page = (study["site"] / "index.html").read_text()
    rows = re.findall(r'<tr class="(model|variant)" data-id="([^"]+)" data-group="[^"]*" data-track="([^"]+)"( hidden)?>',
                      page)
    assert len(rows) == len(registry["models"])
    for kind, entry_id, track, hidden in rows:
        assert (kind == "model" and track == shown["id"]) == (not hidden), entry_id
    assert {t for _, _, t, _ in rows} == {e["track"] for e in registry["models"]} and len(board["tracks"]) == 2
    assert page.count('<span class="track"') == len(rows)
    machine = data.leaderboard_json(registry)
    assert machine["tracks"] == registry["tracks"] and all(m["track"] for m in machine["models"])
    assert {g["track"] for g in board["groups"] if g["key"] == "repo:HuggingFaceTB/SmolLM2-135M-Instruct"} == {shown["id"]}


def test_a_registry_from_before_tracks_is_refused_with_the_fix(study, tmp_path):
    old = {**study["registry"], "schema_version": 3}
    old.pop("tracks")
    with pytest.raises(ValueError, match="registry: entries without tracks .* run the aggregate stage again"):
        publish.write_site(old, tmp_path / "site", tmp_path / "runs", tmp_path, progress=False)
    assert not (tmp_path / "site").exists()


def test_model_page_shows_card_tasks_failures_provenance_and_links(study):
    site, registry = study["site"], study["registry"]
    entry = next(e for e in registry["models"] if e["model_id"] == "qwen-05b")
    page = (site / "model" / f"{data.entry_slug(entry['entry_id'])}.html").read_text()
    assert "<h1>Qwen2.5-0.5B-Instruct</h1>" in page and "494,032,768" in page
    assert page.count("</tr>", page.index('class="tasks"')) >= len(entry["tasks"])
    for task, t in entry["tasks"].items():
        assert f">{task}</span>" in page and f"{t['normalized']:.1f}" in page
    assert page.count('class="item"') >= 1 and "crows_pairs" not in entry["tasks"]  # a bias measure, not a task row
    assert 'class="radar" data-entry="' + entry["entry_id"] in page
    assert "DISPUTED" in page and entry["weights"]["sha256"] in page and "d" * 64 in page
    for run_id in entry["run_ids"]:
        assert f'href="../../{run_id}/02_evaluate.html"' in page
        assert f'href="../../{run_id}/02_evaluate.no-code.html"' in page
        assert f'href="../samples/{run_id}/boolq.jsonl"' in page
        assert (site / "samples" / run_id / "boolq.jsonl").read_bytes() == (
            study["root"] / "outputs" / "runs" / run_id / "samples" / "boolq.jsonl").read_bytes()


def smol_set(registry: dict) -> dict:
    (qset,) = registry["quantizations"]
    return qset


def test_registry_compares_the_three_quantizations(study):
    qset = smol_set(study["registry"])
    assert [v["name"] for v in qset["variants"]] == ["F32", "BF16", "Q4_1"] and qset["variants"][0]["reference"]
    q4 = qset["variants"][2]
    assert q4["differences"]["aggregate"]["paired"] and q4["differences"]["aggregate"]["difference"] < 0
    assert set(q4["differences"]["pillars"]) == set(PILLARS)


def test_model_pages_show_the_quantizations_side_by_side(study):
    site, qset = study["site"], smol_set(study["registry"])
    slugs = {v["entry_id"]: data.entry_slug(v["entry_id"]) for v in qset["variants"]}
    for v in qset["variants"]:
        page = (site / "model" / f"{slugs[v['entry_id']]}.html").read_text()
        part = page[page.index('<h2 id="quantizations">'):page.index('<h2 id="tasks">')]
        assert part.count("<tr>") == 1 + len(qset["variants"])  # head and one row per quantization
        assert f"<b>{v['name']}</b> (this page)" in part
        for other in qset["variants"]:
            if other is not v:
                assert f'href="{slugs[other["entry_id"]]}.html">{other["name"]}</a>' in part
        assert part.count('<span class="muted">reference</span>') == 1 + len(PILLARS)
        for other in qset["variants"][1:]:
            d = other["differences"]["aggregate"]
            assert f"{d['difference']:+.1f}</span> <span class=\"ci\">[{d['difference_ci'][0]:.1f}, " in part
        marks = sum(d["significant"] for o in qset["variants"][1:] for d in
                    [o["differences"]["aggregate"], *o["differences"]["pillars"].values()])
        assert part.count('class="sig"') == marks > 0
    other_page = next(site.glob("model/qwen-05b--*.html")).read_text()
    assert 'id="quantizations"' not in other_page


def test_compare_page_holds_each_quantization_set_hidden(study):
    page = (study["site"] / "compare.html").read_text()
    qset = smol_set(study["registry"])
    ids = " ".join(v["entry_id"] for v in qset["variants"])
    assert f'<section class="quantization-set" data-entries="{ids}" hidden>' in page
    assert page.count('class="quantization-set"') == len(study["registry"]["quantizations"])
    assert f'href="model/{data.entry_slug(qset["variants"][1]["entry_id"])}.html">BF16</a>' in page


def test_leaderboard_names_the_other_quantizations(study):
    page = (study["site"] / "index.html").read_text()
    assert 'title="other quantizations and settings of this model: BF16, Q4_1">+2</button>' in page


def test_model_page_without_run_folder_uses_the_registry(tmp_path, study):
    registry = study["registry"]
    site = tmp_path / "site"
    publish.write_site(registry, site, tmp_path / "no-runs", tmp_path, progress=False)
    page = next(site.glob("model/llama-1b--*.html")).read_text()
    assert "From the registry (run folder not on this machine)" in page
    assert "Run folder not on this machine." in page and "per-item log not on this machine" in page


def test_worst_items_most_confidently_wrong_first():
    rows = [
        {"item_id": "ok", "value": 1.0, "response": [[-1.0, False], [-5.0, False]], "target": 0, "prompt": "p"},
        {"item_id": "close", "value": 0.0, "response": [[-2.0, False], [-1.9, False]], "target": 0, "prompt": "p"},
        {"item_id": "far", "value": 0.0, "response": [[-9.0, False], [-1.0, False]], "target": 0, "prompt": "x" * 900},
    ]
    worst = evidence.worst_items(rows)
    assert [w["item_id"] for w in worst] == ["far", "close"]
    assert worst[0]["answer"].startswith("choice B of 2 (") and worst[0]["expected"].startswith("choice A of 2 (")
    assert worst[0]["margin"] == pytest.approx(8.0) and worst[0]["prompt"].startswith("\u2026")
    assert len(worst[0]["prompt"]) == evidence.PROMPT_TAIL + 1
    gen = evidence.worst_items([{"item_id": "g", "value": 0.0, "response": ["42"], "target": "7", "prompt": "q"}])
    assert gen[0]["answer"] == "42" and gen[0]["expected"] == "7"


def test_methodology_is_generated_from_the_code_constants(study, monkeypatch):
    page = (study["site"] / "methodology.html").read_text()
    for bench in all_benchmarks().values():
        assert f"<code>{bench.name}</code>" in page and bench.sha256 in page
    for pack in PACKS.values():
        assert pack.sha256 in page and f"<td>{pack.version}</td>" in page
    for licence in detect.LICENSES:
        assert f"<code>{licence}</code>" in page
    for p in PILLARS:
        assert f"{p.capitalize()}: weight {WEIGHTS[p]:.2f}" in page
    assert "share 31.8% with every pillar present" in page  # 0.35 / 1.10
    assert html.escape(aggregate.QUANTIZATION_METHOD) in page
    for badge in BADGES:
        assert html.escape(badge["rule"]) in page
    default = aggregate.default_track()  # the tracks, with the default one as params/default.yaml makes it
    assert html.escape(aggregate.TRACK_RULE) in page and f"<b>{html.escape(default['name'])}</b>" in page
    assert f"<code>{default['id']}</code>" in page
    # a new constant shows up without touching the page code: nothing is typed twice
    monkeypatch.setitem(PACKS, "new-pack", DataPack("new-pack", "9.9.9", "ab" * 32, "wheel", "CC0"))
    assert "ab" * 32 in reference.render_methodology(None, "../index.html")
    other = reference.render_methodology({"reasoning": 1.0}, "../index.html")
    assert "other pillar weights than the published ones" in other


def test_submit_page_is_generated_from_the_validator_schema(study):
    page = (study["site"] / "submit.html").read_text()
    schema = detect.json_schema()
    for name in schema["properties"]["model"]["properties"]:
        assert f"<code>{name}</code>" in page
    for form in schema["properties"]["weights"]["oneOf"]:
        assert f"<td>{form['required'][0]}</td>" in page
    assert "SmolLM2-135M-Instruct" in page and "slmlib validate params/submissions/my-model.yaml" in page
    assert (study["site"] / "submission.schema.json").read_text() == detect.schema_text()


def test_write_site_is_stable_and_prunes_stale_pages(study, tmp_path):
    site = tmp_path / "site"
    runs = study["root"] / "outputs" / "runs"
    first = publish.write_site(study["registry"], site, runs, study["root"] / "reports", progress=False)
    before = {p: p.read_bytes() for p in first}
    again = publish.write_site(study["registry"], site, runs, study["root"] / "reports", progress=False)
    assert again == first and {p: p.read_bytes() for p in again} == before  # stable bytes, SVGs included
    assert not [p for p in site.rglob("*") if p.name.endswith(".tmp")]
    smaller = {**study["registry"], "models": study["registry"]["models"][:2], "comparisons": []}
    publish.write_site(smaller, site, runs, study["root"] / "reports", progress=False)
    assert len(list((site / "model").glob("*.html"))) == 2
    assert sorted(p.name for p in (site / "samples").iterdir()) == sorted(
        r for e in smaller["models"] for r in e["run_ids"])


def test_empty_registry_site(tmp_path):
    site = tmp_path / "site"
    publish.write_site(build_registry([]), site, tmp_path / "runs", tmp_path, progress=False)
    assert "No models yet" in (site / "index.html").read_text()
    assert "No models yet." in (site / "compare.html").read_text()
    assert not list((site / "model").glob("*.html")) if (site / "model").exists() else True
    assert not (site / "charts").exists()  # no track with entries: no charts
    for make, _ in plots.CHARTS.values():
        assert isinstance(make({"models": []}), Figure)


def test_pillar_bars_have_error_bars_and_model_names(study):
    registry = study["registry"]
    ax = plots.pillar_bars(registry).axes[0]
    assert ax.get_ylim() == (0, 100)
    assert [t.get_text() for t in ax.get_xticklabels()] == [p.capitalize() for p in PILLARS]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[:2] == ["Llama-3.2-1B-Instruct [BF16]", "Qwen2.5-0.5B-Instruct [BF16]"]
    assert HOSTILE_NAME + " [F32]" in legend  # real names: escaping is the page's job, not the chart's
    models = aggregate.track_entries(registry)  # the track shown first only: charts never mix tracks
    shown = aggregate.track_of(registry)
    assert {e["track"] for e in models} == {shown["id"]} and len(models) < len(registry["models"])
    assert shown["name"] in ax.get_title()
    bars = [c for c in ax.containers if hasattr(c, "errorbar")]
    assert len(bars) == len(models) and all(c.errorbar is not None for c in bars[:-1])
    n_bars = sum(len(e["pillars"]) for e in models)
    assert len(ax.patches) == n_bars


def test_pareto_front_and_scatter_charts(study):
    assert plots.pareto_front([(1, 10), (2, 5), (3, 20), (4, 20), (5, 30)]) == [0, 2, 4]
    assert plots.pareto_front([(1, 1)]) == [0]
    registry = study["registry"]
    ax = plots.aggregate_vs_parameters(registry).axes[0]
    frontier = next(line for line in ax.get_lines() if line.get_label().startswith("Pareto"))
    points = [(e["parameter_count"], e["aggregate"]) for e in aggregate.track_entries(registry)]
    xs = [points[i][0] for i in plots.pareto_front(points)]
    assert list(frontier.get_xdata()) == xs and ax.get_xscale() == "log"
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == "90M" and "1235M" in labels and len(labels) == len(set(labels))  # the models' sizes
    assert plots.size_ticks([{"parameter_count": 100, "parameters": "a"}, {"parameter_count": 110, "parameters": "b"},
                             {"parameter_count": 200, "parameters": "c"}]) == [(100, "a"), (200, "c")]
    energy = plots.aggregate_vs_energy(registry).axes[0]
    models = aggregate.track_entries(registry)
    assert len(energy.get_legend().get_texts()) == sum(1 for e in models if e["energy"])
    co2 = plots.co2_per_model(registry).axes[0]
    assert len(co2.patches) == sum(1 for e in models if e["energy"])
    assert {t.get_text() for t in co2.get_yticklabels()} >= {"Llama-3.2-1B-Instruct [BF16]"}


def test_chart_svgs_are_written_and_stable(study):
    registry = study["registry"]
    ids = [t["id"] for t in registry["tracks"] if t["entries"]]
    assert sorted(p.parent.name for p in (study["site"] / "charts").glob("*/pillars.svg")) == sorted(ids)
    for track in ids:
        for name, (make, _) in plots.CHARTS.items():
            text = (study["site"] / "charts" / track / name).read_text()
            assert text.lstrip().startswith("<?xml") and "<dc:date>" not in text
            assert plots.figure_svg(make(registry, track)) == text
    other = next(t for t in registry["tracks"] if t["entries"] == 1)  # the one-model track: its model only
    legend = [t.get_text() for t in plots.pillar_bars(registry, other["id"]).axes[0].get_legend().get_texts()]
    assert legend == [e["name"] for e in registry["models"] if e["track"] == other["id"]]


def test_site_study_uses_every_pillar():
    assert {all_benchmarks()[t].pillar for t in TASKS} == set(PILLARS)


def test_screenshots_command_needs_a_built_site(tmp_path, capsys):
    from slmlib.cli import main

    assert main(["screenshots", str(tmp_path / "nothing")]) == 2
    assert "no built site" in capsys.readouterr().err


# --- issue 16, case 14: publish writes only into a folder it owns ----------------------------------

def someone_elses_folder(folder: Path) -> dict[Path, bytes]:
    files = {folder / "model" / "thesis.html": b"<p>mine</p>", folder / "charts" / "plot.svg": b"<svg/>",
             folder / "samples" / "x" / "data.jsonl": b"{}\n", folder / "notes.txt": b"keep me"}
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def test_publish_refuses_a_folder_it_does_not_own_and_deletes_nothing(tmp_path):
    folder = tmp_path / "papers"
    files = someone_elses_folder(folder)
    with pytest.raises(ValueError) as err:  # was: model/, charts/, samples/ emptied
        publish.write_site(build_registry([]), folder, tmp_path / "runs", tmp_path, progress=False)
    assert type(err.value).__name__ == "SiteFolderError" and str(err.value) == (
        f"{folder}: not empty and not a site folder publish made (no .slm-site file); publish writes only into a "
        "folder it owns: set site_dir to a new or empty folder, or to the folder publish made (it holds a "
        ".slm-site file)")
    assert {p: p.read_bytes() for p in files} == files and sorted(p.name for p in folder.iterdir()) == [
        "charts", "model", "notes.txt", "samples"]


def test_prune_removes_only_files_publish_wrote(study, tmp_path):
    site, runs = tmp_path / "site", study["root"] / "outputs" / "runs"
    publish.write_site(study["registry"], site, runs, study["root"] / "reports", progress=False)
    mine = {site / "model" / "extra.html": b"mine", site / "charts" / "extra.svg": b"<svg/>",
            site / "samples" / "extra" / "a.jsonl": b"{}\n"}
    for path, data in mine.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    smaller = {**study["registry"], "models": study["registry"]["models"][:2], "comparisons": []}
    publish.write_site(smaller, site, runs, study["root"] / "reports", progress=False)  # was: the extras deleted
    assert {p: p.read_bytes() for p in mine} == mine
    assert len(list((site / "model").glob("*--*.html"))) == 2
    marker = json.loads((site / ".slm-site").read_text())
    assert "index.html" in marker["files"] and len([f for f in marker["files"] if f.startswith("model/")]) == 2


def test_the_default_site_of_an_older_study_is_adopted(tmp_path):
    default = publish.site_path(type("P", (), {"site_dir": ""})())
    assert default == tmp_path / "reports" / "site"
    for name in ("index.html", "data.js", "leaderboard.json", "model/gone--0000.html", "notes.txt"):
        (default / name).parent.mkdir(parents=True, exist_ok=True)
        (default / name).write_text("old")
    publish.write_site(build_registry([]), None, tmp_path / "runs", tmp_path, progress=False)
    assert (default / ".slm-site").is_file() and (default / "notes.txt").read_text() == "old"
    assert not (default / "model").exists()  # the stale page of the older publish is removed
    elsewhere = tmp_path / "copy"
    for name in ("index.html", "data.js", "leaderboard.json"):  # the same files elsewhere: not adopted
        (elsewhere / name).parent.mkdir(parents=True, exist_ok=True)
        (elsewhere / name).write_text("old")
    with pytest.raises(publish.site_writer.SiteFolderError, match="not a site folder publish made"):
        publish.write_site(build_registry([]), elsewhere, tmp_path / "runs", tmp_path, progress=False)


def test_a_damaged_or_forged_marker_is_refused(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "keep.txt").write_text("x")
    (site / ".slm-site").write_text('{"kind": "x"')
    with pytest.raises(ValueError) as err:  # was: written into (the marker unknown)
        publish.write_site(build_registry([]), site, tmp_path / "runs", tmp_path, progress=False)
    assert str(err.value) == (
        f"{site / '.slm-site'}: damaged site marker (is not valid JSON (Expecting ',' delimiter: line 1 column 13 "
        f"(char 12))); publish cannot tell which files in {site} are its own: set site_dir to a new or empty folder, "
        "or delete that folder and publish again")
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    publish.site_writer.mark_site(site, ["keep.txt"])
    (site / ".slm-site").write_text(json.dumps({"kind": publish.site_writer.MARKER_KIND,
                                                "files": ["../outside.txt"]}))
    with pytest.raises(publish.site_writer.SiteFolderError, match="not a site marker"):
        publish.write_site(build_registry([]), site, tmp_path / "runs", tmp_path, progress=False)
    assert outside.exists() and (site / "keep.txt").exists()


@settings(max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=120) | st.lists(st.sampled_from([".", "./", "..", "/", "a/../b", "model/x.html", ""])
                                               | st.text(max_size=12), max_size=5).map(
    lambda files: json.dumps({"kind": publish.site_writer.MARKER_KIND, "files": files}).encode()))
def test_fuzz_a_marker_gives_files_inside_the_site_or_a_refusal(tmp_path, data):
    site = tmp_path / "fuzz"
    site.mkdir(exist_ok=True)
    (site / ".slm-site").write_bytes(data)
    try:
        files = publish.site_writer.claim_site(site)
    except publish.site_writer.SiteFolderError as exc:
        assert str(exc).startswith(f"{site / '.slm-site'}: damaged site marker (")
        return
    for name in files:
        assert (site / name).resolve().is_relative_to(site.resolve())
    publish.site_writer.prune(site, [], files)  # removes nothing outside (tmp_path holds only the site)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fuzz"]
