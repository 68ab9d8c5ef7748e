"""Opt-in MLflow logging: a tiny-model run logged to a local store and read back; the clear
error when MLflow is missing; a logging failure that leaves the run's artifacts alone."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from slmlib import artifacts, params, paths, runner, tracking
from slmlib.params import ParamsError
from tiny import build_tiny_model, write_submission, write_tiny_benchmarks

TASKS = ["tiny_mc", "tiny_gen"]


def test_run_metrics_on_known_numbers():
    results = {"tasks": {
        "a": {"pillar": "reasoning", "raw": 0.5, "score": 0.5, "baseline": 0.25, "stderr": 0.1, "seconds": 2,
              "energy": {"kwh": 0.001, "co2_kg": 0.0004, "country": "USA", "estimate": True}},
        "b": {"pillar": "math", "raw": 0.2, "score": 0.2, "baseline": 0.0, "stderr": None, "seconds": 3},
    }, "energy": {"kwh": 0.003, "co2_kg": 0.001, "method": "CPU TDP"},
        "edge": {"ttft_seconds": {"32": 0.01}, "decode_tokens_per_s": 50.0, "dtype": "float32"}}
    got = tracking.run_metrics(results, {"reasoning": 3.0, "math": 1.0})
    assert got == pytest.approx({
        "task.a.raw": 0.5, "task.a.normalized": 100 / 3, "task.a.stderr": 0.1, "task.a.seconds": 2.0,
        "task.a.energy.kwh": 0.001, "task.a.energy.co2_kg": 0.0004,
        "task.b.raw": 0.2, "task.b.normalized": 20.0, "task.b.seconds": 3.0,
        "pillar.reasoning": 100 / 3, "pillar.math": 20.0, "aggregate": (3 * 100 / 3 + 20.0) / 4,
        "energy.kwh": 0.003, "energy.co2_kg": 0.001, "edge.ttft_seconds.32": 0.01, "edge.decode_tokens_per_s": 50.0})
    assert tracking.run_metrics({}) == {}


def test_tracking_params_are_checked():
    assert params.validate({}).mlflow is False  # off by default
    with pytest.raises(ParamsError, match="mlflow_tracking_uri: set, but mlflow is false; set mlflow: true"):
        params.validate({"mlflow_tracking_uri": "file:///tmp/x"})
    with pytest.raises(ParamsError, match="mlflow: expected bool, got str 'yes'"):
        params.validate({"mlflow": "yes"})


def test_mlflow_true_without_mlflow_stops_before_any_stage(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # how Python marks a module as not importable
    p = params.validate({"run_id": "no-mlflow", "mlflow": True})
    with pytest.raises(tracking.TrackingError, match=r"MLflow .* is not installed; install it with `make mlflow`"):
        runner.run_plan(p, progress=False)
    assert not paths.run_dir("no-mlflow").exists()


@pytest.mark.slow
def test_a_run_is_logged_to_mlflow_and_read_back(tmp_path, monkeypatch, capsys):
    pytest.importorskip("mlflow", reason="the optional extra [mlflow] is not installed: `make mlflow` "
                                         "(`make test` installs it)")
    from mlflow import MlflowClient

    monkeypatch.setenv("SLM_BENCHMARK_FILES", str(write_tiny_benchmarks(tmp_path / "bench")))
    submission = write_submission(tmp_path / "tiny-random.yaml", build_tiny_model(tmp_path / "model"))
    p = params.validate({"submission": str(submission), "run_id": "tracked", "tasks": TASKS, "limit": None,
                         "limit_generative": None, "batch_size": 2, "mlflow": True})
    [run_id] = runner.run_plan(p, progress=False)
    run = paths.run_dir(run_id)
    assert f"{run_id}: logged to MLflow at {paths.mlruns_dir().resolve().as_uri()}" in capsys.readouterr().out

    client = MlflowClient(tracking_uri=paths.mlruns_dir().resolve().as_uri())
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT)
    (logged,) = client.search_runs([experiment.experiment_id])
    assert logged.info.run_name == run_id and logged.info.status == "FINISHED"
    assert logged.data.tags["slm.model_id"] == "tiny-random" and logged.data.tags["slm.run_id"] == run_id

    assert logged.data.params == tracking.run_params(p)
    assert logged.data.params["tasks"] == '["tiny_mc", "tiny_gen"]' and logged.data.params["mlflow"] == "true"
    metrics = logged.data.metrics
    results = artifacts.read_json(run / "results.json")
    (entry,) = artifacts.read_json(paths.registry_path())["models"]
    for name in TASKS:
        assert metrics[f"task.{name}.raw"] == results["tasks"][name]["raw"]
        assert metrics[f"task.{name}.normalized"] == pytest.approx(entry["tasks"][name]["normalized"], abs=1e-4)
        assert metrics[f"task.{name}.energy.kwh"] == results["tasks"][name]["energy"]["kwh"]
    assert {k: v for k, v in metrics.items() if k.startswith("pillar.")} == pytest.approx(
        {f"pillar.{k}": v for k, v in entry["pillars"].items()}, abs=1e-4)
    assert set(entry["pillars"]) == {"reasoning", "math"}
    assert metrics["aggregate"] == pytest.approx(entry["aggregate"], abs=1e-4)
    assert metrics["energy.kwh"] == results["energy"]["kwh"] > 0
    assert metrics["edge.decode_tokens_per_s"] == results["edge"]["decode_tokens_per_s"] > 0
    assert metrics["edge.ttft_seconds.128"] == results["edge"]["ttft_seconds"]["128"]

    def listed(folder: str) -> list[str]:
        return sorted(Path(f.path).name for f in client.list_artifacts(logged.info.run_id, folder))

    assert listed("run") == ["edge.json", "model_card.json", "results.json", "validation.json"]
    assert listed("notebooks") == [nb.name for nb in sorted(paths.NOTEBOOKS.values())]
    assert listed("reports") == sorted(f"{nb.stem}{s}.html" for nb in paths.NOTEBOOKS.values()
                                       for s in ("", ".no-code"))
    copy = client.download_artifacts(logged.info.run_id, "run/results.json", str(tmp_path / "download"))
    assert Path(copy).read_bytes() == (run / "results.json").read_bytes()

    # a tracking URI given in the params: the same run, logged there
    other = (tmp_path / "elsewhere").as_uri()
    again = params.validate({**p.to_dict(), "mlflow_tracking_uri": other})
    mlflow_run = runner.log_to_mlflow(again, ("publish",))
    logged_there = MlflowClient(tracking_uri=other).get_run(mlflow_run)
    assert logged_there.data.metrics == metrics and logged_there.data.tags["slm.stages"] == "publish"

    # a store that cannot be written: the failure is reported, the run's artifacts stay as they were
    before = {f: f.read_bytes() for f in run.rglob("*") if f.is_file()}
    (tmp_path / "blocker").write_text("a file where the store's folder would be")
    broken = params.validate({**p.to_dict(), "mlflow_tracking_uri": (tmp_path / "blocker" / "store").as_uri()})
    assert runner.log_to_mlflow(broken, paths.STAGES) is None
    err = capsys.readouterr().err
    assert f"{run_id}: logging to MLflow failed" in err and f"artifacts are complete in {run}" in err
    assert f"rerun with --run-id {run_id}" in err
    assert {f: f.read_bytes() for f in run.rglob("*") if f.is_file()} == before
