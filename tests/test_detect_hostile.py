"""Hostile input to detect and validate (issue 16, cases 5-11): nothing hangs, leaks, cheats or ends in a
traceback; each bad input gets one line naming the field (or file) and the fix. Then property-based fuzz
tests of every parser of outside input: the GGUF and safetensors headers, config.json, the submission and
params YAML and `--set` values each give a result or the module's own error, never another exception."""
from __future__ import annotations

import json
import os
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_detect import SUBMISSION, tiny_dir, with_model, write_safetensors, write_submission  # noqa: F401
from test_detect_rules import write_gguf

from slmlib import cli, detect, params
from slmlib.detect import card as card_mod, ledger, submission
from slmlib.evaluate import SUITES
from slmlib.params import ParamsError
from slmlib.weights import metadata
from slmlib.weights.metadata import MetadataError

ROOT = Path(__file__).resolve().parents[1]
FUZZ = settings(max_examples=int(os.environ.get("SLM_FUZZ_EXAMPLES", "120")), deadline=2000,  # more: a longer hunt
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def bounded(fn, seconds: float = 30):
    """fn() in a daemon thread; fails the test (instead of hanging it) when fn has not returned in time."""
    out: dict = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 (re-raised below, in the test's thread)
            out["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s: it hangs"
    if "error" in out:
        raise out["error"]
    return out["value"]


def detect_errors(path: Path) -> list[str]:
    return bounded(lambda: detect.detect_submission(path))[1].errors


# --- case 5: a weights folder's files must be regular files -----------------------------------------

@pytest.mark.parametrize("kind", ["fifo", "dev-zero-link"])
def test_weights_folder_with_a_fifo_or_dev_zero_named_safetensors_fails_fast(tiny_dir, kind):
    odd = tiny_dir / "model-00002.safetensors"
    if kind == "fifo":
        os.mkfifo(odd)
    else:
        odd.symlink_to("/dev/zero")
    start = time.perf_counter()
    errors = detect_errors(write_submission(tiny_dir.parent, SUBMISSION))
    assert time.perf_counter() - start < 10
    assert errors == [f"weights: {odd} is not a regular file (a folder, FIFO, device or broken link); a weights "
                      "folder holds regular .safetensors, .bin, .gguf files"]


def test_a_fifo_config_json_or_gguf_fails_fast(tiny_dir, tmp_path):
    (tiny_dir / "config.json").unlink()
    os.mkfifo(tiny_dir / "config.json")
    errors = detect_errors(write_submission(tiny_dir.parent, SUBMISSION))
    assert errors == [f"weights: {tiny_dir / 'config.json'} is not a regular file (a folder, FIFO or device)"]
    os.mkfifo(tmp_path / "x.gguf")
    with pytest.raises(MetadataError, match="x.gguf: is not a regular file"):
        bounded(lambda: metadata.read_gguf_header(tmp_path / "x.gguf"))


# --- case 6: $VARS are not expanded, so no secret reaches validation.json -----------------------------

SECRET = "hunter2-do-not-print"


@pytest.mark.parametrize("weights, quant", [
    ({"gguf": "$SLM_TEST_SECRET/model.gguf"}, None),
    ({"dir": "${SLM_TEST_SECRET}"}, None),
    ({"gguf": "tiny.gguf"}, {"name": "Q", "gguf": "/$SLM_TEST_SECRET.gguf"}),
])
def test_env_vars_in_paths_are_not_expanded_and_never_echoed(tmp_path, monkeypatch, weights, quant):
    monkeypatch.setenv("SLM_TEST_SECRET", SECRET)
    write_gguf(tmp_path / "tiny.gguf", {"w": (4, 8)})
    model = {**SUBMISSION["model"], **({"quantizations": [quant]} if quant else {})}
    card, report = detect.detect_submission(write_submission(tmp_path, {"model": model, "weights": weights}))
    with pytest.raises(detect.SubmissionError):
        detect.save_card(tmp_path / "run", card, report)
    written = (tmp_path / "run" / "validation.json").read_text()
    assert SECRET not in written and SECRET not in json.dumps(card)
    assert len(report.errors) == 1 and "environment variables ($NAME) are not expanded in a submission" \
        in report.errors[0], report.errors


# --- case 7: weights that cannot hold the parameters they count ---------------------------------------

def raw_safetensors(path: Path, header, data: bytes = b"") -> Path:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def test_safetensors_with_a_negative_shape_is_refused(tiny_dir):
    raw_safetensors(tiny_dir / "model.safetensors",
                    {"w": {"dtype": "F32", "shape": [-135_000_000, 1], "data_offsets": [0, 0]}})
    errors = detect_errors(write_submission(tiny_dir.parent, SUBMISSION))
    assert errors == [f"{tiny_dir / 'model.safetensors'}: tensor 'w': shape [-135000000, 1] is not a list of "
                      "non-negative integers"]


def test_safetensors_header_claiming_more_data_than_the_file_holds(tiny_dir):
    raw_safetensors(tiny_dir / "model.safetensors",
                    {"w": {"dtype": "F32", "shape": [135_000_000], "data_offsets": [0, 540_000_000]}})
    errors = detect_errors(write_submission(tiny_dir.parent, with_model(parameters="135M")))
    assert errors == [f"{tiny_dir / 'model.safetensors'}: tensor 'w': its data ends at byte 540,000,000 of the "
                      "data, but the file holds 0 bytes of data; these weights cannot hold the parameters their "
                      "header counts"]


def test_gguf_whose_only_tensor_is_empty_beside_a_declared_135m(tmp_path):
    write_gguf(tmp_path / "tiny.gguf", {"w": (0,)})
    sub = write_submission(tmp_path, {"model": {**SUBMISSION["model"], "parameters": "135M"},
                                      "weights": {"gguf": "tiny.gguf"}})
    assert detect_errors(sub) == ["model.parameters: the weights hold 0 parameters (their tensors are empty); "
                                  "a model's weights hold its parameters, give the real weights"]


def header_only_gguf(path: Path, elements: int) -> Path:
    """A GGUF header declaring one F32 tensor of `elements`, without its data (a few hundred bytes)."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("Hollow")
    writer.add_context_length(2048)
    writer.add_license("mit")
    writer.add_tensor_info("w", (elements,), np.dtype(np.float32), elements * 4)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    return path


def test_header_only_gguf_claiming_143_5m_is_refused(tmp_path):
    path = header_only_gguf(tmp_path / "tiny.gguf", 143_500_000)
    assert path.stat().st_size < 400
    sub = write_submission(tmp_path, {"model": {**SUBMISSION["model"], "parameters": "143.5M"},
                                      "weights": {"gguf": "tiny.gguf"}})
    [error] = detect_errors(sub)
    assert error.startswith(f"{path}: the header counts 143,500,000 parameters in tensors needing 574,000,000 "
                            "bytes of data, but the file holds ")
    assert error.endswith("bytes after its header; these weights cannot hold the parameters they declare")


# --- case 8: one line, never a traceback --------------------------------------------------------------

def gguf_bytes(kv: bytes, n_kv: int = 1, n_tensors: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, n_tensors, n_kv) + kv


def gguf_string(text: str) -> bytes:
    return struct.pack("<Q", len(text.encode())) + text.encode()


def test_gguf_with_5000_nested_arrays(tmp_path):
    nested = gguf_string("x") + struct.pack("<I", 9) + struct.pack("<IQ", 9, 1) * 5000 + struct.pack("<IQI", 4, 1, 7)
    path = tmp_path / "deep.gguf"
    path.write_bytes(gguf_bytes(nested))
    with pytest.raises(MetadataError) as exc:
        metadata.read_gguf_header(path)
    assert str(exc.value) == f"{path}: truncated or corrupt GGUF header (arrays nested deeper than 8 levels)"


def test_empty_gguf_names_the_file(tmp_path):
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"")
    errors = detect_errors(write_submission(tmp_path, {**SUBMISSION, "weights": {"gguf": "tiny.gguf"}}))
    assert errors == [f"{path}: empty file (0 bytes), not a GGUF file"]


@pytest.mark.parametrize("header, words", [
    ({"w": {"dtype": "F32", "shape": "abc", "data_offsets": [0, 12]}},
     "tensor 'w': shape abc is not a list of non-negative integers"),
    ([1, 2], "safetensors header is a JSON list, not an object of tensors"),
    ({"w": 5}, "tensor 'w' is a JSON int, not {dtype, shape, data_offsets}"),
    ({"w": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}, "tensor 'w': dtype 'F99' is not a safetensors dtype"),
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}},
     "tensor 'w': shape [2] of F32 needs 8 bytes, but its data_offsets span 4"),
    (b'{"w": {}, "w": {}}', "unreadable safetensors header (key 'w' given twice)"),
    (b"\xff\xfe", "unreadable safetensors header"),
])
def test_malformed_safetensors_headers_are_one_line_errors(tiny_dir, header, words):
    raw_safetensors(tiny_dir / "model.safetensors", header, b"\0" * 16)
    errors = detect_errors(write_submission(tiny_dir.parent, SUBMISSION))
    assert len(errors) == 1 and errors[0].startswith(f"{tiny_dir / 'model.safetensors'}: {words}"), errors


def test_config_json_that_is_a_list(tiny_dir):
    (tiny_dir / "config.json").write_text("[1, 2]")
    assert detect_errors(write_submission(tiny_dir.parent, SUBMISSION)) == [
        f"{tiny_dir / 'config.json'}: a JSON list, not an object of settings (model_type, max_position_embeddings, ...)"]


def test_a_folder_named_model_safetensors(tiny_dir):
    (tiny_dir / "model.safetensors").unlink()
    (tiny_dir / "model.safetensors").mkdir()
    assert detect_errors(write_submission(tiny_dir.parent, SUBMISSION)) == [
        f"weights: {tiny_dir / 'model.safetensors'} is not a regular file (a folder, FIFO, device or broken link); "
        "a weights folder holds regular .safetensors, .bin, .gguf files"]


def test_hub_config_json_that_is_a_list_detects_nothing():
    from slmlib.weights import hub

    meta = hub.parse_hub_info({"id": "org/m", "siblings": [{"rfilename": 5}, {"rfilename": "m.safetensors"}]}, [1, 2])
    assert (meta["architecture"], meta["context_length"], meta["name"]) == (None, None, "m")


@pytest.mark.parametrize("value, message", [
    ("[1,2", "error: --set limit: not valid YAML: expected ',' or ']', but got '<stream end>' (line 1, column 5); "
             "quote a string value (--set 'key=\"text\"'), write a list as [a, b]"),
    ("!!python/object/apply:os.system [echo hi]",
     "error: --set limit: not valid YAML: could not determine a constructor for the tag "
     "'tag:yaml.org,2002:python/object/apply:os.system' (line 1, column 1); quote a string value "
     "(--set 'key=\"text\"'), write a list as [a, b]"),
    ("{a: 1, a: 2}", "error: --set limit: duplicate key 'a' (line 1); give each key once; quote a string value "
                     "(--set 'key=\"text\"'), write a list as [a, b]"),
])
def test_set_values_that_are_not_yaml_are_one_line_errors(capsys, value, message):
    assert cli.main(["run", "params/quick.yaml", "--set", f"limit={value}", "--stages", "detect"]) == 2
    assert capsys.readouterr().err.strip() == message


# --- case 9: names bounded, without control or format characters; duplicate keys -----------------------

@pytest.mark.parametrize("field, value, message", [
    ("name", "x" * 60_000, "model.name: 60,000 characters; at most 100"),
    ("name", "a\0b", "model.name: contains a control character, U+0000 unnamed; write it without control, "
                     "format (zero-width, bidirectional) or separator characters"),
    ("name", "Tiny\u202egnp.exe", "model.name: contains a format character (zero-width or bidirectional), "
                                  "U+202E RIGHT-TO-LEFT OVERRIDE; write it without control, format (zero-width, "
                                  "bidirectional) or separator characters"),
    ("family", "Tiny\u200bFam", "model.family: contains a format character (zero-width or bidirectional), "
                                "U+200B ZERO WIDTH SPACE; write it without control, format (zero-width, "
                                "bidirectional) or separator characters"),
    ("submitted_by", "ann\u200d", "model.submitted_by: contains a format character (zero-width or bidirectional), "
                                  "U+200D ZERO WIDTH JOINER; write it without control, format (zero-width, "
                                  "bidirectional) or separator characters"),
    ("contact", "a\nb", "model.contact: contains a control character, U+000A unnamed; write it without control, "
                        "format (zero-width, bidirectional) or separator characters"),
])
def test_names_are_bounded_and_printable(tiny_dir, field, value, message):
    assert detect_errors(write_submission(tiny_dir.parent, with_model(**{field: value}))) == [message]


def test_validate_prints_hostile_names_escaped_and_cut(tiny_dir, capsys):
    (tiny_dir.parent / "submissions").mkdir()
    data = {**with_model(name="Tiny\u202egnp\0" + "x" * 60_000), "weights": {"dir": str(tiny_dir)}}
    path = write_submission(tiny_dir.parent / "submissions", data)
    assert cli.main(["validate", "--no-estimate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "\u202e" not in out and "\0" not in out and max(map(len, out.splitlines())) < 400
    assert "     card: tiny-sub: Tiny\\u202egnp\\x00xxx" in out


def test_weights_paths_are_bounded_and_printable(tiny_dir):
    errors = detect_errors(write_submission(tiny_dir.parent, {**SUBMISSION, "weights": {"dir": "tiny\u202e-model"}}))
    assert errors == ["weights.dir: contains a format character (zero-width or bidirectional), U+202E "
                      "RIGHT-TO-LEFT OVERRIDE; write it without control, format (zero-width, bidirectional) or "
                      "separator characters"]


def test_a_60000_character_key_is_not_echoed(tiny_dir):
    text = (f"model: {{name: Tiny, family: TinyFam, license: mit}}\nweights: {{dir: tiny-model}}\n"
            f"? {'k' * 60_000}\n: 1\n")  # an explicit key (PyYAML refuses implicit keys over 1024 characters)
    errors = detect_errors(write_submission(tiny_dir.parent, text))
    assert len(errors) == 1 and len(errors[0]) < 200, errors
    assert errors[0] == f"'{'k' * 58}…: unknown top-level key; known: model, weights, adapter"


def test_zero_width_or_fullwidth_spellings_are_the_same_submitter(tiny_dir):
    now = time.time()
    card, _ = detect.detect_submission(write_submission(tiny_dir.parent, with_model(submitted_by="ann")))
    for i in range(3):
        ledger.append({**card, "model_id": f"m{i}", "weights": {"sha256": str(i)}}, now=now - 86400)
    _, report = detect.detect_submission(write_submission(tiny_dir.parent, with_model(submitted_by="\uff41nn")))
    assert len(report.errors) == 1 and report.errors[0].startswith("model.submitted_by: ann already has 3 submissions")
    _, report = detect.detect_submission(write_submission(tiny_dir.parent, with_model(submitted_by="a\u200bnn")))
    assert report.errors[0].startswith("model.submitted_by: contains a format character"), report.errors


def test_duplicate_keys_in_a_submission(tmp_path):
    path = write_submission(tmp_path, "model:\n  name: A\n  license: mit\n  license: proprietary\n")
    with pytest.raises(detect.SubmissionError) as exc:
        detect.detect_submission(path)
    assert str(exc.value) == f"{path}: duplicate key 'license' (line 4); give each key once"


def test_duplicate_keys_in_a_params_file(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("limit: 5\nseed: 1\nlimit: 500\n")
    with pytest.raises(ParamsError) as exc:
        params.load(path)
    assert str(exc.value) == f"{path}: duplicate key 'limit' (line 3); give each key once"


# --- case 10: declared fields are checked even when the weights cannot be read -------------------------

LICENSE_ERROR = ("model.license: 'proprietary' is not on the allowlist of licenses that permit benchmarking and "
                 "publishing results (apache-2.0, mit, bsd-2-clause, bsd-3-clause, cc-by-4.0, cc-by-sa-4.0, "
                 "openrail, llama3.2, gemma)")


def test_declared_fields_are_checked_when_a_weights_file_is_missing(tmp_path):
    sub = {"model": {**SUBMISSION["model"], "parameters": "7B", "license": "proprietary"}, "weights": {"dir": "gone"}}
    errors = detect_errors(write_submission(tmp_path, sub))
    assert errors == ["model.parameters: declared 7B, over the 3.0B limit", LICENSE_ERROR,
                      f"weights: {tmp_path / 'gone'} is neither a .gguf file nor a directory with config.json "
                      f"(from dir: '{tmp_path / 'gone'}')"]


def test_declared_fields_are_checked_when_the_hub_is_unreachable(tmp_path):
    sub = {"model": {"hf_repo": "org/model", "parameters": "7B", "license": "proprietary"}}
    errors = detect_errors(write_submission(tmp_path, sub))
    assert errors[:2] == ["model.parameters: declared 7B, over the 3.0B limit", LICENSE_ERROR]
    assert len(errors) == 3 and errors[2].startswith("weights.hf_repo org/model: HF_HUB_OFFLINE is set")


def test_declared_license_is_reported_once_when_the_weights_are_read(tiny_dir):
    assert detect_errors(write_submission(tiny_dir.parent, with_model(license="proprietary"))) == [LICENSE_ERROR]


def test_validate_refuses_an_empty_params_file(tmp_path, capsys):
    (tmp_path / "empty.yaml").write_text("")
    assert cli.main(["validate", str(tmp_path / "empty.yaml")]) == 1
    assert f"error: {tmp_path / 'empty.yaml'}: empty (no parameters set)" in capsys.readouterr().out


# --- case 11: validate refuses what a run would fail on minutes later -----------------------------------

@pytest.mark.parametrize("text, message", [
    ("tasks: [boolqq]", "tasks: 'boolqq' is not a task of suite embedded; did you mean 'boolq'? (its tasks: "
                        f"{', '.join(SUITES['embedded'])})"),
    ("suite: bogus", "suite: 'bogus' is not a suite; choose one of embedded, standard"),
    ("submission: params/submissions/nope.yaml",
     f"submission: 'params/submissions/nope.yaml' is not a file (relative paths are from the repo, {ROOT}); give a "
     "submission YAML such as params/submissions/smollm2-135m-instruct.yaml"),
    ("seed: 4294967296", "seed: 4294967296 is outside 0..4294967295 (2**32 - 1, numpy's seed range); pick a seed in it"),
    ("seed: -1", "seed: -1 is outside 0..4294967295 (2**32 - 1, numpy's seed range); pick a seed in it"),
    ("pillar_weights: {math: .inf}", "pillar_weights: 'math' must be a finite number >= 0, got inf"),
    ("pillar_weights: {math: 0, coding: 0}", "pillar_weights: every weight is 0; give at least one pillar a positive "
                                             "weight, or {} for the published weights"),
    ("pillar_weights: {maths: 1}", "pillar_weights: unknown pillar(s) 'maths'; pillars are reasoning, coding, math, "
                                   "language, safety"),
])
def test_validate_refuses_params_a_run_would_fail_on(tmp_path, capsys, text, message):
    path = tmp_path / "p.yaml"
    path.write_text(text + "\n")
    assert cli.main(["validate", str(path)]) == 1
    assert capsys.readouterr().out.splitlines() == [f"FAIL {path} (params)", f"     error: {path}: {message}"]


# --- fuzz: every parser of outside input gives a result or its own error --------------------------------

@pytest.fixture(scope="module")
def gguf_seed(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("fuzz") / "seed.gguf"
    write_gguf(path, {"w": (4, 8), "b": (8,)}, vocab=70)
    return path.read_bytes()


def mutated(seed: bytes):
    """A truncation, byte flips, or an insertion of random bytes, of `seed`."""
    cut = st.integers(0, len(seed)).map(lambda n: seed[:n])
    flips = st.lists(st.tuples(st.integers(0, len(seed) - 1), st.integers(0, 255)), min_size=1, max_size=8).map(
        lambda fs: bytes(b if i not in dict(fs) else dict(fs)[i] for i, b in enumerate(seed)))
    insert = st.tuples(st.integers(0, len(seed)), st.binary(min_size=1, max_size=64)).map(
        lambda t: seed[:t[0]] + t[1] + seed[t[0]:])
    return st.one_of(cut, flips, insert, st.binary(max_size=256).map(lambda b: b"GGUF" + b))


@FUZZ
@given(data=st.data())
def test_fuzz_gguf_header(tmp_path, gguf_seed, data):
    path = tmp_path / "fuzz.gguf"
    path.write_bytes(data.draw(mutated(gguf_seed)))
    try:
        meta = metadata.gguf_metadata(path)
    except MetadataError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
    else:
        assert meta["parameter_count"] >= 0


JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                    max_leaves=12)
TENSOR = st.fixed_dictionaries({"dtype": st.sampled_from(["F32", "F16", "I8", "F4", "X"]) | JSON,
                                "shape": st.lists(st.integers(-3, 9), max_size=3) | JSON,
                                "data_offsets": st.lists(st.integers(-4, 300), min_size=2, max_size=2) | JSON})


@FUZZ
@given(header=st.dictionaries(st.text(max_size=6), TENSOR | JSON, max_size=4) | JSON,
       data=st.binary(max_size=300), cut=st.integers(0, 400))
def test_fuzz_safetensors_header(tmp_path, header, data, cut):
    path = tmp_path / "fuzz.safetensors"
    raw = json.dumps(header).encode()
    path.write_bytes((struct.pack("<Q", len(raw)) + raw + data)[:8 + len(raw) + cut])
    try:
        tensors = metadata.safetensors_header(path)
    except MetadataError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
    else:
        assert metadata.element_count(t["shape"] for t in tensors.values()) >= 0


@FUZZ
@given(config=JSON, st_bytes=st.binary(max_size=40))
def test_fuzz_config_json_and_hf_dir(tmp_path, config, st_bytes):
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "model.safetensors").write_bytes(st_bytes)
    try:
        meta = metadata.hf_dir_metadata(tmp_path)
    except MetadataError as exc:
        assert "\n" not in str(exc)
    else:
        assert meta["context_length"] is None or isinstance(meta["context_length"], int)


YAML_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
YAML_VALUES = st.recursive(YAML_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=12) | st.sampled_from(list(submission.FIELDS) + ["model", "weights", "adapter", "dir", "gguf"]),
    inner, max_size=4), max_leaves=10)
MODEL = st.dictionaries(st.sampled_from(list(submission.FIELDS)) | st.text(max_size=5), YAML_VALUES, max_size=6)


def yaml_texts(seed: str):
    """YAML-ish text: random text, mutations of a real file, or a dumped random structure."""
    import yaml

    structure = st.fixed_dictionaries({"model": MODEL}, optional={"weights": YAML_VALUES, "adapter": YAML_VALUES})
    mutation = st.tuples(st.integers(0, len(seed)), st.integers(0, len(seed)), st.text(max_size=12)).map(
        lambda t: seed[:t[0]] + t[2] + seed[t[1]:])
    return st.one_of(st.text(max_size=200), mutation, structure.map(lambda d: yaml.safe_dump(d, allow_unicode=True)))


@FUZZ
@given(data=st.data())
def test_fuzz_submission_yaml(tmp_path, data):
    text = data.draw(yaml_texts((ROOT / "params" / "submissions" / "template.yaml").read_text()))
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        sub = submission.read(path)
    except submission.SubmissionError as exc:
        assert "\n" not in str(exc)
        return
    errors = submission.check(sub) + card_mod.declared_errors(sub["model"])
    errors += submission.check_weights(sub["weights"]) if sub.get("weights") is not None else []
    errors += submission.check_adapter(sub["adapter"]) if sub.get("adapter") is not None else []
    assert all(isinstance(e, str) and "\n" not in e for e in errors)


@FUZZ
@given(data=st.data())
def test_fuzz_params_yaml(tmp_path, data):
    text = data.draw(st.one_of(yaml_texts((ROOT / "params" / "default.yaml").read_text()),
                               st.dictionaries(st.sampled_from(list(params.StudyParams.__dataclass_fields__)),
                                               YAML_VALUES, max_size=4).map(json.dumps)))
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        assert isinstance(params.load(path), params.StudyParams)
    except ParamsError:
        pass


@FUZZ
@given(key=st.sampled_from(["limit", "tasks", "seed", "pillar_weights", "suite"]) | st.text(max_size=8),
       value=st.text(max_size=40) | YAML_VALUES.map(json.dumps))
def test_fuzz_set_values(key, value):
    try:
        overrides = cli._parse_set([f"{key}={value}"])
        params.validate({**overrides})
    except ParamsError:
        pass


@pytest.mark.parametrize("reader", ["params", "submission"])
def test_a_file_swapped_for_a_fifo_after_the_checks_is_refused_without_blocking(tmp_path, monkeypatch, reader):
    """The checks see a regular file; by the read it is a FIFO (a race an attacker can win): the bounded
    reader refuses it at once instead of waiting for a writer."""
    from slmlib import params
    from slmlib.detect import submission

    fifo = tmp_path / "swapped.yaml"
    os.mkfifo(fifo)
    monkeypatch.setattr(Path, "is_file", lambda self: True)
    read, error = ((params.load, params.ParamsError) if reader == "params" else
                   (submission.read, submission.SubmissionError))
    outcome = []

    def attempt():
        try:
            read(fifo)
        except error as exc:
            outcome.append(str(exc))

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), f"{reader}: blocked on a FIFO"
    assert outcome and "is not a regular file" in outcome[0] and str(fifo) in outcome[0]
