"""Command line: `python -m slmlib {run,worker,certs,validate,intake,schema,fetch-data,report,screenshots,agree,bench,audit,todo,keys,pack}`
(a thin layer over slmlib)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path


from . import params, paths


def _parse_set(items: list[str]) -> dict:
    """`key=value` overrides, values read as YAML (`limit=5`, `tasks=[boolq]`) by the params' safe reader."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise params.ParamsError(f"--set {params.shorten(item, 80)}: expected KEY=VALUE")
        try:
            out[key] = params.read_yaml(value)
        except params.ParamsError as exc:
            raise params.ParamsError(f"--set {params.show_key(key)}: {exc}; quote a string value "
                                     "(--set 'key=\"text\"'), write a list as [a, b]") from None
    return out


def cmd_run(args) -> int:
    from . import runner

    overrides = _parse_set(args.set) | ({"run_id": args.run_id} if args.run_id else {}) | \
        ({"cluster": args.cluster} if args.cluster is not None else {})
    p = params.load(args.params, **overrides)
    stages = tuple(args.stages.split(",")) if args.stages else paths.STAGES
    unknown = [s for s in stages if s not in paths.STAGES]
    if unknown:
        raise params.ParamsError(f"--stages: unknown {unknown}; choose from {', '.join(paths.STAGES)}")
    if (args.tls_dir or args.dashboard) and not p.cluster:
        raise params.ParamsError("--tls-dir and --dashboard apply to a cluster; give --cluster local or ADDRESS")
    for run_id in runner.run_plan(p, stages, progress=not args.quiet, stamp=params.utc_stamp(),
                                  tls_dir=args.tls_dir or "", dashboard=args.dashboard or ""):
        print(f"[slm-study] run {run_id} finished: outputs in {paths.run_dir(run_id)}")
    print(f"[slm-study] site at {paths.site_dir() / 'index.html'}, reports at {paths.reports_root() / 'index.html'}")
    return 0


def _is_submission(path: Path) -> bool:
    """A submission lives in a `submissions` folder or has a top-level `model:` key (no YAML parsing:
    the file may be hostile; `slmlib.detect.read_submission` parses it safely)."""
    if path.parent.name == "submissions":
        return True
    if not path.is_file():  # missing, a folder or a FIFO (opening one would wait for a writer): params reports it
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(65 * 1024)
    except OSError:
        return False
    return re.search(rb"^model\s*:", head, re.MULTILINE) is not None


def _validate_submission(path: Path, estimate: bool) -> dict:
    from . import detect

    try:
        card, report = detect.detect_submission(path, params.StudyParams() if estimate else None)
    except ValueError as exc:  # unusable file or unsafe name: one message, no traceback
        return {"errors": [str(exc)], "warnings": [], "card": None, "estimate": None}
    return {"errors": report.errors, "warnings": report.warnings, "card": card, "estimate": report.estimate}


def _validate_params(path: Path) -> dict:
    try:
        params.load(path)  # values, then what a run would fail on later (params.check_study)
        return {"errors": [], "warnings": []}
    except params.ParamsError as exc:
        return {"errors": [str(exc)], "warnings": []}


def _validate_contributors(path: Path) -> dict:
    from . import signing

    try:
        signing.read_contributors(path)
        return {"errors": [], "warnings": []}
    except ValueError as exc:
        return {"errors": [str(exc)], "warnings": []}


def _print_report(r: dict) -> None:
    print(f"{'ok  ' if r['valid'] else 'FAIL'} {r['file']} ({r['kind']})")
    card = r.get("card") or {}
    if card.get("weights"):
        count = card.get("parameter_count")
        fields = [params.printable(card.get(k)) for k in ("model_id", "name", "parameters", "architecture", "context_length",
                                                   "license", "quantization")]
        print(f"     card: {fields[0]}: {fields[1]}, {fields[2]} ({f'{count:,}' if count else '?'} parameters), "
              f"{fields[3]}, context {fields[4]}, license {fields[5]}, {fields[6]}, "
              f"weights {card['weights']['kind']} {str(card['weights']['sha256'])[:12]}")
    for e in r["errors"]:
        print(f"     error: {e}")
    for w in r["warnings"]:
        print(f"     warning: {w}")
    if r.get("estimate"):
        from . import detect

        est = r["estimate"]
        print(f"     estimate: ~{est['seconds'] / 60:.0f} min for suite {est['suite']}, limit {est['limit']}/"
              f"{est['limit_generative']} ({est['method']})")
        print(f"     {detect.workers_line(est)}")


def cmd_validate(args) -> int:
    """Validate params files and submissions; exit 1 when any has errors."""
    reports = []
    for name in args.files:
        path = Path(name)
        kind = "submission" if _is_submission(path) else "contributors" if path.name == "contributors.yaml" \
            else "params"
        result = _validate_submission(path, not args.no_estimate) if kind == "submission" \
            else _validate_contributors(path) if kind == "contributors" else _validate_params(path)
        reports.append({"file": str(path), "kind": kind, "valid": not result["errors"], **result})
    if args.json:
        print(json.dumps(reports, indent=2, default=str))
    else:
        for r in reports:
            _print_report(r)
    return 0 if all(r["valid"] for r in reports) else 1


def cmd_intake(args) -> int:
    """Answer a submission issue: its body's YAML block checked, the reply printed as markdown (with --write
    the submission saved under params/submissions/); exit 1 when it has errors or was not written."""
    from . import artifacts, detect

    try:
        body = artifacts.read_bytes_bounded(Path(args.file), detect.MAX_BODY_BYTES)
    except (OSError, ValueError) as exc:
        raise detect.SubmissionError(f"{args.file}: {artifacts.error_line(exc)}") from None
    p = None if args.no_estimate else params.load(paths.PARAMS_DIR / "default.yaml")
    result = detect.check_issue(body, p)
    written = None
    if args.write and result.ok:
        try:
            written = detect.write_submission(result)
        except detect.SubmissionError as exc:
            result.report.errors.append(str(exc))
    reply = detect.intake_reply(result)
    if args.json:
        print(json.dumps({"valid": result.ok, "model_id": result.model_id, "written": str(written) if written else None,
                          "reply": reply}, indent=2))
    else:
        print(reply, end="")
        if written:
            print(f"\nwrote {written}", file=sys.stderr)
    return 0 if result.ok and (written or not args.write) else 1


def cmd_schema(args) -> int:
    """Write (or with --check compare) params/submission.schema.json from slmlib.detect."""
    from . import artifacts, detect

    text = detect.schema_text()
    if args.check:
        same = detect.SCHEMA_PATH.exists() and detect.SCHEMA_PATH.read_text() == text
        print(f"{detect.SCHEMA_PATH}: {'up to date' if same else 'out of date; run python -m slmlib schema'}")
        return 0 if same else 1
    artifacts.write_text_atomic(detect.SCHEMA_PATH, text)
    print(f"wrote {detect.SCHEMA_PATH}")
    return 0


def cmd_fetch_data(args) -> int:
    from . import datapacks

    print(f"BIG-bench tasks in {datapacks.fetch_bigbench()}")
    return 0


def cmd_report(args) -> int:
    from . import runner

    n = runner.rebuild_reports()
    print(f"{n} executed notebooks exported; index at {paths.reports_root() / 'index.html'}")
    return 0


def cmd_screenshots(args) -> int:
    """PNGs of every page type of a built site (headless Chromium)."""
    from . import publish

    site = paths.site_dir(args.site_dir or "")
    if not (site / "data.js").is_file():
        raise FileNotFoundError(f"{site}: no built site (data.js missing); run the publish stage first")
    if publish.browser_missing():
        raise FileNotFoundError(publish.browser_missing())
    for path in publish.take_screenshots(site, Path(args.out) if args.out else None):
        print(path)
    return 0


def cmd_agree(args) -> int:
    """llama.cpp against transformers float32 on the same requests; exit 1 unless every item agrees."""
    from . import artifacts
    from .tools import agreement

    report = agreement.check_agreement(agreement.default_weights(), args.format, args.tasks, args.limit,
                                       args.limit_generative, args.seed, log=lambda m: print(m, file=sys.stderr))
    if args.json:  # first: the measurements survive any rendering error
        print(f"wrote {artifacts.write_json(Path(args.json), report)}")
    print(agreement.format_table(report))
    return 0 if agreement.all_agree(report) else 1


def cmd_bench(args) -> int:
    """Scoring and decoding speed of each backend, each in its own process; writes docs/bench.{json,md}."""
    from .tools import bench

    limit = args.limit or bench.LIMIT
    rounds = args.rounds or bench.ROUNDS
    report = bench.run_bench(limit, rounds=rounds, command=f"python -m slmlib bench --limit {limit} --rounds {rounds}",
                             log=lambda m: print(f"[bench] {m}", file=sys.stderr, flush=True))
    for path in bench.write_bench(report):  # the JSON first: the measurements survive any rendering error
        print(f"wrote {path}")
    print(bench.markdown(report))
    return 0


def cmd_audit(args) -> int:
    """Redo a seeded part of a run (a run id under outputs/runs/, or an archive) here; exit 1 unless it agrees."""
    import tempfile

    from . import aggregate
    from .tools import audit

    target = Path(args.run)
    with tempfile.TemporaryDirectory(prefix="slm-audit-") as tmp:
        if target.name.endswith(aggregate.ARCHIVE_SUFFIXES) and target.is_file():
            aggregate.extract_safely(target, Path(tmp))
            folders = [f for f in Path(tmp).iterdir() if f.is_dir()]
            if len(folders) != 1:
                raise ValueError(f"{target}: holds {len(folders)} run folders; audit one run at a time")
            folder = folders[0]
        else:
            folder = paths.run_dir(args.run)
        record = audit.audit_run(folder, args.fraction, log=lambda m: print(m, file=sys.stderr, flush=True))
    path = audit.write_audit(record)
    print(f"audit of {record['run_id']}: {record['verdict']} ({record['agreeing']}/{record['audited']} items agree, "
          f"{record['fraction']:.0%} of each task, at least {record['min_items']}) in {record['seconds']:.0f} s; "
          f"wrote {path}")
    for d in record["first_differences"]:
        print(f"  differs: {d['task']} {d['item_id']}: {d['why']}")
    return 0 if record["verdict"] == "pass" else 1


def cmd_todo(args) -> int:
    """What the leaderboard still needs (entries below quorum, disputed tasks, foreign runs to audit)."""
    from . import aggregate, artifacts

    path = paths.registry_path()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no registry yet; run the aggregate stage first")
    lines = aggregate.todo(artifacts.read_json_bounded(path, 256 << 20, 64))
    print("\n".join(lines) if lines else "nothing to do: every entry is confirmed, none disputed, every foreign "
                                          "run audited (or audits not required)")
    return 0


def cmd_keys(args) -> int:
    """A new Ed25519 key pair for signing runs (the private key outside the repository, mode 0600)."""
    from . import signing

    path, public = signing.new_key(Path(args.out) if args.out else signing.DEFAULT_KEY)
    print(f"private key: {path} (mode 0600; keep it, never commit it)\npublic key:  {public}\n"
          f"Ask a maintainer to add your public key to params/contributors.yaml, then send runs with "
          f"`python -m slmlib pack RUN_ID --sign {path}`.")
    return 0


def cmd_pack(args) -> int:
    """An archive of a finished run folder to send to another study, signed with --sign."""
    from . import signing

    out = Path(args.out) if args.out else Path(f"{args.run_id}.tar.gz")
    path = signing.pack_run(args.run_id, out, Path(args.sign) if args.sign else None)
    print(f"wrote {path} ({'signed' if args.sign else 'unsigned: a study with require_signatures refuses it'})")
    return 0


def cmd_worker(args) -> int:
    """A Dask worker for studies run on a cluster, once this machine is checked; runs until stopped."""
    from . import cluster

    return cluster.serve(args.address, args.tls_dir or "", args.nthreads, args.local_directory or "")


def cmd_certs(args) -> int:
    """A CA and a certificate for a cluster's machines (TLS), written into a new folder."""
    from . import cluster

    hosts = tuple(h.strip() for h in args.hosts.split(",") if h.strip())
    written = cluster.make_ca(Path(args.dir), hosts, days=args.days)
    print(f"wrote {', '.join(str(p) for p in written.values())} (for {', '.join(hosts)}); copy the folder to "
          f"every machine of the cluster and give it as --tls-dir {args.dir} to the scheduler's, the workers' and "
          "the study's commands (docs/cluster.md)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser: one subcommand per `cmd_*` function."""
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
    run.add_argument("--cluster", metavar="local|local:N|tcp://HOST:8786|tls://HOST:8786",
                     help="evaluate on Dask: a local cluster (one worker per core, or N) or a running scheduler "
                          "(the params' cluster: key; docs/cluster.md)")
    run.add_argument("--tls-dir", metavar="DIR", help="the certificate folder of a tls:// cluster (certs command)")
    run.add_argument("--dashboard", metavar="ADDRESS", help="serve a local cluster's dashboard, e.g. :8787")
    run.set_defaults(func=cmd_run)
    worker = sub.add_parser("worker", help="serve a Dask scheduler as a worker for studies on a cluster")
    worker.add_argument("address", help="the scheduler, tcp://HOST:8786 or tls://HOST:8786")
    worker.add_argument("--tls-dir", metavar="DIR", help="the cluster's certificate folder (certs command)")
    worker.add_argument("--nthreads", type=int, default=0,
                        help="threads each unit's llama.cpp/torch uses (default: this machine's cores)")
    worker.add_argument("--local-directory", metavar="DIR", help="the worker's scratch folder (default: a new "
                                                                  "temporary folder, removed on exit)")
    worker.set_defaults(func=cmd_worker)
    certs = sub.add_parser("certs", help="make a CA and certificate for a cluster's TLS (certs DIR --hosts ...)")
    certs.add_argument("dir", help="a new folder for ca.pem, cluster.pem and cluster-key.pem")
    certs.add_argument("--hosts", required=True, help="comma-separated addresses or host names of the scheduler "
                                                      "and workers, e.g. 10.0.0.5,10.0.0.6,node7.example.org")
    certs.add_argument("--days", type=int, default=365, help="validity in days (default %(default)s)")
    certs.set_defaults(func=cmd_certs)
    val = sub.add_parser("validate", help="validate params files and submissions")
    val.add_argument("files", nargs="+")
    val.add_argument("--json", action="store_true", help="machine-readable report")
    val.add_argument("--no-estimate", action="store_true",
                     help="skip the runtime estimate (it loads the tokenizer: ~1-5 s, ~20 s once for a new GGUF)")
    val.set_defaults(func=cmd_validate)
    intake = sub.add_parser("intake", help="check a submission issue's body and print the markdown reply")
    intake.add_argument("file", help="the issue body (markdown with one ```yaml block), e.g. from the issue form")
    intake.add_argument("--write", action="store_true",
                        help="save a valid submission as params/submissions/<model id>.yaml (never over a file)")
    intake.add_argument("--json", action="store_true", help="print {valid, model_id, written, reply} as JSON")
    intake.add_argument("--no-estimate", action="store_true", help="skip the runtime estimate")
    intake.set_defaults(func=cmd_intake)
    schema = sub.add_parser("schema", help="regenerate params/submission.schema.json from slmlib")
    schema.add_argument("--check", action="store_true", help="exit 1 if the committed file is out of date")
    schema.set_defaults(func=cmd_schema)
    sub.add_parser("fetch-data", help="download and extract the BIG-bench data pack once").set_defaults(
        func=cmd_fetch_data)
    sub.add_parser("report", help="re-export HTML reports of every executed notebook").set_defaults(
        func=cmd_report)
    shots = sub.add_parser("screenshots", help="PNG screenshots of every page type of the built site")
    shots.add_argument("site_dir", nargs="?", help="the site folder (default reports/site)")
    shots.add_argument("--out", help="where to write the PNGs (default <site>/screenshots)")
    shots.set_defaults(func=cmd_screenshots)
    defaults = params.StudyParams()
    agree = sub.add_parser("agree", help="check that llama.cpp picks the answers transformers float32 picks")
    agree.add_argument("--format", nargs="+", default=["F16"], help="GGUF formats to check (default F16, the default model's; "
                       "the shipped file's own format, e.g. Q4_1, uses it as shipped)")
    agree.add_argument("--tasks", nargs="+", help="tasks of the embedded suite (default: all)")
    agree.add_argument("--limit", type=int, default=defaults.limit,
                       help="items per multiple-choice task (default %(default)s)")
    agree.add_argument("--limit-generative", type=int, default=defaults.limit_generative,
                       help="prompts per generative task (default %(default)s)")
    agree.add_argument("--seed", type=int, default=defaults.seed, help="item sampling seed (default %(default)s)")
    agree.add_argument("--json", metavar="PATH", help="also write the report as JSON to PATH")
    agree.set_defaults(func=cmd_agree)
    bench_ = sub.add_parser("bench", help="time each backend on the same requests (docs/bench.md)")
    bench_.add_argument("--limit", type=int, help="items per multiple-choice task (default 20; the whole bench ~30 min on 2 quiet cores)")
    bench_.add_argument("--rounds", type=int, help="paired rounds of greedy decoding (default 5)")
    bench_.set_defaults(func=cmd_bench)
    audit = sub.add_parser("audit", help="redo a seeded part of a run on this machine and compare item by item")
    audit.add_argument("run", metavar="RUN_ID|ARCHIVE", help="a run under outputs/runs/, or a .tar.gz/.zip of one")
    audit.add_argument("--fraction", type=float, default=0.05,
                       help="share of each task's items to redo (default %(default)s, at least 5 per task)")
    audit.set_defaults(func=cmd_audit)
    sub.add_parser("todo", help="list what the leaderboard still needs, as commands").set_defaults(func=cmd_todo)
    keys = sub.add_parser("keys", help="make a key pair for signing runs you send (keys new)")
    keys.add_argument("action", choices=["new"])
    keys.add_argument("--out", help="private key path (default ~/.config/slm-study/signing.key; the public key "
                      "goes beside it as .pub)")
    keys.set_defaults(func=cmd_keys)
    pack = sub.add_parser("pack", help="write a run folder as an archive for another study, optionally signed")
    pack.add_argument("run_id", help="a finished run under outputs/runs/")
    pack.add_argument("--sign", metavar="KEY", help="private key from `keys new`: adds signature.json")
    pack.add_argument("--out", help="archive path (default ./RUN_ID.tar.gz)")
    pack.set_defaults(func=cmd_pack)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (params.ParamsError, ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a failed stage: short message, the notebook holds the traceback
        from .runner import StageFailed

        if isinstance(exc, StageFailed):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise
