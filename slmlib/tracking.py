"""Optional MLflow logging of a study run (runner, after the stages; opt-in with `mlflow: true`).

Reads the run folder (`results.json`, `edge.json` and the other JSON records, the executed
notebooks) and the run's HTML reports; writes one MLflow run, in the experiment "slm-study",
to `mlflow_tracking_uri` or by default to MLflow's file store in `outputs/mlruns`. Nothing
in the study's own folders is written or changed. MLflow is an optional extra
(`make mlflow`); the study never needs it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path
from urllib.parse import urlparse

from . import artifacts, paths
from .aggregate import WEIGHTS, aggregate_score, normalize, pillar_scores

EXPERIMENT = "slm-study"
BATCH = 1000  # most metrics MLflow takes in one log_batch call


class TrackingError(RuntimeError):
    """MLflow logging was asked for but is not possible here; the message says what to do."""


def require_mlflow() -> None:
    """Raise TrackingError with the install command unless the mlflow package is importable."""
    if importlib.util.find_spec("mlflow") is None:
        raise TrackingError("mlflow: true, but MLflow (an optional extra) is not installed; install it with "
                            "`make mlflow` (or `.venv/bin/pip install -e '.[mlflow]'`), or set mlflow: false")


def tracking_uri(p) -> str:
    """Where the run is logged: `mlflow_tracking_uri`, else the file store `outputs/mlruns`."""
    return p.mlflow_tracking_uri or paths.mlruns_dir().resolve().as_uri()


def numeric_leaves(prefix: str, value) -> dict[str, float]:
    """Every number in a nested mapping, keyed by its dotted path under `prefix` (booleans left out)."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in numeric_leaves(f"{prefix}.{key}", item).items()}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {prefix: float(value)}
    return {}


def run_metrics(results: dict, weights: dict[str, float] | None = None) -> dict[str, float]:
    """Per-task (raw, normalized, stderr, seconds, energy), per-pillar and aggregate scores, and
    the run's energy and edge figures, from a run's `results.json`."""
    tasks = results.get("tasks") or {}
    out: dict[str, float] = {}
    for name, t in tasks.items():
        out[f"task.{name}.raw"] = float(t["raw"])
        out[f"task.{name}.normalized"] = normalize(t["score"], t["baseline"])
        out.update(numeric_leaves(f"task.{name}", {k: t.get(k) for k in ("stderr", "seconds", "energy")}))
    pillars = pillar_scores(tasks)
    out.update({f"pillar.{p}": v for p, v in pillars.items()})
    if pillars:
        out["aggregate"] = aggregate_score(pillars, weights or WEIGHTS)
    out.update(numeric_leaves("energy", results.get("energy")))
    out.update(numeric_leaves("edge", results.get("edge")))
    return out


def run_params(p) -> dict[str, str]:
    """The study parameters as MLflow params (strings; lists and mappings as JSON)."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in p.to_dict().items()}


def run_artifacts(run_id: str) -> dict[str, list[Path]]:
    """Artifact folder -> files: the run's JSON records, executed notebooks and HTML reports."""
    run = paths.run_dir(run_id)
    return {"run": sorted(run.glob("*.json")), "notebooks": sorted(paths.executed_dir(run).glob("*.ipynb")),
            "reports": sorted(paths.run_reports_dir(run_id).glob("*.html"))}


def log_run(p, stages: tuple[str, ...]) -> tuple[str, str]:
    """Log run `p` (params, metrics, artifacts) to MLflow; returns (tracking URI, MLflow run id).
    The MLflow run is marked FAILED, and the error raised, when logging breaks off."""
    require_mlflow()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # the study makes no outside requests
    uri = tracking_uri(p)
    if urlparse(uri).scheme in ("", "file"):  # MLflow keeps its file store but asks for this opt-in
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    run_id = p.resolved_run_id()
    results_path = paths.results_file(paths.run_dir(run_id))
    results = artifacts.read_json(results_path) if results_path.exists() else {}
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(EXPERIMENT)
    tags = {"slm.run_id": run_id, "slm.stages": ",".join(stages), "slm.model_id": results.get("model_id", ""),
            "slm.weights_sha256": (results.get("model_card") or {}).get("weights", {}).get("sha256", "")}
    mlflow_run = client.create_run(experiment_id, run_name=run_id, tags=tags).info.run_id
    try:
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, 0) for k, v in sorted(run_metrics(results, p.pillar_weights).items())]
        client.log_batch(mlflow_run, params=[Param(k, v) for k, v in sorted(run_params(p).items())])
        for i in range(0, len(metrics), BATCH):
            client.log_batch(mlflow_run, metrics=metrics[i:i + BATCH])
        for folder, files in run_artifacts(run_id).items():
            for f in files:
                client.log_artifact(mlflow_run, str(f), folder)
    except BaseException:
        client.set_terminated(mlflow_run, "FAILED")
        raise
    client.set_terminated(mlflow_run, "FINISHED")
    return uri, mlflow_run
