"""Benchmarks as plugins: definition files, entry points, registration errors, the few-shot
field, and a plugin benchmark through the whole pipeline on the tiny model.

The definition file used is the worked example of docs/adding-a-benchmark.md, read from the
guide itself, so the guide is checked too.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path

import pytest

from slmlib import artifacts, benchmarks, datapacks, params, paths, runner
from slmlib.detect import estimate
from slmlib import weights
from slmlib.evaluate import harness, suites
from slmlib.benchmarks import Benchmark, PluginError, get_benchmark
from tiny import GEN_DOCS, build_tiny_model, write_submission

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "adding-a-benchmark.md"

# A package with an entry point in the group slm_study.benchmarks: a generative 1-shot task.
EP_MODULE = '''"""Tiny sums (a test plugin installed through an entry point)."""
from pathlib import Path

from slmlib.benchmarks import Benchmark, read_jsonl, register

register(Benchmark(
    name="tiny_sums", title="Tiny sums", pillar="math", pack="local", generative=True,
    root=str(Path(__file__).resolve().parent / "data"), files=("sums.jsonl",), sha256={sha!r},
    load=lambda files: read_jsonl(files[0]), lm_eval_yaml=None, num_fewshot=1,
    overrides={{"output_type": "generate_until", "doc_to_text": "Question: {{{{question}}}}\\nAnswer:",
               "doc_to_target": "{{{{answer}}}}",
               "fewshot_config": {{"sampler": "first_n", "samples": [{{"question": "What is 1 + 1?", "answer": "2"}}]}},
               "generation_kwargs": {{"until": ["\\n"], "do_sample": False, "max_gen_toks": 4}},
               "metric_list": [{{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}}]}},
    metric="exact_match", license="CC0-1.0", source_note="three sums written by the test"))
'''


def guide_files(dest: Path) -> Path:
    """Write the guide's titled code blocks (the example's data and definition) under `dest`;
    returns the definition file."""
    blocks = re.findall(r'```\w+ title="([^"]+)"\n(.*?)```', GUIDE.read_text(encoding="utf-8"), re.S)
    assert {name for name, _ in blocks} == {"data/capitals.jsonl", "world_capitals.py"}
    for name, text in blocks:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_text(text, encoding="utf-8")
    return dest / "world_capitals.py"


def install_entry_point(site: Path, module: str, source: str, dist: str = "slm-tiny-plugin") -> Path:
    """A module plus a minimal .dist-info declaring it in slm_study.benchmarks, as pip would install it."""
    pkg = site / module
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text(source, encoding="utf-8")
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{benchmarks.ENTRY_POINT_GROUP}]\n{module} = {module}\n")
    return pkg


def install_tiny_sums(site: Path) -> None:
    """The tiny_sums package (data and module) with its entry point, under `site`."""
    data = site / "tiny_sums" / "data"
    data.mkdir(parents=True)
    (data / "sums.jsonl").write_text("".join(json.dumps(d) + "\n" for d in GEN_DOCS))
    digest = datapacks.digest_files([data / "sums.jsonl"], data)
    install_entry_point(site, "tiny_sums", EP_MODULE.format(sha=digest))


@pytest.fixture
def registry(monkeypatch):
    """A private copy of the registry; plugin modules imported by the test are forgotten after."""
    monkeypatch.setattr(benchmarks, "_REGISTRY", dict(benchmarks._REGISTRY))
    modules = set(sys.modules)
    yield
    for name in set(sys.modules) - modules:
        if name.startswith(("tiny_sums", "broken_plugin")):
            del sys.modules[name]


def test_the_guides_example_registers_and_its_pinned_digest_matches(registry, tmp_path):
    benchmarks.load_plugin_files(str(guide_files(tmp_path)))
    bench = get_benchmark("world_capitals")
    assert (bench.pillar, bench.metric, bench.num_fewshot, bench.license) == ("language", "acc", 0, "CC0-1.0")
    digest, _ = suites.verify(bench)  # raises unless the guide's sha256 pins the guide's data
    assert digest == bench.sha256
    prep = suites.prepare_task("world_capitals", None, 1234)
    assert prep.item_ids == ["fr", "jp", "ca", "ke"]
    assert prep.baseline == pytest.approx((1 / 3 + 1 / 2 + 1 / 4 + 1 / 2) / 4)
    row = next(r for r in suites.benchmark_table() if r["task"] == "world_capitals")
    assert row["pillar"] == "language" and row["num_fewshot"] == 0


def test_an_entry_point_registers_its_benchmarks(registry, tmp_path, monkeypatch):
    install_tiny_sums(tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert "tiny_sums" in benchmarks.load_entry_points()
    bench = get_benchmark("tiny_sums")
    assert bench.pillar == "math" and bench.num_fewshot == 1 and bench.generative
    assert benchmarks.load_entry_points() == ["tiny_sums"]  # imported once: not registered twice


def test_a_broken_entry_point_names_itself_and_its_package(registry, tmp_path, monkeypatch):
    install_entry_point(tmp_path / "site", "broken_plugin", "raise RuntimeError('data folder missing')\n",
                        dist="slm-broken")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(PluginError, match=r"entry point 'broken_plugin' \(broken_plugin, group slm_study"
                                          r"\.benchmarks, from slm-broken\) failed: RuntimeError: data folder "
                                          r"missing; fix or uninstall slm-broken"):
        benchmarks.load_entry_points()


def test_a_broken_definition_file_names_the_file(registry, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from slmlib.benchmarks import register\nregister(None)\n")
    with pytest.raises(PluginError, match=rf"SLM_BENCHMARK_FILES: benchmark file {re.escape(str(bad))} failed: "
                                          "AttributeError"):
        benchmarks.load_plugin_files(str(bad))
    with pytest.raises(PluginError, match="is not a Python file"):
        benchmarks.load_plugin_files(str(tmp_path / "missing.py"))


@pytest.mark.parametrize("change, message", [
    ({"overrides": {"num_fewshot": 5}}, "set the few-shot count as the field num_fewshot"),
    ({"num_fewshot": -1}, "num_fewshot must be an integer >= 0"),
    ({"num_fewshot": True}, "num_fewshot must be an integer >= 0"),
    ({"root": None}, 'pack "local" and `root`'),
    ({"name": "../escape"}, "name: '../escape' is not a valid id"),
    ({"pillar": "trivia"}, "pillar 'trivia' is not one of"),
    ({"name": "boolq"}, "'boolq' is registered twice"),
])
def test_register_refuses_a_bad_definition_naming_the_field(registry, change, message):
    good = Benchmark(name="ok_bench", title="t", pillar="language", pack="local", root="/data", files=("x",),
                     sha256="0" * 64, load=list, lm_eval_yaml=None)
    benchmarks.register(good)
    with pytest.raises(ValueError, match=re.escape(message)):
        benchmarks.register(dataclasses.replace(good, **change))


def test_unknown_benchmark_error_lists_the_registry_and_the_guide():
    with pytest.raises(KeyError, match=r"unknown benchmark 'nope'; known: .*boolq.*adding-a-benchmark\.md"):
        get_benchmark("nope")


@pytest.mark.parametrize("name", sorted(benchmarks.all_benchmarks()))
def test_few_shot_is_the_definitions_and_follows_lm_evals_yaml(name):
    """The registry's num_fewshot is what lm-eval runs, and where an lm-eval YAML sets one, it agrees."""
    from lm_eval.tasks._yaml_loader import load_yaml

    bench = get_benchmark(name)
    if bench.lm_eval_yaml:
        theirs = load_yaml(harness.lm_eval_tasks_dir() / bench.lm_eval_yaml).get("num_fewshot")
        assert bench.num_fewshot == (theirs or 0)
    prep = suites.PreparedTask(bench, Path("docs.jsonl"), "0" * 64, 1, [0], ["a"], 0.0)
    assert harness.task_config(prep)["num_fewshot"] == bench.num_fewshot


@pytest.mark.slow
def test_plugin_benchmarks_run_through_the_pipeline(tmp_path, monkeypatch):
    """One benchmark from a definition file (the guide's), one from an entry point: the four
    stage notebooks, each in its own kernel, find both; evaluate scores them, aggregate puts
    them in their pillars, the methodology page lists them there, the runtime estimate counts them."""
    site = tmp_path / "site"
    install_tiny_sums(site)
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.setenv("SLM_BENCHMARK_FILES", str(guide_files(tmp_path / "plugin")))
    model_dir = build_tiny_model(tmp_path / "model")
    submission = write_submission(tmp_path / "tiny-random.yaml", model_dir)
    tasks = ["world_capitals", "tiny_sums"]
    p = params.validate({"submission": str(submission), "run_id": "plugins", "tasks": tasks,
                         "limit": None, "limit_generative": None, "batch_size": 2})
    [run_id] = runner.run_plan(p, progress=False)
    run = paths.run_dir(run_id)

    results = artifacts.read_json(run / "results.json")
    capitals, sums = results["tasks"]["world_capitals"], results["tasks"]["tiny_sums"]
    assert (capitals["pillar"], capitals["n"], capitals["n_fewshot"]) == ("language", 4, 0)
    assert capitals["baseline"] == pytest.approx((1 / 3 + 1 / 2 + 1 / 4 + 1 / 2) / 4)
    assert (sums["pillar"], sums["n"], sums["n_fewshot"], sums["baseline"]) == ("math", 3, 1, 0.0)
    prompts = [r["prompt"] for r in artifacts.read_jsonl(run / "samples" / "tiny_sums.jsonl")]
    assert all(pr.startswith("Question: What is 1 + 1?\nAnswer: 2") for pr in prompts)  # the 1-shot example

    (entry,) = artifacts.read_json(paths.registry_path())["models"]
    assert set(entry["pillars"]) == {"language", "math"}
    assert {n: t["pillar"] for n, t in entry["tasks"].items()} == {"world_capitals": "language", "tiny_sums": "math"}
    assert not artifacts.read_json(paths.registry_path())["rejected"]

    methodology = (paths.site_dir() / "methodology.html").read_text(encoding="utf-8")
    sections = dict(re.findall(r'<h3 id="pillar-(\w+)">(.*?)(?=<h3 id="pillar-|<h2)', methodology, re.S))
    assert "<code>world_capitals</code>" in sections["language"] and "World capitals (example)" in sections["language"]
    assert "<code>tiny_sums</code>" in sections["math"]

    planned = artifacts.read_json(run / "validation.json")["estimate"]["tasks"]
    assert sorted(planned) == sorted(tasks)
    assert planned["world_capitals"]["items"] == 4 and planned["tiny_sums"]["items"] == 3

    # the estimate counts each prompt once per few-shot example more (here with the model's tokenizer)
    tokenizer = weights.load_tokenizer(weights.Weights(**results["model_card"]["weights"]))
    monkeypatch.setattr(benchmarks, "_REGISTRY", dict(benchmarks._REGISTRY))
    benchmarks.load_plugin_files(str(tmp_path / "plugin" / "world_capitals.py"))
    bench, docs = estimate.chosen_docs("world_capitals", None, 1234)
    zero = estimate.count_tokens(tokenizer, bench, docs)["scored"]
    assert estimate.count_tokens(tokenizer, dataclasses.replace(bench, num_fewshot=2), docs)["scored"] == 3 * zero
