"""Publish stage: one page per registry entry (`model/<model_id>--<hash>.html`), pure HTML.

Takes the entry's view (`data.entry_view`) and what `evidence` read from its run folders: the
card from detect, pillar radar (drawn by `site.js` from the embedded data), the model's
quantizations side by side (`quantization_section`), per-task table, bias measures beside the ranking
(CrowS-Pairs), worst-scored items, edge
metrics, energy and CO2, provenance, and links to the run's HTML reports and per-item logs.
Every string is escaped.
"""

from __future__ import annotations

from ...benchmarks import PILLARS
from ...aggregate import WEIGHTS
from .data import SPEC_ROWS
from .html import DASH, definitions, esc, fmt, fmt_bytes, fmt_ci, link, page, quorum_text, table
from .quantization_section import quantization_section

CARD_ROWS = (("model_id", "Model id"), ("family", "Family"), ("hf_revision", "Revision"),
             ("parameters", "Parameters (declared)"), ("architecture", "Architecture"),
             ("context_length", "Context length"), ("license", "License"), ("quantization", "Quantization"),
             ("quantization_name", "Quantization (as listed)"), ("submitted_by", "Submitted by"))


def fmt_value(value: object, digits: int = 1) -> str:
    """A number with `digits` decimals, any other value escaped, None as an em dash."""
    if value is None:
        return DASH
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return fmt(value, digits)
    return esc(value)


def card_section(v: dict, card: dict | None) -> str:
    """The model card from detect (the first run's), or the registry's card fields without a run folder."""
    card = card or v
    items = [(label, esc(card.get(key)) if card.get(key) is not None else DASH) for key, label in CARD_ROWS]
    count = card.get("parameter_count")
    items.insert(4, ("Parameters (counted from the weights)", f"{count:,}" if isinstance(count, int) else DASH))
    repo = card.get("hf_repo")
    items.insert(2, ("Hugging Face repo", link(v["source_url"], repo, external=True) if v.get("source_url")
                     else esc(repo) if repo else DASH))
    items.append(("Categories", esc(", ".join(card.get("categories") or [])) or DASH))
    quants = card.get("quantizations") or []
    if quants:
        items.append(("Listed quantizations", esc("; ".join(f"{q.get('name')} ({listed_how(q)})" for q in quants))))
    for key, label in (("weights", "Weights (evaluated)"), ("source_weights", "Submission's own weights")):
        w = card.get(key) or {}
        if w:
            items.append((label, f"{esc(w.get('kind'))}, {fmt_bytes(w.get('size_bytes'))}, SHA-256 "
                                 f"<code>{esc(w.get('sha256'))}</code>"))
    conversion = card.get("conversion")
    if conversion:
        items.append(("Conversion", esc(f"llama.cpp (llama-cpp-python {conversion.get('llama_cpp_python')}) to "
                                        f"{conversion.get('format')} in {conversion.get('seconds')} s")))
    detected = card.get("detected") or {}
    if detected:
        items.append(("Detected from the weights", esc(", ".join(f"{k}: {detected[k]}" for k in sorted(detected)))))
    source = "the model card detect wrote" if card is not v else "the registry (run folder not on this machine)"
    return f'<h2 id="card">Card</h2>\n<p class="note">From {source}.</p>\n' + definitions(items)


def listed_how(q: dict) -> str:
    """How a listed quantization is made: converted by llama.cpp, another GGUF file, or the weights as given."""
    if q.get("convert"):
        return f"the submission's GGUF converted by llama.cpp to {q['convert']}"
    return f"GGUF file {q['gguf']}" if q.get("gguf") else "the weights as given"


def pillar_section(v: dict) -> str:
    """Radar (drawn by site.js) and the pillar table with intervals and weights."""
    rows = [[esc(p.capitalize()), fmt(v["pillars"].get(p)), fmt_ci(v["pillar_cis"].get(p)), f"{WEIGHTS[p]:.2f}"]
            for p in PILLARS]
    return ('<h2 id="pillars">Pillars</h2>\n<div class="split"><figure class="radar-figure">'
            f'<svg class="radar" data-entry="{esc(v["entry_id"])}" role="img" aria-label="pillar radar"></svg>'
            "</figure>\n" + table(["Pillar", "Score", "95% CI", "Weight"], rows, numeric={1, 2, 3}) + "</div>")


def task_section(v: dict) -> str:
    """Per task: raw metric with its standard error, baseline, normalized score, interval, items."""
    rows = []
    for t in v["tasks"]:
        raw = fmt(t["raw"], 3) + (f" \u00b1 {t['stderr']:.3f}" if t.get("stderr") is not None else "")
        ci = fmt_ci(t.get("ci")) or f'<span class="muted" title="{esc(t.get("ci_note"))}">none</span>'
        disputed = ' <span class="flag disputed">DISPUTED</span>' if t["task"] in (v.get("disputed_tasks") or []) else ""
        rows.append([esc(t["pillar"]), f'<span title="{esc(t["title"])}">{esc(t["task"])}</span>{disputed}',
                     esc(t.get("metric") or ""), raw, fmt(t["baseline"], 3), fmt(t["normalized"]), ci,
                     esc(t["n"]), esc(t["n_runs"]), fmt(t["spread"])])
    return ('<h2 id="tasks">Tasks</h2>\n<p class="note">Raw metric (\u00b1 standard error), the random-guessing '
            "baseline on the items evaluated, the normalized score 0\u2013100 with its 95% bootstrap interval, "
            "items, runs, and the spread of the normalized score over runs (DISPUTED above 0.5).</p>\n"
            + table(["Pillar", "Task", "Metric", "Raw", "Baseline", "Normalized", "95% CI", "Items", "Runs",
                     "Spread"], rows, cls="tasks", numeric={3, 4, 5, 6, 7, 8, 9}))


def bias_section(v: dict) -> str:
    """Bias measures beside the ranking (CrowS-Pairs): the raw value with its interval and the unbiased
    ideal; not in any pillar, since a guessing model has no preference either."""
    if not v.get("bias"):
        return ""
    rows = [[f'<span title="{esc(b["title"])}">{esc(b["task"])}</span>', esc(b.get("metric") or ""),
             fmt(b.get("value"), 3),
             f'[{b["ci"][0]:.3f}, {b["ci"][1]:.3f}]' if b.get("ci") else '<span class="muted">none</span>',
             fmt(b.get("ideal"), 3), esc(b.get("n"))] for b in v["bias"]]
    return ('<h2 id="bias">Bias measures (beside the ranking)</h2>\n<p class="note">Reported like energy, never '
            "part of a pillar or the rank: their ideal is indifference (CrowS-Pairs: the stereotyped sentence "
            "preferred in half the pairs), which a model that guesses at random also reaches, so a high score "
            "would reward a model for not telling the sentences apart. Read them next to the safety pillar.</p>\n"
            + table(["Measure", "Metric", "Value", "95% CI", "Ideal", "Items"], rows, cls="bias",
                    numeric={2, 3, 4, 5}))


def worst_section(worst: dict[str, dict], open_first: int = 2) -> str:
    """The worst-scored items per task (the first `open_first` tasks with items shown open): prompt
    end, the model's answer, the expected one."""
    parts, opened = [], 0
    for task, w in worst.items():
        if not w["items"]:
            parts.append(f'<details><summary>{esc(task)}: <span class="muted">{esc(w["note"])}</span></summary>'
                         "</details>")
            continue
        items = "".join(
            f'<div class="item"><p><b>{esc(i["item_id"])}</b> \u00b7 score {fmt(i["value"], 2)}</p>'
            f'<pre class="prompt">{esc(i["prompt"])}</pre><p><b>Model:</b> <code>{esc(i["answer"])}</code></p>'
            f'<p><b>Expected:</b> <code>{esc(i["expected"])}</code></p></div>' for i in w["items"])
        state = " open" if opened < open_first else ""
        opened += 1
        parts.append(f"<details{state}><summary>{esc(task)}: {len(w['items'])} worst items</summary>{items}</details>")
    return ('<h2 id="failures">Where it fails</h2>\n<p class="note">The lowest-scored items of each task (for '
            "multiple choice, the ones the model got wrong most confidently: choice A is the first answer "
            "scored, and the log holds the prompt, not the answers' texts), from the per-item log of the run "
            "whose samples give the interval.</p>\n" + "\n".join(parts))


def spec_section(v: dict, energy_method: str | None) -> str:
    """Edge metrics, energy and CO2 in display units (informational; never ranked)."""
    rows = [[esc(label), fmt_value(v["spec"].get(key), digits), esc(unit)]
            for key, label, unit, _, digits in SPEC_ROWS if key != "parameter_count"]
    eff = v.get("efficiency")
    rows.append(["Aggregate per kWh of evaluation", fmt(eff, 0), "points/kWh"])
    note = (f" Energy: {esc(energy_method)}." if energy_method else "")
    return ('<h2 id="edge">Edge metrics, energy and CO\u2082</h2>\n<p class="note">Medians over the entry\'s '
            "runs, measured on each run's machine (see provenance); hardware-dependent, never part of the rank."
            f"{note}</p>\n" + table(["Figure", "Value", "Unit"], rows, numeric={1}))


def provenance_section(run_id: str, results: dict | None) -> str:
    """Versions, data and weight hashes, seeds and machine of one run."""
    if results is None:
        return f'<h3>Run {esc(run_id)}</h3><p class="note">Run folder not on this machine.</p>'
    prov = results.get("provenance") or {}
    system = prov.get("system") or {}
    versions = ", ".join(f"{k} {v}" for k, v in sorted(prov.items())
                         if isinstance(v, str) and k not in ("git_revision", "lock_sha256"))
    settings = results.get("settings") or {}
    items = [("Started / finished", esc(f"{results.get('started_at')} / {results.get('finished_at')}")),
             ("Wall time", f"{fmt(results.get('wall_seconds'), 0)} s"),
             ("Suite, limits, seed", esc(f"{results.get('suite')}, {results.get('limit')}/"
                                         f"{results.get('limit_generative')} items, seed {results.get('seed')}")),
             ("Settings", esc(", ".join(f"{k}={settings[k]}" for k in sorted(settings)))),
             ("Versions", esc(versions)), ("Code revision", f"<code>{esc(prov.get('git_revision'))}</code>"),
             ("Environment lock SHA-256", f"<code>{esc(prov.get('lock_sha256'))}</code>"),
             ("Machine", esc(", ".join(f"{k} {system[k]}" for k in sorted(system)))),
             ("Weights SHA-256", f"<code>{esc(((results.get('model_card') or {}).get('weights') or {}).get('sha256'))}</code>")]
    packs = [[esc(name), esc(p.get("version")), f"<code>{esc(p.get('sha256'))}</code>"]
             for name, p in sorted((prov.get("data_packs") or {}).items())]
    tasks = [[esc(name), f"<code>{esc(t.get('data_sha256'))}</code>", f"<code>{esc(t.get('outputs_sha256'))}</code>",
              esc(t.get("n")), esc(t.get("n_fewshot")), esc(t.get("apply_chat_template")), fmt(t.get("seconds"), 0)]
             for name, t in sorted((results.get("tasks") or {}).items())]
    return (f"<h3>Run {esc(run_id)}</h3>\n" + definitions(items)
            + "<h4>Data packs</h4>" + table(["Pack", "Version", "SHA-256 of the package file"], packs)
            + "<h4>Tasks</h4>" + table(["Task", "Data SHA-256", "Outputs SHA-256", "Items", "Few-shot",
                                        "Chat template", "Seconds"], tasks, numeric={3, 4, 6}))


def verification_section(v: dict) -> str:
    """Who made the entry's runs and what checked them: the quorum, the runners (trusted signers or
    machines) agreeing with the median, audit verdicts, foreign runs waiting for an audit."""
    q = v.get("quorum")
    if not q:
        return ""
    audits = ", ".join(f"{esc(run)}: {esc(verdict)}" for run, verdict in sorted((q.get("audits") or {}).items()))
    items = [("Status", esc(q["status"]) + ("" if q["status"] == "confirmed" else " (not ranked)")),
             ("Quorum", f"{esc(q['required'])} independent runner(s) agreeing with the median on every task"),
             ("Runners", esc(", ".join(q.get("runners") or [])) or DASH),
             ("Agreeing", esc(", ".join(q.get("agreeing") or [])) or DASH),
             ("Audits (python -m slmlib audit)", audits or DASH),
             ("Waiting for an audit", esc(", ".join(q.get("unaudited") or [])) or DASH)]
    return ('<h2 id="verification">Verification</h2>\n<p class="note">A runner is a run&rsquo;s trusted signer '
            "(params/contributors.yaml) or, unsigned, the machine id it recorded, which proves nothing.</p>\n"
            + definitions(items))


def links_section(runs: list[dict]) -> str:
    """Per run: its stage reports (with and without code) and its per-item logs."""
    parts = []
    for r in runs:
        reports = " \u00b7 ".join(f'{link(x["href"], x["stage"])} ({link(x["no_code"], "without code")})'
                                  for x in r["reports"]) or '<span class="muted">none on this machine</span>'
        logs = " \u00b7 ".join(link(href, task) for task, href in r["samples"]) or '<span class="muted">none</span>'
        parts.append(f"<li><b>{esc(r['run_id'])}</b>: reports {reports}<br>per-item logs (JSON lines): {logs}</li>")
    return '<h2 id="reports">Reports and logs</h2>\n<ul class="links">' + "".join(parts) + "</ul>"


def render_model(v: dict, evidence: dict, siblings: list[dict], reports_href: str, qset: dict | None = None,
                 elsewhere: list[dict] = ()) -> str:
    """The model page. `evidence`: card, worst, energy_method, runs [{run_id, results, reports, samples}];
    `siblings`: the model's other entries in this entry's track; `elsewhere`: its entries in other tracks
    (linked, never ranked against this one); `qset`: the registry's set of quantizations holding this entry."""
    badges = " ".join(f'<span class="badge">{esc(b)}</span>' for b in v.get("badges") or [])
    disputed = ' <span class="flag disputed">DISPUTED</span>' if v.get("disputed") else ""
    if v.get("provisional"):
        disputed += (' <span class="flag provisional">PROVISIONAL</span> <span class="note">'
                     f'{esc(quorum_text(v["quorum"]))} (<a href="#verification">verification</a>)</span>')
    band = v.get("rank_range")
    tie = f" (tied {band[0]}\u2013{band[1]})" if band and band[0] != band[1] else ""
    others = ", ".join(link(f"{s['slug']}.html", f"{s.get('quantization_label') or s['model_id']} \u00b7 limit "
                                                 f"{s.get('limit')}/{s.get('limit_generative')}") for s in siblings)
    tracks = ", ".join(link(f"{s['slug']}.html", f"{s.get('quantization_label') or s['model_id']} in track "
                                                 f"{s.get('track_name')}") for s in elsewhere)
    summary = (f'<p class="track-line">Track <b class="track-name">{esc(v.get("track_name"))}</b>: ranked only '
               "among entries measured under this protocol (suite, tasks, items per task, seed, chat template, "
               'few-shot).</p>\n'
               f'<p class="summary">Rank in its track <b>{esc(v.get("rank") or DASH)}</b>{tie} \u00b7 aggregate '
               f'<b>{fmt(v.get("aggregate"))}</b> {fmt_ci(v.get("aggregate_ci"))} \u00b7 {esc(v.get("parameters"))} '
               f'\u00b7 {esc(v.get("quantization_label") or "")} \u00b7 limit {esc(v.get("limit"))}/'
               f'{esc(v.get("limit_generative"))} {badges}{disputed}</p>\n'
               f'<p>{link("../compare.html#m=" + v["entry_id"], "Compare with others")}'
               + (f" \u00b7 other variants in this track: {others}" if others else "")
               + (f" \u00b7 in other tracks (not comparable): {tracks}" if tracks else "") + "</p>")
    body = (summary + card_section(v, evidence.get("card")) + pillar_section(v)
            + quantization_section(qset, v["entry_id"]) + task_section(v) + bias_section(v)
            + worst_section(evidence["worst"]) + spec_section(v, evidence.get("energy_method"))
            + verification_section(v)
            + '<h2 id="provenance">Provenance</h2>\n'
            + "".join(provenance_section(r["run_id"], r["results"]) for r in evidence["runs"])
            + links_section(evidence["runs"]))
    return page(v.get("name") or v["model_id"], body, depth=1, reports_href=reports_href)
