"""Hostile input and faults in the state the aggregate stage reads and writes (issue 16, cases 12, 13
and 15): a bad run folder or archive is rejected with its reason and never stops the others; archives
are examined once (by SHA-256) and extracted under a size and member cap counted while writing; a
damaged registry or submissions ledger fails detect's duplicate and rate-limit checks closed, naming
the file. Property-based fuzz tests (hypothesis) feed arbitrary bytes and JSON values to the
run-folder, archive, archive-memory, ledger and registry readers."""
from __future__ import annotations

import io
import json
import os
import tarfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from slmlib import artifacts, detect, paths
from slmlib.aggregate import archives, reconcile
from slmlib.detect import ledger
from slmlib.aggregate.registry import build_registry, write_registry
from test_aggregate_reconcile import BOOLQ, good_run, make_archive, run_files
from test_aggregate_registry import make_run, write_run
from test_detect import SUBMISSION, tiny_dir, with_model, write_submission  # noqa: F401  (fixture)

FUZZ = settings(max_examples=40, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow])
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(max_size=20),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children,
                                                                                      max_size=4),
                    max_leaves=20)


def load(root: Path) -> reconcile.Study:
    return reconcile.load_study(root / "runs", inbox=root, rescore_archives=False)  # synthetic logs (see test_aggregate_rescore)


def registry_of(root: Path, study: reconcile.Study) -> dict:
    """Build and write the registry (the write validates it against its schema)."""
    reg = build_registry(study.runs, samples=study.samples, rejected=study.rejected, resamples=50)
    write_registry(reg, root / "registry.json")
    return json.loads((root / "registry.json").read_text())


def reasons(study_or_registry) -> dict[str, str]:
    rejected = study_or_registry["rejected"] if isinstance(study_or_registry, dict) else study_or_registry.rejected
    return {r["run_id"]: r["reason"] for r in rejected}


# --- case 12: one bad run folder never stops the others --------------------------------------------

def test_a_results_json_nesting_200000_lists_is_rejected_and_the_others_are_ranked(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, good_run("ok__1"), {"boolq": BOOLQ})
    (runs / "deep__1").mkdir()
    (runs / "deep__1" / "results.json").write_text("[" * 200_000 + "]" * 200_000)
    reg = registry_of(tmp_path, load(tmp_path))  # was: RecursionError, no registry at all
    assert [m["model_id"] for m in reg["models"]] == ["ok"] and reg["models"][0]["rank"] == 1
    assert reasons(reg) == {"deep__1": "unreadable results.json: nests lists/objects deeper than 64 levels"}


def test_bad_files_in_run_folders_are_rejected_with_their_reason(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    write_run(runs, good_run("ok__1"), {"boolq": BOOLQ})
    (runs / "fifo__1").mkdir()
    os.mkfifo(runs / "fifo__1" / "results.json")  # was: silently "incomplete"; reading it would hang
    (runs / "binary__1").mkdir()
    (runs / "binary__1" / "results.json").write_bytes(b'{"a": "\xff"}')
    (runs / "big__1").mkdir()
    (runs / "big__1" / "results.json").write_text(" " * 100_000 + "{}")
    monkeypatch.setattr(reconcile, "RESULTS_MAX_BYTES", 50_000)  # was: no cap (a 10 GB file was read whole)
    link = write_run(runs, good_run("link__1"), {"boolq": BOOLQ})
    (link / "samples" / "boolq.jsonl").rename(tmp_path / "elsewhere.jsonl")
    (link / "samples" / "boolq.jsonl").symlink_to(tmp_path / "elsewhere.jsonl")  # would be copied into the site
    study = load(tmp_path)
    assert [r["run_id"] for r in study.runs] == ["ok__1"] and study.incomplete == []
    assert reasons(study) == {
        "fifo__1": "unreadable results.json: is not a regular file",
        "binary__1": "unreadable results.json: is not UTF-8 text (byte 0xff at offset 7)",
        "big__1": "unreadable results.json: is 100,002 bytes, over the 50,000-byte cap",
        "link__1": "unreadable samples/boolq.jsonl: is a symbolic link (not followed)",
    }


def test_samples_that_cannot_be_hashed_are_rejected_not_raised(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, good_run("ok__1"), {"boolq": BOOLQ})
    for run_id, response in (("nan__1", "NaN"), ("surrogate__1", '"\\ud800"')):
        folder = write_run(runs, good_run(run_id), {"boolq": BOOLQ})
        rows = (folder / "samples" / "boolq.jsonl").read_text().splitlines()
        rows[0] = rows[0].replace('"response": [[-1.0, true]]', f'"response": {response}')
        (folder / "samples" / "boolq.jsonl").write_text("\n".join(rows) + "\n")
    reg = registry_of(tmp_path, load(tmp_path))  # was: ValueError / UnicodeEncodeError out of load_study
    assert [m["model_id"] for m in reg["models"]] == ["ok"]
    assert reasons(reg) == {
        "nan__1": "unreadable samples/boolq.jsonl: line 1 is not valid JSON (NaN is not valid JSON)",
        "surrogate__1": "unreadable samples/boolq.jsonl: line 1 holds a lone surrogate (\\ud800-\\udfff) in a string",
    }


def test_numbers_that_overflow_the_registry_are_rejected(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, good_run("ok__1"), {"boolq": BOOLQ})
    for i in (1, 2):  # two repeats: the median of their edge figure is (a + b) / 2 = inf
        write_run(runs, good_run(f"huge__{i}", edge={"load_seconds": 1.5e308}), {"boolq": BOOLQ})
    reg = registry_of(tmp_path, load(tmp_path))  # was: "Out of range float values are not JSON compliant"
    assert [m["model_id"] for m in reg["models"]] == ["ok"]
    assert reasons(reg)["huge__1"] == "results.json: edge/load_seconds: 1.5e+308 is out of range (at most 1e+15 in size)"


def test_a_vanishing_energy_leaves_efficiency_empty_instead_of_infinite():
    run = make_run("m__1", "m", {"boolq": 0.6}, energy={"kwh": 1e-320, "co2_kg": 0.0})
    (entry,) = build_registry([run], resamples=20)["models"]  # was: efficiency inf, and the write failed
    assert entry["efficiency"] is None and entry["aggregate"] == 60.0


def test_registry_of_good_runs_is_unchanged_by_the_bounded_reader(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, good_run("a__1"), {"boolq": BOOLQ})
    write_run(runs, good_run("b__1", sha="other"), {"boolq": BOOLQ})
    study = load(tmp_path)
    plain = build_registry([artifacts.read_json(runs / r / "results.json") for r in ("a__1", "b__1")],
                           samples={r: {"boolq": artifacts.read_jsonl(runs / r / "samples" / "boolq.jsonl")}
                                    for r in ("a__1", "b__1")})
    assert artifacts.dumps(build_registry(study.runs, samples=study.samples)) == artifacts.dumps(plain)


# --- case 15: archives are examined once, and extraction is capped while writing -------------------

def test_archives_are_examined_once_and_remembered_by_digest(tmp_path, monkeypatch):
    bad = good_run("bad__1")
    bad["seed"] = "x"
    make_archive(tmp_path / "invalid.tar.gz", run_files(bad))
    make_archive(tmp_path / "remote.zip", run_files(good_run("remote__1", sha="sha-remote")), "zip")
    calls = []
    extract = archives.extract_safely
    monkeypatch.setattr(archives, "extract_safely", lambda a, d, *k: calls.append(a.name) or extract(a, d, *k))
    first = load(tmp_path)
    assert calls == ["invalid.tar.gz", "remote.zip"] and first.extracted == ["remote__1"]
    memory = json.loads((tmp_path / archives.INTAKE_FILE).read_text())
    assert sorted((r["name"], r["outcome"], r["runs"]) for r in memory["archives"].values()) == \
        [("invalid.tar.gz", "rejected", []), ("remote.zip", "taken", ["remote__1"])]
    again = load(tmp_path)  # was: both extracted again on every aggregate
    assert calls == ["invalid.tar.gz", "remote.zip"] and again.extracted == []
    assert again.rejected == first.rejected and reasons(again)["bad__1"].startswith(
        "results.json does not match params/run.schema.json: seed: 'x' is not of type 'integer'")
    assert [r["run_id"] for r in again.runs] == ["remote__1"]


def test_a_bomb_is_stopped_at_the_cap_as_it_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(archives, "ARCHIVE_MAX_BYTES", 1 << 20)  # was: a default bound at import (2 GiB)
    make_archive(tmp_path / "bomb.tar.gz", {"r__1/results.json": b"{}", "r__1/zeros.bin": bytes(4 << 20)})
    (rejected,) = load(tmp_path).rejected
    assert rejected == {"run_id": "bomb.tar.gz", "source": "bomb.tar.gz",
                        "reason": "archive not accepted: more than 1,048,576 bytes uncompressed"}
    assert not (tmp_path / "runs" / "r__1").exists()

    class Lying(io.BytesIO):  # a member whose stream holds more than it declares: counted as written
        pass
    written = tmp_path / "out"
    written.mkdir()
    budget = archives._Budget(1000, 10)
    with pytest.raises(ValueError, match="more than 1,000 bytes"):
        archives._write_member(written, archives.safe_member("x/big"), Lying(bytes(1 << 20)), budget)
    assert (written / "x" / "big").stat().st_size <= 1000


def test_member_count_and_tar_headers_are_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(archives, "ARCHIVE_MAX_MEMBERS", 10)  # was: no member cap
    make_archive(tmp_path / "many.tar.gz", {f"r__1/f{i}": b"" for i in range(50)})
    make_archive(tmp_path / "many.zip", {f"r__1/f{i}": b"" for i in range(50)}, "zip")
    with tarfile.open(tmp_path / "pax.tar.gz", "w:gz", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("r__1/results.json")
        info.pax_headers = {"comment": "x" * (3 << 20)}  # read into memory by tarfile before any member
        tar.addfile(info, io.BytesIO(b""))
    monkeypatch.setattr(archives, "ARCHIVE_MAX_BYTES", 1 << 20)
    assert reasons(load(tmp_path)) == {
        "many.tar.gz": "archive not accepted: more than 10 members",
        "many.zip": "archive not accepted: more than 10 members",
        "pax.tar.gz": "archive not accepted: more than 1,101,824 bytes uncompressed, tar headers included",
    }


def test_a_damaged_archive_memory_stops_intake_naming_the_file(tmp_path):
    make_archive(tmp_path / "remote.zip", run_files(good_run("remote__1")), "zip")
    (tmp_path / archives.INTAKE_FILE).write_text('{"schema_version": 1, "archives": {"ab')
    with pytest.raises(archives.IntakeError) as err:
        load(tmp_path)
    assert str(err.value) == (
        f"{tmp_path / archives.INTAKE_FILE}: the memory of archives already examined is damaged (is not valid "
        "JSON (Unterminated string starting at: line 1 column 36 (char 35))); restore it, or delete it to have "
        f"the next aggregate examine every archive in {tmp_path} again")
    assert not (tmp_path / "runs" / "remote__1").exists()


def test_an_archive_member_over_an_incomplete_local_folder_is_rejected_not_raised(tmp_path):
    (tmp_path / "runs" / "dup__1").mkdir(parents=True)  # incomplete: no results.json
    make_archive(tmp_path / "dup.tar.gz", run_files(good_run("dup__1")))
    study = load(tmp_path)  # was: FileNotFoundError reading runs/dup__1/results.json
    assert list(reasons(study)) == ["dup__1"]
    assert reasons(study)["dup__1"].startswith("runs/dup__1 already exists with other files: a second archive")
    assert study.incomplete == ["dup__1"]


# --- case 13: the duplicate check and the rate limit fail closed on damaged state --------------------

REGISTRY_FIX = ("the duplicate check fails closed until it is rebuilt: run the aggregate stage (make aggregate) "
                "or restore the file")
LEDGER_FIX = ("the rate limit fails closed until it is repaired: restore the file from a backup or correct that "
              "line (accepted lines are never removed)")


def test_a_truncated_registry_fails_the_duplicate_check_closed(tiny_dir):
    card, report = detect.detect_submission(write_submission(tiny_dir.parent, SUBMISSION))
    assert report.errors == []
    text = artifacts.dumps({"schema_version": 3, "models": [{"model_id": "old", "weights": card["weights"]}]})
    paths.registry_path().parent.mkdir(parents=True, exist_ok=True)
    paths.registry_path().write_text(text[:len(text) // 2])  # was: no registry, no duplicate check, accepted
    _, report = detect.detect_submission(write_submission(tiny_dir.parent, SUBMISSION, name="other-id"))
    (error,) = report.errors
    assert error.startswith(f"{paths.registry_path()}: damaged registry (is not valid JSON (") and \
        error.endswith(f")); {REGISTRY_FIX}")
    paths.registry_path().write_text('{"models": {"old": 1}}')
    _, report = detect.detect_submission(write_submission(tiny_dir.parent, SUBMISSION, name="other-id"))
    assert report.errors == [f"{paths.registry_path()}: damaged registry (not an object with a models list); "
                             f"{REGISTRY_FIX}"]


def write_ledger(lines: list[bytes]) -> Path:
    path = ledger.ledger_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def ledger_line(model_id: str, days_ago: float, now: float) -> bytes:
    return json.dumps({"time": now - days_ago * 86400, "model_id": model_id, "submitter": "ann",
                       "sha256": model_id, "hf_repo": None, "hf_revision": None, "quantization": None}).encode()


def test_an_unparsable_ledger_line_fails_the_rate_limit_closed(tiny_dir):
    import time
    now = time.time()
    lines = [ledger_line(f"m{i}", 1 + i, now) for i in range(3)]
    path = write_ledger([lines[0], lines[1][:40], lines[2]])  # a torn line: was skipped, 2 < 3, accepted
    _, report = detect.detect_submission(write_submission(tiny_dir.parent, with_model(submitted_by="Ann")))
    (error,) = report.errors
    assert error.startswith(f"{path}: line 2 is not valid JSON (") and error.endswith(f")); {LEDGER_FIX}")
    write_ledger([lines[0], b'{"time": "yesterday", "model_id": "m1", "submitter": "ann"}', lines[2]])
    _, report = detect.detect_submission(write_submission(tiny_dir.parent, with_model(submitted_by="Ann")))
    assert report.errors == [f"{path}: line 2 is not a ledger entry (time: not a number); {LEDGER_FIX}"]
    write_ledger(lines[:2])  # intact and under the limit: accepted
    assert detect.detect_submission(write_submission(tiny_dir.parent, with_model(submitted_by="Ann")))[1].errors == []


def test_a_non_utf8_byte_in_the_ledger_is_an_error_naming_the_file(tiny_dir):
    import time
    path = write_ledger([ledger_line("m0", 1, time.time()), b'{"model_id": "\xff"}'])
    _, report = detect.detect_submission(write_submission(tiny_dir.parent, SUBMISSION))  # was: UnicodeDecodeError
    assert report.errors == [f"{path}: line 2 is not UTF-8 text (byte 0xff at offset 14); {LEDGER_FIX}"]
    with pytest.raises(ledger.LedgerError, match="line 2 is not UTF-8"):  # nothing appended to a damaged ledger
        ledger.append({"model_id": "x", "weights": {"sha256": "1"}})
    assert len(path.read_bytes().splitlines()) == 2


def test_a_ledger_that_is_a_fifo_is_an_error_not_a_hang(tiny_dir):
    path = ledger.ledger_path()
    path.parent.mkdir(parents=True)
    os.mkfifo(path)  # was: read_text() waits forever for a writer
    _, report = detect.detect_submission(write_submission(tiny_dir.parent, SUBMISSION))
    assert report.errors == [f"{path}: unreadable (is not a regular file); the rate limit fails closed until it is "
                             "repaired: restore the file from a backup (accepted lines are never removed)"]


def test_a_fresh_study_without_registry_or_ledger_is_not_damaged():
    assert ledger.read_ledger() == [] and ledger.read_ledger().error is None
    assert ledger.registry_models() == [] and ledger.registry_models().error is None


CARD = {"model_id": "new", "submitted_by": "Ann", "hf_repo": "org/new", "hf_revision": None, "quantization": None,
        "weights": {"sha256": "a" * 64}}
LINES = st.lists(st.binary(max_size=60) | JSON.map(lambda v: json.dumps(v).encode())
                 | st.fixed_dictionaries({"time": st.floats(0, 2e9), "model_id": st.text(max_size=5),
                                          "submitter": st.sampled_from(["ann", "bob"]),
                                          "sha256": st.none() | st.text(max_size=5)}).map(
                     lambda d: json.dumps(d).encode()), max_size=6)


@FUZZ
@given(lines=LINES)
def test_fuzz_ledger_lines_give_entries_or_an_error_naming_the_file(lines):
    path = write_ledger(lines)
    entries = ledger.read_ledger()
    errors = ledger.rate_limit_errors(CARD, entries)
    assert all(isinstance(e, str) for e in errors)
    if entries.error:
        assert entries == [] and errors == [entries.error] and entries.error.startswith(f"{path}: ")
    else:
        assert len(entries) == sum(1 for line in lines if line.strip())


@FUZZ
@given(data=st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode())
       | st.lists(JSON, max_size=3).map(lambda models: json.dumps({"models": models}).encode()))
def test_fuzz_a_registry_gives_models_or_an_error_naming_the_file(data):
    paths.registry_path().parent.mkdir(parents=True, exist_ok=True)
    paths.registry_path().write_bytes(data)
    models = ledger.registry_models()
    errors = ledger.duplicate_errors(CARD, models)
    assert all(isinstance(e, str) for e in errors)
    if models.error:
        assert errors == [models.error] and models.error.startswith(f"{paths.registry_path()}: damaged registry (")


# --- property-based fuzz tests ---------------------------------------------------------------------



def _fresh(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    if root.exists():
        import shutil
        shutil.rmtree(root)
    root.mkdir()
    return root


@FUZZ
@given(data=st.binary(max_size=300))
def test_fuzz_random_bytes_as_results_json_are_rejected_with_a_reason(tmp_path, data):
    folder = _fresh(tmp_path, "r") / "x__1"
    folder.mkdir()
    (folder / "results.json").write_bytes(data)
    run, rows, reason = reconcile.read_run(folder)
    assert run is None and isinstance(reason, str) and reason and reason != reconcile.INCOMPLETE


@FUZZ
@given(value=JSON)
def test_fuzz_json_values_as_results_json_are_rejected_with_a_reason(tmp_path, value):
    folder = _fresh(tmp_path, "r") / "x__1"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(value))
    assert reconcile.read_run(folder)[2]


def _paths(value, where=()):
    yield where
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*where, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*where, i))


GOOD = good_run("m__1")
GOOD_PATHS = [p for p in _paths(GOOD) if p]


@settings(max_examples=60, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(where=st.sampled_from(GOOD_PATHS), value=JSON, also=st.sampled_from(GOOD_PATHS), other=JSON)
def test_fuzz_a_valid_run_with_fields_replaced_is_rejected_or_ranked_never_raises(tmp_path, where, value,
                                                                                 also, other):
    root = _fresh(tmp_path, "s")
    run = json.loads(json.dumps(GOOD))
    for path, new in ((where, value), (also, other)):
        target = run
        try:
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = new
        except (KeyError, IndexError, TypeError):
            pass  # the first replacement removed this path
    folder = root / "runs" / "m__1"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(run))
    write_run(root / "runs", good_run("ok__1", sha="sha-ok"), {"boolq": BOOLQ})
    study = load(root)
    reg = registry_of(root, study)  # the registry is written (schema-checked) whatever the run holds
    assert "ok" in {m["model_id"] for m in reg["models"]}
    assert len(study.runs) + len(study.rejected) == 2


@FUZZ
@given(data=st.binary(max_size=400))
def test_fuzz_random_bytes_as_samples_give_a_reason_or_are_accepted(tmp_path, data):
    root = _fresh(tmp_path, "s")
    folder = write_run(root / "runs", good_run("m__1"), {"boolq": BOOLQ})
    (folder / "samples" / "boolq.jsonl").write_bytes(data)
    run, rows, reason = reconcile.read_run(folder)
    assert (run is None) == bool(reason)


def _valid_archive_bytes(kind: str) -> bytes:
    buf = io.BytesIO()
    files = run_files(good_run("remote__1", sha="sha-remote"))
    if kind == "zip":
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in files.items():
                zf.writestr(name, data)
    else:
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


VALID_ARCHIVES = {kind: _valid_archive_bytes(kind) for kind in ("zip", "tar")}


@FUZZ
@given(kind=st.sampled_from(["zip", "tar"]), data=st.binary(max_size=300),
       flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6), random=st.booleans())
def test_fuzz_random_and_damaged_archives_are_rejected_with_a_reason(tmp_path, kind, data, flips, random):
    root = _fresh(tmp_path, "a")
    blob = bytearray(data if random else VALID_ARCHIVES[kind])
    for at, byte in flips if blob else ():
        blob[at % len(blob)] = byte
    (root / ("x.zip" if kind == "zip" else "x.tar.gz")).write_bytes(bytes(blob))
    study = load(root)
    assert all(r["reason"] for r in study.rejected)
    assert len(study.extracted) + len(study.rejected) >= 1 or (root / "runs" / "remote__1").exists()
    memory = json.loads((root / archives.INTAKE_FILE).read_text())
    assert len(memory["archives"]) == 1
    again = load(root)  # remembered: the same outcome, nothing extracted again
    assert again.rejected == study.rejected and again.extracted == []


@FUZZ
@given(data=st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()))
def test_fuzz_a_damaged_archive_memory_is_an_intake_error_or_is_used(tmp_path, data):
    root = _fresh(tmp_path, "m")
    (root / "x.zip").write_bytes(VALID_ARCHIVES["zip"])
    (root / archives.INTAKE_FILE).write_bytes(data)
    try:
        load(root)
    except archives.IntakeError as exc:
        assert str(exc).startswith(f"{root / archives.INTAKE_FILE}: the memory of archives already examined is "
                                   "damaged (")


@pytest.mark.parametrize("backend", ["llamacpp", "hf"])
@pytest.mark.parametrize("chat", ["auto", True, False])
def test_the_settings_every_valid_params_file_records_pass_the_run_schema(tmp_path, backend, chat):
    """The stricter run schema must not reject an honest run: the settings the evaluate stage records
    for each backend and each allowed apply_chat_template (the default is "auto") are taken in."""
    from slmlib import params
    from slmlib.evaluate import loop

    p = params.validate({"backend": backend, "apply_chat_template": chat})
    card = {"model_id": "m", "quantization": "F16", "weights": {"kind": "gguf"}, "adapter": None}
    run = good_run()
    run["settings"] = loop.settings_of(p, card)
    for task in run["tasks"].values():
        task["settings"] = run["settings"]
    write_run(tmp_path / "runs", run, {"boolq": BOOLQ})
    study = reconcile.load_study(tmp_path / "runs", inbox=tmp_path)
    assert study.rejected == [] and [r["run_id"] for r in study.runs] == ["m__1"]
