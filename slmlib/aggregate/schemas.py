"""JSON Schemas of the run record (results.json) and of the registry, generated from code.

Serves the aggregate stage: `run_schema()` checks every run folder (local or from another
machine) before it is used, `registry_schema()` checks the registry on every write. The
published copies live in `params/run.schema.json` and `params/registry.schema.json`
(`write_schema_files` regenerates them; a test checks they are current).
"""

from __future__ import annotations

from pathlib import Path

from .. import artifacts, paths
from ..benchmarks import PILLARS
from ..detect import MAX_PARAMETERS
from .scoring import SIZE_BUCKETS

RUN_SCHEMA_VERSION = 1  # version of results.json the aggregate stage reads
REGISTRY_SCHEMA_VERSION = 4  # version of registry.json it writes (3: the quantizations section; 4: tracks)
DRAFT = "https://json-schema.org/draft/2020-12/schema"
SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
NUMBER = {"type": "number"}
STRING = {"type": "string"}
ID = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"}
CHAT_TEMPLATE = {"anyOf": [{"type": ["boolean", "null"]}, {"const": "auto"}]}  # params' apply_chat_template
INTERVAL = {"type": "array", "items": NUMBER, "minItems": 2, "maxItems": 2}
TRACK_ID = {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,63}$"}  # tracks.track_id: URL-safe
EXTRA_METRICS = {"type": "object", "additionalProperties": {"anyOf": [NUMBER, {"type": "null"}]}}  # metric -> value


def nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(required: dict, optional: dict | None = None, extra: bool = True) -> dict:
    """An object schema: `required` and `optional` map property -> schema."""
    return {"type": "object", "required": sorted(required), "properties": {**required, **(optional or {})},
            "additionalProperties": extra}


def mapping(values: dict) -> dict:
    return {"type": "object", "additionalProperties": values}


def run_task_schema() -> dict:
    unit = {"type": "number", "minimum": 0, "maximum": 1}
    return obj({"task": STRING, "pillar": {"enum": list(PILLARS)}, "metric": STRING, "raw": NUMBER,
                "score": unit, "baseline": unit, "n": {"type": "integer", "minimum": 0},
                "item_ids": {"type": "array", "items": STRING}, "data_sha256": SHA256, "pack": STRING},
               {"stderr": nullable(NUMBER), "outputs_sha256": SHA256, "settings": {"type": "object"},
                "extra_metrics": EXTRA_METRICS})


def run_schema() -> dict:
    """Schema of `outputs/runs/<run_id>/results.json`."""
    text = nullable(STRING)  # the card fields the registry copies (CARD_FIELDS) have the card's types
    card = obj({"parameter_count": {"type": "integer", "minimum": 1, "maximum": MAX_PARAMETERS},
                "weights": obj({"sha256": {"type": "string", "minLength": 1}},
                               {"kind": text, "size_bytes": nullable({"type": "integer", "minimum": 0})})},
               {**{k: text for k in ("name", "family", "hf_repo", "hf_revision", "parameters", "architecture",
                                     "license", "quantization", "quantization_name")},
                "context_length": nullable({"type": "integer"}), "categories": {"type": "array", "items": STRING},
                "adapter": nullable(obj({"sha256": {"type": "string", "minLength": 1}}))})
    energy = obj({"kwh": {"type": "number", "minimum": 0}, "co2_kg": {"type": "number", "minimum": 0}})
    limit = nullable({"type": "integer", "minimum": 1})
    schema = obj({"schema_version": {"const": RUN_SCHEMA_VERSION}, "run_id": ID, "model_id": ID,
                  "model_card": card, "suite": STRING, "limit": limit, "limit_generative": limit,
                  "seed": {"type": "integer"},
                  "settings": obj({}, {"backend": text, "dtype": text, "apply_chat_template": CHAT_TEMPLATE}),
                  "tasks": {**mapping(run_task_schema()), "minProperties": 1},
                  "provenance": obj({"data_packs": mapping(obj({"version": STRING, "sha256": STRING}))})},
                 {"edge": nullable({"type": "object"}), "energy": nullable(energy)})
    return {"$schema": DRAFT, "title": "SLM Study run record (results.json)", **schema}


def registry_task_schema() -> dict:
    return obj({"task": STRING, "pillar": {"enum": list(PILLARS)}, "raw": NUMBER, "score": NUMBER,
                "baseline": NUMBER, "normalized": NUMBER, "n": {"type": "integer"}, "n_runs": {"type": "integer"},
                "spread": NUMBER, "ci": nullable(INTERVAL), "ci_note": nullable(STRING),
                "samples_run": nullable(STRING)},
               {"metric": nullable(STRING), "stderr": nullable(NUMBER), "extra_metrics": EXTRA_METRICS},
               extra=False)


def registry_entry_schema() -> dict:
    pillars = obj({}, {p: NUMBER for p in PILLARS}, extra=False)
    pillar_cis = obj({}, {p: INTERVAL for p in PILLARS}, extra=False)
    return obj({
        "entry_id": STRING, "model_id": STRING, "name": STRING, "parameter_count": {"type": "integer"},
        "size_bucket": {"enum": [b["name"] for b in SIZE_BUCKETS]}, "track": TRACK_ID, "suite": STRING,
        "limit": nullable({"type": "integer"}), "limit_generative": nullable({"type": "integer"}),
        "seed": {"type": "integer"}, "weights": {"type": "object"},
        "tasks": mapping(registry_task_schema()), "pillars": pillars, "aggregate": nullable(NUMBER),
        "intervals": obj({"pillars": pillar_cis, "aggregate": nullable(INTERVAL)}, extra=False),
        "rank": nullable({"type": "integer"}), "rank_band": nullable({"type": "integer"}),
        "rank_range": nullable({"type": "array", "items": {"type": "integer"}}),
        "run_ids": {"type": "array", "items": STRING, "minItems": 1}, "badges": {"type": "array", "items": STRING},
        "disputed": {"type": "boolean"}, "disputed_tasks": {"type": "array", "items": STRING},
        "edge": mapping(NUMBER), "energy": nullable(obj({"kwh": NUMBER, "co2_kg": NUMBER})),
        "efficiency": nullable(NUMBER), "settings": {"type": "object"},
        "settings_vary": {"type": "array", "items": STRING},
        "quorum": obj({"required": {"type": "integer", "minimum": 1}, "runners": {"type": "array", "items": STRING},
                       "agreeing": {"type": "array", "items": STRING}, "unaudited": {"type": "array", "items": STRING},
                       "audits": mapping({"enum": ["pass", "fail"]}),
                       "status": {"enum": ["confirmed", "provisional"]}}, extra=False),
    }, {  # bias measures beside the ranking (registry.bias_measures): task -> raw value, ideal, interval
        "bias": mapping(obj({"metric": nullable(STRING), "value": NUMBER, "ideal": NUMBER, "ci": nullable(INTERVAL),
                             "n": {"type": "integer"}, "n_runs": {"type": "integer"}}, extra=False)),
    })


def difference_schema() -> dict:
    """A difference between two entries' scores and its test (`uncertainty.compare`)."""
    return obj({"difference": NUMBER, "difference_ci": nullable(INTERVAL), "p_value": nullable(NUMBER),
                "p_a_above_b": nullable(NUMBER), "paired": {"type": "boolean"}, "significant": {"type": "boolean"}},
               extra=False)


def quantization_set_schema() -> dict:
    """One set of quantizations of a model (`quantization_compare.compare_quantizations`)."""
    differences = obj({"aggregate": nullable(difference_schema()),
                       "pillars": obj({}, {p: difference_schema() for p in PILLARS}, extra=False)}, extra=False)
    variant = obj({"entry_id": STRING, "name": STRING, "quantization": nullable(STRING),
                   "reference": {"type": "boolean"}, "size_bytes": nullable(NUMBER), "peak_rss_mb": nullable(NUMBER),
                   "load_seconds": nullable(NUMBER), "decode_tokens_per_s": nullable(NUMBER),
                   "aggregate": nullable(NUMBER), "aggregate_ci": nullable(INTERVAL),
                   "differences": nullable(differences)}, extra=False)
    return obj({"model_key": STRING, "name": STRING, "track": TRACK_ID, "suite": STRING, "limit": nullable({"type": "integer"}),
                "limit_generative": nullable({"type": "integer"}), "seed": {"type": "integer"},
                "backend": nullable(STRING), "reference": STRING,
                "variants": {"type": "array", "items": variant, "minItems": 2}}, extra=False)


def track_schema() -> dict:
    """One track (`tracks.build_tracks`): the protocol its entries were measured under."""
    limit = nullable({"type": "integer"})
    proto = obj({"suite": STRING, "tasks": {"type": "array", "items": STRING}, "limit": limit,
                 "limit_generative": limit, "seed": {"type": "integer"}, "apply_chat_template": CHAT_TEMPLATE,
                 "fewshot": mapping(nullable({"type": "integer"}))}, extra=False)
    count = {"type": "integer", "minimum": 0}
    return obj({"id": TRACK_ID, "name": STRING, "protocol": proto, "default": {"type": "boolean"},
                "entries": count, "ranked": count, "provisional": count}, extra=False)


def registry_schema() -> dict:
    """Schema of `outputs/registry.json`."""
    comparison = obj({"a": STRING, "b": STRING, **difference_schema()["properties"]}, extra=False)
    schema = obj({
        "schema_version": {"const": REGISTRY_SCHEMA_VERSION}, "pillar_weights": mapping(NUMBER),
        "weights_sum": NUMBER, "normalization": STRING, "renormalization": STRING,
        "dispute_points": NUMBER, "decimals": {"type": "integer"},
        "badge_rules": {"type": "array", "items": obj({"name": STRING, "rule": STRING, "why": STRING})},
        "size_buckets": {"type": "array"},
        "bootstrap": obj({"resamples": {"type": "integer"}, "seed": {"type": "integer"}, "confidence": NUMBER,
                          "alpha": NUMBER, "method": STRING, "test": STRING, "bands": STRING}),
        "quorum": obj({"required": {"type": "integer", "minimum": 1}, "require_audit": {"type": "boolean"}},
                      extra=False),
        "tracks": {"type": "array", "items": track_schema(), "minItems": 1},
        "models": {"type": "array", "items": registry_entry_schema()},
        "comparisons": {"type": "array", "items": comparison},
        "quantizations": {"type": "array", "items": quantization_set_schema()},
        "rejected": {"type": "array", "items": obj({"run_id": STRING, "source": STRING, "reason": STRING})},
        "nondeterministic": {"type": "array", "items": obj({
            "entry_id": STRING, "task": STRING, "run_ids": {"type": "array", "items": STRING},
            "first_differing_item": nullable(STRING)})},
    }, extra=False)
    return {"$schema": DRAFT, "title": "SLM Study registry (outputs/registry.json)", **schema}


def first_error(instance, schema: dict) -> str | None:
    """The first schema violation as `path: message` (deterministic), or None."""
    import jsonschema  # imported here: its import takes ~2 s in this environment

    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(instance),
                    key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        return None
    where = "/".join(str(p) for p in errors[0].absolute_path) or "(top level)"
    return f"{where}: {errors[0].message}"


def check(instance, schema: dict, what: str) -> None:
    """Raise ValueError naming `what` and the first violation unless `instance` is valid."""
    error = first_error(instance, schema)
    if error:
        raise ValueError(f"{what} does not match its JSON Schema: {error}")


SCHEMA_FILES = {"run.schema.json": run_schema, "registry.schema.json": registry_schema}


def write_schema_files(folder: Path | None = None) -> list[Path]:
    """Regenerate the published schema files (default `params/`)."""
    folder = Path(folder) if folder is not None else paths.PARAMS_DIR
    return [artifacts.write_json(folder / name, make()) for name, make in SCHEMA_FILES.items()]
