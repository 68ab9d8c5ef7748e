"""A study's evaluate stage cut into units of work, and each run folder made whole from what they return.

A unit is one run (submission x quantization) x one task x one slice of that task's chosen items: at
most `shard_size` items (null: the whole task). The client plans the units of a run from its model card
and chosen items, leaving out what the run folder already holds (a finished task, or a finished slice
under `units/`), so a restarted client resumes. It writes what a unit returns into the run folder: the
executed notebook (`paths.unit_notebook`) and its HTML, the task's record and per-item log (a whole task,
as the sequential run writes them) or the slice's (`paths.shard_file`). Once every slice of a task is in,
they are merged in item order and the task's metrics recomputed from the merged log by lm-eval itself
(`backends.ReplayLM`, as re-scoring does); once every task is in, `evaluate.write_results` ends the run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .. import artifacts, detect, evaluate, paths, runner
from ..backends import ReplayLM
from ..params import StudyParams

ENERGY_SUMS = ("kwh", "co2_kg", "cpu_kwh", "ram_kwh", "duration_s")  # what adds up over a task's slices


@dataclass(frozen=True)
class Unit:
    """One unit of work."""

    run_id: str
    task: str
    shard: tuple[int, int] | None  # (K, N): the K-th of N slices of the task's chosen items; None: all of them
    edge: bool  # measure the run's edge figures after the task (one unit of a run that has none yet)

    @property
    def key(self) -> str:
        """The unit's name, unique in a study (its Dask key)."""
        return f"{self.run_id}/{self.task}" + (f"/{self.shard[0]}-of-{self.shard[1]}" if self.shard else "")


@dataclass
class RunUnits:
    """One run of a study on a cluster: what it evaluates, what is finished, what is left."""

    p: StudyParams  # the run's params (quantization and run id fixed; cluster and shard_size as the study's)
    card: dict  # its model card, as detect wrote it
    prepared: dict[str, evaluate.PreparedTask]  # task -> its chosen items, in the run's task order
    records: dict[str, dict]  # finished tasks' records
    todo: list[Unit]  # units still to evaluate
    started: float = field(default_factory=time.time)

    def unit_values(self, unit: Unit) -> StudyParams:
        """The params of the evaluate notebook that executes `unit`."""
        shard = f"{unit.shard[0]}/{unit.shard[1]}" if unit.shard else ""
        return StudyParams(**{**self.p.to_dict(), "tasks": [unit.task], "shard": shard, "edge": unit.edge,
                              "cluster": "", "shard_size": None, "mlflow": False, "mlflow_tracking_uri": ""})

    def take(self, unit: Unit, result: dict) -> bool:
        """Write what `unit` returned into the run folder (a task's last slice merges the task); True once every
        task of the run is finished."""
        run = self.p.run_path()
        notebook = artifacts.write_text_atomic(paths.unit_notebook(run, unit.task, unit.shard), result["notebook"])
        runner.export_html(notebook, run.name)
        if result.get("edge"):  # before the record: a finished unit is never redone, so nor is its edge figures
            artifacts.write_json(paths.edge_file(run), result["edge"])
        record = {**result["record"], "settings": evaluate.settings_of(self.p, self.card)}
        if unit.shard is None:
            evaluate.save_task(run, record, result["rows"])
            self.records[unit.task] = record
        else:
            path = paths.shard_file(run, unit.task, unit.shard)
            artifacts.write_jsonl(path.with_suffix(".jsonl"), result["rows"])
            artifacts.write_json(path, record)
            self._merge_when_complete(unit.task, unit.shard[1])
        return len(self.records) == len(self.prepared)

    def _merge_when_complete(self, task: str, n: int) -> None:
        run, prep = self.p.run_path(), self.prepared[task]
        files = [paths.shard_file(run, task, (k, n)) for k in range(1, n + 1)]
        if not all(f.exists() for f in files):
            return
        slices = [(artifacts.read_json(f), artifacts.read_jsonl(f.with_suffix(".jsonl"))) for f in files]
        record, rows = merge_slices(self.p, self.card, prep, slices)
        evaluate.save_task(run, record, rows)
        self.records[task] = record
        for f in files:
            f.with_suffix(".jsonl").unlink()
            f.unlink()
        if not any(files[0].parent.iterdir()):
            files[0].parent.rmdir()

    def finish(self) -> dict:
        """The run's results.json, as the evaluate notebook ends a run."""
        return evaluate.write_results(self.p, self.card, self.p.run_path(), list(self.prepared), self.records,
                                      self.started)


def plan_run(p: StudyParams) -> RunUnits:
    """The run's units still to do: per task of the run (the card's pillars), its slices of at most
    `p.shard_size` items, without those the run folder already holds with the same items and settings. The
    first unit measures the edge figures when the run has none."""
    run = p.run_path()
    card = detect.load_card(run)
    settings = evaluate.settings_of(p, card)
    prepared = {prep.bench.name: prep for prep in evaluate.prepare_tasks(p, card.get("categories"))}
    records, todo = {}, []
    edge = not paths.edge_file(run).exists()
    for name, prep in prepared.items():
        if record := evaluate.finished_record(run, prep, settings):
            records[name] = record
            continue
        n = evaluate.slice_count(len(prep.item_ids), p.shard_size)
        for k in range(1, n + 1):
            shard = (k, n) if n > 1 else None
            if shard and finished_slice(run, prep, shard, settings):
                continue
            todo.append(Unit(p.resolved_run_id(), name, shard, edge and not todo))
    return RunUnits(p, card, prepared, records, todo)


def finished_slice(run, prep: evaluate.PreparedTask, shard: tuple[int, int], settings: dict) -> bool:
    """Whether the run folder holds this slice of the task, evaluated on the same items with the same settings."""
    path = paths.shard_file(run, prep.bench.name, shard)
    if not (path.exists() and path.with_suffix(".jsonl").exists()):
        return False
    record = artifacts.read_json(path)
    return record.get("item_ids") == evaluate.shard_slice(prep.item_ids, *shard) and record.get("settings") == settings


def merge_slices(p: StudyParams, card: dict, prep: evaluate.PreparedTask,
                 parts: list[tuple[dict, list[dict]]]) -> tuple[dict, list[dict]]:
    """A task's record and per-item log from its slices' (record, rows): the rows in the task's item order, the
    metrics recomputed from them by lm-eval (each item's logged response replayed); time and energy summed."""
    order = {item: i for i, item in enumerate(prep.item_ids)}
    rows = sorted((r for _, part in parts for r in part), key=lambda r: order.get(r["item_id"], len(order)))
    if [r["item_id"] for r in rows] != prep.item_ids:
        raise ValueError(f"{prep.bench.name}: its slices hold {len(rows)} items, not the task's {len(prep.item_ids)} "
                         "chosen ones; delete the run folder's units/ and resume")
    chat = evaluate.uses_chat_template(p.apply_chat_template, card, prep.bench)
    record, again = evaluate.run_task(ReplayLM(rows, prep.indices, check_prompts=not chat), prep, p.seed, chat)
    differs = next((a["item_id"] for a, b in zip(again, rows) if a != b), None)
    if differs is not None:
        raise ValueError(f"{prep.bench.name}: item {differs} scores otherwise when its slice's log is replayed")
    records = [r for r, _ in parts]
    threads = [r["threads"] for r in records if "threads" in r]
    record.update(seconds=round(sum(r["seconds"] for r in records), 2), settings=evaluate.settings_of(p, card),
                  energy=sum_energy([r.get("energy") for r in records]),
                  slices=[{"items": r["n"], "seconds": r["seconds"], **({"threads": r["threads"]} if "threads" in r
                                                                       else {})} for r in records],
                  **({"threads": max(threads)} if threads else {}))
    return record, rows


def sum_energy(figures: list[dict | None]) -> dict | None:
    """A task's energy figures from its slices' (each CodeCarbon's estimate for its part)."""
    figures = [f for f in figures if f]
    if not figures:
        return None
    return {**figures[0], **{k: sum(f[k] for f in figures) for k in ENERGY_SUMS}}
