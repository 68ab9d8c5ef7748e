"""The Hugging Face Hub: whether it can be reached, and a repo's metadata without downloading weights.

`huggingface_hub` model info and config, with short timeouts; `parse_hub_info` is the pure part.
Offline (the default here) every caller fails within seconds with a message naming the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .metadata import MetadataError

HUB_TIMEOUT_S = 5.0

QUANT_FORMATS = {".gguf": "gguf", ".safetensors": "safetensors", ".bin": "pytorch", ".onnx": "onnx"}


def parse_hub_info(info: dict[str, Any], config: dict[str, Any] | None) -> dict[str, Any]:
    """Detected fields from a Hub model_info (as a dict, with `siblings` and `cardData`) and config.

    Pure: tested on hand-written dicts. `weights_sha256` digests the LFS SHA-256 of the
    safetensors files, so the same revision gives the same id as a duplicate check key.
    """
    config = config if isinstance(config, dict) else {}  # a config.json that is a list or a number: nothing detected
    files = [s for s in info.get("siblings") or [] if isinstance(s, dict) and isinstance(s.get("rfilename"), str)]
    weights = sorted((s["rfilename"], (s.get("lfs") or {}).get("sha256", "")) for s in files
                     if s.get("rfilename", "").endswith(".safetensors"))
    formats = sorted({fmt for s in files for ext, fmt in QUANT_FORMATS.items() if s.get("rfilename", "").endswith(ext)})
    card = info.get("cardData") or {}
    license_ = card.get("license") or next((t.split(":", 1)[1] for t in info.get("tags") or []
                                            if t.startswith("license:")), None)
    total = (info.get("safetensors") or {}).get("total")
    return {
        "architecture": config.get("model_type"), "context_length": config.get("max_position_embeddings"),
        "name": info.get("id", "").split("/")[-1] or None, "license": license_,
        "quantization": str(config.get("torch_dtype") or config.get("dtype") or "unknown"),
        "parameter_count": total, "revision": info.get("sha"), "formats": formats,
        "has_chat_template": None,
        "weights_sha256": hashlib.sha256(json.dumps(weights).encode()).hexdigest() if weights else None,
        "size_bytes": sum((s.get("lfs") or {}).get("size", 0) for s in files
                          if s.get("rfilename", "").endswith(".safetensors")) or None,
    }


HUB_URL = "https://huggingface.co"
OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


class HubUnreachable(RuntimeError):
    """The Hugging Face Hub is needed but cannot be reached; the message names the fix."""


def hub_unreachable_reason(timeout: float = 3.0) -> str | None:
    """Why the Hub cannot be used from here (an offline variable is set, or no HTTPS answer from
    huggingface.co within `timeout` seconds, name lookup included), or None when it can. An HTTPS
    request rather than a bare TCP connect: some sandboxes accept any TCP connection."""
    import threading
    import urllib.error
    import urllib.request

    set_vars = [v for v in OFFLINE_VARS if os.environ.get(v, "").lower() in ("1", "true", "yes", "on")]
    if set_vars:
        return f"{', '.join(set_vars)} set"
    outcome: list[str] = []

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(HUB_URL, method="HEAD"), timeout=timeout).close()
            outcome.append("")
        except urllib.error.HTTPError:  # the server answered
            outcome.append("")
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            outcome.append(f"no answer from {HUB_URL} ({type(reason).__name__}: {reason})")

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        return f"no answer from {HUB_URL} within {timeout:g} s"
    return outcome[0] or None


def require_hub(what: str, fix: str) -> None:
    """Raise HubUnreachable naming `what` needs the Hub, why it cannot be reached, and `fix`."""
    reason = hub_unreachable_reason()
    if reason:
        raise HubUnreachable(f"{what} needs the Hugging Face Hub, which is not reachable here ({reason}); {fix}")


def hub_metadata(repo: str, revision: str | None) -> dict[str, Any]:
    """Detected fields for a Hub repo; fails within seconds when offline, saying what to do."""
    hint = ("the Hub is not reachable from here; point the submission at local weights instead: "
            "weights: {gguf: PATH}, {dir: PATH} (config.json + safetensors) or {package: DIST, file: PATH}")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise MetadataError(f"weights.hf_repo {repo}: HF_HUB_OFFLINE is set; {hint}")
    from huggingface_hub import HfApi, hf_hub_download

    try:
        info = HfApi().model_info(repo, revision=revision, files_metadata=True, timeout=HUB_TIMEOUT_S)
        config_file = hf_hub_download(repo, "config.json", revision=info.sha, etag_timeout=HUB_TIMEOUT_S)
        config = json.loads(Path(config_file).read_text())
    except Exception as exc:  # network, auth, missing repo: one clear message
        raise MetadataError(f"weights.hf_repo {repo}: {type(exc).__name__}: {str(exc)[:200]}; {hint}") from None
    as_dict = {"id": info.id, "sha": info.sha, "tags": info.tags, "cardData": dict(info.card_data or {}),
               "safetensors": {"total": info.safetensors.total} if info.safetensors else None,
               "siblings": [{"rfilename": s.rfilename, "size": s.size,
                             "lfs": {"sha256": s.lfs.sha256, "size": s.lfs.size} if s.lfs else None}
                            for s in info.siblings or []]}
    return parse_hub_info(as_dict, config)
