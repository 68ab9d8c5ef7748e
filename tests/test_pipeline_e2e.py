"""End to end: the four stage notebooks through papermill on a tiny random model and tiny
benchmarks made here, then nbval re-executes the executed notebooks and compares."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from slmlib import artifacts, params, paths, runner
from tiny import build_tiny_model, write_submission, write_tiny_benchmarks

pytestmark = pytest.mark.slow
TASKS = ["tiny_mc", "tiny_gen", "tiny_code"]


@pytest.fixture
def tiny_study(tmp_path, monkeypatch):
    model_dir = build_tiny_model(tmp_path / "model")
    monkeypatch.setenv("SLM_BENCHMARK_FILES", str(write_tiny_benchmarks(tmp_path / "bench")))
    submission = write_submission(tmp_path / "tiny-random.yaml", model_dir)
    return params.validate({"submission": str(submission), "run_id": "tiny-e2e", "tasks": TASKS,
                            "limit": None, "limit_generative": None, "batch_size": 2})


def test_four_stages_write_every_artifact_and_nbval_reproduces_them(tiny_study, tmp_path, capfd):
    [run_id] = runner.run_plan(tiny_study, progress=False)
    run = paths.run_dir(run_id)
    noise = capfd.readouterr().err  # the kernels write to this process's stderr
    assert "without encryption" not in noise and "IProgress not found" not in noise, noise

    card = artifacts.read_json(run / "model_card.json")
    assert card["name"] == "Tiny-Random-Llama" and card["architecture"] == "llama"
    assert card["parameter_count"] > 10_000 and card["weights"]["kind"] == "hf_dir"

    results = artifacts.read_json(run / "results.json")
    assert sorted(results["tasks"]) == sorted(TASKS)
    for name, task in results["tasks"].items():
        rows = artifacts.read_jsonl(run / "samples" / f"{name}.jsonl")
        assert len(rows) == task["n"] == task["n_total"] > 0
        assert task["raw"] == pytest.approx(sum(r["value"] for r in rows) / len(rows))
        assert task["config"]["dataset_kwargs"]["data_files"]["test"].endswith(".jsonl")
        assert len(task["data_sha256"]) == 64 and task["item_ids"]
    prov = results["provenance"]
    for key in ("slmlib", "lm_eval", "transformers", "torch", "data_packs", "system"):
        assert prov[key], key
    assert results["settings"] == {"backend": "hf", "dtype": "float32", "batch_size": 2, "shared_prefixes": True,
                                   "apply_chat_template": "auto", "seed": 1234}
    assert results["model_card"]["weights"]["sha256"] == card["weights"]["sha256"]
    assert results["energy"]["kwh"] > 0 and results["energy"]["tasks"] == len(TASKS)
    assert "CPU" in results["energy"]["method"] and results["energy"]["estimate"] is True
    edge = results["edge"]
    assert edge["decode_tokens_per_s"] > 0 and set(edge["ttft_seconds"]) == {"32", "128"}
    assert edge["peak_rss_mb"] > 0 and edge["size_bytes"] == card["weights"]["size_bytes"]

    registry = artifacts.read_json(paths.registry_path())
    (entry,) = registry["models"]
    assert entry["model_id"] == "tiny-random" and entry["rank"] == 1
    assert set(entry["pillars"]) == {"reasoning", "math", "coding"}

    site = paths.site_dir()
    leaderboard = artifacts.read_json(site / "leaderboard.json")
    assert [m["name"] for m in leaderboard["models"]] == ["Tiny-Random-Llama"]
    assert "Tiny-Random-Llama" in (site / "index.html").read_text()

    reports = paths.run_reports_dir(run_id)
    for stage in paths.STAGES:
        nb = paths.NOTEBOOKS[stage].stem
        assert (run / "notebooks" / f"{nb}.ipynb").exists()
        assert "<html" in (reports / f"{nb}.html").read_text()
        no_code = (reports / f"{nb}.no-code.html").read_text()
        assert "from slmlib import" not in no_code
    assert run_id in (paths.reports_root() / "index.html").read_text()

    # nbval: re-execute the executed notebooks into a fresh output root; the checked
    # cells (card, per-task scores, leaderboard) must come out the same.
    notebooks = sorted((run / "notebooks").glob("*.ipynb"))
    proc = run_nbval(notebooks, tmp_path / "nbval-1")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout

    # ... and it does fail when a recorded score differs from what the notebook computes
    evaluate_nb = run / "notebooks" / "02_evaluate.ipynb"
    nb = json.loads(evaluate_nb.read_text())
    checked = [c for c in nb["cells"] if "nbval-check-output" in c["metadata"].get("tags", [])]
    checked[0]["outputs"][0]["data"]["text/plain"] = ["a different table"]
    tampered = tmp_path / "tampered" / "02_evaluate.ipynb"
    tampered.parent.mkdir()
    tampered.write_text(json.dumps(nb))
    proc = run_nbval([notebooks[0], tampered], tmp_path / "nbval-2")
    assert proc.returncode != 0 and "1 failed" in proc.stdout and "outputs differ" in proc.stdout.lower()


def run_nbval(notebooks: list[Path], root: Path) -> subprocess.CompletedProcess:
    """nbval (lax, sanitized) over executed notebooks, writing into a fresh output root."""
    env = {**os.environ, "SLM_OUTPUT_ROOT": str(root / "outputs"), "SLM_REPORTS_ROOT": str(root / "reports")}
    sanitize = Path(__file__).with_name("nbval_sanitize.cfg")
    root.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
         "--nbval-current-env", "--nbval-sanitize-with", str(sanitize), *map(str, notebooks)],
        cwd=root, env=env, capture_output=True, text=True, timeout=600)


def test_a_failing_stage_stops_the_run_and_keeps_its_notebook(tiny_study, tmp_path):
    bad = tmp_path / "bad-license.yaml"
    bad.write_text(Path(tiny_study.submission).read_text().replace("license: mit", "license: proprietary"))
    p = params.validate({**tiny_study.to_dict(), "submission": str(bad), "run_id": "bad-run"})
    with pytest.raises(runner.StageFailed, match=r"(?s)stage detect failed.*license"):
        runner.run_plan(p, progress=False)
    run = paths.run_dir("bad-run")
    executed = run / "notebooks" / "01_detect.ipynb"
    assert executed.exists() and "proprietary" in executed.read_text()
    assert json.loads((run / "validation.json").read_text())["errors"]
    assert not (run / "model_card.json").exists() and not (run / "results.json").exists()
    assert (paths.run_reports_dir("bad-run") / "01_detect.html").exists()
