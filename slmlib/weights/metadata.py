"""Metadata of model weights without loading them (detect stage).

GGUF: key-values and tensor shapes from the file header (a small reader of its own:
`gguf.GGUFReader` parses every tokenizer array and takes ~17 s on Gemma 3's 262k-token
vocabulary, this takes well under a second). Hugging Face directories: config.json and
safetensors headers. The Hub's metadata is `weights.hub`.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from pathlib import Path
from typing import Any

# GGUF value types: struct format of the scalars; 8 = string, 9 = array
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
MAX_ARRAY_KEPT = 64  # longer arrays (tokenizer vocabularies) are skipped, only their length kept
MAX_ARRAY_NESTING = 8  # arrays of arrays: deeper is corrupt (and would exhaust the stack)
GGML_MAX_DIMS = 4  # dimensions of a tensor (llama.cpp's limit)
MAX_HEADER_BYTES = 100_000_000  # a safetensors JSON header
# safetensors dtypes -> bits per element (the format's list; F4 and F6 pack several elements per byte)
SAFETENSORS_BITS = {"BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16, "U16": 16,
                    "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "F64": 64, "I64": 64, "U64": 64,
                    "C64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6}


class MetadataError(ValueError):
    """The weights' metadata cannot be read."""


def _regular_file(path: Path) -> None:
    """Refuse what is not a regular file before opening it: a FIFO would wait for a writer forever, a
    device (/dev/zero) never ends, a folder cannot be read."""
    if not path.is_file():
        what = "does not exist" if not path.exists() and not path.is_symlink() else \
            "is not a regular file (a folder, FIFO, device or broken link)"
        raise MetadataError(f"{path}: {what}; weights must be regular files")


def read_gguf_header(path: Path) -> tuple[dict[str, Any], dict[str, list[int]], int]:
    """GGUF key-values (long arrays as their length), tensor shapes and the file type id. Raises
    MetadataError naming the file when the header is corrupt or its tensors do not fit in the file."""
    path = Path(path)
    _regular_file(path)
    try:
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size == 0:
                raise MetadataError(f"{path}: empty file (0 bytes), not a GGUF file")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                if buf[:4] != b"GGUF":
                    raise MetadataError(f"{path}: not a GGUF file (bad magic)")
                try:
                    kv, shapes, types, data_bytes = _parse_gguf(buf)
                except (struct.error, IndexError, UnicodeDecodeError, KeyError, ValueError, OverflowError,
                        MemoryError) as exc:
                    raise MetadataError(f"{path}: truncated or corrupt GGUF header ({str(exc)[:200]})") from None
    except OSError as exc:
        raise MetadataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    _check_gguf_data(path, shapes, types, data_bytes)
    return kv, shapes, kv.get("general.file_type")


def _parse_gguf(buf) -> tuple[dict[str, Any], dict[str, list[int]], dict[str, tuple[int, int]], int]:
    """Key-values, tensor shapes, each tensor's (ggml type, data offset), and the bytes after the header's
    aligned end (where the tensor data lives)."""
    pos = 4

    def take(fmt: str):
        nonlocal pos
        (value,) = struct.unpack_from(fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return value

    def string() -> str:
        nonlocal pos
        n = take("<Q")
        if pos + n > len(buf):
            raise struct.error("string runs past the end of the file")
        pos += n
        return bytes(buf[pos - n:pos]).decode("utf-8")

    def value(kind: int, depth: int = 0):
        if kind == 8:
            return string()
        if kind == 9:
            if depth >= MAX_ARRAY_NESTING:
                raise ValueError(f"arrays nested deeper than {MAX_ARRAY_NESTING} levels")
            item, count = take("<I"), take("<Q")
            return [value(item, depth + 1) for _ in range(count)] if count <= MAX_ARRAY_KEPT else _skip(item, count)
        return take(_SCALARS[kind])

    def _skip(item: int, count: int) -> int:
        nonlocal pos
        if item == 8:
            for _ in range(count):
                pos += 8 + struct.unpack_from("<Q", buf, pos)[0]
                if pos > len(buf):
                    raise struct.error("array runs past the end of the file")
        elif item in _SCALARS:
            pos += count * struct.calcsize(_SCALARS[item])
            if pos > len(buf):
                raise struct.error("array runs past the end of the file")
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
        if key in kv:
            raise ValueError(f"key {key[:80]!r} given twice")
        kv[key] = value(take("<I"))
    shapes, types = {}, {}
    for _ in range(n_tensors):
        name = string()
        if name in shapes:
            raise ValueError(f"tensor {name[:80]!r} given twice")
        n_dims = take("<I")
        if n_dims > GGML_MAX_DIMS:
            raise ValueError(f"tensor {name[:80]!r} has {n_dims} dimensions (at most {GGML_MAX_DIMS})")
        shapes[name] = [take("<Q") for _ in range(n_dims)]
        types[name] = (take("<I"), take("<Q"))  # ggml type, data offset
    alignment = kv.get("general.alignment", 32)
    if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment < 1 or alignment & (alignment - 1):
        raise ValueError(f"general.alignment {alignment!r} is not a power of two")
    data_start = -(-pos // alignment) * alignment
    return kv, shapes, types, max(0, len(buf) - data_start)


def _check_gguf_data(path: Path, shapes: dict[str, list[int]], types: dict[str, tuple[int, int]],
                     data_bytes: int) -> None:
    """Every tensor's data lies inside the file: weights that cannot hold the parameters their header counts
    (a header-only file, a tensor past the end) are refused."""
    import gguf

    needed = 0
    for name, shape in shapes.items():
        kind, offset = types[name]
        try:
            block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(kind)]
        except (ValueError, KeyError):
            raise MetadataError(f"{path}: tensor {name[:80]!r} has ggml type {kind}, which llama.cpp's gguf "
                                "package does not know") from None
        n = element_count([shape])
        if n % block:
            raise MetadataError(f"{path}: tensor {name[:80]!r} of shape {shape} does not fill whole blocks of "
                                f"{block} elements of its type")
        needed = max(needed, offset + n // block * size)
    if needed > data_bytes:
        count = element_count(shapes.values())
        raise MetadataError(f"{path}: the header counts {count:,} parameters in tensors needing {needed:,} bytes "
                            f"of data, but the file holds {data_bytes:,} bytes after its header; these weights "
                            "cannot hold the parameters they declare")


def element_count(shapes) -> int:
    total = 0
    for shape in shapes:
        n = 1
        for dim in shape:
            n *= dim
        total += n
    return total


def _typed(value: Any, kind: type) -> Any:
    """`value` when it has the type a card field needs (a positive int for int), else None."""
    if kind is int:
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
    return value if isinstance(value, kind) else None


def gguf_metadata(path: Path) -> dict[str, Any]:
    """Architecture, context length, name, license, quantization and exact parameter count."""
    import gguf

    kv, shapes, file_type = read_gguf_header(Path(path))
    arch = _typed(kv.get("general.architecture"), str)
    try:
        # llama.cpp's names without the prefix: F32, BF16, Q4_1 (as models.GGUF_FORMATS names them)
        name = gguf.LlamaFileType(file_type).name if file_type is not None else None
        quant = name.removeprefix("MOSTLY_").removeprefix("ALL_") if name else None
    except (ValueError, TypeError):
        quant = f"file_type_{str(file_type)[:20]}"
    return {
        "architecture": arch, "context_length": _typed(kv.get(f"{arch}.context_length"), int) if arch else None,
        "name": _typed(kv.get("general.name"), str), "family": _typed(kv.get("general.basename"), str),
        "license": _typed(kv.get("general.license"), str), "quantization": quant,
        "parameter_count": element_count(shapes.values()),
        "has_chat_template": "tokenizer.chat_template" in kv,
    }


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key[:80]!r} given twice")
        out[key] = value
    return out


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def safetensors_header(path: Path) -> dict[str, dict]:
    """Tensor name -> {dtype, shape, data_offsets} from a safetensors file's JSON header, checked as the
    safetensors library checks it (known dtypes, shapes of non-negative integers, each tensor's bytes
    inside the file): a header the loader would refuse, or weights too small for what their header
    counts, raise MetadataError naming the file."""
    path = Path(path)
    _regular_file(path)
    try:
        with open(path, "rb") as fh:
            file_size = os.fstat(fh.fileno()).st_size
            raw = fh.read(8)
            if len(raw) != 8:
                raise MetadataError(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
            (size,) = struct.unpack("<Q", raw)
            if size > MAX_HEADER_BYTES:
                raise MetadataError(f"{path}: safetensors header of {size} bytes is implausible")
            if 8 + size > file_size:
                raise MetadataError(f"{path}: safetensors header of {size} bytes runs past the end of the "
                                    f"{file_size}-byte file")
            try:
                header = json.loads(fh.read(size), object_pairs_hook=_no_duplicates)
            except (ValueError, RecursionError) as exc:
                raise MetadataError(f"{path}: unreadable safetensors header ({str(exc)[:120]})") from None
    except OSError as exc:
        raise MetadataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not isinstance(header, dict):
        raise MetadataError(f"{path}: safetensors header is a JSON {type(header).__name__}, not an object of tensors")
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    data_bytes = file_size - 8 - size
    for name, t in tensors.items():
        where = f"{path}: tensor {name[:80]!r}"
        if not isinstance(t, dict):
            raise MetadataError(f"{where} is a JSON {type(t).__name__}, not {{dtype, shape, data_offsets}}")
        dtype, shape, offsets = t.get("dtype"), t.get("shape"), t.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in SAFETENSORS_BITS:
            raise MetadataError(f"{where}: dtype {str(dtype)[:20]!r} is not a safetensors dtype")
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise MetadataError(f"{where}: shape {str(shape)[:60]} is not a list of non-negative integers")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)
                and offsets[0] <= offsets[1]):
            raise MetadataError(f"{where}: data_offsets {str(offsets)[:60]} is not [begin, end] with "
                                "0 <= begin <= end")
        needed = -(-element_count([shape]) * SAFETENSORS_BITS[dtype] // 8)
        if offsets[1] - offsets[0] != needed:
            raise MetadataError(f"{where}: shape {shape} of {dtype} needs {needed:,} bytes, but its data_offsets "
                                f"span {offsets[1] - offsets[0]:,}")
        if offsets[1] > data_bytes:
            raise MetadataError(f"{where}: its data ends at byte {offsets[1]:,} of the data, but the file holds "
                                f"{data_bytes:,} bytes of data; these weights cannot hold the parameters "
                                "their header counts")
    return tensors


def safetensors_shapes(path: Path) -> tuple[list[list[int]], set[str]]:
    """Tensor shapes and dtypes from a safetensors file's JSON header."""
    tensors = safetensors_header(path).values()
    return [t["shape"] for t in tensors], {t["dtype"] for t in tensors}


def hf_dir_metadata(path: Path) -> dict[str, Any]:
    """Metadata from config.json and exact parameter count from safetensors headers."""
    path = Path(path)
    config_file = path / "config.json"
    _regular_file(config_file)
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (ValueError, RecursionError):
        raise MetadataError(f"{config_file}: not valid JSON") from None
    except OSError as exc:
        raise MetadataError(f"{config_file}: cannot be read ({exc.strerror or exc})") from None
    if not isinstance(config, dict):
        raise MetadataError(f"{config_file}: a JSON {type(config).__name__}, not an object of settings "
                            "(model_type, max_position_embeddings, ...)")
    shapes, dtypes, files = [], set(), sorted(path.glob("*.safetensors"))
    for f in files:
        s, d = safetensors_shapes(f)
        shapes += s
        dtypes |= d
    tokenizer_config = path / "tokenizer_config.json"
    try:
        has_template = tokenizer_config.is_file() and "chat_template" in tokenizer_config.read_text(errors="replace")
    except OSError:
        has_template = False
    dtype = config.get("torch_dtype") or config.get("dtype")
    return {
        "architecture": _typed(config.get("model_type"), str),
        "context_length": _typed(config.get("max_position_embeddings"), int),
        "quantization": (dtype if isinstance(dtype, str) else None) or ",".join(sorted(dtypes)) or "unknown",
        "parameter_count": element_count(shapes) if files else None,
        "has_chat_template": has_template,
    }
