"""Detect stage: a YAML submission becomes a validated model card (no weights loaded).

Reads `params/submissions/<id>.yaml`; fills missing fields from the weights'
metadata (GGUF key-values and tensor shapes, or config.json and safetensors headers);
returns the card and a validation report (every problem, not just the first).
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import models, paths

SCHEMA_VERSION = 1
MAX_PARAMETERS = 3_000_000_000
MAX_SUBMISSION_BYTES = 64 * 1024
MODEL_FIELDS = ("name", "family", "hf_repo", "hf_revision", "parameters", "architecture",
                "context_length", "license", "categories", "quantizations", "submitted_by", "contact")
REQUIRED = ("name", "family", "parameters", "architecture", "context_length", "license")
# Licenses that permit benchmarking a model and publishing its scores.
ALLOWED_LICENSES = ("apache-2.0", "mit", "bsd-3-clause", "bsd-2-clause", "cc-by-4.0", "cc-by-sa-4.0",
                    "openrail", "llama3.2", "gemma")
CATEGORIES = ("base", "instruct", "chat", "code", "math", "multilingual", "reasoning")
PARAM_FORMAT = re.compile(r"^\d+(\.\d+)?[MB]$")


@dataclass
class Report:
    """What detect found wrong (errors stop the run) or worth a look (warnings)."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class SubmissionError(ValueError):
    """The submission cannot be used; the message lists every problem."""


def format_parameters(count: int) -> str:
    """135M, 1.7B, 0.041M: the submission format for a parameter count."""
    if count >= 1e9:
        return f"{count / 1e9:.1f}B"
    if count >= 1e7:
        return f"{round(count / 1e6)}M"
    # two significant digits without exponent notation (0.00004M, not 4e-05M, which PARAM_FORMAT rejects)
    return f"{float(f'{count / 1e6:.2g}'):f}".rstrip("0").rstrip(".") + "M"


def parse_parameters(text: str) -> int:
    return int(float(text[:-1]) * (1e9 if text.endswith("B") else 1e6))


def read_submission(path: Path) -> dict[str, Any]:
    """The submission mapping; raises SubmissionError with the reason when it is unusable."""
    path = Path(path)
    if not path.is_file():
        raise SubmissionError(f"{path}: no such submission file")
    if path.stat().st_size > MAX_SUBMISSION_BYTES:
        raise SubmissionError(f"{path}: larger than {MAX_SUBMISSION_BYTES} bytes")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SubmissionError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise SubmissionError(f"{path}: expected a mapping with a `model:` section")
    return data


def gguf_metadata(path: Path) -> dict[str, Any]:
    """Architecture, context length, name, license, quantization and exact parameter count."""
    import gguf

    reader = gguf.GGUFReader(str(path))

    def get(key):
        f = reader.fields.get(key)
        return f.contents() if f is not None else None

    arch = get("general.architecture")
    file_type = get("general.file_type")
    return {
        "architecture": arch, "context_length": get(f"{arch}.context_length"),
        "gguf_name": get("general.name"), "license": get("general.license"),
        "quantization": gguf.LlamaFileType(file_type).name.removeprefix("MOSTLY_")
        if file_type is not None else None,
        "parameter_count": int(sum(int(t.n_elements) for t in reader.tensors)),
        "has_chat_template": get("tokenizer.chat_template") is not None,
    }


def hf_dir_metadata(path: Path) -> dict[str, Any]:
    """Metadata from config.json and exact parameter count from safetensors headers."""
    config = json.loads((path / "config.json").read_text())
    count = 0
    for f in sorted(path.glob("*.safetensors")):
        with open(f, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(size))
        for name, info in header.items():
            if name != "__metadata__":
                n = 1
                for dim in info["shape"]:
                    n *= dim
                count += n
    return {
        "architecture": config.get("model_type"),
        "context_length": config.get("max_position_embeddings"),
        "quantization": str(config.get("torch_dtype") or config.get("dtype") or "unknown"),
        "parameter_count": count or None,
        "has_chat_template": (path / "tokenizer_config.json").exists()
        and "chat_template" in (path / "tokenizer_config.json").read_text(),
    }


def build_card(submission: dict[str, Any], submission_id: str, base_dir: Path | None = None) -> tuple[dict, Report]:
    """Model card from a submission plus detected metadata, and the validation report."""
    report = Report()
    model = dict(submission.get("model") or {})
    for key in model:
        if key not in MODEL_FIELDS:
            report.errors.append(f"model.{key}: unknown field; known: {', '.join(MODEL_FIELDS)}")
    try:
        weights = models.resolve_weights(submission.get("weights") or {}, base_dir)
    except models.WeightsError as exc:
        report.errors.append(str(exc))
        return {"model_id": submission_id, **model}, report
    detected: dict[str, Any] = {}
    if weights.kind == "gguf":
        detected = gguf_metadata(Path(weights.path))
    elif weights.kind == "hf_dir":
        detected = hf_dir_metadata(Path(weights.path))
    count = detected.get("parameter_count")
    card = {
        "schema_version": SCHEMA_VERSION, "model_id": submission_id,
        "name": model.get("name"), "family": model.get("family"), "hf_repo": model.get("hf_repo"),
        "hf_revision": model.get("hf_revision"),
        "parameters": model.get("parameters") or (format_parameters(count) if count else None),
        "parameter_count": count,
        "architecture": model.get("architecture") or detected.get("architecture"),
        "context_length": model.get("context_length") or detected.get("context_length"),
        "license": str(model.get("license") or detected.get("license") or "").lower() or None,
        "categories": model.get("categories") or [],
        "quantization": detected.get("quantization"),
        "quantizations": model.get("quantizations") or [],
        "has_chat_template": detected.get("has_chat_template"),
        "submitted_by": model.get("submitted_by"), "contact": model.get("contact"),
        "weights": {"kind": weights.kind, "path": weights.path, "revision": weights.revision,
                    "sha256": weights.sha256, "size_bytes": weights.size_bytes},
        "detected": {k: v for k, v in detected.items()},
    }
    _validate(card, model, report)
    return card, report


def _validate(card: dict, declared: dict, report: Report) -> None:
    for key in REQUIRED:
        if card.get(key) in (None, ""):
            report.errors.append(f"model.{key}: missing and not detectable from the weights; add it")
    params = card.get("parameters")
    if params is not None and not (isinstance(params, str) and PARAM_FORMAT.match(params)):
        report.errors.append(f"model.parameters: {params!r} should look like '135M' or '1.7B'")
    count = card.get("parameter_count")
    if count is None and isinstance(params, str) and PARAM_FORMAT.match(params):
        count = parse_parameters(params)
        report.warnings.append("parameter count not detectable from the weights; using the declared value")
    if count and count > MAX_PARAMETERS:
        report.errors.append(f"model.parameters: {count:,} parameters exceeds the 3B limit")
    declared_params = declared.get("parameters")
    if count and isinstance(declared_params, str) and PARAM_FORMAT.match(declared_params):
        if abs(parse_parameters(declared_params) - count) > 0.1 * count:
            report.errors.append(f"model.parameters: declared {declared_params} but the weights hold "
                                 f"{count:,} ({format_parameters(count)})")
    if card.get("license") and card["license"] not in ALLOWED_LICENSES:
        report.errors.append(f"model.license: {card['license']!r} is not on the allowlist "
                             f"({', '.join(ALLOWED_LICENSES)})")
    for cat in card.get("categories") or []:
        if cat not in CATEGORIES:
            report.errors.append(f"model.categories: {cat!r} is not one of {', '.join(CATEGORIES)}")


def detect_submission(path: str | Path) -> tuple[dict, Report]:
    """Read, detect and validate the submission at `path` (relative paths from the repo)."""
    path = Path(path)
    if not path.is_absolute():
        path = paths.REPO_ROOT / path
    submission_id = paths.check_id(path.stem, "submission file name")
    return build_card(read_submission(path), submission_id, base_dir=path.parent)


def card_frame(card: dict):
    """The card as a two-column table (field, value) for the notebook."""
    import pandas as pd

    skip = {"detected", "weights", "schema_version"}
    rows = [(k, v) for k, v in card.items() if k not in skip]
    rows += [(f"weights.{k}", v) for k, v in (card.get("weights") or {}).items()]
    return pd.DataFrame(rows, columns=["field", "value"]).astype({"value": str})


def report_frame(report: Report):
    import pandas as pd

    rows = [("error", e) for e in report.errors] + [("warning", w) for w in report.warnings]
    return pd.DataFrame(rows or [("ok", "no problems found")], columns=["level", "message"])


def save_card(run_path: Path, card: dict, report: Report) -> Path:
    """Write validation.json, then model_card.json if valid; raise listing the errors if not."""
    from . import artifacts

    artifacts.write_json(run_path / "validation.json",
                         {"schema_version": SCHEMA_VERSION, "errors": report.errors, "warnings": report.warnings})
    if report.errors:
        raise SubmissionError("submission has errors:\n- " + "\n- ".join(report.errors))
    return artifacts.write_json(run_path / "model_card.json", card)


def load_card(run_path: Path) -> dict:
    """The model card detect wrote for this run."""
    from . import artifacts

    path = run_path / "model_card.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no model card; run the detect stage for this run first")
    return artifacts.read_json(path)
