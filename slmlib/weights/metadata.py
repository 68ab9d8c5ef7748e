"""Metadata of model weights without loading them (detect stage).

GGUF: key-values and tensor shapes from the file header (a small reader of its own:
`gguf.GGUFReader` parses every tokenizer array and takes ~17 s on Gemma 3's 262k-token
vocabulary, this takes well under a second). Hugging Face directories: config.json and
safetensors headers. The Hub's metadata is `weights.hub`.
"""

from __future__ import annotations

import json
import mmap
import struct
from pathlib import Path
from typing import Any

# GGUF value types: struct format of the scalars; 8 = string, 9 = array
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
MAX_ARRAY_KEPT = 64  # longer arrays (tokenizer vocabularies) are skipped, only their length kept


class MetadataError(ValueError):
    """The weights' metadata cannot be read."""


def read_gguf_header(path: Path) -> tuple[dict[str, Any], dict[str, list[int]], int]:
    """GGUF key-values (long arrays as their length), tensor shapes and the file type id."""
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        if buf[:4] != b"GGUF":
            raise MetadataError(f"{path}: not a GGUF file (bad magic)")
        try:
            return _parse_gguf(buf)
        except (struct.error, IndexError, UnicodeDecodeError, KeyError) as exc:
            raise MetadataError(f"{path}: truncated or corrupt GGUF header ({exc})") from None


def _parse_gguf(buf) -> tuple[dict[str, Any], dict[str, list[int]], int]:
    pos = 4

    def take(fmt: str):
        nonlocal pos
        (value,) = struct.unpack_from(fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return value

    def string() -> str:
        nonlocal pos
        n = take("<Q")
        pos += n
        if pos > len(buf):
            raise struct.error("string runs past the end of the file")
        return bytes(buf[pos - n:pos]).decode("utf-8")

    def value(kind: int):
        if kind == 8:
            return string()
        if kind == 9:
            item, count = take("<I"), take("<Q")
            items = [value(item) for _ in range(count)] if count <= MAX_ARRAY_KEPT else _skip(item, count)
            return items
        return take(_SCALARS[kind])

    def _skip(item: int, count: int) -> int:
        nonlocal pos
        if item == 8:
            for _ in range(count):
                pos += 8 + struct.unpack_from("<Q", buf, pos)[0]
        elif item in _SCALARS:
            pos += count * struct.calcsize(_SCALARS[item])
        else:
            raise KeyError(f"array of type {item}")
        return count

    version = take("<I")
    if version < 2:
        raise KeyError(f"GGUF version {version}")
    n_tensors, n_kv = take("<Q"), take("<Q")
    kv = {}
    for _ in range(n_kv):
        key = string()
        kv[key] = value(take("<I"))
    shapes = {}
    for _ in range(n_tensors):
        name = string()
        shapes[name] = [take("<Q") for _ in range(take("<I"))]
        take("<I"), take("<Q")  # tensor type, data offset
    return kv, shapes, kv.get("general.file_type")


def element_count(shapes) -> int:
    total = 0
    for shape in shapes:
        n = 1
        for dim in shape:
            n *= dim
        total += n
    return total


def gguf_metadata(path: Path) -> dict[str, Any]:
    """Architecture, context length, name, license, quantization and exact parameter count."""
    import gguf

    kv, shapes, file_type = read_gguf_header(Path(path))
    arch = kv.get("general.architecture")
    try:
        # llama.cpp's names without the prefix: F32, BF16, Q4_1 (as models.GGUF_FORMATS names them)
        name = gguf.LlamaFileType(file_type).name if file_type is not None else None
        quant = name.removeprefix("MOSTLY_").removeprefix("ALL_") if name else None
    except ValueError:
        quant = f"file_type_{file_type}"
    return {
        "architecture": arch, "context_length": kv.get(f"{arch}.context_length"),
        "name": kv.get("general.name"), "family": kv.get("general.basename"),
        "license": kv.get("general.license"), "quantization": quant, "parameter_count": element_count(shapes.values()),
        "has_chat_template": "tokenizer.chat_template" in kv,
    }


def safetensors_header(path: Path) -> dict[str, dict]:
    """Tensor name -> {dtype, shape, data_offsets} from a safetensors file's JSON header."""
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) != 8:
            raise MetadataError(f"{path}: not a safetensors file")
        (size,) = struct.unpack("<Q", raw)
        if size > 100_000_000:
            raise MetadataError(f"{path}: safetensors header of {size} bytes is implausible")
        try:
            header = json.loads(fh.read(size))
        except ValueError:
            raise MetadataError(f"{path}: unreadable safetensors header") from None
    return {k: v for k, v in header.items() if k != "__metadata__"}


def safetensors_shapes(path: Path) -> tuple[list[list[int]], set[str]]:
    """Tensor shapes and dtypes from a safetensors file's JSON header."""
    tensors = safetensors_header(path).values()
    return [t["shape"] for t in tensors], {t["dtype"] for t in tensors}


def hf_dir_metadata(path: Path) -> dict[str, Any]:
    """Metadata from config.json and exact parameter count from safetensors headers."""
    path = Path(path)
    try:
        config = json.loads((path / "config.json").read_text())
    except ValueError:
        raise MetadataError(f"{path / 'config.json'}: not valid JSON") from None
    shapes, dtypes = [], set()
    for f in sorted(path.glob("*.safetensors")):
        s, d = safetensors_shapes(f)
        shapes += s
        dtypes |= d
    tokenizer_config = path / "tokenizer_config.json"
    return {
        "architecture": config.get("model_type"),
        "context_length": config.get("max_position_embeddings"),
        "quantization": str(config.get("torch_dtype") or config.get("dtype") or ",".join(sorted(dtypes)) or "unknown"),
        "parameter_count": element_count(shapes) or None,
        "has_chat_template": tokenizer_config.exists() and "chat_template" in tokenizer_config.read_text(),
    }
