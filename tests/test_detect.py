"""Detect stage: the real default submission, a tiny Hugging Face directory built by hand,
and submissions that each break one rule."""
from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from slmlib import datapacks, detect
from slmlib.detect import submission
from slmlib.detect.card import SCHEMA_VERSION, format_parameters, parse_parameters
from slmlib.weights import metadata  # noqa: E402

DEFAULT_SUBMISSION = ROOT / "params" / "submissions" / "smollm2-135m-instruct.yaml"


@pytest.fixture(scope="module")
def default_card():
    """The default submission's card: its first quantization, F16, converted by llama.cpp from the shipped
    GGUF (once, then cached; reading the GGUF takes ~2 s: once per module)."""
    return detect.detect_submission("params/submissions/smollm2-135m-instruct.yaml")


def test_default_submission_card(default_card):
    card, report = default_card
    assert report.errors == [] and report.ok
    assert card["model_id"] == "smollm2-135m-instruct"
    assert card["parameter_count"] == 134_515_008
    assert card["parameters"] == "135M"
    assert card["architecture"] == "llama"
    assert card["context_length"] == 8192
    assert (card["quantization_name"], card["quantization"]) == ("F16", "F16")
    assert card["license"] == "apache-2.0"
    assert card["model_type"] == "instruct"
    assert card["categories"] == ["reasoning", "coding", "math", "language", "safety"]  # left out: every pillar
    assert card["has_chat_template"] is True
    assert card["weights"]["kind"] == "gguf"
    assert card["weights"]["sha256"] == datapacks.sha256_file(Path(card["weights"]["path"]))
    assert card["weights"]["size_bytes"] == Path(card["weights"]["path"]).stat().st_size
    shipped = card["source_weights"]
    assert shipped["sha256"].startswith("b179c952") and shipped["size_bytes"] == 98_362_432
    assert card["conversion"]["format"] == "F16" and card["conversion"]["source_sha256"] == shipped["sha256"]
    assert card["conversion"]["llama_cpp_python"] and card["conversion"]["seconds"] > 0
    json.dumps(card)  # the card is plain JSON


@pytest.mark.parametrize("name, quant, converted", [("F32", "F32", True), ("Q4_1", "Q4_1", False)])
def test_default_submission_quantizations(default_card, name, quant, converted):
    card, report = detect.detect_submission("params/submissions/smollm2-135m-instruct.yaml", quantization=name)
    assert report.errors == []
    assert (card["quantization_name"], card["quantization"], card["parameter_count"]) == (name, quant, 134_515_008)
    assert card["source_weights"] == default_card[0]["source_weights"]
    assert ("conversion" in card) == converted and (card["weights"] == card["source_weights"]) != converted
    assert card["weights"]["sha256"] not in {default_card[0]["weights"]["sha256"]}


# --- a tiny local Hugging Face directory ------------------------------------------------

def write_safetensors(path: Path, tensors: dict[str, list[int]]) -> int:
    """A safetensors file of zero F32 tensors with the given shapes; returns the element count."""
    header, offset, total = {"__metadata__": {"format": "pt"}}, 0, 0
    for name, shape in tensors.items():
        n = 1
        for dim in shape:
            n *= dim
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + 4 * n]}
        offset += 4 * n
        total += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)  # the format pads the header to 8 bytes
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)
    return total


@pytest.fixture
def tiny_dir(tmp_path) -> Path:
    folder = tmp_path / "tiny-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "max_position_embeddings": 512,
        "hidden_size": 8, "torch_dtype": "float32"}))
    assert write_safetensors(folder / "model.safetensors", {"w": [4, 8], "b": [8]}) == 40
    return folder


def test_hand_written_safetensors_is_valid(tiny_dir):
    from safetensors.numpy import load_file

    tensors = load_file(tiny_dir / "model.safetensors")
    assert {k: v.shape for k, v in tensors.items()} == {"w": (4, 8), "b": (8,)}


def test_hf_dir_metadata(tiny_dir):
    meta = metadata.hf_dir_metadata(tiny_dir)
    assert meta["parameter_count"] == 40
    assert meta["architecture"] == "llama"
    assert meta["context_length"] == 512
    assert meta["quantization"] == "float32"
    assert meta["has_chat_template"] is False


def test_hf_dir_metadata_sums_every_shard(tiny_dir):
    write_safetensors(tiny_dir / "model-00002.safetensors", {"emb": [10, 3]})
    assert metadata.hf_dir_metadata(tiny_dir)["parameter_count"] == 70


SUBMISSION = {
    "model": {"name": "Tiny", "family": "TinyFam", "license": "mit", "model_type": "pretrained"},
    "weights": {"dir": "tiny-model"},
}


def write_submission(folder: Path, data, name: str = "tiny-sub") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def with_model(**changes) -> dict:
    model = {k: v for k, v in {**SUBMISSION["model"], **changes}.items() if v is not None}
    return {**SUBMISSION, "model": model}


def test_tiny_submission_is_valid(tiny_dir):
    card, report = detect.detect_submission(write_submission(tiny_dir.parent, SUBMISSION))
    assert report.errors == []
    assert card["model_id"] == "tiny-sub"
    assert card["parameter_count"] == 40
    assert card["architecture"] == "llama" and card["context_length"] == 512
    assert card["weights"]["kind"] == "hf_dir"
    assert card["weights"]["sha256"] == datapacks.digest_files(
        [tiny_dir / "model.safetensors"], tiny_dir)
    # the detected parameter count is written in the submission format and reads back
    assert submission.PARAM_FORMAT.match(card["parameters"]), card["parameters"]
    assert parse_parameters(card["parameters"]) == 40


@pytest.mark.parametrize("count, text", [(40, "0.00004M"), (41_000, "0.041M"), (1_500_000, "1.5M"),
                                         (134_515_008, "135M"), (1_711_376_384, "1.7B")])
def test_format_parameters(count, text):
    assert format_parameters(count) == text
    assert submission.PARAM_FORMAT.match(text)


def test_declared_values_win_over_detected(tiny_dir):
    card, report = detect.detect_submission(
        write_submission(tiny_dir.parent, with_model(context_length=500, architecture="mistral")))
    assert report.errors == []  # 500 is within 10% of the detected 512
    assert (card["context_length"], card["architecture"]) == (500, "mistral")
    assert card["detected"]["context_length"] == 512


@pytest.mark.parametrize("change, field, words", [
    ({"nmae": "x"}, "model.nmae", "unknown field"),
    ({"parameters": "135 million"}, "model.parameters", "should look like"),
    ({"parameters": "1.5B"}, "model.parameters", "declared 1.5B but the weights hold 40"),
    ({"license": "proprietary"}, "model.license", "not on the allowlist"),
    ({"categories": ["poetry"]}, "model.categories", "'poetry' is not a pillar; known: reasoning, coding"),
    ({"categories": ["code"]}, "model.categories", "'code' is not a pillar; did you mean 'coding'?"),
    ({"categories": ["base"]}, "model.categories", "'base' is a model kind, not a pillar"),
    ({"categories": ["math", "math"]}, "model.categories", "'math' is listed twice"),
    ({"categories": []}, "model.categories", "lists no pillar"),
    ({"categories": [{"x": 1}]}, "model.categories[0]", "expected a pillar name, got dict"),
    ({"model_type": "base"}, "model.model_type", "'base' is not one of pretrained, instruct, fine-tuned"),
    ({"model_type": ["instruct"]}, "model.model_type", "expected string, got list"),
    ({"family": None}, "model.family", "missing and not detectable"),
    ({"context_length": 256}, "model.context_length", "declared 256 but the weights say 512"),
    ({"context_length": "512"}, "model.context_length", "expected integer, got str"),
    ({"categories": "base"}, "model.categories", "expected array"),
    ({"hf_repo": "not a repo"}, "model.hf_repo", "should look like 'owner/name'"),
    ({"quantizations": [{"name": "q", "fromat": "gguf"}]}, "model.quantizations[0].fromat",
     "did you mean 'format'?"),
])
def test_each_broken_rule_names_its_field(tiny_dir, change, field, words):
    card, report = detect.detect_submission(write_submission(tiny_dir.parent, with_model(**change)))
    assert len(report.errors) == 1, report.errors
    assert report.errors[0].startswith(f"{field}: ")
    assert words in report.errors[0]
    assert not report.ok


def test_several_broken_rules_are_reported_together(tiny_dir):
    _, report = detect.detect_submission(write_submission(
        tiny_dir.parent, with_model(nmae="x", license="proprietary", categories=["poetry"])))
    assert len(report.errors) == 3


def test_license_is_compared_case_insensitively(tiny_dir):
    card, report = detect.detect_submission(write_submission(tiny_dir.parent, with_model(license="MIT")))
    assert report.errors == [] and card["license"] == "mit"


def test_weights_pointing_at_a_missing_path(tmp_path):
    path = write_submission(tmp_path, {**SUBMISSION, "weights": {"dir": "not-there"}})
    card, report = detect.detect_submission(path)
    assert len(report.errors) == 1
    assert report.errors[0].startswith("weights: ")
    assert str(tmp_path / "not-there") in report.errors[0]
    assert card["model_id"] == "tiny-sub"


def test_weights_directory_without_weight_files(tiny_dir):
    (tiny_dir / "model.safetensors").unlink()
    _, report = detect.detect_submission(write_submission(tiny_dir.parent, SUBMISSION))
    assert report.errors == [f"weights: {tiny_dir} has a config.json but no weight files"]


def test_weights_missing_package(tmp_path):
    path = write_submission(tmp_path, {**SUBMISSION, "weights": {"package": "no-such-package-slm", "file": "x"}})
    _, report = detect.detect_submission(path)
    assert report.errors and report.errors[0].startswith("weights.package: ")


def test_weights_with_no_known_form(tmp_path):
    _, report = detect.detect_submission(write_submission(tmp_path, {**SUBMISSION, "weights": {"url": "x"}}))
    assert report.errors and report.errors[0].startswith("weights: give exactly one of")


@pytest.mark.parametrize("text, words", [
    ("- a\n- b\n", "expected a mapping with a `model:` section"),
    ("just text\n", "expected a mapping with a `model:` section"),
    ("model: [1\n", "not valid YAML"),
    ("weights:\n  dir: x\n", "expected a mapping with a `model:` section"),
    ("model: a string\n", "expected a mapping with a `model:` section"),
])
def test_unusable_submission_files(tmp_path, text, words):
    path = write_submission(tmp_path, text)
    with pytest.raises(detect.SubmissionError, match=words) as exc:
        detect.detect_submission(path)
    assert str(path) in str(exc.value)


def test_missing_and_oversized_submission_files(tmp_path):
    with pytest.raises(detect.SubmissionError, match="no such submission file"):
        detect.detect_submission(tmp_path / "nope.yaml")
    big = write_submission(tmp_path, "model: {}\n#" + "x" * detect.MAX_BYTES)
    with pytest.raises(detect.SubmissionError, match="larger than"):
        detect.detect_submission(big)


def test_submission_file_name_must_be_a_safe_id(tmp_path):
    with pytest.raises(ValueError, match="submission file name"):
        detect.detect_submission(write_submission(tmp_path, SUBMISSION, name=".hidden"))


# --- saving and loading cards -------------------------------------------------------------

def test_save_card_with_errors_writes_only_the_validation(tiny_dir, tmp_path):
    card, report = detect.detect_submission(
        write_submission(tiny_dir.parent, with_model(license="proprietary")))
    run = tmp_path / "run"
    with pytest.raises(detect.SubmissionError, match="model.license"):
        detect.save_card(run, card, report)
    validation = json.loads((run / "validation.json").read_text())
    assert validation["errors"] == report.errors and validation["schema_version"] == SCHEMA_VERSION
    assert not (run / "model_card.json").exists()


def test_save_card_when_valid_writes_both_and_load_card_reads_it(tiny_dir, tmp_path):
    card, report = detect.detect_submission(write_submission(tiny_dir.parent, SUBMISSION))
    run = tmp_path / "run"
    written = detect.save_card(run, card, report)
    assert written == run / "model_card.json"
    assert json.loads((run / "validation.json").read_text())["errors"] == []
    assert detect.load_card(run) == card


def test_load_card_without_detect(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the detect stage"):
        detect.load_card(tmp_path)


def test_frames_for_the_notebook(default_card):
    card, report = default_card
    frame = detect.card_frame(card)
    assert list(frame.columns) == ["field", "value"]
    assert "weights.sha256" in set(frame["field"]) and "detected" not in set(frame["field"])
    values = dict(zip(frame["field"], frame["value"]))  # for readers: no list, dict or None reprs
    assert not any(v.startswith(("[", "{")) or v == "None" for v in values.values()), values
    assert values["quantizations"].startswith("F16 (convert F16, source ")
    assert detect.report_frame(report).to_dict("records") == [{"level": "ok", "message": "no problems found"}]
