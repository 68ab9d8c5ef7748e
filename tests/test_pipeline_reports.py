"""The reports of a real run (the four stage notebooks through papermill on the tiny model, progress
bars on): bars stream live but the executed notebooks keep one line per task, every reader's cell ends
in a table, a figure or a sentence, no report holds an absolute path of the output roots or the
repository, reports/index.html has the run's row and the study report is written. A failed stage is
marked and linked first in the index."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from slmlib import artifacts, params, paths, runner
from slmlib.publish import browser_missing
from tiny import build_tiny_model, write_submission, write_tiny_benchmarks

pytestmark = pytest.mark.slow
TASKS = ["tiny_mc", "tiny_gen", "tiny_code"]


@pytest.fixture
def tiny_study(tmp_path, monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE")  # the bars a person watches: they must not reach the notebooks
    model_dir = build_tiny_model(tmp_path / "model")
    monkeypatch.setenv("SLM_BENCHMARK_FILES", str(write_tiny_benchmarks(tmp_path / "bench")))
    submission = write_submission(tmp_path / "tiny-random.yaml", model_dir)
    return params.validate({"submission": str(submission), "run_id": "tiny-reports", "tasks": TASKS,
                            "limit": None, "limit_generative": None, "batch_size": 2})


def streams(notebook: Path) -> list[tuple[int, str, str]]:
    nb = json.loads(notebook.read_text())
    return [(i, o["name"], "".join(o["text"])) for i, c in enumerate(nb["cells"]) for o in c.get("outputs", [])
            if o["output_type"] == "stream"]


def page_height(page: Path) -> int:
    from playwright.sync_api import sync_playwright

    from slmlib.publish.site import browser

    with sync_playwright() as p:
        chromium = browser.launch(p)
        try:
            tab = chromium.new_context(viewport={"width": 1366, "height": 900}).new_page()
            tab.goto(page.resolve().as_uri())
            return tab.evaluate("document.documentElement.scrollHeight")
        finally:
            chromium.close()


def test_a_run_leaves_readable_reports(tiny_study, capfd):
    [run_id] = runner.run_plan(tiny_study, progress=True)
    live = capfd.readouterr().err
    assert "\r" in live and "it/s]" in live  # the bars were there, live

    run = paths.run_dir(run_id)
    evaluate_nb = run / "notebooks" / "02_evaluate.ipynb"
    kept = streams(evaluate_nb)
    assert not any("\r" in text or "it/s]" in text for _, _, text in kept), kept
    stdout = "".join(text for _, name, text in kept if name == "stdout")
    for i, task in enumerate(TASKS, 1):
        assert re.search(rf"\[evaluate\] {i}/3 {task}: \S+ = [\d.]+ on \d+ items in \d+ s", stdout), stdout
    assert "[evaluate] 3 tasks evaluated in" in stdout

    roots = [str(paths.outputs_root().resolve()), str(paths.reports_root().resolve()), str(paths.REPO_ROOT)]
    reports = paths.run_reports_dir(run_id)
    for stage in paths.STAGES:
        stem = paths.NOTEBOOKS[stage].stem
        for suffix in (".html", ".no-code.html"):
            text = (reports / f"{stem}{suffix}").read_text()
            assert not [r for r in roots if r in text], (stem, suffix)
            assert "PosixPath(" not in text
        reader = (reports / f"{stem}.no-code.html").read_text()
        assert not re.search(r"\(\{'|\{'[a-z_]+': ", reader), stem  # no dict or tuple reprs
    evaluate_reader = (reports / "02_evaluate.no-code.html").read_text()
    assert "Decode (greedy)" in evaluate_reader and "tokens/s" in evaluate_reader
    assert "energy (Wh)" in evaluate_reader and "CodeCarbon estimates for the grid of USA" in evaluate_reader
    assert "$SLM_REPORTS_ROOT/study.html" in (reports / "04_publish.no-code.html").read_text()

    index = (paths.reports_root() / "index.html").read_text()
    (row,) = re.findall(r"<tr><td.*?</tr>", index, flags=re.S)
    registry = artifacts.read_json(paths.registry_path())
    (entry,) = registry["models"]
    assert "Tiny-Random-Llama" in row and "done (4 stages)" in row and f">{entry['aggregate']:.1f}<" in row
    assert f'href="site/model/{entry["entry_id"].replace("@", "--")}.html"' in row
    assert [f"{run_id}/{paths.NOTEBOOKS[s].stem}.no-code.html" for s in paths.STAGES] == \
        re.findall(r'href="([^"]+\.no-code\.html)"', row)
    assert 'href="study.html"' in index

    study = (paths.reports_root() / "study.html").read_text()
    results = artifacts.read_json(run / "results.json")
    for task in TASKS:
        assert f"<td>{task}</td>" in study and f"<code>{results['tasks'][task]['data_sha256'][:12]}</code>" in study
    assert not [r for r in roots if r in study] and "Cite as:" in study
    assert "<td>all/all</td>" in study and "Scores are on every item of each task" in study
    if not browser_missing():
        assert page_height(reports / "02_evaluate.no-code.html") < 4 * 900  # a few screens


def test_a_failed_stage_is_marked_and_linked_first_in_the_index(tiny_study, tmp_path):
    bad = tmp_path / "bad-license.yaml"
    bad.write_text(Path(tiny_study.submission).read_text().replace("license: mit", "license: proprietary"))
    p = params.validate({**tiny_study.to_dict(), "submission": str(bad), "run_id": "bad-run"})
    with pytest.raises(runner.StageFailed):
        runner.run_plan(p, progress=False)
    index = (paths.reports_root() / "index.html").read_text()
    (row,) = re.findall(r"<tr><td.*?</tr>", index, flags=re.S)
    assert 'class="failed">failed at 01 detect</span>' in row
    assert re.findall(r'href="([^"]+\.no-code\.html)"', row)[0] == "bad-run/01_detect.no-code.html"
