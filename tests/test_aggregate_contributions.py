"""Signers, not `submitted_by` (issue 18): the run limit per signer at intake, and "earn your submit"
counted on the signed runs the archive memory records."""

from __future__ import annotations

import hashlib
import io
import tarfile
import time

import pytest

from slmlib import artifacts, detect, params, paths, signing
from slmlib.aggregate import archives, contributions, reconcile
from test_aggregate_reconcile import BOOLQ, good_run
from test_aggregate_registry import write_run
from test_detect import tiny_dir, with_model, write_submission  # noqa: F401  (fixture)


def signed_archive(tmp_path, key, run_ids, out):
    """Run folders `run_ids` (models named by their prefix) packed into one archive signed with `key`."""
    home = tmp_path / "contributor"
    home.mkdir(exist_ok=True)
    for rid in run_ids:
        write_run(home / "runs", good_run(rid, sha=f"sha-{rid}"), {"boolq": BOOLQ})
    with tarfile.open(out, "w:gz") as tar:
        for rid in run_ids:
            folder = home / "runs" / rid
            files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
            manifest = {"run_id": rid, "files": {rel: hashlib.sha256(b).hexdigest() for rel, b in files.items()}}
            files[signing.SIGNATURE_FILE] = artifacts.dumps(signing.signature_record(manifest, key)).encode()
            for rel, data in files.items():
                info = tarfile.TarInfo(f"{rid}/{rel}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out


@pytest.fixture
def alice(tmp_path, monkeypatch):
    path, public = signing.new_key(tmp_path / "alice.key")
    contributors = tmp_path / "contributors.yaml"
    contributors.write_text(f"contributors:\n  - name: alice\n    public_key: '{public}'\n")
    monkeypatch.setattr(signing, "CONTRIBUTORS_FILE", contributors)
    return signing.load_key(path), {public: "alice"}


def intake(root, trusted):
    return reconcile.load_study(root / "runs", inbox=root, trusted=trusted, rescore_archives=False)


def test_a_signer_brings_at_most_the_run_limit_and_the_memory_records_who_and_when(tmp_path, alice, monkeypatch):
    key, trusted = alice
    monkeypatch.setattr(contributions, "RUNS_PER_WEEK", 2)
    root = paths.outputs_root()
    (root / "runs").mkdir(parents=True)
    signed_archive(tmp_path, key, ["m1__1", "m2__1", "m3__1"], root / "three.tar.gz")
    study = intake(root, trusted)
    assert study.extracted == ["m1__1", "m2__1"]
    (rejected,) = study.rejected
    assert rejected["run_id"] == "m3__1" and rejected["reason"].startswith("signer alice already brought 2 runs")
    memory = archives.read_intake(root / archives.INTAKE_FILE)
    assert memory["archives"] == {}  # a limit of this week: the outcome is not remembered, the archive comes again
    assert [(c["run_id"], c["signer"], c["model_id"]) for c in contributions.contributions(memory)] == \
        [("m1__1", "alice", "m1"), ("m2__1", "alice", "m2")]  # but who brought what is
    assert abs(memory["contributions"]["m1__1"]["taken_at"] - time.time()) < 60
    assert "already brought 2 runs" in intake(root, trusted).rejected[-1]["reason"]  # still over, the next time
    monkeypatch.setattr(contributions, "RUNS_PER_WEEK", 3)
    assert intake(root, trusted).extracted == ["m3__1"]  # the limit allows it now
    memory = archives.read_intake(root / archives.INTAKE_FILE)
    assert sorted(memory["contributions"]) == ["m1__1", "m2__1", "m3__1"] and len(memory["archives"]) == 1


def test_earn_your_submit_counts_signed_runs_of_other_models_in_the_last_day(tmp_path, alice, tiny_dir):  # noqa: F811
    now = time.time()
    memory = {"schema_version": archives.INTAKE_VERSION, "archives": {}}

    def bring(runs, hours_ago):
        memory.setdefault("contributions", {}).update(
            {r: {"signer": s, "model_id": m, "taken_at": now - hours_ago * 3600} for r, (s, m) in runs.items()})
        artifacts.write_json(paths.outputs_root() / archives.INTAKE_FILE, memory)

    bring({"x__1": ("alice", "x"), "y__1": ("alice", "y"), "y__2": ("alice", "y")}, 1)
    bring({"z__1": ("alice", "z")}, 30)  # older than 24 h
    bring({"w__1": ("bob", "w")}, 1)  # someone else's
    bring({"t__1": ("alice", "tiny-sub")}, 1)  # the submitted model itself
    problem = contributions.earn_submit_problem("alice", "tiny-sub", 3, now)
    assert problem == ("model.submitted_by: alice brought verified runs of 2 other model(s) in the last 24 h; "
                       "earn_submit asks for 3 before a submission of your own")
    assert contributions.earn_submit_problem("alice", "tiny-sub", 2, now) is None
    assert "'mallory' is not a contributor" in contributions.earn_submit_problem("mallory", "tiny-sub", 1, now)
    assert contributions.earn_submit_problem("mallory", "tiny-sub", 0, now) is None  # off
    p = params.validate({"earn_submit": 3, "tasks": ["boolq"]})
    _, report = detect.detect_submission(write_submission(tiny_dir.parent, with_model(submitted_by="alice")), p)
    assert any(e.startswith("model.submitted_by: alice brought verified runs of 2") for e in report.errors)
    _, report = detect.detect_submission(write_submission(tiny_dir.parent, with_model(submitted_by="alice")),
                                         params.validate({"earn_submit": 2, "tasks": ["boolq"]}))
    assert not any("earn_submit" in e for e in report.errors)
