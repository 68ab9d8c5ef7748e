"""What made an artifact: library versions, the environment's lock, code revision, machine (recorded by
every stage)."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import re
import subprocess
import uuid

from packaging.utils import canonicalize_name

from . import __version__, datapacks, paths

PACKAGES = ("lm_eval", "transformers", "torch", "datasets", "papermill", "nbconvert", "numpy", "pandas")


def versions() -> dict[str, str]:
    out = {"slmlib": __version__, "python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_revision() -> str | None:
    """The repository's commit (with `+dirty` when the tree has changes), if it is a checkout."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.REPO_ROOT, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=paths.REPO_ROOT, capture_output=True, text=True, timeout=5).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container or taskset may narrow)."""
    return len(os.sched_getaffinity(0))


def system_info() -> dict:
    """Hardware fingerprint: CPU, cores, memory, torch threads, OS."""
    info = {"cpu": cpu_model(), "cores": os.cpu_count(), "machine": platform.machine(),
            "os": platform.platform()}
    try:
        info["ram_gb"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        info["ram_gb"] = None
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        info["torch_threads"] = None
    return info


def machine_id() -> str:
    """A random id for this machine, made once and kept in the cache (`<cache>/machine-id`): runs of one
    machine share it, so a quorum can count distinct machines. It says nothing about the machine and,
    unlike a signature, proves nothing: anyone can write any id."""
    path = paths.cache_root() / "machine-id"
    new = uuid.uuid4().hex
    for _ in range(2):
        try:
            text = path.read_text(encoding="ascii").strip()
            if len(text) == 32 and all(c in "0123456789abcdef" for c in text):
                return text
            return new  # a damaged id file: this run's id is its own
        except (OSError, UnicodeDecodeError):
            pass
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "x", encoding="ascii") as fh:  # never over another process's id
                fh.write(new + "\n")
            return new
        except FileExistsError:
            continue  # another process made it first: read theirs
        except OSError:
            return new  # a read-only cache: this run's id is its own
    return new


def lock_sha256() -> str | None:
    """SHA-256 of requirements.lock, the environment `make setup` installs (None outside a checkout)."""
    try:
        return datapacks.sha256_file(paths.LOCK_FILE)
    except OSError:
        return None


def lock_pins(text: str) -> dict[str, tuple[str, list[str]]]:
    """A pip-compile lock's entries: canonical name -> (version, its SHA-256 hashes)."""
    pins: dict[str, tuple[str, list[str]]] = {}
    name = None
    for line in text.splitlines():
        if m := re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", line):
            name = canonicalize_name(m[1])
            pins[name] = (m[2], [])
        elif name and (h := re.search(r"--hash=sha256:([0-9a-f]{64})", line)):
            pins[name][1].append(h[1])
    return pins


def collect() -> dict:
    return {**versions(), "git_revision": git_revision(), "lock_sha256": lock_sha256(), "system": system_info()}
