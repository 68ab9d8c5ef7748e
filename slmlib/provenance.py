"""What made an artifact: library versions, code revision, machine (recorded by every stage)."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import subprocess

from . import __version__, paths

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


def collect() -> dict:
    return {**versions(), "git_revision": git_revision(), "system": system_info()}
