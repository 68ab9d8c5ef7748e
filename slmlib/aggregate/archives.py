"""Archives of run folders from other machines (aggregate stage): examined once, extracted safely.

Each archive's SHA-256 and outcome are remembered in `outputs/archive_intake.json` (`INTAKE_FILE`);
extraction takes regular files and folders only (no links, no `..` or absolute names) and stops at
`ARCHIVE_MAX_BYTES` counted as bytes are written and at `ARCHIVE_MAX_MEMBERS` members.
`reconcile.take_archive` decides what to take in.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import lzma
import os
import stat
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from .. import artifacts

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip")
ARCHIVE_MAX_BYTES = 512 << 20  # uncompressed bytes per archive, counted as they are written
ARCHIVE_MAX_MEMBERS = 20_000  # files and folders per archive
ARCHIVE_FILE_MAX_BYTES = 512 << 20  # the archive file itself (it is hashed whole)
INTAKE_FILE = "archive_intake.json"
INTAKE_VERSION = 1
TRANSIENT = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOMEM, errno.EACCES, errno.EROFS, errno.EMFILE}
ARCHIVE_ERRORS = (ValueError, OSError, EOFError, RuntimeError, NotImplementedError, tarfile.TarError,
                  zipfile.BadZipFile, zlib.error, lzma.LZMAError)  # what a hostile archive can raise


class IntakeError(ValueError):
    """The archive memory (`INTAKE_FILE`) is damaged: no archive is taken in until it is repaired."""


def read_intake(path: Path) -> dict:
    """The archive memory: SHA-256 -> {"name", "outcome": "taken"|"rejected", "runs", "rejected"}
    (empty when the file does not exist yet). Raises IntakeError naming the file when it is damaged."""
    if not os.path.lexists(path):
        return {"schema_version": INTAKE_VERSION, "archives": {}}
    try:
        memory = artifacts.read_json_bounded(path, 64 << 20, 8)
        problem = _intake_problem(memory)
    except (OSError, ValueError) as exc:
        problem = artifacts.error_line(exc)
    if problem:
        raise IntakeError(f"{path}: the memory of archives already examined is damaged ({problem}); restore it, or "
                          f"delete it to have the next aggregate examine every archive in {path.parent} again")
    return memory


def _intake_problem(memory) -> str | None:
    if not isinstance(memory, dict) or memory.get("schema_version") != INTAKE_VERSION \
            or not isinstance(memory.get("archives"), dict):
        return f"not an object with schema_version {INTAKE_VERSION} and archives"
    for digest, record in memory["archives"].items():
        ok = (len(digest) == 64 and all(c in "0123456789abcdef" for c in digest) and isinstance(record, dict)
              and record.get("outcome") in ("taken", "rejected") and isinstance(record.get("name"), str)
              and isinstance(record.get("runs"), list) and all(isinstance(r, str) for r in record["runs"])
              and isinstance(record.get("rejected"), list)
              and all(isinstance(r, dict) and isinstance(r.get("run_id"), str) and isinstance(r.get("reason"), str)
                      for r in record["rejected"]))
        if not ok:
            return f"archives/{digest[:80]}: not a record of an examined archive"
    return None


def _open_archive(archive: Path):
    """The archive opened for reading: a regular file (never blocks on a FIFO) within `ARCHIVE_FILE_MAX_BYTES`."""
    fh = os.fdopen(os.open(archive, os.O_RDONLY | os.O_NONBLOCK), "rb")
    st = os.fstat(fh.fileno())
    problem = "not a regular file" if not stat.S_ISREG(st.st_mode) else \
        f"{st.st_size:,} bytes, over the {ARCHIVE_FILE_MAX_BYTES:,}-byte cap for an archive" \
        if st.st_size > ARCHIVE_FILE_MAX_BYTES else None
    if problem:
        fh.close()
        raise ValueError(problem)
    return fh


def archive_digest(archive: Path) -> str:
    """SHA-256 of an archive file (regular files only, at most `ARCHIVE_FILE_MAX_BYTES`)."""
    with _open_archive(archive) as fh:
        digest = hashlib.sha256()
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def safe_member(name: str) -> PurePosixPath:
    """An archive member name as a relative path; raises on absolute paths and `..`."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts or "\\" in name or "\0" in name:
        raise ValueError(f"unsafe member path {name[:200]!r}")
    return path


class _Budget:
    """Bytes and members left for one archive; raises ValueError the moment either runs out."""

    def __init__(self, max_bytes: int, max_members: int, what: str = "bytes uncompressed"):
        self.max_bytes, self.max_members, self.what, self.bytes, self.members = max_bytes, max_members, what, 0, 0

    def member(self) -> None:
        self.members += 1
        if self.members > self.max_members:
            raise ValueError(f"more than {self.max_members:,} members")

    def spend(self, n: int) -> None:
        self.bytes += n
        if self.bytes > self.max_bytes:
            raise ValueError(f"more than {self.max_bytes:,} {self.what}")


class _CountingReader:
    """A decompressed stream that charges every byte read (headers included) to a budget."""

    def __init__(self, raw, budget: _Budget):
        self.raw, self.budget = raw, budget

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size if size is not None and size >= 0 else 1 << 20)
        self.budget.spend(len(data))
        return data


def extract_safely(archive: Path, dest: Path, max_bytes: int | None = None,
                   max_members: int | None = None) -> None:
    """Extract regular files and folders only: no links or devices, no path traversal, size and count capped.

    Bytes are counted as each member is written, and extraction stops at the cap (`max_bytes`,
    default `ARCHIVE_MAX_BYTES`) or at `max_members` (default `ARCHIVE_MAX_MEMBERS`) members,
    with what was written left in `dest` for the caller to delete.
    """
    budget = _Budget(ARCHIVE_MAX_BYTES if max_bytes is None else max_bytes,
                     ARCHIVE_MAX_MEMBERS if max_members is None else max_members)
    if archive.name.endswith(".zip"):
        with _open_archive(archive) as fh:
            _check_zip_directory(fh, budget.max_members)
            with zipfile.ZipFile(fh) as zf:
                for info in zf.infolist():
                    budget.member()
                    if stat.S_ISLNK(info.external_attr >> 16):
                        raise ValueError(f"{info.filename[:200]}: links are not accepted")
                    if info.file_size > budget.max_bytes - budget.bytes:
                        raise ValueError(f"more than {budget.max_bytes:,} bytes uncompressed")
                    _write_member(dest, safe_member(info.filename), None if info.is_dir() else zf.open(info), budget)
        return
    # the whole decompressed stream is charged too: tar headers (pax, long names) are read into memory
    stream_budget = _Budget(budget.max_bytes + 4096 * (budget.max_members + 3), budget.max_members,
                            "bytes uncompressed, tar headers included")
    with _open_archive(archive) as fh, gzip.GzipFile(fileobj=fh, mode="rb") as gz, \
            tarfile.open(fileobj=_CountingReader(gz, stream_budget), mode="r|") as tar:
        for member in tar:
            budget.member()
            if not (member.isfile() or member.isdir()):
                raise ValueError(f"{member.name[:200]}: only regular files and folders are accepted")
            if member.size > budget.max_bytes - budget.bytes:
                raise ValueError(f"more than {budget.max_bytes:,} bytes uncompressed")
            _write_member(dest, safe_member(member.name), tar.extractfile(member) if member.isfile() else None,
                          budget)


def _check_zip_directory(fh, max_members: int) -> None:
    """Refuse a zip whose end record announces more than `max_members` entries or a central directory
    too large for them, before `zipfile` reads that directory into memory."""
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    fh.seek(max(0, size - (1 << 16) - 22))
    tail = fh.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise ValueError("not a zip file (no end of central directory record)")
    entries, directory_size = struct.unpack("<xxxxxxxxxxHI", tail[at:at + 16])
    if entries > max_members or directory_size > max_members * 512:
        raise ValueError(f"more than {max_members:,} members")
    fh.seek(0)


def _write_member(dest: Path, rel: PurePosixPath, source, budget: _Budget) -> None:
    """Create a folder, or copy a member's bytes into a new file, charging each chunk before it is written."""
    out = dest.joinpath(*rel.parts)
    if source is None:
        out.mkdir(parents=True, exist_ok=True)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    with source, open(out, "wb") as fh:
        while chunk := source.read(1 << 16):
            budget.spend(len(chunk))
            fh.write(chunk)
