"""Signed runs (issue 18): keys, `pack --sign`, and the intake's checks with signatures required.

Each refusal is shown with its reason: unsigned, unknown key, bad signature, a file changed, added or
removed after signing, a replay of a run id with other bytes, and a signed folder edited after intake.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings, strategies as st

from slmlib import cli, paths, signing
from slmlib.aggregate import reconcile
from test_aggregate_reconcile import BOOLQ, good_run, make_archive
from test_aggregate_registry import write_run


@pytest.fixture
def contributor(tmp_path, monkeypatch):
    """A contributor's machine: a finished run folder `remote__1` and a key pair outside the repository."""
    home = tmp_path / "contributor"
    monkeypatch.setenv("SLM_OUTPUT_ROOT", str(home / "outputs"))
    write_run(paths.runs_dir(), good_run("remote__1", sha="sha-remote"), {"boolq": BOOLQ})
    key, public = signing.new_key(home / "keys" / "me.key")
    return key, public


def study_dir(tmp_path: Path) -> Path:
    inbox = tmp_path / "study"
    (inbox / "runs").mkdir(parents=True, exist_ok=True)
    return inbox


def intake(inbox: Path, trusted: dict[str, str] | None) -> reconcile.Study:
    return reconcile.load_study(inbox / "runs", inbox=inbox, trusted=trusted, rescore_archives=False)  # synthetic logs


def reasons(study: reconcile.Study) -> dict[str, str]:
    return {r["run_id"]: r["reason"] for r in study.rejected}


def rewrite_archive(src: Path, dest: Path, change) -> Path:
    """A copy of a packed archive whose members pass through `change(name, data) -> data | None`
    (None drops the member); extra members come from `change(None, None)` returning a dict."""
    members = {}
    with tarfile.open(src, "r:gz") as tar:
        for m in tar.getmembers():
            members[m.name] = tar.extractfile(m).read()
    out = {}
    for name, data in members.items():
        new = change(name, data)
        if new is not None:
            out[name] = new
    out.update(change(None, None) or {})
    return make_archive(dest, out)


def test_keys_new_writes_a_private_key_only_its_owner_reads_and_prints_the_public_key(tmp_path, capsys):
    key = tmp_path / "k" / "signing.key"
    assert cli.main(["keys", "new", "--out", str(key)]) == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    public = Path(f"{key}.pub").read_text().strip()
    assert signing.PUBLIC_KEY.fullmatch(public) and public in capsys.readouterr().out
    assert signing.public_key_text(signing.load_key(key).public_key()) == public
    assert cli.main(["keys", "new", "--out", str(key)]) == 2  # never over an existing key
    assert "already exists" in capsys.readouterr().err
    inside = paths.REPO_ROOT / "params" / "oops.key"
    assert cli.main(["keys", "new", "--out", str(inside)]) == 2
    assert "inside the repository" in capsys.readouterr().err and not inside.exists()


def test_a_key_others_can_read_or_of_another_kind_is_refused(tmp_path):
    key, _ = signing.new_key(tmp_path / "a.key")
    os.chmod(key, 0o644)
    with pytest.raises(signing.SigningError, match="chmod 600"):
        signing.load_key(key)
    rsa_key = tmp_path / "rsa.key"
    rsa_key.write_bytes(rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    os.chmod(rsa_key, 0o600)
    with pytest.raises(signing.SigningError, match="not an Ed25519 key"):
        signing.load_key(rsa_key)
    junk = tmp_path / "junk.key"
    junk.write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    os.chmod(junk, 0o600)
    with pytest.raises(signing.SigningError, match="not an unencrypted PEM private key"):
        signing.load_key(junk)


def test_pack_is_reproducible_and_refuses_an_unfinished_run(contributor, tmp_path):
    key, _ = contributor
    a = signing.pack_run("remote__1", tmp_path / "a.tar.gz", key)
    b = signing.pack_run("remote__1", tmp_path / "b.tar.gz", key)  # Ed25519 signatures are deterministic
    assert a.read_bytes() == b.read_bytes()
    with tarfile.open(a) as tar:
        assert sorted(tar.getnames()) == ["remote__1/results.json", "remote__1/samples/boolq.jsonl",
                                          "remote__1/signature.json"]
    (paths.runs_dir() / "unfinished__1").mkdir()
    with pytest.raises(signing.SigningError, match="results.json missing"):
        signing.pack_run("unfinished__1", tmp_path / "c.tar.gz")


def test_a_signed_run_from_a_trusted_key_is_taken_in_with_its_signer(contributor, tmp_path):
    key, public = contributor
    inbox = study_dir(tmp_path)
    signing.pack_run("remote__1", inbox / "remote.tar.gz", key)
    study = intake(inbox, {public: "alice"})
    assert study.rejected == [] and study.extracted == ["remote__1"] and study.signers == {"remote__1": "alice"}
    again = intake(inbox, {public: "alice"})  # the run folder keeps its signature and its signer
    assert again.rejected == [] and again.signers == {"remote__1": "alice"}


def test_each_forgery_is_refused_with_its_reason(contributor, tmp_path):
    key, public = contributor
    trusted = {public: "alice"}
    packed = signing.pack_run("remote__1", tmp_path / "good.tar.gz", key)
    unsigned = signing.pack_run("remote__1", tmp_path / "unsigned.tar.gz")
    stranger, _ = signing.new_key(tmp_path / "stranger.key")

    def edit_sample(name, data):
        if name and name.endswith("boolq.jsonl"):
            rows = [json.loads(line) for line in data.decode().splitlines()]
            rows[0]["response"] = "forged"
            return "".join(json.dumps(r) + "\n" for r in rows).encode()
        return data

    def edit_raw(name, data):
        if name and name.endswith("results.json"):
            run = json.loads(data)
            run["tasks"]["boolq"]["raw"] = 0.99
            return json.dumps(run).encode()
        return data

    def bad_signature(name, data):
        if name and name.endswith(signing.SIGNATURE_FILE):
            record = json.loads(data)
            record["signature"] = ("0" if record["signature"][0] != "0" else "1") + record["signature"][1:]
            return json.dumps(record).encode()
        return data

    cases = {  # archive -> (how it is made, the reason it must be refused with)
        "unsigned": (lambda d: unsigned.rename(d), "unsigned: no signature.json"),
        "stranger": (lambda d: signing.pack_run("remote__1", d, stranger), "signed by a key not listed"),
        "edited-sample": (lambda d: rewrite_archive(packed, d, edit_sample), "samples/boolq.jsonl: changed after signing"),
        "edited-raw": (lambda d: rewrite_archive(packed, d, edit_raw), "results.json: changed after signing"),
        "added": (lambda d: rewrite_archive(packed, d, lambda n, b: b if n else {"remote__1/extra.txt": b"x"}),
                  "extra.txt: added after signing"),
        "removed": (lambda d: rewrite_archive(packed, d, lambda n, b: None if n and n.endswith("jsonl") else b),
                    "samples/boolq.jsonl: signed but missing"),
        "bad-signature": (lambda d: rewrite_archive(packed, d, bad_signature), "bad signature"),
    }
    for name, (make, reason) in cases.items():
        inbox = study_dir(tmp_path / name)
        make(inbox / f"{name}.tar.gz")
        study = intake(inbox, trusted)
        assert study.extracted == [], name
        assert reason in reasons(study)["remote__1"], (name, reasons(study))
        assert not (inbox / "runs" / "remote__1").exists(), name
    inbox = study_dir(tmp_path / "unsigned-allowed")  # without signatures required, an unsigned run is taken
    signing.pack_run("remote__1", inbox / "u.tar.gz")
    assert intake(inbox, None).extracted == ["remote__1"]


def test_a_replay_of_a_run_id_with_other_bytes_is_refused(contributor, tmp_path, monkeypatch):
    key, public = contributor
    trusted = {public: "alice"}
    inbox = study_dir(tmp_path)
    signing.pack_run("remote__1", inbox / "first.tar.gz", key)
    assert intake(inbox, trusted).extracted == ["remote__1"]
    signing.pack_run("remote__1", inbox / "same.tar.gz", key)  # the same bytes again: nothing new, no error
    (inbox / "same.tar.gz").rename(inbox / "same-again.tar.gz")
    assert intake(inbox, trusted).rejected == []
    run_dir = paths.runs_dir() / "remote__1"  # the contributor reruns under the same id: other bytes
    (run_dir / "samples" / "boolq.jsonl").write_text((run_dir / "samples" / "boolq.jsonl").read_text() + "\n")
    signing.pack_run("remote__1", inbox / "replay.tar.gz", key)
    assert "a second archive of one run id with other bytes is refused" in reasons(intake(inbox, trusted))["remote__1"]


def test_a_signed_folder_edited_after_intake_is_rejected_at_the_next_aggregate(contributor, tmp_path):
    key, public = contributor
    inbox = study_dir(tmp_path)
    signing.pack_run("remote__1", inbox / "r.tar.gz", key)
    assert intake(inbox, {public: "alice"}).extracted == ["remote__1"]
    results = inbox / "runs" / "remote__1" / "results.json"
    results.write_text(results.read_text().replace('"seed"', '"seed" ', 1))
    study = intake(inbox, {public: "alice"})
    assert study.runs == [] and "results.json: changed after signing" in reasons(study)["remote__1"]


def test_contributors_file_errors_name_the_entry(tmp_path):
    path = tmp_path / "contributors.yaml"
    good = "ed25519:" + "ab" * 32
    for text, message in [
        ("people: []\n", "expected one key, contributors"),
        ("contributors:\n  - name: a\n", "contributors[0]: expected exactly name and public_key"),
        ("contributors:\n  - {name: 'a b', public_key: x}\n", "contributors[0].name"),
        ("contributors:\n  - {name: a, public_key: 'rsa:00'}\n", "contributors[0].public_key: expected ed25519:"),
        (f"contributors:\n  - {{name: a, public_key: '{good}'}}\n  - {{name: b, public_key: '{good}'}}\n",
         "contributors[1].public_key: listed twice (also for a)"),
    ]:
        path.write_text(text)
        with pytest.raises(ValueError, match=re.escape(message)):
            signing.read_contributors(path)
    path.write_text(f"# reviewed\ncontributors:\n  - name: alice\n    public_key: '{good}'\n")
    assert signing.read_contributors(path) == {good: "alice"}
    assert signing.read_contributors(signing.CONTRIBUTORS_FILE) is not None  # the committed file is valid


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=300), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20).map(lambda v: json.dumps(v).encode())))
def test_any_signature_file_is_refused_with_a_reason_never_raised(tmp_path, data):
    folder = tmp_path / "x__1"
    folder.mkdir(exist_ok=True)
    (folder / "results.json").write_bytes(b"{}")
    (folder / signing.SIGNATURE_FILE).write_bytes(data)
    signer, reason = signing.check_signature(folder, {"ed25519:" + "00" * 32: "a"})
    assert signer is None and reason


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_any_contributors_text_is_read_or_refused_with_a_value_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("c") / "contributors.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        trusted = signing.read_contributors(path)
    except ValueError:
        return
    assert all(signing.PUBLIC_KEY.fullmatch(k) for k in trusted)
