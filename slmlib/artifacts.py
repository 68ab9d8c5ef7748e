"""Reading and writing JSON artifacts atomically (temp file, then rename)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: Path, text: str, overwrite: bool = True) -> Path:
    """Write `text` (UTF-8) to `path` through a temp file in the same folder and an atomic rename."""
    return write_bytes_atomic(path, text.encode("utf-8"), overwrite)


def write_bytes_atomic(path: Path, data: bytes, overwrite: bool = True, mode: int | None = None) -> Path:
    """Write `data` to `path` through a temp file in the same folder and an atomic rename (with
    `overwrite=False` an atomic link instead, raising FileExistsError when `path` exists). `mode` (e.g.
    0o600 for a private key) replaces the umask's permissions; the file never has wider ones."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask() if mode is None else mode)  # mkstemp makes 0600
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if `path` exists, even when another process just made it
            os.unlink(tmp)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def dumps(data: Any) -> str:
    """Canonical JSON text: sorted keys, 2-space indent, trailing newline (stable bytes)."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def write_json(path: Path, data: Any) -> Path:
    return write_text_atomic(path, dumps(data))


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `<path>.lock` (made if missing, never through a symbolic link) for the
    block: a read-check-write of a shared file (the ledger, the archive memory) by two processes at
    once then happens one after the other."""
    lock = Path(f"{path}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666 & ~_umask())
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def outputs_digest(rows: list[dict]) -> str:
    """SHA-256 of a task's per-item outputs (item id, response, value): equal runs have equal digests."""
    canon = [{"item_id": r["item_id"], "response": r["response"], "value": r["value"]} for r in rows]
    return hashlib.sha256(dumps(canon).encode()).hexdigest()


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    text = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows)
    return write_text_atomic(path, text)


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


# --- bounded reading of files that may be hostile (run folders, archives' contents, state files) ----------

def error_line(exc: BaseException) -> str:
    """An exception as one line without the machine's paths (an OSError: its strerror), for messages."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def read_bytes_bounded(path: Path, max_bytes: int, follow_symlinks: bool = True) -> bytes:
    """A regular file's bytes; raises ValueError for a FIFO, device or folder, a file over `max_bytes`,
    or (with `follow_symlinks=False`) a symbolic link. Never blocks on a FIFO, never reads past the cap."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | (0 if follow_symlinks else getattr(os, "O_NOFOLLOW", 0))
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if not follow_symlinks and os.path.islink(path):
            raise ValueError("is a symbolic link (not followed)") from exc
        raise
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("is not a regular file")
        if st.st_size > max_bytes:
            raise ValueError(f"is {st.st_size:,} bytes, over the {max_bytes:,}-byte cap")
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"is over the {max_bytes:,}-byte cap")
    return data


def _no_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _check_parsed(value: Any, max_depth: int) -> None:
    """Raise ValueError when lists/objects nest deeper than `max_depth` or a string holds a lone
    surrogate (which no UTF-8 file can hold); walks without recursion."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, (dict, list)):
            if depth + 1 > max_depth:
                raise ValueError(f"nests lists/objects deeper than {max_depth} levels")
            if isinstance(item, dict):
                for key in item:
                    _check_text(key)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("holds a lone surrogate (\\ud800-\\udfff) in a string") from None


def parse_json_bounded(text: str | bytes, max_depth: int) -> Any:
    """Strict JSON (no NaN or Infinity) nesting at most `max_depth` lists/objects; ValueError otherwise."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})") from None
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError(f"nests lists/objects deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise ValueError(f"is not valid JSON ({exc})") from None
    _check_parsed(value, max_depth)
    return value


def read_json_bounded(path: Path, max_bytes: int, max_depth: int, follow_symlinks: bool = True) -> Any:
    """`read_json` for outside input: a regular file of at most `max_bytes`, strict JSON nesting at most
    `max_depth` levels. Raises ValueError (or OSError) saying what is wrong, without the path."""
    return parse_json_bounded(read_bytes_bounded(path, max_bytes, follow_symlinks), max_depth)


def read_jsonl_bounded(path: Path, max_bytes: int, max_depth: int, follow_symlinks: bool = True) -> list:
    """`read_jsonl` for outside input (bounds as `read_json_bounded`); errors name the line."""
    data = read_bytes_bounded(path, max_bytes, follow_symlinks)
    rows = []
    for number, line in enumerate(data.split(b"\n"), 1):
        if line.strip():
            try:
                rows.append(parse_json_bounded(line, max_depth))
            except ValueError as exc:
                raise ValueError(f"line {number} {exc}") from None
    return rows
