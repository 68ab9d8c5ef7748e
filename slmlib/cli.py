"""Command line: `python -m slmlib {run,validate,fetch-data,report}` (a thin layer over slmlib)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from . import params, paths


def _parse_set(items: list[str]) -> dict:
    """`key=value` overrides, values read as YAML (`limit=5`, `tasks=[boolq]`)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise params.ParamsError(f"--set {item!r}: expected KEY=VALUE")
        out[key] = yaml.safe_load(value)
    return out


def cmd_run(args) -> int:
    from . import runner

    overrides = _parse_set(args.set)
    p = params.load(args.params, **overrides)
    if not p.run_id:
        p = params.validate({**p.to_dict(), "run_id": args.run_id or params.new_run_id(p.submission)})
    stages = tuple(args.stages.split(",")) if args.stages else paths.STAGES
    unknown = [s for s in stages if s not in paths.STAGES]
    if unknown:
        raise params.ParamsError(f"--stages: unknown {unknown}; choose from {', '.join(paths.STAGES)}")
    run_id = runner.run_study(p, stages, progress=not args.quiet)
    print(f"[slm-study] run {run_id} finished: outputs in {paths.run_dir(run_id)}, "
          f"site at {paths.site_dir() / 'index.html'}, reports at {paths.reports_root() / 'index.html'}")
    return 0


def _is_submission(path: Path) -> bool:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and "model" in data


def cmd_validate(args) -> int:
    """Validate params files and submissions; exit 1 when any has errors."""
    from . import detect

    reports, failed = [], False
    for name in args.files:
        path = Path(name)
        if _is_submission(path):
            try:
                card, report = detect.detect_submission(path)
                errors, warnings = report.errors, report.warnings
            except (detect.SubmissionError, ValueError) as exc:
                errors, warnings = [str(exc)], []
            kind = "submission"
        else:
            try:
                params.load(path)
                errors = []
            except params.ParamsError as exc:
                errors = [str(exc)]
            warnings, kind = [], "params"
        failed |= bool(errors)
        reports.append({"file": str(path), "kind": kind, "valid": not errors,
                        "errors": errors, "warnings": warnings})
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        for r in reports:
            print(f"{'ok  ' if r['valid'] else 'FAIL'} {r['file']} ({r['kind']})")
            for e in r["errors"]:
                print(f"     error: {e}")
            for w in r["warnings"]:
                print(f"     warning: {w}")
    return 1 if failed else 0


def cmd_fetch_data(args) -> int:
    from . import datapacks

    print(f"BIG-bench tasks in {datapacks.fetch_bigbench()}")
    return 0


def cmd_report(args) -> int:
    from . import runner

    n = runner.rebuild_reports()
    print(f"{n} executed notebooks exported; index at {paths.reports_root() / 'index.html'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slmlib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the study's stages with papermill")
    run.add_argument("params", help="params YAML, e.g. params/default.yaml")
    run.add_argument("--run-id", help="run folder name (default: <submission>__<UTC time>); "
                     "an existing run resumes, skipping finished tasks")
    run.add_argument("--stages", help="comma-separated subset of detect,evaluate,aggregate,publish")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a parameter, e.g. --set limit=5")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=cmd_run)
    val = sub.add_parser("validate", help="validate params files and submissions")
    val.add_argument("files", nargs="+")
    val.add_argument("--json", action="store_true", help="machine-readable report")
    val.set_defaults(func=cmd_validate)
    sub.add_parser("fetch-data", help="download and extract the BIG-bench data pack once").set_defaults(
        func=cmd_fetch_data)
    sub.add_parser("report", help="re-export HTML reports of every executed notebook").set_defaults(
        func=cmd_report)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (params.ParamsError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a failed stage: short message, the notebook holds the traceback
        from .runner import StageFailed

        if isinstance(exc, StageFailed):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise
