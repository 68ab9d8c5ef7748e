"""The front door: a submission issue's body checked and answered in markdown (detect stage).

A GitHub issue form (`.github/ISSUE_TEMPLATE/model-submission.yml`) writes the submission as
one fenced YAML block in markdown. `check_issue` finds that block (CommonMark fences; exactly
one marked yaml), reads it with the submission reader (`submission.parse`: size cap, strict
YAML), derives the model id from `hf_repo` (else `name`), and validates it as `validate`
does (`card.build_card`: every rule, duplicates, rate limit). An issue may name only Hub
weights: a local path (`weights`, `adapter`, a quantization's `gguf`) would read files of the
machine that answers. `reply` renders the answer: every text that comes from the issue is
shown inside a fenced block whose fence is longer than any backtick run in it, so it cannot
break out into markdown (no headings, links, mentions or HTML). `write` saves an accepted
submission under `params/submissions/` (never over an existing file) and records it in the
ledger.
"""

from __future__ import annotations

import re
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .. import artifacts, params, paths
from .. import weights as wts
from . import ledger, submission
from .card import Report, add_estimate, build_card, declared_errors
from .submission import SubmissionError

MAX_BODY_BYTES = 256 * 1024  # GitHub caps an issue body at 65,536 characters
YAML_INFO = ("yaml", "yml")
OPEN_FENCE = re.compile(r"^ {0,3}(`{3,}(?=[^`]*$)|~{3,})[ \t]*(\S*)")  # a backtick fence's info has no backtick
ISSUE_WHERE = "issue"  # how messages name the YAML block
HUB_FIX = ("every rule that needs no weights was checked; the submission workflow checks the weights online when "
           "the issue is opened or edited")
HUB_KEYS = ("hf_repo", "revision")
LOCAL_KEYS = [k for keys in (*submission.WEIGHT_FORMS.values(), *submission.ADAPTER_FORMS.values()) for k in keys
              if k not in HUB_KEYS]  # package, file, gguf, dir, cache, install: the answering machine's files
MAX_LINE = 400  # characters of one reply line holding issue text
MAX_LINES = 80  # lines of one fenced section of the reply
CARD_FIELDS = ("model_id", "name", "family", "hf_repo", "hf_revision", "parameters", "parameter_count",
               "architecture", "context_length", "license", "model_type", "categories", "quantization",
               "quantization_name", "has_chat_template", "submitted_by")


@dataclass
class Intake:
    """What the check of one issue found: the submission (None when no block could be read), its model id,
    the card (None when not detected), the report (errors, warnings, estimate)."""

    data: dict[str, Any] | None = None
    model_id: str | None = None
    card: dict | None = None
    report: Report = field(default_factory=Report)

    @property
    def ok(self) -> bool:
        return self.card is not None and self.report.ok


def fenced_blocks(body: str) -> list[tuple[int, str, str]]:
    """The fenced code blocks of markdown `body` (CommonMark: ``` or ~~~, at most 3 spaces indented, closed
    by a fence of the same character at least as long, unclosed ones run to the end): (line, info, text)."""
    blocks = []
    lines = body.split("\n")
    if lines[-1] == "":  # the text after a final line end is no line
        lines.pop()
    i = 0
    while i < len(lines):
        opened = OPEN_FENCE.match(lines[i])
        if not opened:
            i += 1
            continue
        fence, info = opened.group(1), opened.group(2).lower()
        indent = len(lines[i]) - len(lines[i].lstrip(" "))
        close = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        end = next((j for j in range(i + 1, len(lines)) if close.match(lines[j])), len(lines))
        text = "\n".join(_dedent(line, indent) for line in lines[i + 1:end])
        blocks.append((i + 1, info, text + "\n" if end > i + 1 else ""))
        i = end + 1
    return blocks


def _dedent(line: str, indent: int) -> str:
    """A content line of a fenced block: up to the opening fence's indentation removed."""
    return line[min(indent, len(line) - len(line.lstrip(" "))):]


def submission_text(body: str) -> str:
    """The one YAML block of an issue body; raises SubmissionError naming the fix when there is none,
    several, or one wrapped in a second fence."""
    blocks = fenced_blocks(body)
    found = [(line, text) for line, info, text in blocks if info in YAML_INFO]
    if not found:
        other = f" (found {len(blocks)} fenced block(s), none marked yaml)" if blocks else ""
        raise SubmissionError(f"{ISSUE_WHERE}: no YAML block{other}; paste the submission between a line ```yaml "
                              "and a line ```, or open the issue with the Model submission form")
    if len(found) > 1:
        raise SubmissionError(f"{ISSUE_WHERE}: {len(found)} YAML blocks (at lines "
                              f"{', '.join(str(line) for line, _ in found[:10])}); put the whole submission in one "
                              "```yaml block")
    text = found[0][1]
    if OPEN_FENCE.match(text.split("\n", 1)[0]):
        raise SubmissionError(f"{ISSUE_WHERE}: the YAML block starts with another fence line (``` or ~~~); paste "
                              "the YAML alone: the form adds the fences")
    return text


def read_issue(body: str | bytes) -> dict[str, Any]:
    """The submission of an issue body (text, or bytes as read from a file); raises SubmissionError."""
    if isinstance(body, bytes):
        if len(body) > MAX_BODY_BYTES:
            raise SubmissionError(f"{ISSUE_WHERE}: {len(body):,} bytes, over the {MAX_BODY_BYTES:,}-byte cap; a "
                                  "submission issue is a short YAML block")
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SubmissionError(f"{ISSUE_WHERE}: not UTF-8 text (byte {exc.start}); a submission issue is "
                                  "markdown text") from None
    if len(body) > MAX_BODY_BYTES:
        raise SubmissionError(f"{ISSUE_WHERE}: {len(body):,} characters, over the {MAX_BODY_BYTES:,} cap; a "
                              "submission issue is a short YAML block")
    if "\x00" in body:
        raise SubmissionError(f"{ISSUE_WHERE}: holds NUL bytes (binary data); a submission issue is markdown text")
    body = body.replace("\r\n", "\n").replace("\r", "\n")  # GitHub sends issue bodies with CRLF line ends
    return submission.parse(submission_text(body), f"{ISSUE_WHERE} YAML block")


def derive_model_id(data: dict[str, Any]) -> str:
    """The model id (the file name under params/submissions/): the name part of `model.hf_repo` (else
    `weights.hf_repo`, else `model.name`) in lower-case ASCII (accents dropped), runs of other characters
    than letters, digits, '.', '_' and '-' made '-'. Raises SubmissionError when none gives a safe id."""
    model, weights = data["model"], data.get("weights")
    sources = [model.get("hf_repo"), weights.get("hf_repo") if isinstance(weights, dict) else None,
               model.get("name")]
    for source in sources:
        if not isinstance(source, str):
            continue
        text = unicodedata.normalize("NFKD", source.rsplit("/", 1)[-1]).encode("ascii", "ignore").decode().lower()
        slug = re.sub(r"\.{2,}", ".", re.sub(r"[^a-z0-9._-]+", "-", text)).strip("-._")[:128].strip("-._")
        if slug:
            return paths.check_id(slug, "model id")
    raise SubmissionError("model id: cannot be derived; give model.hf_repo (owner/name) or a model.name with "
                          "letters or digits (the model id, the submission's file name, comes from them)")


def local_source_errors(data: dict[str, Any]) -> list[str]:
    """An issue's submission may name only Hub weights: each local path (weights, adapter, a quantization's
    gguf) is an error naming the Hub form."""
    errors = []
    for section in ("weights", "adapter"):
        value = data.get(section)
        if isinstance(value, dict) and any(k in LOCAL_KEYS for k in value):
            key = next(k for k in value if k in LOCAL_KEYS)
            errors.append(f"{section}.{key}: an issue names its {section} on the Hugging Face Hub "
                          f"({section}: {{hf_repo: owner/name, revision: main}}"
                          + (", or only model.hf_repo" if section == "weights" else "")
                          + "); local paths are read only from submissions committed to the repository")
    quants = data["model"].get("quantizations")
    for i, q in enumerate(quants if isinstance(quants, list) else []):
        if isinstance(q, dict) and "gguf" in q:
            errors.append(f"model.quantizations[{i}].gguf: a local path; an issue lists quantizations of its Hub "
                          "weights (convert: TYPE, or none for the weights as given)")
    return errors


def submission_path(model_id: str) -> Path:
    return paths.SUBMISSIONS_DIR / f"{paths.check_id(model_id, 'model id')}.yaml"


def check_issue(body: str | bytes, p: params.StudyParams | None = None) -> Intake:
    """Read, detect and validate the submission of an issue body, as `validate` does a file; with params
    `p` a valid card also gets the runtime estimate of that run on this machine."""
    result = Intake()
    try:
        result.data = read_issue(body)
        result.model_id = derive_model_id(result.data)
    except (SubmissionError, ValueError) as exc:
        result.report.errors.append(str(exc))
        return result
    unusable = local_source_errors(result.data)
    if not unusable:
        try:
            wts.require_hub("weights: an issue's submission", HUB_FIX)
        except wts.HubUnreachable as exc:
            unusable = [str(exc)]
    if unusable:  # the rules that need no weights, and why the weights cannot be read
        data = result.data
        forms = [e for key, check in (("weights", submission.check_weights), ("adapter", submission.check_adapter))
                 if data.get(key) is not None for e in check(data[key])]
        result.report.errors += submission.check(data) + declared_errors(data["model"]) + forms + unusable
    else:
        result.card, result.report = build_card(result.data, result.model_id, base_dir=paths.SUBMISSIONS_DIR)
        if "weights" not in result.card:  # not detected: the report says why
            result.card = None
        elif p is not None and result.report.ok:
            add_estimate(result.card, result.report, p)
    if submission_path(result.model_id).exists():
        result.report.warnings.append(f"params/submissions/{result.model_id}.yaml already exists: this issue cannot "
                                      "be written over it; if it is the same model, a maintainer re-runs that file")
    return result


def fenced(lines: list[str]) -> str:
    """`lines` as a fenced text block no line of them can close: the fence is longer than any backtick run."""
    shown = [params.printable(line, MAX_LINE) for line in lines[:MAX_LINES]]
    if len(lines) > MAX_LINES:
        shown.append(f"… and {len(lines) - MAX_LINES} more")
    text = "\n".join(shown)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def reply(result: Intake, p: params.StudyParams | None = None) -> str:
    """The markdown answer to the issue: verdict, validation report, detected card, runtime estimate and
    the maintainer's commands."""
    errors, warnings = result.report.errors, result.report.warnings
    verdict = "valid" if result.ok else f"{len(errors)} problem{'s' * (len(errors) != 1)} to fix"
    out = [f"## Submission check: {verdict}", ""]
    if result.model_id:
        out += [f"Model id `{result.model_id}` (derived from hf_repo, else name): the file "
                f"`params/submissions/{result.model_id}.yaml`.", ""]
    out += ["### Validation report", "",
            fenced([f"error: {e}" for e in errors] + [f"warning: {w}" for w in warnings] or ["ok: no problems found"]),
            ""]
    if result.card is not None:
        card = result.card
        rows = [f"{k}: {', '.join(map(str, card[k])) if isinstance(card[k], list) else card[k]}"
                for k in CARD_FIELDS if card.get(k) not in (None, "", [])]
        weights = card["weights"]
        at = f" @ {weights['revision']}" if weights.get("revision") else ""
        rows.append(f"weights: {weights['kind']} {weights['path']}{at} (sha256 {str(weights['sha256'])[:16]}…)")
        out += ["### Detected card", "", fenced(rows), ""]
    estimate = result.report.estimate
    if estimate:
        out += ["### Runtime estimate on this machine", "",
                f"Suite {estimate['suite']}, {estimate['limit']}/{estimate['limit_generative']} items per "
                f"multiple-choice/generative task: about {estimate['seconds'] / 60:.0f} min.", "",
                "| task | items | seconds |", "|---|---:|---:|",
                *[f"| {name} | {t['items']} | {t['seconds']:.0f} |" for name, t in estimate["tasks"].items()],
                "", fenced([f"method: {estimate['method']}"]), ""]
    if result.ok:
        path = f"params/submissions/{result.model_id}.yaml"
        out += ["### To evaluate it (maintainers)", "",
                "```sh",
                "python -m slmlib intake issue.md --write   # saves " + path + " and records it in the ledger",
                f"python -m slmlib run params/default.yaml --set submission={path}",
                "```", "",
                "Or comment `/quick-test` on this issue: the micro suite (`params/micro.yaml`, a few items of two "
                "tasks) runs in the workflow and its scores are posted here."]
    elif result.data is not None or errors:
        out += ["Fix the problems above and edit the issue: the check runs again on every edit."]
    return "\n".join(out) + "\n"


def write(result: Intake) -> Path:
    """Save an accepted submission as `params/submissions/<model id>.yaml` (atomic, never over an existing
    file) and record it in the ledger; raises SubmissionError when it has errors or the file exists."""
    if not result.ok:
        shown = "\n- ".join(result.report.errors) or "its weights were not detected"
        raise SubmissionError(f"not written; the submission has errors:\n- {shown}")
    path = submission_path(result.model_id)
    exists = SubmissionError(f"{path}: already exists; not written over. If it is the same model, re-run that "
                             "file; otherwise give this model another hf_repo or name")
    if path.exists():
        raise exists
    try:
        ledger.append(result.card)  # first: a rate limit reached meanwhile leaves no file behind
    except ledger.LedgerError as exc:
        raise SubmissionError(f"not written: {exc}") from None
    header = (f"# Submitted through a submission issue (python -m slmlib intake), checked "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n")
    text = header + yaml.safe_dump(result.data, sort_keys=False, allow_unicode=True, width=1000)
    try:
        artifacts.write_text_atomic(path, text, overwrite=False)
    except FileExistsError:  # made since the check above, by a concurrent intake of the same model id
        raise exists from None
    return path
