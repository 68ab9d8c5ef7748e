"""Run parameters: one typed record, read from YAML, shared by the four stage notebooks.

A params file's keys equal the notebooks' parameter names (the contract tests check
it). Unknown keys and wrong types fail here, before anything expensive runs.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import reprlib
import time
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from . import artifacts, paths

MAX_PARAMS_BYTES = 64 * 1024
MAX_YAML_DEPTH = 8  # nesting of mappings and sequences in a params file, a submission or a --set value
MAX_SEED = 2**32 - 1  # numpy's seed range
DTYPES = ("float32", "bfloat16")
MAX_DECODE_BATCH = 31  # llama.cpp sequences decoded together (its context holds one more: the shared prefix)
DEFAULT_DECODE_BATCH = 16  # decode_batch 0 (auto) on llama.cpp: the measurements are in docs/backends.md
BACKENDS = ("auto", "llamacpp", "hf")  # auto: llama.cpp for GGUF weights without an adapter, else hf
MAX_QUORUM = 99
MAX_THREADS = 1024
MAX_WORKERS = 1024  # worker processes of a local cluster (`cluster: local:N`)
# read by the runner (around the stages), by no notebook
RUNNER_PARAMS = ("mlflow", "mlflow_tracking_uri", "cluster")


class ParamsError(ValueError):
    """A params file or value is invalid; the message names the field and the fix."""


@dataclass(frozen=True)
class StudyParams:
    """Everything a study run needs; defaults run the embedded default end to end."""

    submission: str = "params/submissions/smollm2-135m-instruct.yaml"  # detect: submission YAML (relative to the repo)
    # detect: which of the submission's model.quantizations to evaluate: "" = the first listed (else the
    # weights as given), a listed name, or "all" = each listed one as its own run (`slmlib run` only)
    quantization: str = ""
    run_id: str = ""  # all stages: run folder name; "" derives <submission>__<suite>__limit<limit>[__<quantization>]
    suite: str = "embedded"  # evaluate: "embedded" (offline, the default) or "standard" (lm-eval's Hub tasks; online)
    tasks: list[str] = field(default_factory=list)  # evaluate: task subset; [] = every task of the suite
    limit: int | None = 80  # evaluate: items per multiple-choice task (stratified, seeded); None = all
    limit_generative: int | None = 80  # evaluate: items per generative task; None = same as limit
    seed: int = 1234  # evaluate: sampling, few-shot and torch seed
    batch_size: int = 8  # evaluate: lm-eval batch size (8 is ~2x faster than "auto" on 2 cores)
    # evaluate (llama.cpp): prompts decoded together in generative tasks; 0 = auto (DEFAULT_DECODE_BATCH on
    # llama.cpp, 1 on transformers), 1 = one at a time; the value used, when > 1, is part of the settings
    decode_batch: int = 0
    dtype: str = "float32"  # evaluate (hf backend): float32 (reference) or bfloat16
    # evaluate: "auto" = llama.cpp for GGUF weights (no adapter), else transformers; "llamacpp" or "hf"
    backend: str = "auto"
    # evaluate: "auto" = the model's chat template for generative tasks of instruct models only;
    # true / false = for every task / never
    apply_chat_template: bool | str = "auto"
    energy_country: str = "USA"  # evaluate: ISO 3166-1 alpha-3 code for CodeCarbon's grid carbon intensity
    threads: int = 0  # evaluate: llama.cpp (and torch) threads; 0 = the cores idle now, chosen again before each task
    # evaluate: which of each task's chosen items: "" = all; "K/N" = the K-th of N equal slices (a cluster's unit)
    shard: str = ""
    edge: bool = True  # evaluate: measure the edge figures after the tasks (a cluster measures them in one unit per run)
    pillar_weights: dict[str, float] = field(default_factory=dict)  # aggregate: {} = published weights
    # detect: a submitter must first bring verified runs of this many other models (the seeds' "earn your
    # submit"; 0 = off, 3 in params/community.yaml)
    earn_submit: int = 0
    quorum: int = 1  # aggregate: distinct runners that must agree before an entry is ranked (1: one machine)
    require_signatures: bool = False  # aggregate: take archives in only when signed by params/contributors.yaml
    require_audit: bool = False  # aggregate: count a run from another machine only after its audit passed
    site_dir: str = ""  # publish: folder of the static site; "" = reports/site
    mlflow: bool = False  # runner: also log the run to MLflow (optional extra: `make mlflow`)
    mlflow_tracking_uri: str = ""  # runner: MLflow tracking URI; "" = the local file store outputs/mlruns
    # runner: where the evaluate stage runs: "" = this process, one run after another; "local" = a Dask cluster
    # on this machine (one worker per core; "local:N" = N workers); "tcp://HOST:8786" or "tls://HOST:8786" = the
    # workers of a running Dask scheduler (docs/cluster.md)
    cluster: str = ""
    # runner (cluster): items per unit of work; null = one unit per task (detect projects the runtime with it)
    shard_size: int | None = None

    def resolved_run_id(self) -> str:
        """The run folder name: given, or derived from submission, suite, limit and quantization."""
        return self.run_id or make_run_id(self.submission, self.suite, self.limit, self.quantization)

    def run_path(self) -> Path:
        """This run's folder under outputs/runs."""
        return paths.run_dir(self.resolved_run_id())

    def limit_for(self, generative: bool) -> int | None:
        """Items a task evaluates: `limit_generative` for generative tasks when set, else `limit`."""
        return self.limit_generative if generative and self.limit_generative else self.limit

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ALL = "all"  # quantization: each listed quantization as its own run (`python -m slmlib run` only)
SHARD = re.compile(r"([0-9]{1,7})/([0-9]{1,7})")
LOCAL = re.compile(r"local(?::([0-9]{1,5}))?")
ADDRESS = re.compile(r"(tcp|tls)://(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?):([0-9]{1,5})")


def parse_shard(text: str) -> tuple[int, int] | None:
    """`shard` as (K, N): None for "" (every item), else the K-th of N slices, 1 <= K <= N."""
    if text == "":
        return None
    m = SHARD.fullmatch(text)
    if not m or not 1 <= int(m[1]) <= int(m[2]):
        raise ParamsError(f"shard: {shorten(text)} should be \"\" (every item) or \"K/N\" with 1 <= K <= N, "
                          "e.g. \"2/5\" for the second of five slices")
    return int(m[1]), int(m[2])


@dataclass(frozen=True)
class ClusterSpec:
    """Where the evaluate stage runs (`cluster`, parsed)."""

    kind: str  # "" (this process), "local" (a Dask cluster on this machine) or "address" (a running scheduler)
    workers: int | None = None  # local: worker processes; None = one per core
    address: str = ""  # a scheduler's address, tcp://HOST:PORT or tls://HOST:PORT


def parse_cluster(text: str) -> ClusterSpec:
    """`cluster` as a ClusterSpec; ParamsError naming the accepted forms otherwise."""
    if text == "":
        return ClusterSpec("")
    local, address = LOCAL.fullmatch(text), ADDRESS.fullmatch(text)
    if local and (local[1] is None or 1 <= int(local[1]) <= MAX_WORKERS):
        return ClusterSpec("local", int(local[1]) if local[1] else None)
    if address and 1 <= int(address[3]) <= 65535 and _host_ok(address[2]):
        return ClusterSpec("address", address=text)
    raise ParamsError(f"cluster: {shorten(text)} should be \"\" (this process), \"local\" (one worker per core), "
                      f"\"local:N\" (N workers, 1 to {MAX_WORKERS}), or a scheduler's address such as "
                      "\"tcp://10.0.0.5:8786\" or \"tls://scheduler.example.org:8786\" (port 1 to 65535)")


def _host_ok(host: str) -> bool:
    """A bracketed IPv6 address, or a host name / IPv4 address whose dot-separated labels are not empty."""
    if host.startswith("["):
        try:
            return isinstance(ipaddress.ip_address(host[1:-1]), ipaddress.IPv6Address)
        except ValueError:
            return False
    return all(label and not label.startswith("-") and not label.endswith("-") for label in host.split("."))


def make_run_id(submission: str, suite: str, limit: int | None, quantization: str = "", stamp: str = "") -> str:
    """The one run-id scheme: `<submission>__<suite>__limit<limit>[__<UTC stamp>][__<quantization, lower case>]`.
    `python -m slmlib run` stamps each new run; a notebook run on its own has no stamp (so its stages meet)."""
    parts = [Path(submission).stem, suite, f"limit{limit}", stamp, quantization.lower()]
    return paths.check_id("__".join(part for part in parts if part), "run_id")


def utc_stamp() -> str:
    """The stamp of a new run: the UTC time to the second."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


class _NoDuplicatesLoader(yaml.SafeLoader):
    """The safe loader, refusing a mapping that gives a key twice (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the safe loader's own error follows
                continue
            if duplicate:
                raise _DuplicateKey(f"duplicate key {shorten(key)} (line {key_node.start_mark.line + 1}); "
                                    "give each key once")
        return super().construct_mapping(node, deep)


class _DuplicateKey(Exception):
    pass


def shorten(value: Any, width: int = 60) -> str:
    """`value`'s repr, cut to `width` characters: messages never echo a huge input."""
    text = repr(value)
    return text if len(text) <= width else text[:width - 1] + "…"


def printable(value: Any, width: int = 80) -> str:
    """A value as one line of a terminal or a reply shows it: non-printable characters escaped (a NUL, a
    newline, a right-to-left override), cut to `width` characters (a 60,000-character name)."""
    text = str(value)
    text = text if text.isprintable() else repr(text)[1:-1]
    return text if len(text) <= width else text[:width - 1] + "…"


def show_key(key: Any) -> str:
    """A key as messages show it: as written when short and printable, else its cut repr."""
    return key if isinstance(key, str) and 0 < len(key) <= 60 and key.isprintable() else shorten(key)


def read_yaml(text: str, error: type[Exception] | None = None) -> Any:
    """Parse YAML from outside (a params file, a submission, a --set value) safely: no tags beyond the
    safe ones, no anchors or aliases (alias bombs), at most MAX_YAML_DEPTH levels of nesting, no
    duplicate keys. Raises `error` (default ParamsError) with a one-line reason."""
    error = error or ParamsError
    try:
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise error("YAML anchors and aliases (&, *) are not allowed")
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise error(f"nested deeper than {MAX_YAML_DEPTH} levels")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
        return yaml.load(text, Loader=_NoDuplicatesLoader)  # noqa: S506 (a SafeLoader subclass)
    except _DuplicateKey as exc:
        raise error(str(exc)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise error(f"not valid YAML: {' '.join(str(reason).split())[:200]}{where}") from None
    except RecursionError:
        raise error(f"nested deeper than {MAX_YAML_DEPTH} levels") from None


def _field_types() -> dict[str, tuple[type, ...]]:
    """Each parameter's allowed Python types, read from StudyParams' annotations."""
    out = {}
    for name, hint in typing.get_type_hints(StudyParams).items():
        args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        out[name] = tuple(typing.get_origin(a) or a for a in args)
    return out


_TYPES = _field_types()


def validate(values: dict[str, Any], source: str = "params") -> StudyParams:
    """Check keys and types and return the typed params; raise ParamsError listing every problem."""
    if not isinstance(values, dict):
        raise ParamsError(f"{source}: expected a mapping of parameter names to values, got {type(values).__name__}")
    known = [f.name for f in fields(StudyParams)]
    problems = []
    for key, value in values.items():
        if key not in known:
            hint = difflib.get_close_matches(str(key)[:100], known, n=1)
            problems.append(f"{show_key(key)}: unknown parameter" + (f"; did you mean {hint[0]!r}?" if hint else ""))
        elif _wrong_type(value, _TYPES[key]):
            want = " or ".join("null" if t is type(None) else t.__name__ for t in _TYPES[key])
            problems.append(f"{key}: expected {want}, got {type(value).__name__} {reprlib.repr(value)}")
    if not problems:
        p = StudyParams(**values)
        problems += _check_values(p)
    if any(msg.endswith("unknown parameter") for msg in problems):
        problems.append(f"known parameters: {', '.join(known)}")
    if problems:
        raise ParamsError(f"{source}: " + "; ".join(problems))
    return p


def _wrong_type(value: Any, allowed: tuple[type, ...]) -> bool:
    return (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed)


def _check_values(p: StudyParams) -> list[str]:
    out = []
    for name in ("limit", "limit_generative"):
        v = getattr(p, name)
        if v is not None and v < 1:
            out.append(f"{name}: must be a positive number of items or null for all, got {v}")
    if p.batch_size < 1:
        out.append(f"batch_size: must be >= 1, got {p.batch_size}")
    if not 0 <= p.decode_batch <= MAX_DECODE_BATCH:
        out.append(f"decode_batch: {p.decode_batch} prompts; use 0 (auto), 1 (one at a time) to {MAX_DECODE_BATCH}")
    if not re.fullmatch(r"[A-Z]{3}", p.energy_country):
        out.append(f"energy_country: {p.energy_country!r} should be an ISO 3166-1 alpha-3 code "
                   "such as 'USA' or 'FRA'")
    if isinstance(p.apply_chat_template, str) and p.apply_chat_template != "auto":
        out.append(f"apply_chat_template: {p.apply_chat_template!r} should be true, false or \"auto\"")
    if p.dtype not in DTYPES:
        out.append(f"dtype: {p.dtype!r} is not one of {DTYPES}")
    if p.backend not in BACKENDS:
        out.append(f"backend: {p.backend!r} is not one of {BACKENDS}")
    if not all(isinstance(t, str) for t in p.tasks):
        out.append("tasks: must be a list of task names")
    if not 0 <= p.seed <= MAX_SEED:
        out.append(f"seed: {p.seed} is outside 0..{MAX_SEED} (2**32 - 1, numpy's seed range); pick a seed in it")
    out += _check_pillar_weights(p.pillar_weights)
    if not 0 <= p.earn_submit <= MAX_QUORUM:
        out.append(f"earn_submit: {p.earn_submit} models; use 0 (off) to {MAX_QUORUM}")
    if not 1 <= p.quorum <= MAX_QUORUM:
        out.append(f"quorum: {p.quorum} runners; use 1 (a study on one machine) to {MAX_QUORUM}")
    if p.mlflow_tracking_uri and not p.mlflow:
        out.append("mlflow_tracking_uri: set, but mlflow is false; set mlflow: true to log the run there")
    if p.quantization and not paths.QUANTIZATION_NAME.fullmatch(p.quantization):
        out.append(f"quantization: {p.quantization!r} should be \"\" (the submission's first), a name the "
                   'submission lists in model.quantizations (letters, digits, ".", "_", "-"), or "all"')
    if not 0 <= p.threads <= MAX_THREADS:
        out.append(f"threads: {p.threads}; use 0 (the cores idle now) to {MAX_THREADS}")
    if p.shard_size is not None and p.shard_size < 1:
        out.append(f"shard_size: must be a positive number of items or null (one unit per task), got {p.shard_size}")
    for name, parse in (("shard", parse_shard), ("cluster", parse_cluster)):
        try:
            parse(getattr(p, name))
        except ParamsError as exc:
            out.append(str(exc))
    if p.suite == "standard" and (p.shard or p.shard_size):
        out.append("shard / shard_size: the standard suite's tasks (lm-eval's own sampling on Hub data) run whole; "
                   "leave shard \"\" and shard_size null, or use suite: embedded")
    if p.run_id:
        try:  # the same rule as the run folder itself (no '/', no '..')
            paths.check_id(p.run_id, "run_id")
        except ValueError as exc:
            out.append(str(exc))
    return out


def _check_pillar_weights(weights: dict) -> list[str]:
    """`aggregate.weight_problems` ({} = the published weights), imported lazily: the spine imports no
    stage at module top."""
    if not weights:
        return []
    from .aggregate import weight_problems

    return [f"pillar_weights: {problem}" for problem in weight_problems(weights)]


def check_study(p: StudyParams) -> list[str]:
    """What `validate` cannot see on the values alone but a run would fail on minutes later: the suite,
    the tasks (each a benchmark `slmlib.evaluate.suite_tasks` accepts) and the submission file. Imports
    the evaluate stage lazily (the spine imports no stage at module top). [] when all is well."""
    from . import evaluate

    out = []
    if p.suite not in evaluate.SUITES:
        hint = difflib.get_close_matches(p.suite[:100], list(evaluate.SUITES), n=1)
        out.append(f"suite: {shorten(p.suite)} is not a suite; choose one of {', '.join(evaluate.SUITES)}"
                   + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    else:
        known = list(evaluate.SUITES[p.suite])
        for task in p.tasks:
            try:
                evaluate.suite_tasks(p.suite, [task])
            except (KeyError, ValueError):
                hint = difflib.get_close_matches(task[:100], known, n=1)
                out.append(f"tasks: {shorten(task)} is not a task of suite {p.suite}"
                           + (f"; did you mean {hint[0]!r}?" if hint else "")
                           + f" (its tasks: {', '.join(known)})")
    submission = paths.REPO_ROOT / p.submission
    if not submission.is_file():
        out.append(f"submission: {shorten(p.submission, 200)} is not a file (relative paths are from the repo, "
                   f"{paths.REPO_ROOT}); give a submission YAML such as "
                   f"{StudyParams.__dataclass_fields__['submission'].default}")
    return out


def load(path: str | Path, **overrides: Any) -> StudyParams:
    """Read a params YAML (small, safe loader), validate it with `overrides` applied, and check what a run
    would fail on later (`check_study`: suite, tasks, submission file)."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: no such params file; see params/ for examples")
    if not path.is_file():
        raise ParamsError(f"{path}: not a regular file; give a params YAML such as params/default.yaml")
    if path.stat().st_size > MAX_PARAMS_BYTES:
        raise ParamsError(f"{path}: larger than {MAX_PARAMS_BYTES} bytes; a params file is a short YAML mapping")
    try:
        text = artifacts.read_bytes_bounded(path, MAX_PARAMS_BYTES).decode("utf-8")
    except UnicodeDecodeError:
        raise ParamsError(f"{path}: not UTF-8 text; a params file is a short YAML mapping") from None
    except ValueError as exc:  # replaced by a FIFO or grown since the checks above
        raise ParamsError(f"{path}: {exc}; a params file is a short YAML mapping") from None
    except OSError as exc:
        raise ParamsError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        values = read_yaml(text)
    except ParamsError as exc:
        raise ParamsError(f"{path}: {exc}") from None
    if values is None:
        raise ParamsError(f"{path}: empty (no parameters set); set at least one, e.g. "
                          "`submission: params/submissions/<model-id>.yaml`, or write {} to run every default "
                          "(params/default.yaml lists them)")
    if not isinstance(values, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level, got {type(values).__name__}")
    p = validate({**values, **overrides}, source=str(path))
    problems = check_study(p)
    if problems:
        raise ParamsError(f"{path}: " + "; ".join(problems))
    return p


def stage_values(p: StudyParams, names: list[str]) -> dict[str, Any]:
    """The subset of params a stage notebook declares, with the run id resolved."""
    values = p.to_dict()
    values["run_id"] = p.resolved_run_id()
    return {k: values[k] for k in names}
