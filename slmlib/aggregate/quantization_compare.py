"""Aggregate stage: what quantization costs, the registry's `quantizations` section (pure).

Entries of one model (same Hugging Face repo, else same model id) evaluated with the same
suite, limits, seed, backend and chat template are quantizations of each other. Each such set
of two or more gets a reference, the highest precision present (`PRECISION`), and every
other entry its aggregate and per-pillar difference to it (variant minus reference) from
`uncertainty.compare`: the paired bootstrap on the same items (p-value, 95% interval of the
difference), or without pairing only whether the intervals overlap. Size on disk, peak
memory, load time and decode speed stand beside them (never ranked).
"""

from __future__ import annotations

from .. import artifacts
from . import uncertainty
from ..benchmarks import PILLARS

PRECISION = ("F32", "F16", "BF16", "Q8_0")  # most precise first (F16 keeps 3 more mantissa bits than BF16); the rest below
DTYPES = {"float32": "F32", "bfloat16": "BF16", "float16": "F16"}  # a Hugging Face directory's torch dtype
SIDE_BY_SIDE = ("peak_rss_mb", "load_seconds", "decode_tokens_per_s")  # edge figures shown next to the scores
TEST_KEYS = ("difference", "difference_ci", "p_value", "p_a_above_b", "paired", "significant")  # of uncertainty.compare
METHOD = ("entries of one model (same Hugging Face repo, else model id) with the same suite, limits, seed, "
          "backend and chat template are compared with the highest precision among them (F32 > F16 > BF16 > "
          "Q8_0 > the rest): per pillar and for the aggregate, variant minus reference with the paired "
          "bootstrap on the same items (95% interval of the difference, p-value, significant at p < 0.05)")


def model_key(entry: dict) -> str:
    """Entries of the same model: same Hugging Face repo, else same model id."""
    return f"repo:{entry['hf_repo']}" if entry.get("hf_repo") else f"id:{entry['model_id']}"


def comparison_key(entry: dict) -> tuple:
    """Entries with the same key are quantizations of one model measured alike."""
    settings = entry.get("settings") or {}
    return (model_key(entry), entry["suite"], entry.get("limit"), entry.get("limit_generative"), entry["seed"],
            settings.get("backend"), settings.get("apply_chat_template"))


def precision_rank(entry: dict) -> int:
    """0 for F32, 1 for F16, ... (`PRECISION`); len(PRECISION) for any other quantization."""
    quant = str(entry.get("quantization") or "")
    quant = DTYPES.get(quant, quant.upper())
    return PRECISION.index(quant) if quant in PRECISION else len(PRECISION)


def variant_name(entry: dict) -> str:
    """The name the submission lists, else the quantization read from the weights."""
    return entry.get("quantization_name") or entry.get("quantization") or "as given"


def compare_quantizations(entries: list[dict], replicates: dict) -> list[dict]:
    """The `quantizations` section: per set of two or more quantizations of one model, the reference
    and every entry side by side, with its differences to the reference.

    `replicates` maps entry_id -> {"aggregate": replicates or None, "pillars": pillar -> replicates,
    "items": task -> items key} (as `registry.build_entry` returns them).
    """
    sets: dict[str, list[dict]] = {}
    for e in entries:
        sets.setdefault(artifacts.dumps(list(comparison_key(e))), []).append(e)
    out = []
    for key in sorted(sets):
        group = sorted(sets[key], key=lambda e: (precision_rank(e), variant_name(e).lower(), e["entry_id"]))
        if len(group) < 2:
            continue
        ref = group[0]
        names = [variant_name(e) for e in group]
        out.append({
            "model_key": model_key(ref), "name": ref["name"], "suite": ref["suite"], "limit": ref.get("limit"),
            "limit_generative": ref.get("limit_generative"), "seed": ref["seed"],
            "backend": (ref.get("settings") or {}).get("backend"), "reference": ref["entry_id"],
            "variants": [variant_row(e, ref, replicates, names.count(variant_name(e)) > 1) for e in group],
        })
    return out


def variant_row(entry: dict, ref: dict, replicates: dict, ambiguous: bool = False) -> dict:
    """One quantization beside the reference: its figures, and (except for the reference) its differences.
    `ambiguous`: another entry of the set has the same name, so the hf backend's dtype (else the model id)
    is added to it."""
    edge = entry.get("edge") or {}
    name = variant_name(entry)
    if ambiguous:
        name += f" ({(entry.get('settings') or {}).get('dtype') or entry['model_id']})"
    size = edge.get("size_bytes") or (entry.get("weights") or {}).get("size_bytes")
    return {"entry_id": entry["entry_id"], "name": name, "quantization": entry.get("quantization"),
            "reference": entry is ref, "size_bytes": size, **{k: edge.get(k) for k in SIDE_BY_SIDE},
            "aggregate": entry["aggregate"], "aggregate_ci": entry["intervals"]["aggregate"],
            "differences": None if entry is ref else differences(entry, ref, replicates)}


def differences(entry: dict, ref: dict, replicates: dict) -> dict:
    """Aggregate and per-pillar (the pillars both have) differences entry - reference, tested by
    `uncertainty.compare`: paired when both were evaluated on the same items of the tasks involved."""
    def test(pillar: str | None, tasks: set[str]) -> dict:
        sides = []
        for e in (entry, ref):
            reps, cis = replicates[e["entry_id"]], e["intervals"]
            sides.append({"entry_id": e["entry_id"],
                          "aggregate": e["aggregate"] if pillar is None else e["pillars"][pillar],
                          "ci": cis["aggregate"] if pillar is None else cis["pillars"].get(pillar),
                          "replicates": reps["aggregate"] if pillar is None else reps["pillars"].get(pillar),
                          "items": {t: reps["items"].get(t) for t in sorted(tasks)}})
        result = uncertainty.compare(*sides)
        return {k: result[k] for k in TEST_KEYS}

    scored = entry["aggregate"] is not None and ref["aggregate"] is not None
    return {"aggregate": test(None, set(entry["tasks"]) | set(ref["tasks"])) if scored else None,
            "pillars": {p: test(p, {t for e in (entry, ref) for t, rec in e["tasks"].items() if rec["pillar"] == p})
                        for p in PILLARS if p in entry["pillars"] and p in ref["pillars"]}}
