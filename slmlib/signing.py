"""Signed run folders: who made a run, and that nothing changed since (issue 18).

A contributor makes an Ed25519 key pair once (`python -m slmlib keys new`, `new_key`) and sends a run as
an archive whose folder holds `signature.json` (`SIGNATURE_FILE`, made by `pack_run`): the manifest (the
run id and the SHA-256 of every other file, by path inside the folder), the signer's public key and the
Ed25519 signature of the manifest's canonical JSON. Maintainers list the keys they trust in a reviewed
file (`params/contributors.yaml`, read by `read_contributors`); the aggregate checks a folder against it
with `check_signature`. The cryptography is `cryptography`'s Ed25519, nothing home-made.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import stat
import tarfile
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from . import artifacts, params, paths

SIGNATURE_FILE = "signature.json"
SIGNATURE_VERSION = 1
CONTRIBUTORS_FILE = paths.PARAMS_DIR / "contributors.yaml"
DEFAULT_KEY = Path.home() / ".config" / "slm-study" / "signing.key"
PUBLIC_KEY = re.compile(r"^ed25519:[0-9a-f]{64}$")
KEY_MAX_BYTES = 4096
CONTRIBUTORS_MAX_BYTES = 1 << 20
SIGNATURE_MAX_BYTES = 4 << 20  # signature.json; the manifest lists every file of the run
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class SigningError(ValueError):
    """A key, a contributors file or a run folder that cannot be signed or checked; the message says why."""


def public_key_text(key: Ed25519PublicKey) -> str:
    """The form keys take in files and messages: `ed25519:` and the 32 raw bytes in hex."""
    return "ed25519:" + key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def new_key(path: Path = DEFAULT_KEY) -> tuple[Path, str]:
    """Write a new private key to `path` (mode 0600, never over an existing file, never inside the
    repository) and its public key to `path` + `.pub`; return the private key's path and the public key."""
    path = Path(path).expanduser().absolute()
    if path.is_relative_to(paths.REPO_ROOT.absolute()):
        raise SigningError(f"{path}: a private key must not live inside the repository (it could be committed); "
                           f"choose a path outside {paths.REPO_ROOT}, for example {DEFAULT_KEY}")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise SigningError(f"{path} already exists: keep that key, or choose another path with --out") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public = public_key_text(private.public_key())
    artifacts.write_text_atomic(Path(f"{path}.pub"), public + "\n")
    return path, public


def load_key(path: Path) -> Ed25519PrivateKey:
    """A private key written by `new_key`: a regular file only its owner can read, holding an Ed25519 key."""
    path = Path(path).expanduser()
    try:
        info = os.stat(path, follow_symlinks=False)
    except OSError as exc:
        raise SigningError(f"--sign {path}: {artifacts.error_line(exc)}; make a key with "
                           "`python -m slmlib keys new`") from None
    if not stat.S_ISREG(info.st_mode):
        raise SigningError(f"--sign {path}: not a regular file")
    if info.st_mode & 0o077:
        raise SigningError(f"--sign {path}: readable by others (mode {stat.S_IMODE(info.st_mode):o}); "
                           f"run `chmod 600 {path}`")
    try:
        key = serialization.load_pem_private_key(artifacts.read_bytes_bounded(path, KEY_MAX_BYTES), password=None)
    except (ValueError, TypeError) as exc:
        raise SigningError(f"--sign {path}: not an unencrypted PEM private key ({artifacts.error_line(exc)})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"--sign {path}: not an Ed25519 key; make one with `python -m slmlib keys new`")
    return key


def run_manifest(folder: Path) -> dict:
    """The run id and the SHA-256 of every file under `folder` but `SIGNATURE_FILE`; anything that is
    neither a regular file nor a folder (a link, a FIFO) is an error."""
    files = {}
    for root, dirs, names in os.walk(folder):
        for name in sorted(dirs + names):
            full = Path(root, name)
            mode = os.lstat(full).st_mode
            rel = full.relative_to(folder).as_posix()
            if stat.S_ISDIR(mode):
                continue
            if not stat.S_ISREG(mode):
                raise SigningError(f"{folder.name}/{rel}: not a regular file (links and special files are not signed)")
            if rel != SIGNATURE_FILE:
                files[rel] = hashlib.sha256(full.read_bytes()).hexdigest()
    return {"run_id": folder.name, "files": dict(sorted(files.items()))}


def _message(manifest: dict) -> bytes:
    return artifacts.dumps(manifest).encode("utf-8")


def signature_record(manifest: dict, key: Ed25519PrivateKey) -> dict:
    """The content of `SIGNATURE_FILE` for a manifest (`run_manifest`) signed with `key`."""
    return {"schema_version": SIGNATURE_VERSION, "manifest": manifest,
            "public_key": public_key_text(key.public_key()), "signature": key.sign(_message(manifest)).hex()}


def read_contributors(path: Path = CONTRIBUTORS_FILE) -> dict[str, str]:
    """The trusted keys: public key -> contributor name, from the reviewed `params/contributors.yaml`."""
    where = Path(path).name
    try:
        text = artifacts.read_bytes_bounded(Path(path), CONTRIBUTORS_MAX_BYTES).decode("utf-8")
    except (OSError, ValueError) as exc:
        raise SigningError(f"{where}: {artifacts.error_line(exc)}") from None
    data = params.read_yaml(text, SigningError)
    if not isinstance(data, dict) or set(data) != {"contributors"} or not isinstance(data["contributors"], list):
        raise SigningError(f"{where}: expected one key, contributors: a list of {{name, public_key}}")
    trusted: dict[str, str] = {}
    for i, item in enumerate(data["contributors"]):
        field = f"{where}: contributors[{i}]"
        if not isinstance(item, dict) or set(item) != {"name", "public_key"}:
            raise SigningError(f"{field}: expected exactly name and public_key")
        name, key = item["name"], item["public_key"]
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise SigningError(f"{field}.name: {name!r} is not a name (1-64 letters, digits, '.', '_', '-')")
        if not isinstance(key, str) or not PUBLIC_KEY.fullmatch(key):
            raise SigningError(f"{field}.public_key: expected ed25519: and 64 hex digits, as "
                               "`python -m slmlib keys new` prints")
        if key in trusted:
            raise SigningError(f"{field}.public_key: listed twice (also for {trusted[key]})")
        if name in trusted.values():
            raise SigningError(f"{field}.name: {name} is listed twice; one entry per contributor key")
        trusted[key] = name
    return trusted


def check_signature(folder: Path, trusted: dict[str, str]) -> tuple[str | None, str | None]:
    """(signer's name, None) when `folder` is signed by a trusted key and unchanged since; else
    (None, the reason it is refused)."""
    sig_path = folder / SIGNATURE_FILE
    if not sig_path.is_file() or sig_path.is_symlink():
        return None, f"unsigned: no {SIGNATURE_FILE} (sign it with `python -m slmlib pack RUN_ID --sign KEY`)"
    try:
        record = artifacts.read_json_bounded(sig_path, SIGNATURE_MAX_BYTES, 4, follow_symlinks=False)
        key_text, manifest = record["public_key"], record["manifest"]
        signature = bytes.fromhex(record["signature"])
        if record.get("schema_version") != SIGNATURE_VERSION or not PUBLIC_KEY.fullmatch(key_text):
            raise ValueError("unknown schema_version or key form")
    except (OSError, ValueError, TypeError, KeyError) as exc:
        return None, f"{SIGNATURE_FILE} unreadable: {artifacts.error_line(exc)}"
    if key_text not in trusted:
        return None, f"signed by a key not listed in params/contributors.yaml ({key_text[:24]}...)"
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(key_text[8:])).verify(signature, _message(manifest))
    except InvalidSignature:
        return None, f"bad signature: {SIGNATURE_FILE} does not verify with {trusted[key_text]}'s key"
    try:
        actual = run_manifest(folder)
    except (OSError, SigningError) as exc:
        return None, artifacts.error_line(exc)
    if manifest.get("run_id") != actual["run_id"]:
        return None, f"signed for run {manifest.get('run_id')!r}, found in folder {actual['run_id']!r}"
    signed = manifest.get("files") or {}
    for rel in sorted(set(signed) | set(actual["files"])):
        if rel not in actual["files"]:
            return None, f"{rel}: signed but missing"
        if rel not in signed:
            return None, f"{rel}: added after signing"
        if signed[rel] != actual["files"][rel]:
            return None, f"{rel}: changed after signing"
    return trusted[key_text], None


def pack_run(run_id: str, out: Path, key_path: Path | None = None) -> Path:
    """Write `out` (.tar.gz): the run folder `outputs/runs/<run_id>/` as `<run_id>/...`, with
    `SIGNATURE_FILE` when a key is given. The bytes depend only on the folder's content (sorted members,
    no times or owners), so packing twice gives the same archive."""
    folder = paths.run_dir(run_id)
    if not paths.results_file(folder).is_file():
        raise SigningError(f"{run_id}: no finished run at {folder} (results.json missing); run it first")
    key = load_key(key_path) if key_path is not None else None
    members = {rel: (folder / rel).read_bytes() for rel in run_manifest(folder)["files"]}
    if key is not None:  # sign the bytes that go into the archive, not a second reading of the folder
        manifest = {"run_id": run_id, "files": {rel: hashlib.sha256(data).hexdigest() for rel, data in members.items()}}
        members[SIGNATURE_FILE] = artifacts.dumps(signature_record(manifest, key)).encode("utf-8")
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for rel in sorted(members):
            info = tarfile.TarInfo(f"{run_id}/{rel}")
            info.size, info.mode, info.mtime = len(members[rel]), 0o644, 0
            tar.addfile(info, io.BytesIO(members[rel]))
    return artifacts.write_bytes_atomic(Path(out), buf.getvalue())
