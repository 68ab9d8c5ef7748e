"""Contracts between the notebooks, the params schema, the params files and the environment."""
from __future__ import annotations

import ast
import dataclasses
import json
import re
import sys
from pathlib import Path

import papermill
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from slmlib import detect, params, paths, provenance  # noqa: E402
from slmlib.params import StudyParams  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# every study params file (contributors.yaml lists trusted keys: tests/test_spine_signing.py checks it)
PARAMS_FILES = sorted(p for p in (ROOT / "params").glob("*.yaml") if p.name != "contributors.yaml")
SUBMISSIONS = sorted((ROOT / "params" / "submissions").glob("*.yaml"))
FIELDS = {f.name: f for f in dataclasses.fields(StudyParams)}


def default_of(name: str):
    f = FIELDS[name]
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def cells(nb_path: Path) -> list[dict]:
    return json.loads(nb_path.read_text(encoding="utf-8"))["cells"]


def test_the_four_stage_notebooks_are_there():
    assert [p.name for p in NOTEBOOKS] == [p.name for p in paths.NOTEBOOKS.values()]
    assert len(NOTEBOOKS) == 4


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_parameters_cell(nb):
    tagged = [c for c in cells(nb) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    assert tagged[0]["cell_type"] == "code"
    # literal assignments only: no imports, calls or derived values in the parameters cell
    tree = ast.parse("".join(tagged[0]["source"]))
    assert tree.body and all(isinstance(s, ast.AnnAssign) for s in tree.body)
    for stmt in tree.body:
        ast.literal_eval(stmt.value)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameter_names_and_defaults_match_the_schema(nb):
    declared = papermill.inspect_notebook(str(nb))
    assert declared, f"{nb.name}: papermill finds no parameters"
    assert set(declared) <= set(FIELDS), f"{nb.name}: not in StudyParams: {set(declared) - set(FIELDS)}"
    for name, info in declared.items():
        assert ast.literal_eval(info["default"]) == default_of(name), f"{nb.name}: {name}"


def test_notebooks_together_declare_every_parameter():
    names = set()
    for nb in NOTEBOOKS:
        names |= set(papermill.inspect_notebook(str(nb)))
    assert names == set(FIELDS) - set(params.RUNNER_PARAMS)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_committed_without_outputs(nb):
    for i, cell in enumerate(cells(nb)):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{nb.name} cell {i} has outputs"
            assert cell.get("execution_count") is None, f"{nb.name} cell {i} has an execution count"
    metadata = json.loads(nb.read_text(encoding="utf-8"))["metadata"]
    assert "papermill" not in metadata, f"{nb.name} is an executed copy"


@pytest.mark.parametrize("path", PARAMS_FILES, ids=lambda p: p.name)
def test_params_file_validates_and_uses_schema_names(path):
    assert isinstance(params.load(path), StudyParams)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#"), f"{path.name}: open with a comment saying what the file is for"
    values = yaml.safe_load(text) or {}
    assert set(values) <= set(FIELDS)


@pytest.mark.parametrize("path", SUBMISSIONS, ids=lambda p: p.name)
def test_submission_validates(path):
    card, report = detect.detect_submission(path)
    opt_in = [e for e in report.errors if e.startswith("weights.cache:")]
    if opt_in and opt_in == report.errors:
        pytest.skip(f"{path.name}: opt-in weights not installed here ({opt_in[0]})")
    assert report.errors == []
    assert card["model_id"] == path.stem


def test_every_params_file_names_an_existing_submission():
    for path in PARAMS_FILES:
        submission = ROOT / params.load(path).submission
        assert submission.is_file(), path.name


def requirement_pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;]+)", line)
        assert m, f"not an exact pin: {line!r}"
        name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
        assert name not in pins, f"{name} pinned twice"
        pins[name] = m.group(2)
    return pins


def test_environment_yml_pins_what_requirements_txt_pins():
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))  # a fixed part of the top level
    assert isinstance(env, dict) and env.get("name")
    deps = env["dependencies"]
    pip_lists = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1, "environment.yml: expected one `pip:` list under dependencies"
    assert "pip" in deps, "environment.yml: install pip itself for the pip list"
    requirements = requirement_pins((ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines())
    assert requirements
    assert requirement_pins(pip_lists[0]) == requirements


def test_the_lock_pins_every_requirement_at_its_version_with_hashes():
    """requirements.lock (`make lock`) holds each pin of requirements.txt at its version (torch as its CPU
    build, `+cpu`), every package with its SHA-256s, and nothing unpinned; `make setup` installs it checked."""
    text = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    lock = provenance.lock_pins(text)
    requirements = requirement_pins((ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines())
    assert {name: lock.get(name, ("missing",))[0] for name in requirements} == \
        {name: version + ("+cpu" if name == "torch" else "") for name, version in requirements.items()}
    assert [name for name, (_, hashes) in lock.items() if not hashes] == []
    entries = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    assert len(entries) == len(lock), "every entry of the lock is an exact pin"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "pip install --quiet --no-deps --require-hashes -r requirements.lock" in makefile


def test_lock_pins_reads_versions_and_hashes():
    text = ("# header\nfoo-bar==1.2 \\\n    --hash=sha256:" + "a" * 64 + " \\\n    --hash=sha256:" + "b" * 64
            + "\n    # via -r requirements.txt\ntorch==2.13.0+cpu \\\n    --hash=sha256:" + "c" * 64 + "\n")
    assert provenance.lock_pins(text) == {"foo-bar": ("1.2", ["a" * 64, "b" * 64]), "torch": ("2.13.0+cpu", ["c" * 64])}


def test_requirement_pins_parser():
    assert requirement_pins(["# c", "", "Foo_Bar==1.2  # why", "x.y==3"]) == {"foo-bar": "1.2", "x-y": "3"}
    with pytest.raises(AssertionError):
        requirement_pins(["foo>=1"])


MODULES = sorted((ROOT / "slmlib").rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_opens_with_a_docstring(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert ast.get_docstring(tree), f"{path.relative_to(ROOT)}: open with a docstring"
