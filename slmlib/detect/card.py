"""The model card: a submission completed from its weights and validated (detect stage; no weights loaded).

Reads `params/submissions/<id>.yaml` (`submission`: schema and safe reading); fills missing
fields from the weights' metadata (`slmlib.weights`: GGUF header, config.json and safetensors
headers, the Hub when online); validates every rule and reports every problem, not just the
first; checks the registry for duplicates and the submissions ledger for the rate limit
(`ledger`); estimates the run time (`estimate`). Writes `validation.json`, and when valid
`model_card.json` plus one ledger line. A submission listing `model.quantizations` is
evaluated one quantization per run: the card describes that file (converted once by
llama.cpp, or another GGUF of the model), and every rule applies to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import artifacts, paths, weights as wts
from ..params import shorten
from . import ledger, submission
from .submission import PARAM_FORMAT, SubmissionError

SCHEMA_VERSION = 1
MAX_PARAMETERS = 3_000_000_000  # by the count detected from the weights
TOLERANCE = 0.10  # a declared parameters/context_length may differ from the detected one by this much
REQUIRED = ("name", "family", "parameters", "architecture", "context_length", "license")


@dataclass
class Report:
    """What detect found wrong (errors stop the run) or worth a look (warnings), and the estimate."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    estimate: dict | None = None  # estimate.estimate_runtime, when asked for

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, "errors": self.errors, "warnings": self.warnings,
                "estimate": self.estimate}


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


def _local_path(text: str, base_dir: Path) -> Path:
    """A submission's local path: a leading `~` or `~/` is this user's home folder; nothing else is expanded
    (no `$VARS`: a path naming an environment variable would echo its value into validation.json and the
    reports; no `~user`); relative paths are from the submission's folder."""
    path = Path.home() / text[2:] if text == "~" or text.startswith("~/") else Path(text)
    return path if path.is_absolute() else base_dir / path


def _env_hint(text: str) -> str:
    """Why a path with a `$` may not be found: environment variables are not expanded."""
    return ("; environment variables ($NAME) are not expanded in a submission: write the path itself "
            "(a leading ~/ is your home folder)") if "$" in text else ""


def resolve(source: dict | None, model: dict, base_dir: Path) -> tuple[wts.Weights, dict[str, Any]]:
    """The weights (files, hash) and the metadata detected from them, for any weights form."""
    source = dict(source or {})
    if not source:
        if not isinstance(model.get("hf_repo"), str):
            raise wts.WeightsError("weights: missing; say where the weights are (see "
                                      "params/submissions/template.yaml), or give model.hf_repo for the Hub")
        source = {"hf_repo": model["hf_repo"], "revision": model.get("hf_revision")}
    if "hf_repo" in source:
        meta = wts.hub_metadata(source["hf_repo"], source.get("revision"))
        return wts.Weights("hub", source["hf_repo"], meta["revision"], meta.pop("weights_sha256"),
                              meta.pop("size_bytes")), meta
    if "cache" in source:
        rel = Path(source["cache"])
        if rel.is_absolute() or ".." in rel.parts:
            raise wts.WeightsError(f"weights.cache: {source['cache']!r} must be a relative path inside the cache")
        path = paths.cache_root() / rel
        if not path.exists():
            raise wts.WeightsError(f"weights.cache: {path} does not exist; "
                                      f"{source.get('install') or 'put the weights there first'}")
        source = {"gguf" if path.is_file() else "dir": str(path)}
    elif "gguf" in source or "dir" in source:
        key = "gguf" if "gguf" in source else "dir"
        path = _local_path(source[key], base_dir)
        if not path.exists() and _env_hint(source[key]):
            raise wts.WeightsError(f"weights.{key}: {path} does not exist{_env_hint(source[key])}")
        source = {key: str(path)}
    weights = wts.resolve_weights(source, base_dir)
    read = wts.gguf_metadata if weights.kind == "gguf" else wts.hf_dir_metadata
    return weights, read(Path(weights.path))


def convert_errors(quants: list[dict], weights: wts.Weights) -> list[str]:
    """`convert` entries on weights llama.cpp cannot convert (anything but one GGUF file)."""
    return [f"model.quantizations[{i}].convert: converts the submission's own GGUF file, but `weights:` are "
            f"{weights.kind}; remove convert, or point weights at a GGUF file"
            for i, q in enumerate(quants) if "convert" in q and weights.kind != "gguf"]


def resolve_quantization(picked: tuple[int, dict] | None, weights: wts.Weights, detected: dict,
                         base_dir: Path) -> tuple[wts.Weights, dict, dict | None]:
    """The weights the picked quantization (index, entry) names, their metadata, and the conversion record
    (format, source SHA-256, seconds, llama-cpp-python version) when llama.cpp converted them. Without a
    pick, or for an entry with neither convert nor gguf: the submission's own weights."""
    i, entry = picked or (None, {})
    where = f"model.quantizations[{i}]"
    if "gguf" in entry:
        path = _local_path(entry["gguf"], base_dir)
        if not (path.is_file() and path.suffix == ".gguf"):
            raise wts.WeightsError(f"{where}.gguf: {path} is not a .gguf file; give the path of another GGUF "
                                   "file of this model (relative to the submission; a leading ~/ is your home "
                                   f"folder){_env_hint(entry['gguf'])}")
        other = wts.resolve_weights({"gguf": str(path)}, base_dir)
        return other, wts.gguf_metadata(path), None
    if "convert" not in entry:
        return weights, detected, None
    try:
        converted, _ = wts.convert_gguf(weights, entry["convert"])
    except ImportError:
        raise wts.WeightsError(f"{where}.convert: converting needs the llama_cpp package (llama-cpp-python), "
                                  "which is not installed in this environment; install it, or choose a "
                                  "quantization without convert (quantization: NAME)") from None
    record = artifacts.read_json(Path(converted.path).with_suffix(".json"))  # written by convert_gguf
    conversion = {"format": entry["convert"], "source_sha256": weights.sha256, "seconds": record["seconds"],
                  "llama_cpp_python": record["llama_cpp_python"]}
    return converted, wts.gguf_metadata(Path(converted.path)), conversion


def detect_adapter(source: dict, weights: wts.Weights, detected: dict, base_dir: Path, report: Report) -> dict:
    """The card's `adapter` section (where, digest, rank, targets, parameters); its problems go to `report`."""
    if "dir" in source:
        source = {"dir": str(_local_path(source["dir"], base_dir))}
    folder, commit = wts.adapter_dir(source)
    meta = wts.read_adapter(folder)
    errors, warnings, facts = wts.check_adapter(meta, weights, detected)
    report.errors += errors
    report.warnings += warnings
    return {"kind": "hub" if "hf_repo" in source else "dir", "path": str(folder),
            "hf_repo": source.get("hf_repo"), "revision": commit, "sha256": meta["sha256"],
            "size_bytes": meta["size_bytes"], **facts}


def _pick(model: dict, detected: dict, key: str, kind: type) -> Any:
    """The declared value when it has the right type, else the detected one."""
    value = model.get(key)
    return value if isinstance(value, kind) and not isinstance(value, bool) else detected.get(key)


def _normalized(model: dict, key: str, detected: dict | None = None) -> str | None:
    """A name as the card keeps it (`submission.normalize_text`: NFKC, single spaces): the declared one, else
    the detected one. `submitted_by` normalized so is the rate limit's submitter however it is typed."""
    value = _pick(model, detected or {}, key, str)
    return submission.normalize_text(value) if isinstance(value, str) else value


def pillars(model: dict) -> list[str]:
    """The pillars the model is evaluated and scored on: its `categories`, all pillars when left out."""
    listed = model.get("categories")
    return list(listed) if isinstance(listed, list) and listed else list(submission.CATEGORIES)


def _weights_record(weights: wts.Weights) -> dict:
    return {"kind": weights.kind, "path": weights.path, "revision": weights.revision,
            "sha256": weights.sha256, "size_bytes": weights.size_bytes}


def build_card(data: dict[str, Any], submission_id: str, base_dir: Path | None = None,
               quantization: str = "") -> tuple[dict, Report]:
    """Model card from a submission plus detected metadata, and the validation report.

    `quantization` names the listed quantization to evaluate ("" = the first); without
    `model.quantizations` the weights as given are evaluated.
    """
    report = Report(errors=submission.check(data))
    model = data["model"]
    report.errors += declared_errors(model)  # what can be checked without the weights, always
    quants = model.get("quantizations") if isinstance(model.get("quantizations"), list) else []
    base_dir = Path(base_dir or paths.REPO_ROOT)
    source_errors = submission.check_weights(data["weights"]) if data.get("weights") is not None else []
    source_errors += submission.check_adapter(data["adapter"]) if data.get("adapter") is not None else []
    if not source_errors and not any(e.startswith("model.quantizations") for e in report.errors):
        try:
            chosen = submission.choose_quantizations([q["name"] for q in quants], quantization)[0]
        except SubmissionError as exc:
            source_errors.append(str(exc))
    if source_errors or any(e.startswith("model.quantizations") for e in report.errors):
        report.errors += source_errors
        return {"model_id": submission_id, **model}, report
    picked = next(((i, q) for i, q in enumerate(quants) if q["name"] == chosen), None)
    try:
        source, detected = resolve(data.get("weights"), model, base_dir)
        unconvertible = convert_errors(quants, source)
        report.errors += unconvertible
        weights, detected, conversion = (source, detected, None) if unconvertible else \
            resolve_quantization(picked, source, detected, base_dir)
        adapter = detect_adapter(data["adapter"], weights, detected, base_dir, report) if data.get("adapter") else None
    except (wts.WeightsError, wts.MetadataError, wts.HubUnreachable,
            wts.AdapterError) as exc:
        report.errors.append(str(exc))
        return {"model_id": submission_id, **model}, report
    count = detected.get("parameter_count")
    if count and adapter:
        count += adapter["parameter_count"]  # the evaluated model: base plus adapter
    license_ = _pick(model, detected, "license", str)
    card = {
        "schema_version": SCHEMA_VERSION, "model_id": submission_id,
        **{k: _pick(model, detected, k, str) for k in ("hf_repo", "hf_revision")},
        "name": _normalized(model, "name", detected), "family": _normalized(model, "family", detected),
        "parameters": _pick(model, {"parameters": format_parameters(count) if count else None}, "parameters", str),
        "parameter_count": count,
        "architecture": _pick(model, detected, "architecture", str),
        "context_length": _pick(model, detected, "context_length", int),
        "license": license_.lower() if isinstance(license_, str) else None,
        "model_type": _pick(model, {}, "model_type", str),
        "categories": pillars(model),
        "quantization": detected.get("quantization"),
        "quantizations": quants,
        "has_chat_template": detected.get("has_chat_template"),
        "submitted_by": _normalized(model, "submitted_by"), "contact": _normalized(model, "contact"),
        "weights": _weights_record(weights),
        "detected": dict(detected),
    }
    if picked is not None:  # one listed quantization: the evaluated file, and the submission's own
        card.update(quantization_name=picked[1]["name"], source_weights=_weights_record(source))
    if conversion:
        card["conversion"] = conversion
    if adapter:
        card["adapter"] = adapter
    report.errors += [e for e in check_card(card, model) if e not in report.errors]
    report.errors += ledger.duplicate_errors(card, ledger.registry_models())
    report.errors += ledger.rate_limit_errors(card, ledger.read_ledger())
    if not isinstance(model.get("submitted_by"), str):
        report.warnings.append(f"model.submitted_by: missing; the rate limit counts this as {ledger.ANONYMOUS}")
    return card, report


def _license_error(license_: str) -> str:
    return (f"model.license: {shorten(license_)} is not on the allowlist of licenses that permit "
            f"benchmarking and publishing results ({', '.join(submission.LICENSES)})")


def declared_errors(declared: dict) -> list[str]:
    """Rules checked on what the submission declares, without the weights (so they are reported even when
    the weights cannot be read): the declared size against the 3B limit, the declared license against the
    allowlist. The weights are checked again in `check_card`."""
    errors = []
    params_ = declared.get("parameters")
    if isinstance(params_, str) and PARAM_FORMAT.fullmatch(params_) and parse_parameters(params_) > MAX_PARAMETERS:
        errors.append(f"model.parameters: declared {params_}, over the {format_parameters(MAX_PARAMETERS)} limit")
    license_ = declared.get("license")
    if isinstance(license_, str) and license_ and license_.lower() not in submission.LICENSES:
        errors.append(_license_error(license_.lower()))
    return errors


def check_card(card: dict, declared: dict) -> list[str]:
    """Semantic rules: required fields, size limit, declared vs detected, license allowlist."""
    errors = [f"model.{key}: missing and not detectable from the weights; add it"
              for key in REQUIRED if card.get(key) in (None, "")]
    count = card["parameter_count"]
    if count is None and isinstance(card["parameters"], str) and PARAM_FORMAT.match(card["parameters"]):
        errors.append("model.parameters: the weights' parameter count could not be counted; "
                      "the 3B limit is checked on the weights, not the declared size")
    if count is not None and count <= 0:
        errors.append(f"model.parameters: the weights hold {count:,} parameters (their tensors are empty); "
                      "a model's weights hold its parameters, give the real weights")
    if count and count > MAX_PARAMETERS:
        errors.append(f"model.parameters: the weights hold {count:,} parameters ({format_parameters(count)}), "
                      f"over the {format_parameters(MAX_PARAMETERS)} limit")
    declared_params = declared.get("parameters")
    if count and isinstance(declared_params, str) and PARAM_FORMAT.match(declared_params):
        if abs(parse_parameters(declared_params) - count) > TOLERANCE * count:
            errors.append(f"model.parameters: declared {declared_params} but the weights hold "
                          f"{count:,} ({format_parameters(count)})")
    ctx, found = declared.get("context_length"), card["detected"].get("context_length")
    if isinstance(ctx, int) and isinstance(found, int) and abs(ctx - found) > TOLERANCE * found:
        errors.append(f"model.context_length: declared {ctx} but the weights say {found}")
    if card["license"] and card["license"] not in submission.LICENSES:
        errors.append(_license_error(card["license"]))
    return errors


def detect_submission(path: str | Path, p=None, quantization: str | None = None) -> tuple[dict, Report]:
    """Read, detect and validate the submission at `path` (relative paths from the repo).

    With params `p` (suite, tasks, limits, seed) the report also carries a runtime estimate
    for this machine; a failed estimate is a warning, never an error. `quantization` picks a
    listed quantization (None: `p.quantization`, or the first listed one without `p`).
    """
    path = Path(path)
    if not path.is_absolute():
        path = paths.REPO_ROOT / path
    submission_id = paths.check_id(path.stem, "submission file name")
    if quantization is None:
        quantization = p.quantization if p is not None else ""
    card, report = build_card(submission.read(path), submission_id, base_dir=path.parent, quantization=quantization)
    if p is not None and p.earn_submit:
        from ..aggregate import earn_submit_problem  # the aggregate's record of signed runs taken in

        report.errors += [e for e in [earn_submit_problem(card.get("submitted_by"), card["model_id"], p.earn_submit)]
                          if e]
    if p is not None:
        add_estimate(card, report, p)
    return card, report


def add_estimate(card: dict, report: Report, p) -> None:
    """The runtime estimate of params `p` on this machine into `report` (when the card has a parameter
    count); a failed estimate is a warning, never an error."""
    if not card.get("parameter_count"):
        return
    from . import estimate

    try:
        report.estimate = estimate.estimate_runtime(wts.Weights(**card["weights"]), card["parameter_count"], p,
                                                    card["categories"])
    except Exception as exc:  # informational only: say why and go on
        report.warnings.append(f"runtime estimate skipped: {type(exc).__name__}: {str(exc)[:200]}")


def card_frame(card: dict):
    """The card as a two-column table (field, value) for the notebook."""
    import pandas as pd

    parts = ("weights", "source_weights", "conversion", "adapter")
    rows = [(k, v) for k, v in card.items() if k not in {"detected", "schema_version", *parts}]
    rows += [(f"{part}.{k}", v) for part in parts for k, v in (card.get(part) or {}).items()]
    return pd.DataFrame([(k, shown(v)) for k, v in rows], columns=["field", "value"])


def shown(value) -> str:
    """A card value as a reader reads it: lists joined by commas, mappings as `key value` pairs (a listed
    quantization: `F16 (convert F16, source ...)`), never a Python repr."""
    if isinstance(value, list):
        return ", ".join(shown(v) for v in value)
    if isinstance(value, dict):
        name = value.get("name")
        rest = ", ".join(f"{k} {shown(v)}" for k, v in value.items() if k != "name")
        return f"{name} ({rest})" if name is not None and rest else str(name) if name is not None else rest
    return "" if value is None else str(value)


def report_frame(report: Report):
    import pandas as pd

    rows = [("error", e) for e in report.errors] + [("warning", w) for w in report.warnings]
    return pd.DataFrame(rows or [("ok", "no problems found")], columns=["level", "message"])


def estimate_frame(report: Report):
    """Per-task items, tokens and estimated seconds (empty when no estimate was made)."""
    import pandas as pd

    tasks = (report.estimate or {}).get("tasks", {})
    return pd.DataFrame([{"task": name, **t} for name, t in tasks.items()],
                        columns=["task", "items", "scored", "generated", "seconds"])


def save_card(run_path: Path, card: dict, report: Report) -> Path:
    """Write validation.json, then (if valid) model_card.json and the ledger line; raise listing errors if not."""
    artifacts.write_json(paths.validation_file(run_path), report.to_dict())
    if report.errors:
        raise SubmissionError("submission has errors:\n- " + "\n- ".join(report.errors))
    ledger.append(card)  # first: a rate limit reached meanwhile leaves no card behind
    return artifacts.write_json(paths.model_card_file(run_path), card)


def load_card(run_path: Path) -> dict:
    """The model card detect wrote for this run."""
    path = paths.model_card_file(run_path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no model card; run the detect stage for this run first")
    return artifacts.read_json(path)
