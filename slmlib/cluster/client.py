"""The study's evaluate stage on a Dask cluster, from the client (the runner, with `cluster:` set).

`open_cluster`: "local" starts a LocalCluster on this machine (one single-threaded worker process per core,
or `local:N` workers sharing the cores; no dashboard unless asked); an address connects to a running
scheduler (`tls://` with the certificate folder of `python -m slmlib certs`). `evaluate_runs` plans the
units of every run (`units.plan_run`: a restarted client skips what the run folders hold), checks each
worker before it gets any (`execute.worker_problem`: the same slmlib, environment lock and data packs as
this machine, and the study's weights; newly joined workers too), retires the others with the reason,
submits the units without retries (a unit that raises fails the study at once with its reason; a unit
whose worker died runs again elsewhere, up to the scheduler's `distributed.scheduler.allowed-failures`),
and writes each unit into its run folder as it finishes. One bar counts the units.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from pathlib import Path

from .. import artifacts, detect, paths, provenance, runner
from ..params import ClusterSpec, ParamsError, StudyParams, parse_cluster, stage_values
from . import checks, execute, tls, units

CHECK_SECONDS = 2.0  # how often the client looks for newly joined workers while units run
CONNECT_SECONDS = 30  # how long connecting to a scheduler may take


@contextlib.contextmanager
def open_cluster(spec: ClusterSpec, tls_dir: str = "", dashboard: str = ""):
    """A distributed Client for `spec` (closed, with a local cluster, after the block)."""
    from distributed import Client, LocalCluster

    if spec.kind == "local":
        cores = provenance.usable_cores()
        n = spec.workers or cores
        quiet = {} if dashboard else {"scheduler_kwargs": {"dashboard": False, "dashboard_address": "127.0.0.1:0"}}
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=dashboard or None,
                          env={execute.THREADS_ENV: str(max(1, cores // n))}, **quiet) as cluster, \
                Client(cluster) as client:
            yield client
        return
    with Client(spec.address, security=security_for(spec.address, tls_dir), timeout=CONNECT_SECONDS) as client:
        yield client


def security_for(address: str, tls_dir: str):
    """The TLS security of a scheduler's address (tls://: the certificate folder `tls_dir`), or None (tcp://)."""
    tls_address = address.startswith("tls://")
    if tls_address != bool(tls_dir):
        raise ParamsError(f"{address}: " + ("a tls:// address needs --tls-dir DIR, the certificate folder made by "
                                            "`python -m slmlib certs`" if tls_address else
                                            "unencrypted; with --tls-dir give the scheduler's tls:// address"))
    return tls.security(Path(tls_dir)) if tls_dir else None


def evaluate_runs(runs: list[StudyParams], tls_dir: str = "", dashboard: str = "", progress: bool = True) -> None:
    """Evaluate every run of `runs` (detected already) as units on the cluster their `cluster` names, writing
    each run folder as the sequential evaluate stage would; raises runner.StageFailed naming the unit that
    failed and why."""
    plans = [units.plan_run(q) for q in runs]
    for plan in plans:
        done = len(plan.records)
        print(f"[cluster] {plan.p.resolved_run_id()}: {len(plan.todo)} unit{'s' * (len(plan.todo) != 1)} to "
              f"evaluate" + (f"; {done} of {len(plan.prepared)} tasks already in the run folder" if done else ""),
              flush=True)
        if not plan.todo:
            plan.finish()
    if any(plan.todo for plan in plans):
        cards = [plan.card for plan in plans if plan.todo]
        spec = parse_cluster(runs[0].cluster)
        with open_cluster(spec, tls_dir, dashboard) as client:
            if dashboard and not importlib.util.find_spec("bokeh"):
                print(f"[cluster] --dashboard: {client.dashboard_link} serves Dask's health and metrics only; "
                      "`pip install bokeh` for the dashboard", file=sys.stderr, flush=True)
            elif dashboard:
                print(f"[cluster] dashboard: {client.dashboard_link}", flush=True)
            elif spec.kind == "address":
                print(f"[cluster] the scheduler's dashboard, if it serves one: {client.dashboard_link}", flush=True)
            _evaluate(client, plans, checks.capabilities(), cards, progress)


def _evaluate(client, plans: list[units.RunUnits], required: dict, cards: list[dict], progress: bool) -> None:
    from distributed import wait
    from tqdm import tqdm

    names = runner.notebook_parameters("evaluate")
    seen: dict[str, bool] = {}
    accepted = _check_workers(client, required, cards, seen)
    if accepted:
        # a worker gone since its check is left out (on_error="ignore"): the line is an estimate
        threads = client.run(execute.unit_threads, workers=[w for w, ok in seen.items() if ok], on_error="ignore")
        print(projection(plans, accepted, worker_speed(threads.values())), flush=True)
    else:
        print("[cluster] no worker can run units yet; start one with `python -m slmlib worker ADDRESS` (units wait)",
              file=sys.stderr, flush=True)
    futures = {}
    for plan in plans:
        for unit in plan.todo:
            payload = {"key": unit.key, "values": stage_values(plan.unit_values(unit), names), "card": plan.card,
                       "required": required}
            futures[client.submit(execute.run_unit, payload, key=unit.key, retries=0, pure=False)] = (plan, unit)
    pending = set(futures)
    bar = tqdm(total=len(futures), desc="units", unit="unit", disable=not progress)
    try:
        while pending:
            try:
                done, pending = wait(pending, timeout=CHECK_SECONDS, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done = set()
            for future in done:
                plan, unit = futures[future]
                if future.status != "finished":
                    raise _failure(plan, unit, future.exception()) from None
                if plan.take(unit, future.result()):
                    plan.finish()
                    print(f"\n[cluster] {plan.p.resolved_run_id()}: every task evaluated; results written",
                          flush=True)
                bar.update()
                bar.set_postfix_str(unit.key[-60:])
                future.release()
            was = accepted
            accepted = _check_workers(client, required, cards, seen)
            if not accepted and was:
                print("[cluster] no worker can run units now; start one with `python -m slmlib worker ADDRESS`"
                      " (units wait)", file=sys.stderr, flush=True)
    finally:
        bar.close()
        for future in pending:
            future.cancel()


def worker_speed(threads) -> float:
    """The workers' mean threads per unit over this machine's cores (1.0 when none gave a positive count: a
    worker's answer is its environment's, and a bad value must not stop the study for an estimate)."""
    counts = [t for t in threads if isinstance(t, int) and not isinstance(t, bool) and t > 0]
    return sum(counts) / len(counts) / provenance.usable_cores() if counts else 1.0


def projection(plans: list[units.RunUnits], workers: int, speed: float = 1.0) -> str:
    """Detect's runtime estimate of the study's runs (validation.json) on `workers` workers, each `speed` times as
    fast as this machine (their threads per unit over its cores), and in one process."""
    tasks, shard_size = {}, plans[0].p.shard_size
    for plan in plans:
        run = plan.p.run_path()
        estimate = artifacts.read_json(paths.validation_file(run)).get("estimate") or {}
        tasks |= {f"{run.name}/{name}": t for name, t in (estimate.get("tasks") or {}).items()}
    if not tasks:
        return "[cluster] no runtime estimate (detect made none)"
    alone = sum(t["seconds"] for t in tasks.values())
    return (f"[cluster] detect's estimate of the study: ~{detect.project_workers(tasks, shard_size, workers, speed) / 60:.0f} "
            f"min on {workers} worker{'s' * (workers != 1)} (~{alone / 60:.0f} min in one process)")


def _check_workers(client, required: dict, cards: list[dict], seen: dict[str, bool]) -> int:
    """Check the workers that joined since the last call (`execute.worker_problem`; `seen`: address -> accepted)
    and retire each that must not run units, printing why; returns how many accepted workers the cluster has."""
    workers = set(client.scheduler_info(n_workers=-1)["workers"])
    new = sorted(workers - set(seen))
    if new:
        problems = client.run(execute.worker_problem, required, cards, workers=new, on_error="return")
        for address in new:
            problem = problems.get(address)
            if isinstance(problem, BaseException):
                problem = f"its check failed ({type(problem).__name__}: {artifacts.error_line(problem)})"
            seen[address] = not problem
            if problem:
                print(f"[cluster] worker {address} refused: {problem}", file=sys.stderr, flush=True)
        if refused := [a for a in new if not seen[a]]:
            client.retire_workers(workers=refused, close_workers=True)
        print(f"[cluster] {len(new) - len(refused)} of {len(new)} new worker{'s' * (len(new) != 1)} accepted",
              flush=True)
    return sum(seen[a] for a in workers)


def _failure(plan: units.RunUnits, unit: units.Unit, exc: BaseException) -> runner.StageFailed:
    """The study's error for a failed unit: its reason, and its executed notebook when it ran (written into the
    run folder, with its HTML)."""
    where = ""
    if isinstance(exc, execute.UnitFailed):
        reason = exc.reason
        if exc.notebook:
            run = plan.p.run_path()
            notebook = artifacts.write_text_atomic(paths.unit_notebook(run, unit.task, unit.shard), exc.notebook)
            runner.export_html(notebook, run.name)
            where = f"\nexecuted notebook: {notebook}"
    elif type(exc).__name__ == "KilledWorker":
        reason = (f"unit {unit.key}: every worker that ran it died ({artifacts.error_line(exc)}); out of memory? "
                  "Finished units are kept: rerun with the same --run-id to resume")
    else:
        reason = f"unit {unit.key}: {type(exc).__name__}: {artifacts.error_line(exc)}"
    return runner.StageFailed(f"stage evaluate failed on the cluster: {reason}{where}")
