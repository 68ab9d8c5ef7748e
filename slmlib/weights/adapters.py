"""LoRA adapters: a submission's base model plus a PEFT adapter (detect and evaluate stages).

Detect reads the adapter without loading anything (`adapter_config.json` and the
safetensors header), checks it against the base (it names the base, its rank matches its
tensors, every adapted module exists in the base with matching shapes) and counts its
parameters. Evaluate verifies the adapter's digest, applies it to the loaded base with
peft and merges it (a plain transformers model for lm-eval's hf backend).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from .. import datapacks
from . import hub, metadata
from .files import Weights

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
# Hugging Face Llama module -> GGUF tensor name (llama.cpp's naming), to check a GGUF base
GGUF_LLAMA = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
              "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
              "mlp.down_proj": "ffn_down"}
HUB_FIX = "download the adapter (adapter_config.json, adapter_model.safetensors) and give adapter: {dir: PATH}"


class AdapterError(ValueError):
    """The adapter cannot be used; the message names the field and the fix."""


def local_dir(source: dict) -> tuple[Path, str | None]:
    """The adapter's folder on disk and its Hub commit (None for a local folder, whose path is
    absolute here); a Hub adapter is downloaded (its two files only), failing within seconds
    when the Hub is unreachable."""
    if "dir" in source:
        return Path(source["dir"]), None
    repo = source["hf_repo"]
    hub.require_hub(f"adapter.hf_repo {repo}", HUB_FIX)
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(repo, revision=source.get("revision"), etag_timeout=hub.HUB_TIMEOUT_S,
                                        allow_patterns=[CONFIG_FILE, WEIGHTS_FILE]))
    except Exception as exc:  # network, auth, missing repo or revision: one clear message
        raise AdapterError(f"adapter.hf_repo {repo}: {type(exc).__name__}: {str(exc)[:200]}; {HUB_FIX}") from None
    return folder, folder.name  # snapshots/<commit>


def read_adapter(path: Path) -> dict[str, Any]:
    """Config and tensors of a PEFT adapter folder; raises AdapterError naming what is missing."""
    where = f"adapter: {path}"
    if not (path / CONFIG_FILE).is_file():
        raise AdapterError(f"{where} has no {CONFIG_FILE}; a PEFT adapter folder holds {CONFIG_FILE} and "
                           f"{WEIGHTS_FILE} (peft's save_pretrained writes both)")
    if not (path / WEIGHTS_FILE).is_file():
        raise AdapterError(f"{where} has no {WEIGHTS_FILE}; save the adapter with safe_serialization=True")
    try:
        config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except ValueError:
        raise AdapterError(f"{where}: {CONFIG_FILE} is not valid JSON") from None
    try:
        tensors = {name: t["shape"] for name, t in metadata.safetensors_header(path / WEIGHTS_FILE).items()}
    except metadata.MetadataError as exc:
        raise AdapterError(f"adapter: {exc}") from None
    files = [path / CONFIG_FILE, path / WEIGHTS_FILE]
    return {"config": config if isinstance(config, dict) else {}, "tensors": tensors,
            "sha256": datapacks.digest_files(files, path), "size_bytes": sum(f.stat().st_size for f in files)}


def module_of(tensor: str) -> str:
    """`base_model.model.<module>.lora_A.weight` -> `<module>` (peft's saved names)."""
    return tensor.removeprefix("base_model.model.").split(".lora_")[0]


def base_shapes(weights: Weights) -> tuple[dict[str, list[int]] | None, str]:
    """Shape [out, in] of each base weight, keyed by the Hugging Face module name, and how they were read."""
    if weights.kind == "hf_dir":
        shapes = {}
        for f in sorted(Path(weights.path).glob("*.safetensors")):
            shapes.update({n.removesuffix(".weight"): t["shape"] for n, t in metadata.safetensors_header(f).items()})
        return shapes, "safetensors headers"
    if weights.kind == "gguf":
        _, gguf, _ = metadata.read_gguf_header(Path(weights.path))
        shapes = {}
        for name, dims in gguf.items():  # GGUF stores [in, out]
            m = re.fullmatch(r"blk\.(\d+)\.(\w+)\.weight", name)
            hf = next((k for k, v in GGUF_LLAMA.items() if m and v == m.group(2)), None)
            if hf:
                shapes[f"model.layers.{m.group(1)}.{hf}"] = list(reversed(dims))
        return shapes, "GGUF header (llama tensor names)"
    return None, "not checked for a Hub base (its tensors are not read at detect)"


def _norm(name: str) -> str:
    """A model name reduced for comparison: last path part, before a file's first dot, alphanumerics only."""
    return re.sub(r"[^a-z0-9]", "", Path(str(name)).name.split(".")[0].lower())


def names_the_base(base_name: str, weights: Weights, detected: dict) -> bool:
    """Whether the adapter's `base_model_name_or_path` names the submission's base weights."""
    if weights.kind != "hub" and Path(base_name).expanduser().resolve() == Path(weights.path).resolve():
        return True
    candidates = [weights.path, detected.get("name")] + ([Path(weights.path).parent.name] if weights.kind == "hf_dir" else [])
    return _norm(base_name) in {_norm(c) for c in candidates if c}


def check(meta: dict, weights: Weights, detected: dict) -> tuple[list[str], list[str], dict]:
    """Errors, warnings and the card's adapter facts (rank, alpha, targets, parameter count)."""
    config, tensors = meta["config"], meta["tensors"]
    errors, warnings = [], []
    if config.get("peft_type") != "LORA":
        errors.append(f"adapter: peft_type {config.get('peft_type')!r}; only LoRA adapters (peft_type LORA) are supported")
    rank = config.get("r")
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        errors.append(f"adapter: r (the LoRA rank) is {rank!r} in {CONFIG_FILE}; it must be a positive integer")
    targets = config.get("target_modules")
    if not targets:
        errors.append(f"adapter: target_modules is empty in {CONFIG_FILE}; name the modules the adapter adapts")
    lora = {n: s for n, s in tensors.items() if ".lora_A." in n or ".lora_B." in n}
    if not lora:
        errors.append(f"adapter: {WEIGHTS_FILE} holds no LoRA tensors (lora_A/lora_B)")
    flat = sorted(n for n, s in lora.items() if len(s) != 2)
    if flat:
        errors.append(f"adapter: tensor {flat[0][:80]} has shape {lora[flat[0]]}; LoRA tensors are matrices (2 dimensions)")
        lora = {n: s for n, s in lora.items() if len(s) == 2}
    if isinstance(rank, int) and not config.get("rank_pattern"):
        errors += [f"adapter: tensor {n} has rank {s[0]}, but r is {rank} in {CONFIG_FILE}"
                   for n, s in sorted(lora.items()) if ".lora_A." in n and s[0] != rank][:3]
    base_name = config.get("base_model_name_or_path")
    if not base_name:
        warnings.append(f"adapter: {CONFIG_FILE} does not name its base model (base_model_name_or_path)")
    elif not names_the_base(base_name, weights, detected):
        errors.append(f"adapter: base_model_name_or_path {base_name!r} does not name the submission's base "
                      f"({weights.path}); give the weights the adapter was trained on, or fix "
                      f"base_model_name_or_path in {CONFIG_FILE}")
    shapes, how = base_shapes(weights)
    llama_named = all(re.fullmatch(r"model\.layers\.\d+\.(self_attn|mlp)\.\w+", module_of(n)) for n in lora)
    if shapes is None:
        warnings.append(f"adapter: target modules {how}")
    elif weights.kind == "gguf" and not llama_named:
        warnings.append("adapter: target modules not checked: their names are not the llama layout the GGUF "
                        "header is mapped to (model.layers.N.self_attn|mlp.*)")
    else:
        errors += module_errors(lora, shapes, how)[:5]
    card = {"peft_type": config.get("peft_type"), "r": rank, "lora_alpha": config.get("lora_alpha"),
            "target_modules": sorted(map(str, targets)) if isinstance(targets, list) else targets,
            "base_model_name_or_path": base_name, "modules": len({module_of(n) for n in lora}),
            "parameter_count": metadata.element_count(tensors.values())}
    return errors, warnings, card


def module_errors(lora: dict[str, list[int]], shapes: dict[str, list[int]], how: str) -> list[str]:
    """Adapted modules missing from the base, or whose LoRA shapes do not fit the base weight [out, in]."""
    errors = []
    for name, shape in sorted(lora.items()):
        module = module_of(name)
        base = shapes.get(module)
        if base is None:
            errors.append(f"adapter: module {module} (tensor {name}) is not in the base model ({how})")
        elif len(base) != 2 or (".lora_A." in name and shape[1] != base[1]) or (".lora_B." in name and shape[0] != base[0]):
            errors.append(f"adapter: tensor {name} has shape {shape}, which does not fit the base weight "
                          f"{module} of shape {base} (out, in)")
    return errors


def apply(model, adapter: dict):
    """The base `model` with the card's adapter applied and merged; checks the adapter's digest first.
    Returns (model, seconds)."""
    from peft import PeftModel

    path = Path(adapter["path"])
    meta = read_adapter(path)
    if meta["sha256"] != adapter["sha256"]:
        raise AdapterError(f"adapter: {path} changed since detect (SHA-256 {meta['sha256']}, the card says "
                           f"{adapter['sha256']}); run the detect stage again")
    start = time.perf_counter()
    merged = PeftModel.from_pretrained(model, str(path)).merge_and_unload()
    merged.eval()
    return merged, time.perf_counter() - start
