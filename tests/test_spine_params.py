"""Unit tests for slmlib.params (validation, loading, run ids) and paths.check_id."""
from __future__ import annotations

import re
import sys
from dataclasses import fields, replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from slmlib import params, paths, runner  # noqa: E402
from slmlib.params import ParamsError, StudyParams  # noqa: E402

DEFAULTS = StudyParams()


def test_validate_accepts_the_defaults():
    values = DEFAULTS.to_dict()
    assert set(values) == {f.name for f in fields(StudyParams)}
    assert params.validate(values) == DEFAULTS
    assert params.validate({}) == DEFAULTS


def test_validate_keeps_given_values():
    p = params.validate({"limit": None, "tasks": ["boolq"], "dtype": "bfloat16",
                         "apply_chat_template": True, "pillar_weights": {"math": 2.0}, "run_id": "my-run.1"})
    assert (p.limit, p.tasks, p.dtype, p.apply_chat_template) == (None, ["boolq"], "bfloat16", True)
    assert p.pillar_weights == {"math": 2.0} and p.run_id == "my-run.1"


def test_unknown_key_suggests_the_closest_name():
    with pytest.raises(ParamsError, match=r"limt: unknown parameter; did you mean 'limit'\?"):
        params.validate({"limt": 3})


def test_unknown_key_without_close_match_lists_known_names():
    with pytest.raises(ParamsError) as exc:
        params.validate({"zzzzzz": 1})
    assert "zzzzzz: unknown parameter" in str(exc.value)
    for name in ("submission", "limit", "pillar_weights"):
        assert name in str(exc.value)


@pytest.mark.parametrize("key, value, want", [
    ("limit", True, "limit: expected int or null, got bool"),
    ("seed", False, "seed: expected int, got bool"),
    ("batch_size", "8", "batch_size: expected int, got str"),
    ("tasks", "boolq", "tasks: expected list, got str"),
    ("apply_chat_template", 1, "apply_chat_template: expected bool or str, got int"),
    ("pillar_weights", [], "pillar_weights: expected dict, got list"),
    ("limit_generative", 2.5, "limit_generative: expected int or null, got float"),
])
def test_wrong_type_is_named(key, value, want):
    with pytest.raises(ParamsError) as exc:
        params.validate({key: value})
    assert want in str(exc.value)


def test_several_problems_are_reported_together():
    with pytest.raises(ParamsError) as exc:
        params.validate({"limt": 3, "seed": True, "tasks": "boolq", "apply_chat_template": 1},
                        source="my.yaml")
    msg = str(exc.value)
    assert msg.startswith("my.yaml: ")
    for part in ("limt: unknown", "seed: expected int", "tasks: expected list", "apply_chat_template: expected bool"):
        assert part in msg


def test_several_bad_values_are_reported_together():
    with pytest.raises(ParamsError) as exc:
        params.validate({"limit": 0, "batch_size": 0, "dtype": "float16"})
    msg = str(exc.value)
    assert "limit: must be a positive number" in msg
    assert "batch_size: must be >= 1" in msg
    assert "dtype: 'float16' is not one of" in msg


@pytest.mark.parametrize("values, field", [
    ({"limit": 0}, "limit"),
    ({"limit": -1}, "limit"),
    ({"limit_generative": 0}, "limit_generative"),
    ({"batch_size": 0}, "batch_size"),
    ({"dtype": "float16"}, "dtype"),
    ({"tasks": ["boolq", 3]}, "tasks"),
    ({"pillar_weights": {"math": -1.0}}, "pillar_weights"),
    ({"pillar_weights": {"math": True}}, "pillar_weights"),
    ({"run_id": "a/b"}, "run_id"),
    ({"run_id": "../x"}, "run_id"),
    ({"run_id": ".."}, "run_id"),
    ({"run_id": "a..b"}, "run_id"),
    ({"run_id": ".hidden"}, "run_id"),
    ({"run_id": "abc\n"}, "run_id"),
    ({"decode_batch": -1}, "decode_batch"),
    ({"decode_batch": 32}, "decode_batch"),
])
def test_bad_values_are_rejected(values, field):
    with pytest.raises(ParamsError, match=rf"\b{field}: "):
        params.validate(values)


def test_every_run_id_validate_accepts_is_a_safe_path_component():
    # validate and paths.check_id must agree: a run id that passes validation is usable as a folder
    for run_id in ("run-1", "a.b_c", "x" * 128):
        p = params.validate({"run_id": run_id})
        assert p.resolved_run_id() == run_id
        assert paths.run_dir(run_id).name == run_id
    with pytest.raises(ParamsError):
        params.validate({"run_id": "x" * 129})


def test_validate_rejects_a_non_mapping():
    with pytest.raises(ParamsError, match="expected a mapping"):
        params.validate(["limit", 3])


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_load_reads_a_file(tmp_path):
    p = params.load(write(tmp_path / "p.yaml", "# a comment\nlimit: 3\ntasks: [boolq]\n"))
    assert (p.limit, p.tasks, p.seed) == (3, ["boolq"], DEFAULTS.seed)


def test_load_explicit_empty_mapping_gives_defaults(tmp_path):
    assert params.load(write(tmp_path / "p.yaml", "# every default\n{}\n")) == DEFAULTS


@pytest.mark.parametrize("text", ["", "# nothing set\n", "\n\n"])
def test_load_empty_file_is_an_error(tmp_path, text):
    """An empty params file (a failed write, the wrong file) is not "all defaults" (issue 16, case 10)."""
    with pytest.raises(ParamsError, match=r"p.yaml: empty \(no parameters set\); set at least one"):
        params.load(write(tmp_path / "p.yaml", text))


def test_load_missing_file(tmp_path):
    with pytest.raises(ParamsError, match="no such params file"):
        params.load(tmp_path / "nope.yaml")


def test_load_invalid_yaml(tmp_path):
    path = write(tmp_path / "bad.yaml", "limit: [3\n")
    with pytest.raises(ParamsError, match="not valid YAML") as exc:
        params.load(path)
    assert str(path) in str(exc.value)


@pytest.mark.parametrize("text, kind", [("- 1\n- 2\n", "list"), ("just a string\n", "str"), ("3\n", "int")])
def test_load_non_mapping_top_level(tmp_path, text, kind):
    with pytest.raises(ParamsError, match=f"expected a mapping at the top level, got {kind}"):
        params.load(write(tmp_path / "p.yaml", text))


def test_load_oversized_file(tmp_path):
    path = write(tmp_path / "big.yaml", "limit: 3\n" + "#" * (params.MAX_PARAMS_BYTES + 1) + "\n")
    with pytest.raises(ParamsError, match="larger than 65536 bytes"):
        params.load(path)


def test_load_accepts_a_file_just_under_the_limit(tmp_path):
    head = "limit: 3\n#"
    path = write(tmp_path / "p.yaml", head + "x" * (params.MAX_PARAMS_BYTES - len(head) - 1) + "\n")
    assert path.stat().st_size == params.MAX_PARAMS_BYTES
    assert params.load(path).limit == 3


def test_load_applies_and_validates_overrides(tmp_path):
    path = write(tmp_path / "p.yaml", "limit: 3\nseed: 7\n")
    p = params.load(path, limit=5, dtype="bfloat16")
    assert (p.limit, p.seed, p.dtype) == (5, 7, "bfloat16")
    with pytest.raises(ParamsError, match="limt: unknown parameter; did you mean 'limit'"):
        params.load(path, limt=5)
    with pytest.raises(ParamsError, match="limit: expected int or null, got str"):
        params.load(path, limit="5")


def test_load_reports_the_file_in_errors(tmp_path):
    path = write(tmp_path / "p.yaml", "batch_size: 0\n")
    with pytest.raises(ParamsError) as exc:
        params.load(path)
    assert str(exc.value).startswith(f"{path}: batch_size")


def test_resolved_run_id_is_derived_from_submission_suite_limit_and_quantization():
    assert DEFAULTS.resolved_run_id() == "smollm2-135m-instruct__embedded__limit80"  # no file is read for it
    q4 = params.validate({"quantization": "Q4_1"})
    assert q4.resolved_run_id() == "smollm2-135m-instruct__embedded__limit80__q4_1"
    p = params.validate({"submission": "elsewhere/other-model.yaml", "limit": None})
    assert p.resolved_run_id() == "other-model__embedded__limitNone"


def test_resolved_run_id_given_wins():
    assert params.validate({"run_id": "mine", "limit": 3}).resolved_run_id() == "mine"


def test_stage_values_returns_exactly_the_requested_names():
    p = params.validate({"limit": 3, "seed": 9})
    assert params.stage_values(p, ["run_id", "limit", "seed"]) == {
        "run_id": "smollm2-135m-instruct__embedded__limit3", "limit": 3, "seed": 9}
    assert params.stage_values(p, ["site_dir"]) == {"site_dir": ""}
    assert params.stage_values(p, []) == {}
    with pytest.raises(KeyError):
        params.stage_values(p, ["nope"])


def test_a_stamped_run_id_is_the_same_scheme_and_a_safe_id():
    run_id = params.make_run_id("params/submissions/smollm2-135m-instruct.yaml", "embedded", 80, "BF16",
                                params.utc_stamp())
    assert re.fullmatch(r"smollm2-135m-instruct__embedded__limit80__\d{8}T\d{6}Z__bf16", run_id)
    assert paths.check_id(run_id, "run_id") == run_id
    assert params.validate({"run_id": run_id}).resolved_run_id() == run_id


def test_plan_reads_the_listed_quantizations_once_and_fixes_each_run():
    stamp = "20261130T000000Z"
    plan = runner.plan_runs(params.validate({"quantization": "all", "limit": 3}), stamp)
    assert [q.quantization for q in plan] == ["F16", "F32", "BF16", "Q4_1"]
    assert [q.run_id for q in plan] == [f"smollm2-135m-instruct__embedded__limit3__{stamp}__{n}"
                                        for n in ("f16", "f32", "bf16", "q4_1")]
    given = runner.plan_runs(params.validate({"quantization": "all", "run_id": "mine"}))
    assert [q.run_id for q in given] == ["mine__f16", "mine__f32", "mine__bf16", "mine__q4_1"]
    assert runner.plan_runs(DEFAULTS) == [replace(DEFAULTS, quantization="F16",
                                                  run_id="smollm2-135m-instruct__embedded__limit80__f16")]
    assert runner.plan_runs(params.validate({"quantization": "q4_1", "run_id": "one"}))[0].quantization == "Q4_1"
    with pytest.raises(ParamsError, match="lists no model.quantizations"):
        runner.plan_runs(params.validate({"quantization": "all", "submission": "nowhere/x.yaml"}))
    with pytest.raises(ParamsError, match="'Q9' is not listed in model.quantizations"):
        runner.plan_runs(params.validate({"quantization": "Q9"}))


def test_parameter_types_come_from_the_record_itself():
    assert params._TYPES["limit"] == (int, type(None))
    assert params._TYPES["tasks"] == (list,) and params._TYPES["pillar_weights"] == (dict,)
    assert params._TYPES["apply_chat_template"] == (bool, str)
    assert set(params._TYPES) == {f.name for f in fields(StudyParams)}


def test_generative_tasks_use_limit_generative_when_set():
    p = params.validate({"limit": 5, "limit_generative": 2})
    assert (p.limit_for(generative=True), p.limit_for(generative=False)) == (2, 5)
    q = params.validate({"limit": 5, "limit_generative": None})
    assert (q.limit_for(generative=True), q.limit_for(generative=False)) == (5, 5)


@pytest.mark.parametrize("bad", ["Q4 K", "../x", "-q", "x" * 33])
def test_quantization_must_be_a_name(bad):
    with pytest.raises(ParamsError, match=r"quantization: .* should be"):
        params.validate({"quantization": bad})


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".hidden", "..", "a..b", "a b", "abc\n", "x" * 129, None])
def test_check_id_rejects_unsafe_ids(bad):
    with pytest.raises(ValueError, match=r"^my_field: .* is not a valid id"):
        paths.check_id(bad, "my_field")


@pytest.mark.parametrize("good", ["a", "run-1", "A.b_c-9", "x" * 128])
def test_check_id_accepts_safe_ids(good):
    assert paths.check_id(good, "my_field") == good
