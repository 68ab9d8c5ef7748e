"""Shared files under a lock (issue 18): processes appending to the ledger, or taking archives in, at
the same moment end with complete, valid files and no limit exceeded."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time

import pytest

from slmlib import paths
from slmlib.aggregate import archives, reconcile
from slmlib.detect import ledger
from test_aggregate_reconcile import good_run, make_archive, run_files

PROCESSES = 8


def _slow_reader(read):
    """The ledger read, then a pause: every process reads before any writes unless the lock orders them."""
    def read_then_wait(*args, **kwargs):
        entries = read(*args, **kwargs)
        time.sleep(0.3)
        return entries
    return read_then_wait


def _submit(args) -> str:
    root, i = args
    os.environ["SLM_OUTPUT_ROOT"] = root
    ledger.load_ledger = _slow_reader(ledger.load_ledger)  # in this child process only
    card = {"model_id": f"m{i}", "submitted_by": "ann", "weights": {"sha256": f"{i}" * 64}}
    try:
        return "added" if ledger.append(card) else "same"
    except ledger.LedgerError as exc:
        return str(exc)


def _slow_move(move):
    """A pause before each move into runs/: every process has checked the target before any moves."""
    def wait_then_move(src, dst):
        time.sleep(0.3)
        return move(src, dst)
    return wait_then_move


def _aggregate(root: str) -> list[str]:
    reconcile.shutil.move = _slow_move(shutil.move)  # in this child process only (it is a fork)
    study = reconcile.load_study(paths.Path(root) / "runs", inbox=paths.Path(root), rescore_archives=False)
    return sorted(r["reason"] for r in study.rejected)


@pytest.fixture
def pool():
    with multiprocessing.get_context("fork").Pool(PROCESSES) as p:
        yield p


def test_concurrent_submissions_of_one_submitter_stop_at_the_rate_limit(tmp_path, pool):
    outcomes = pool.map(_submit, [(str(tmp_path), i) for i in range(PROCESSES)])
    lines = (tmp_path / "submissions_ledger.jsonl").read_text().splitlines()
    assert len(lines) == ledger.RATE_LIMIT and all(json.loads(line)["submitter"] == "ann" for line in lines)
    assert outcomes.count("added") == ledger.RATE_LIMIT
    refused = [o for o in outcomes if o != "added"]
    assert len(refused) == PROCESSES - ledger.RATE_LIMIT and all("already has 3 submissions" in o for o in refused)


def test_concurrent_aggregates_take_each_archive_once_into_a_valid_memory(tmp_path, pool):
    (tmp_path / "runs").mkdir()
    for i in range(6):
        make_archive(tmp_path / f"a{i}.tar.gz", run_files(good_run(f"remote{i}__1", sha=f"sha-{i}")))
    outcomes = pool.map(_aggregate, [str(tmp_path)] * 4)
    assert outcomes == [[]] * 4  # nobody saw another's half-extracted folder
    memory = archives.read_intake(tmp_path / archives.INTAKE_FILE)
    assert sorted(r["name"] for r in memory["archives"].values()) == [f"a{i}.tar.gz" for i in range(6)]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [f"remote{i}__1" for i in range(6)]
    for i in range(6):  # each folder as packed: no second copy moved inside it
        assert sorted(p.name for p in (tmp_path / "runs" / f"remote{i}__1").iterdir()) == ["results.json", "samples"]
