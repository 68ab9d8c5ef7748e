"""The command line as a user runs it: `python -m slmlib ...` in a subprocess.

Every `run` here must stop before any stage starts (bad params, bad stage names); outputs
go to tmp_path all the same, and a timeout bounds a regression that would start a study.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv" / "bin" / "python"


def slmlib(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SLM_OUTPUT_ROOT": str(tmp_path / "outputs"),
           "SLM_REPORTS_ROOT": str(tmp_path / "reports"), "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    python = str(PYTHON) if PYTHON.exists() else sys.executable
    return subprocess.run([python, "-m", "slmlib", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def bad_files(tmp_path) -> tuple[Path, Path]:
    bad_params = tmp_path / "bad-params.yaml"
    bad_params.write_text("limt: 3\nseed: yes\n")
    bad_sub = tmp_path / "bad-sub.yaml"
    bad_sub.write_text("model:\n  name: X\n  license: proprietary\nweights:\n  dir: not-there\n")
    return bad_params, bad_sub


def test_validate_the_shipped_files(tmp_path):
    res = slmlib("validate", "params/default.yaml", "params/quick.yaml",
                 "params/submissions/smollm2-135m-instruct.yaml", tmp_path=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert "ok   params/default.yaml (params)" in lines
    assert "ok   params/quick.yaml (params)" in lines
    assert "ok   params/submissions/smollm2-135m-instruct.yaml (submission)" in lines
    assert "error" not in res.stdout


def test_validate_bad_files_exit_1_and_print_the_errors(tmp_path, bad_files):
    bad_params, bad_sub = bad_files
    res = slmlib("validate", "params/quick.yaml", str(bad_params), str(bad_sub), tmp_path=tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    out = res.stdout
    assert f"FAIL {bad_params} (params)" in out
    assert "limt: unknown parameter; did you mean 'limit'?" in out
    assert "seed: expected int, got bool True" in out
    assert f"FAIL {bad_sub} (submission)" in out
    assert f"error: weights: {tmp_path / 'not-there'}" in out
    assert "ok   params/quick.yaml (params)" in out
    assert "Traceback" not in res.stderr


def test_validate_json_report(tmp_path, bad_files):
    bad_params, bad_sub = bad_files
    res = slmlib("validate", "--json", "params/quick.yaml", str(bad_params), str(bad_sub), tmp_path=tmp_path)
    assert res.returncode == 1
    report = {r["file"]: r for r in json.loads(res.stdout)}
    assert report["params/quick.yaml"]["valid"] is True and report["params/quick.yaml"]["errors"] == []
    bad = report[str(bad_params)]
    assert bad["valid"] is False and bad["kind"] == "params"
    assert any("limt" in e for e in bad["errors"])
    sub = report[str(bad_sub)]
    assert sub["valid"] is False and sub["kind"] == "submission"
    assert any(e.startswith("weights: ") for e in sub["errors"])


def test_validate_missing_file_fails(tmp_path):
    res = slmlib("validate", "params/does-not-exist.yaml", tmp_path=tmp_path)
    assert res.returncode == 1
    assert "no such params file" in res.stdout


def test_run_missing_params_file(tmp_path):
    res = slmlib("run", "params/does-not-exist.yaml", tmp_path=tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.startswith("error: ")
    assert "does-not-exist.yaml: no such params file" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "outputs").exists()


def test_run_unknown_override(tmp_path):
    res = slmlib("run", "params/default.yaml", "--set", "limt=3", tmp_path=tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "error: " in res.stderr and "limt" in res.stderr and "did you mean 'limit'" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "outputs").exists()


def test_run_override_without_value(tmp_path):
    res = slmlib("run", "params/default.yaml", "--set", "limit", tmp_path=tmp_path)
    assert res.returncode == 2
    assert "expected KEY=VALUE" in res.stderr


def test_run_unknown_stage(tmp_path):
    res = slmlib("run", "params/quick.yaml", "--stages", "nope", tmp_path=tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "--stages" in res.stderr and "nope" in res.stderr and "detect" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "outputs").exists()


def test_run_bad_run_id(tmp_path):
    res = slmlib("run", "params/quick.yaml", "--run-id", "../escape", "--stages", "detect", tmp_path=tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "run_id" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "outputs").exists()


def test_help_lists_every_command(tmp_path):
    from slmlib import cli

    commands = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert sorted(commands) == sorted(COMMANDS)  # a command added or removed is added or removed here too
    res = slmlib("--help", tmp_path=tmp_path)
    assert res.returncode == 0
    listed = re.search(r"\{([a-z,-]+)\}", res.stdout).group(1).split(",")
    assert sorted(listed) == sorted(COMMANDS)
    assert f"python -m slmlib {{{','.join(listed)}}}" in cli.__doc__  # the docstring names them all
    for command in COMMANDS:
        sub = slmlib(command, "--help", tmp_path=tmp_path)
        assert sub.returncode == 0 and f"python -m slmlib {command}" in sub.stdout, command


COMMANDS = ("run", "worker", "certs", "validate", "intake", "schema", "fetch-data", "report", "screenshots", "agree",
            "bench", "audit", "todo", "keys", "pack")


HOSTILE = {
    "bomb": ("a: &a [x, x, x]\nb: [*a, *a, *a]\nmodel: {name: x}\n", "YAML anchors and aliases"),
    "python-tag": ("model: !!python/object/apply:os.system [echo pwned]\n", "could not determine a constructor"),
    "deep": ("model: " + "[" * 40 + "]" * 40 + "\n", "nested deeper than 8 levels"),
    "top-list": ("- model: {}\n", "expected a mapping with a `model:` section (got list)"),
    "big": ("model: {}\n#" + "x" * 70_000 + "\n", "larger than 65536 bytes"),
}


def test_validate_hostile_submissions_without_traceback_or_writes(tmp_path):
    folder = tmp_path / "submissions"
    folder.mkdir()
    files = []
    for name, (text, _) in HOSTILE.items():
        files.append(folder / f"{name}.yaml")
        files[-1].write_text(text)
    escape = folder / "..yaml"
    escape.write_text("model: {name: x}\n")
    res = slmlib("validate", "--no-estimate", *map(str, files), str(escape), tmp_path=tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    for (name, (_, words)), path in zip(HOSTILE.items(), files):
        assert f"FAIL {path} (submission)" in res.stdout and words in res.stdout, name
    assert "submission file name: '.' is not a valid id" in res.stdout
    assert "Traceback" not in res.stdout + res.stderr
    assert not (tmp_path / "outputs").exists()


def test_validate_json_carries_the_card(tmp_path):
    res = slmlib("validate", "--json", "--no-estimate", "params/submissions/smollm2-135m-instruct.yaml",
                 tmp_path=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    (report,) = json.loads(res.stdout)
    assert report["card"]["parameter_count"] == 134_515_008 and report["estimate"] is None


def test_schema_check_passes_on_the_committed_schema(tmp_path):
    res = slmlib("schema", "--check", tmp_path=tmp_path)
    assert res.returncode == 0 and "up to date" in res.stdout
