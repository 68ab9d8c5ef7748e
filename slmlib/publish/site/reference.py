"""Publish stage: the methodology and submit pages, generated from the code's own constants.

Methodology: tasks per pillar (`evaluate.benchmark_table` over the benchmark registry), suites,
normalization, pillar weights and their renormalization, intervals and tests, how quantizations
are compared, the DISPUTED threshold, size buckets and badge rules (all from `slmlib.aggregate`),
the licence allowlist (`detect.LICENSES`) and the data packs with versions and SHA-256
(`datapacks.PACKS`). Submit: the validator's JSON Schema (`detect.json_schema`), the
template submission as the worked example, and the commands. Nothing is typed twice, so the
pages cannot drift from what the code does.
"""

from __future__ import annotations

import json

from ... import detect
from ...aggregate import (BADGES, DISPUTE_POINTS, NORMALIZATION, QUANTIZATION_METHOD, RENORMALIZATION, SIZE_BUCKETS,
                          TRACK_RULE, WEIGHTS, default_track, uncertainty)
from ...benchmarks import PILLARS, all_benchmarks
from ...datapacks import PACKS
from ...evaluate import SUITES, benchmark_table
from .html import definitions, esc, page, table

TEMPLATE = detect.SCHEMA_PATH.parent / "submissions" / "template.yaml"
COMMANDS = """\
cp params/submissions/template.yaml params/submissions/my-model.yaml   # the file name is the model id
# edit it: at least `weights:` (every model field left out is detected from the weights)
.venv/bin/python -m slmlib validate params/submissions/my-model.yaml   # card, errors, runtime estimate
.venv/bin/python -m slmlib run params/default.yaml --set submission=params/submissions/my-model.yaml
# then open reports/site/index.html; to add a run from another machine, drop an archive of its
# outputs/runs/<run_id>/ folder into outputs/ and rerun the aggregate and publish stages
# Without cloning: open a "Model submission" issue with the YAML (Hub weights); the repository's
# workflow answers with `python -m slmlib intake` (report, card, estimate; docs/submissions.md)"""


def pillar_tables(weights: dict[str, float]) -> str:
    """Per pillar: its weight, effective share with all pillars present, and its tasks."""
    benches = all_benchmarks()
    rows_by_pillar: dict[str, list] = {p: [] for p in PILLARS}
    for b in benchmark_table():
        bench = benches[b["task"]]
        kind = "generation" if bench.generative else "multiple choice"
        rows_by_pillar.setdefault(b["pillar"], []).append([
            f"<code>{esc(b['task'])}</code><br>{esc(b['title'])}",
            f"{esc(b['metric'])}<br>{esc(kind)}, {esc(b['num_fewshot'])}-shot<br>chance level: {esc(b['chance'])}",
            f"{esc(b['pack'])}, {esc(b['license'])}<br><code class=digest>{esc(bench.sha256)}</code>",
            esc(b["source"])])
    total = sum(weights.values())
    out = []
    for p in PILLARS:
        share = weights.get(p, 0.0) / total if total else 0.0
        out.append(f'<h3 id="pillar-{p}">{esc(p.capitalize())}: weight {weights.get(p, 0.0):.2f} '
                   f"(share {share:.1%} with every pillar present)</h3>\n"
                   + table(["Task", "Metric, type, chance level", "Data pack, licence, pinned SHA-256",
                            "Source"], rows_by_pillar[p], cls="wide"))
    return "\n".join(out)


def tracks_note() -> str:
    """What a track is, and the default track (the protocol of params/default.yaml as the code defines it)."""
    default = default_track()
    return (f'<p class="note">{esc(TRACK_RULE)} The default track, shown first, is the protocol of '
            f"<code>params/default.yaml</code>: <b>{esc(default['name'])}</b> (<code>{esc(default['id'])}</code>). "
            "A quick or micro run is ranked only in its own track.</p>\n")


def render_methodology(registry_weights: dict[str, float] | None, reports_href: str) -> str:
    """methodology.html. `registry_weights` are the weights the registry was built with; the page
    says so when they differ from the published `aggregate.WEIGHTS`."""
    weights = registry_weights or WEIGHTS
    differs = ("" if weights == WEIGHTS else '<p class="flag">This registry was built with other pillar weights '
               f"than the published ones: {esc(json.dumps(weights, sort_keys=True))}.</p>")
    suites = [[f"<code>{esc(name)}</code>", esc(", ".join(tasks))] for name, tasks in SUITES.items()]
    badges = [[f'<span class="badge">{esc(b["name"])}</span>', esc(b["rule"]), esc(b["why"])] for b in BADGES]
    buckets = [[esc(b["name"]), esc(b["rule"])] for b in SIZE_BUCKETS]
    licenses = [[f"<code>{esc(k)}</code>", esc(v)] for k, v in detect.LICENSES.items()]
    packs = [[esc(p.name), esc(p.version), esc(p.kind), f"<code>{esc(p.sha256)}</code>", esc(p.license_note)]
             for p in PACKS.values()]
    stats = definitions([
        ("Intervals", esc(f"{uncertainty.CONFIDENCE:.0%} {uncertainty.METHOD}; B = {uncertainty.RESAMPLES}, "
                          f"seed {uncertainty.SEED}")),
        ("Paired test", esc(uncertainty.TEST)), ("Rank bands and ties", esc(uncertainty.BANDS)),
        ("Quantizations", esc(f"each listed quantization of a submission is its own run and entry; "
                              f"{QUANTIZATION_METHOD}; size, memory and speed are shown beside them, never ranked")),
        ("Repeated runs", esc(f"runs of the same weights, suite, limits, seed and settings are one entry; per task "
                              f"the median over runs is reported; a spread above {DISPUTE_POINTS} points "
                              "(0\u2013100 scale) marks the entry DISPUTED")),
    ])
    body = (
        '<p class="note">Generated from the constants the code uses (<code>slmlib.aggregate</code>, '
        "<code>slmlib.benchmarks</code>, <code>slmlib.datapacks</code>, "
        "<code>slmlib.detect</code>) each time the site is published.</p>\n"
        '<h2 id="scores">Scores</h2>\n' + definitions([
            ("Normalization", f"<code>{esc(NORMALIZATION)}</code>: 0 is random guessing on the items evaluated, "
                              "100 is perfect, below chance is negative"),
            ("Chance scores 0", "the rule every ranked number follows: a model that guesses uniformly at random "
                                "scores 0 in expectation on every ranked task, every pillar and the aggregate. "
                                "Each task's baseline is the expected score of uniform guessing on the items "
                                "evaluated (per task below; model pages show its value), and scores are not "
                                "clipped at 0, which would give a guesser about 0.4 standard errors per task. "
                                "Where a model can give the same answer to every item (BoolQ's yes or no, MMLU's "
                                "letter, BBQ's \u201cunknown\u201d, MathQA's listed position) the items are "
                                "sampled so that this scores chance too. A test runs a synthetic model that "
                                "guesses uniformly through the whole pipeline and checks that the aggregate and "
                                "every pillar hold 0 in their 95% intervals, and that every multiple-choice "
                                "metric's exact expectation under guessing equals its baseline"),
            ("Bias measures", "measures whose ideal is indifference (CrowS-Pairs: the stereotyped sentence "
                              "preferred in half the pairs) are reported beside the ranking with their interval, "
                              "on model and compare pages, never averaged into a pillar: a guessing model reaches "
                              "that ideal too (as HELM reports its bias metrics beside accuracy)"),
            ("Pillar", "mean of the normalized scores of its tasks (each task counts once)"),
            ("Aggregate", f"<code>{esc(RENORMALIZATION)}</code>"),
            ("Weights", esc(", ".join(f"{p} {weights.get(p, 0.0):.2f}" for p in PILLARS)
                            + f" (sum {sum(weights.values()):.2f})")),
            ("Hardware", "time, memory, energy and CO\u2082 are recorded and shown, never part of the rank"),
            ("Backend", "lm-eval builds the requests and scores the answers; llama.cpp computes them for GGUF "
                        "weights (same tokenizer and token ids as lm-eval's hf backend; shared prefixes evaluated "
                        "once), transformers for Hugging Face directories and LoRA adapters; each entry records "
                        "its backend, file type and threads"),
        ]) + differs
        + '<h2 id="tasks">Tasks per pillar</h2>\n' + pillar_tables(weights)
        + '<h2 id="suites">Suites</h2>\n' + table(["Suite", "Tasks"], suites)
        + '<h2 id="tracks">Tracks</h2>\n' + tracks_note()
        + '<h2 id="uncertainty">Uncertainty, ties and disputes</h2>\n' + stats
        + '<h2 id="buckets">Size buckets</h2>\n' + table(["Bucket", "Rule"], buckets)
        + '<h2 id="badges">Badges</h2>\n' + table(["Badge", "Rule", "Why"], badges)
        + '<h2 id="licenses">Licences accepted</h2>\n<p class="note">A submission is rejected unless its licence '
          "permits benchmarking the model and publishing the results.</p>\n" + table(["Licence", "Why"], licenses)
        + '<h2 id="packs">Data packs</h2>\n<p class="note">Benchmark data ships inside packages on the Python '
          "package index, installed with <code>--require-hashes</code>; each benchmark's files are hashed again "
          "at run time against the digest pinned above.</p>\n"
        + table(["Package", "Version", "Kind", "SHA-256", "Upstream dataset licences"], packs, cls="wide")
    )
    return page("Methodology", body, "methodology.html", reports_href=reports_href)


def field_rows(schema: dict) -> list[list[str]]:
    """One row per `model:` field of the submission schema: name, type, format, description."""
    rows = []
    for name, prop in schema["properties"]["model"]["properties"].items():
        fmt = prop.get("pattern") or ", ".join(map(str, (prop.get("items") or {}).get("enum") or []))
        if name == "quantizations":
            fmt = "items: {" + ", ".join((prop["items"].get("properties") or {})) + "}"
        rows.append([f"<code>{esc(name)}</code>", esc(prop.get("type")), f"<code>{esc(fmt)}</code>" if fmt else "",
                     esc(prop.get("description"))])
    return rows


def render_submit(reports_href: str) -> str:
    """submit.html: the schema as tables, the worked example, the commands, the full JSON Schema."""
    schema = detect.json_schema()
    forms = [[esc(f["required"][0]), f"<code>{esc(', '.join(f['properties']))}</code>"]
             for f in schema["properties"]["weights"]["oneOf"]]
    rules = definitions([
        ("File", esc(f"YAML, at most {detect.MAX_BYTES // 1024} KiB, nesting at most {detect.MAX_DEPTH} "
                     "deep, no anchors, aliases or tags; the file name is the model id")),
        ("Licence", "one of " + ", ".join(f"<code>{esc(k)}</code>" for k in schema["x-license-allowlist"])
         + ' (<a href="methodology.html#licenses">why</a>)'),
        ("Rate limit", esc(f"at most {detect.RATE_LIMIT} new submissions per submitter in any "
                           f"{detect.RATE_WINDOW_DAYS} days")),
        ("Size", "at most 3B parameters, counted from the weights; declared size and context within 10%"),
    ])
    example = TEMPLATE.read_text(encoding="utf-8") if TEMPLATE.is_file() else ""
    body = (
        '<p class="note">A submission is one YAML file in <code>params/submissions/</code>. This page is generated '
        'from the validator\'s schema (<a href="submission.schema.json">submission.schema.json</a>).</p>\n'
        '<h2 id="fields">The <code>model:</code> fields</h2>\n'
        + table(["Field", "Type", "Format or values", "Description"], field_rows(schema))
        + '<h2 id="weights">Where the weights are (<code>weights:</code>, exactly one form)</h2>\n'
        + table(["Form", "Keys (the first names the form)"], forms)
        + '<p class="note">The worked example below shows each form with what it means.</p>\n'
        + '<h2 id="rules">Rules</h2>\n' + rules
        + '<h2 id="example">Worked example</h2>\n<p class="note"><code>params/submissions/template.yaml</code>, '
          "which validates as shipped:</p>\n" + f'<pre class="code">{esc(example)}</pre>\n'
        + '<h2 id="commands">Validate and run locally</h2>\n' + f'<pre class="code">{esc(COMMANDS)}</pre>\n'
        + '<h2 id="schema">JSON Schema</h2>\n<details><summary>submission.schema.json</summary>'
        + f'<pre class="code">{esc(json.dumps(schema, indent=2))}</pre></details>'
    )
    return page("Submit a model", body, "submit.html", reports_href=reports_href)
