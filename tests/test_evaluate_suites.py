"""Suites and benchmarks on the real pinned data packs: digests, counts, ids, sampling, configs.

Uses the shared, content-addressed task cache (`SLM_CACHE_DIR`) as runs do; only the
tests of local benchmarks built in tmp_path move the cache.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from slmlib import datapacks
from slmlib.evaluate import harness, suites  # noqa: E402
from slmlib.benchmarks import PILLARS, Benchmark, all_benchmarks, get_benchmark  # noqa: E402

BUILTIN = sorted(n for n, b in all_benchmarks().items() if b.load.__module__.startswith("slmlib.benchmarks"))

N_TOTAL = {"mmlu": 14042, "arc_challenge": 1172, "hellaswag": 10042, "boolq": 3270, "piqa": 1838,
           "winogrande": 1267, "gsm8k_cot": 1319, "humaneval": 164, "mbpp": 500, "bbq": 1012,
           "crows_pairs": 1018, "hhh_alignment": 221, "arithmetic": 3000, "truthfulqa_mc1": 299,
           "truthfulqa_mc2": 299, "mathqa": 7688}


def prepared(name: str, limit: int | None = None, seed: int = 1) -> suites.PreparedTask:
    """prepare_task, skipped (not failed) only when the benchmark's data pack is not installed."""
    try:
        return suites.prepare_task(name, limit, seed)
    except datapacks.DataPackError as exc:
        pytest.skip(f"data pack missing for {name}; run `make setup`: {exc}")


def test_embedded_suite_is_every_builtin_benchmark_and_covers_every_pillar():
    assert sorted(suites.SUITES["embedded"]) == BUILTIN
    assert len(set(suites.SUITES["embedded"])) == len(suites.SUITES["embedded"])
    assert {get_benchmark(n).pillar for n in suites.SUITES["embedded"]} == set(PILLARS)


@pytest.mark.parametrize("name", BUILTIN)
def test_files_match_the_pinned_digest(name):
    bench = get_benchmark(name)
    try:
        digest, files = suites.verify(bench)
    except datapacks.DataPackError as exc:
        pytest.skip(f"data pack {bench.pack} missing; run `make setup`: {exc}")
    assert digest == bench.sha256
    assert files and all(f.is_file() for f in files)


@pytest.mark.parametrize("name, n", sorted(N_TOTAL.items()))
def test_document_counts(name, n):
    prep = prepared(name)
    assert prep.n_total == n
    if prep.bench.balance:  # equal items per group even without a limit (tests/test_benchmarks_chance.py)
        return
    assert prep.indices == list(range(n))
    assert len(prep.item_ids) == n


@pytest.mark.parametrize("name", BUILTIN)
def test_item_ids_are_unique_strings(name):
    prep = prepared(name)
    ids = prep.item_ids
    assert all(isinstance(i, str) and i for i in ids)
    assert len(set(ids)) == len(ids)
    # the cached documents file holds the same documents in the same order (split on "\n" only:
    # JSON text may hold U+2028 and other characters str.splitlines breaks on)
    lines = prep.data_file.read_text(encoding="utf-8").rstrip("\n").split("\n")
    assert len(lines) == prep.n_total
    assert json.loads(lines[prep.indices[0]])["item_id"] == ids[0]  # all items, or a balanced sample's
    assert json.loads(lines[prep.indices[-1]])["item_id"] == ids[-1]


@pytest.mark.parametrize("name, baseline", [("mmlu", 0.25), ("boolq", 0.5), ("gsm8k_cot", 0.0),
                                            ("winogrande", 0.5), ("humaneval", 0.0)])
def test_baselines(name, baseline):
    assert prepared(name).baseline == pytest.approx(baseline)
    assert prepared(name, limit=20, seed=3).baseline == pytest.approx(baseline)


def test_prepare_task_subsample_is_stratified_and_reproducible():
    a, b = prepared("mmlu", 116, 1234), prepared("mmlu", 116, 1234)
    assert a.indices == b.indices and a.item_ids == b.item_ids
    assert len(a.indices) == 116 and a.n_total == 14042  # 29 items per answer letter (balanced)
    assert prepared("mmlu", 116, 99).indices != a.indices
    # proportional stratification: each subject gets its share of the 114 items, rounded down or up
    docs = [json.loads(line) for line in a.data_file.read_text(encoding="utf-8").rstrip("\n").split("\n")]
    sizes = Counter(d["subject"] for d in docs)
    chosen = Counter(docs[i]["subject"] for i in suites.stratified_sample(docs, 114, "subject", "1234:mmlu"))
    assert len(sizes) == 57
    for subject, size in sizes.items():
        quota = 114 * size / 14042
        assert int(quota) <= chosen.get(subject, 0) <= int(quota) + 1, subject
    assert chosen["professional_law"] >= 12  # 1,534 items: quota 12.45


# --- stratified_sample on hand-built documents ---------------------------------------

GROUPED = [{"g": "a"}] * 6 + [{"g": "b"}] * 3 + [{"g": "c"}] * 1


def group_counts(docs, indices):
    counts = Counter(docs[i]["g"] for i in indices)
    return {g: counts.get(g, 0) for g in "abc"}


@pytest.mark.parametrize("seed", ["1", "2", 3, "7:mmlu"])
def test_stratified_sample_largest_remainder(seed):
    # limit 5 of 10: quotas a 3.0, b 1.5, c 0.5 -> floors 3/1/0; one left over; b and c tie on
    # remainder 0.5 and the tie goes to the first group name, b -> 3/2/0
    assert group_counts(GROUPED, suites.stratified_sample(GROUPED, 5, "g", seed)) == {"a": 3, "b": 2, "c": 0}
    # limit 4: quotas 2.4, 1.2, 0.4 -> floors 2/1/0; one left over, largest remainder is c -> 2/1/1
    assert group_counts(GROUPED, suites.stratified_sample(GROUPED, 4, "g", seed)) == {"a": 2, "b": 1, "c": 1}
    # limit 7: quotas 4.2, 2.1, 0.7 -> floors 4/2/0; one left over to c -> 4/2/1
    assert group_counts(GROUPED, suites.stratified_sample(GROUPED, 7, "g", seed)) == {"a": 4, "b": 2, "c": 1}


DOCS = [{"g": f"group{i % 7}", "x": i} for i in range(200)]


@pytest.mark.parametrize("limit", [1, 10, 33, 199])
def test_stratified_sample_returns_limit_sorted_unique_indices(limit):
    got = suites.stratified_sample(DOCS, limit, "g", "s")
    assert len(got) == limit
    assert got == sorted(set(got))
    assert all(0 <= i < len(DOCS) for i in got)


def test_stratified_sample_is_deterministic_and_seeded():
    first = suites.stratified_sample(DOCS, 20, "g", "1234:boolq")
    assert suites.stratified_sample(DOCS, 20, "g", "1234:boolq") == first
    assert suites.stratified_sample(DOCS, 20, "g", "1235:boolq") != first
    assert suites.stratified_sample(DOCS, 20, None, "1234:boolq") != suites.stratified_sample(DOCS, 20, None, "9")


def test_stratified_sample_without_key_is_a_plain_sample():
    got = suites.stratified_sample(GROUPED, 5, None, "x")
    assert len(got) == 5 and got == sorted(set(got))


@pytest.mark.parametrize("limit", [None, 10, 11, 1000])
def test_stratified_sample_all_when_limit_is_none_or_large(limit):
    assert suites.stratified_sample(GROUPED, limit, "g", "s") == list(range(10))


# --- local benchmarks in tmp_path: integrity and caching -----------------------------

def jsonl_load(files):
    return [json.loads(line) for f in files for line in f.read_text().splitlines() if line]


def local_bench(root: Path, sha256: str, name: str = "tiny_local") -> Benchmark:
    return Benchmark(name=name, title="Tiny", pillar="reasoning", pack="local", files=("data/*.jsonl",),
                     sha256=sha256, load=jsonl_load, lm_eval_yaml=None, n_choices=lambda d: 2, root=str(root))


def write_docs(root: Path, docs: list[dict]) -> Path:
    path = root / "data" / "docs.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    return path


def test_verify_rejects_a_wrong_digest_and_accepts_the_right_one(tmp_path):
    data = write_docs(tmp_path, [{"q": "x", "item_id": "1"}, {"q": "y", "item_id": "2"}])
    with pytest.raises(suites.DataIntegrityError, match=r"^tiny_local: data digest .* does not match"):
        suites.verify(local_bench(tmp_path, "0" * 64))
    right = datapacks.digest_files([data], tmp_path)
    digest, files = suites.verify(local_bench(tmp_path, right))
    assert digest == right and files == [data]


def test_verify_detects_a_tampered_copy(tmp_path):
    data = write_docs(tmp_path, [{"q": "x", "item_id": "1"}, {"q": "y", "item_id": "2"}])
    bench = local_bench(tmp_path, datapacks.digest_files([data], tmp_path))
    suites.verify(bench)
    data.write_text(data.read_text().replace('"y"', '"z"'))
    with pytest.raises(suites.DataIntegrityError, match="tiny_local"):
        suites.verify(bench)


def test_verify_detects_an_added_file(tmp_path):
    data = write_docs(tmp_path, [{"q": "x", "item_id": "1"}])
    bench = local_bench(tmp_path, datapacks.digest_files([data], tmp_path))
    (tmp_path / "data" / "extra.jsonl").write_text('{"q": "w", "item_id": "9"}\n')
    with pytest.raises(suites.DataIntegrityError, match="tiny_local"):
        suites.verify(bench)


def test_missing_files_name_the_benchmark(tmp_path):
    with pytest.raises(datapacks.DataPackError, match="tiny_local: no files match"):
        suites.verify(local_bench(tmp_path, "0" * 64))


def test_materialize_caches_by_digest_and_rejects_duplicate_ids(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_CACHE_DIR", str(tmp_path / "cache"))
    docs = [{"q": "x", "item_id": "1"}, {"q": "y", "item_id": "2"}]
    data = write_docs(tmp_path / "ok", docs)
    digest = datapacks.digest_files([data], tmp_path / "ok")
    out, got_digest, got_docs = suites.materialize(local_bench(tmp_path / "ok", digest))
    assert got_digest == digest and got_docs == docs
    bench = local_bench(tmp_path / "ok", digest)
    assert out == tmp_path / "cache" / "tasks" / f"tiny_local-{digest[:16]}-{suites.loader_key(bench)}.jsonl"
    changed = dataclasses.replace(bench, load=lambda files: [{**d, "new": 1} for d in jsonl_load(files)])
    assert suites.loader_key(changed) != suites.loader_key(bench)  # another loader: documents made again
    assert suites.materialize(changed)[2] == [{**d, "new": 1} for d in docs]
    assert [json.loads(line) for line in out.read_text().splitlines()] == docs

    dup = write_docs(tmp_path / "dup", [{"q": "x", "item_id": "1"}, {"q": "y", "item_id": "1"}])
    with pytest.raises(ValueError, match="tiny_dup: item ids are not unique"):
        suites.materialize(local_bench(tmp_path / "dup", datapacks.digest_files([dup], tmp_path / "dup"),
                                       name="tiny_dup"))


# --- names ----------------------------------------------------------------------------

def test_unknown_suite_names_the_known_suites():
    with pytest.raises(ValueError, match=r"unknown suite 'nope'; choose one of .*embedded"):
        suites.suite_tasks("nope")


def test_suite_tasks_all_or_subset():
    assert suites.suite_tasks("embedded") == list(suites.SUITES["embedded"])
    assert suites.suite_tasks("embedded", ["boolq", "mbpp"]) == ["boolq", "mbpp"]
    with pytest.raises(KeyError, match="nope"):
        suites.suite_tasks("embedded", ["boolq", "nope"])


def test_unknown_benchmark_lists_known_names():
    with pytest.raises(KeyError) as exc:
        get_benchmark("nope")
    msg = str(exc.value)
    assert "unknown benchmark 'nope'" in msg
    for name in BUILTIN:
        assert name in msg


# --- lm-eval task configs --------------------------------------------------------------

class _TagLoader(yaml.SafeLoader):
    """Reads lm-eval's task YAML as data: `!function x` becomes the string "x"."""


_TagLoader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))


def lm_eval_yaml(rel: str) -> dict:
    return yaml.load((harness.lm_eval_tasks_dir() / rel).read_text(encoding="utf-8"), Loader=_TagLoader)


def template_vars(template: str) -> set[str]:
    import jinja2
    import jinja2.meta

    return jinja2.meta.find_undeclared_variables(jinja2.Environment().parse(template))


@pytest.mark.parametrize("name, lm_eval_rel", [
    ("boolq", "super_glue/boolq/default.yaml"),
    ("gsm8k_cot", "gsm8k/gsm8k-cot.yaml"),
    ("humaneval", "humaneval/humaneval.yaml"),
])
def test_task_config_points_at_the_cached_documents_and_keeps_the_prompt(name, lm_eval_rel):
    prep = prepared(name, limit=5, seed=1234)
    config = harness.task_config(prep)
    assert config["task"] == name
    assert config["dataset_path"] == "json" and config["test_split"] == "test"
    assert config["dataset_kwargs"] == {"data_files": {"test": str(prep.data_file)}}
    assert prep.data_file.is_file()
    for key in ("dataset_name", "training_split", "validation_split", "include", "tag"):
        assert key not in config
    ours, theirs = config["doc_to_text"], lm_eval_yaml(lm_eval_rel)["doc_to_text"]
    assert ours == theirs
    # every variable of the prompt is a field of the documents
    doc = json.loads(prep.data_file.read_text(encoding="utf-8").split("\n")[0])
    assert template_vars(ours) <= set(doc)
    text = json.dumps(harness.jsonable(config))
    assert json.loads(text)["dataset_kwargs"]["data_files"]["test"] == str(prep.data_file)


def test_boolq_prompt_is_lm_evals():
    config = harness.task_config(prepared("boolq", 5, 1))
    assert config["doc_to_text"] == "{{passage}}\nQuestion: {{question}}?\nAnswer:"
    assert config["doc_to_choice"] == ["no", "yes"] and config["output_type"] == "multiple_choice"


def test_gsm8k_cot_keeps_lm_evals_exemplars():
    config = harness.task_config(prepared("gsm8k_cot", 5, 1))
    theirs = lm_eval_yaml("gsm8k/gsm8k-cot.yaml")
    assert config["fewshot_config"]["samples"] == theirs["fewshot_config"]["samples"]
    assert len(config["fewshot_config"]["samples"]) == 8
    assert config["output_type"] == "generate_until"


def test_humaneval_keeps_lm_evals_stop_sequences_and_scores_in_the_sandbox():
    config = harness.task_config(prepared("humaneval", 5, 1))
    theirs = lm_eval_yaml("humaneval/humaneval.yaml")
    assert config["generation_kwargs"]["until"] == theirs["generation_kwargs"]["until"]
    assert config["doc_to_target"] == theirs["doc_to_target"]
    assert callable(config["process_results"])
    assert harness.jsonable(config)["process_results"] == "slmlib.benchmarks.coding:humaneval_pass"


def test_jsonable_handles_callables_tuples_nan_and_objects():
    got = harness.jsonable({1: (1, 2.5), "f": len, "nan": float("nan"), "p": Path("/x"), "n": None})
    assert got == {"1": [1, 2.5], "f": "builtins:len", "nan": None, "p": "/x", "n": None}
    json.dumps(got, allow_nan=False)


def test_a_limit_under_one_balanced_unit_still_takes_that_many_items():
    """A quick run (4 items) of MathQA's five balanced answer positions took none, and lm-eval reads an
    empty sample as every document: 7,688 items in a smoke run."""
    docs = [{"g": str(i % 5)} for i in range(50)]
    weights = {str(g): 1 for g in range(5)}
    picked = suites.stratified_sample(docs, 4, "g", "1234:x", weights)
    assert len(picked) == 4 and len({docs[i]["g"] for i in picked}) == 4  # four positions, one item each
    assert picked == suites.stratified_sample(docs, 4, "g", "1234:x", weights)
    assert len(suites.stratified_sample(docs, 10, "g", "1234:x", weights)) == 10
    prep = suites.prepare_task("mathqa", 4, 1234)
    assert len(prep.indices) == 4
    with pytest.raises(ValueError, match="no items to evaluate"):
        suites.prepare_task("mathqa", 0, 1234)
