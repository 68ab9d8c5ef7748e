"""The standard suite: the embedded benchmarks as lm-eval's own tasks on Hub data.

The online path cannot run here (no Hub). What is tested: offline it fails within seconds,
before the model is loaded, naming `suite: embedded`; its task list maps 1:1 onto the
embedded suite and onto tasks lm-eval really has; code still runs in slmlib's sandbox; and
the preparation and scoring path it uses (lm-eval loading the documents, stratified
sampling over subtasks, the baseline from the task's own metric, per-subtask samples) on
local lm-eval tasks, through the real lm-eval machinery on a tiny model.
"""

from __future__ import annotations

import json
import time

import pytest
import yaml

from slmlib import datapacks, params, paths
from slmlib import detect, weights
from slmlib.evaluate import harness, loop, standard, suites
from slmlib.weights import hub
from slmlib.aggregate import reconcile
from slmlib.benchmarks import Benchmark, get_benchmark
from slmlib.benchmarks.coding import humaneval_pass, mbpp_pass
from tiny import MC_DOCS, build_tiny_model, write_submission


def prepared(name: str, limit: int | None = None, seed: int = 1234) -> suites.PreparedTask:
    try:
        return suites.prepare_task(name, limit, seed)
    except datapacks.DataPackError as exc:
        pytest.skip(f"data pack missing for {name}; run `make setup`: {exc}")


@pytest.fixture(scope="module")
def card(tmp_path_factory):
    root = tmp_path_factory.mktemp("std")
    model_dir = build_tiny_model(root / "model")
    card, report = detect.detect_submission(write_submission(root / "tiny-std.yaml", model_dir))
    assert report.ok, report.errors
    return card


def refuse_model_load(monkeypatch):
    def load(*args, **kwargs):
        raise AssertionError("the model was loaded before the Hub check failed")
    monkeypatch.setattr(weights, "load_model", load)
    monkeypatch.setattr(weights, "model_dir", load)


# --- offline: fast, before the model, naming the fix ---------------------------------

def test_offline_the_standard_suite_fails_within_seconds_before_loading_the_model(card, monkeypatch):
    refuse_model_load(monkeypatch)  # HF_HUB_OFFLINE=1 etc. are set for every test (conftest)
    p = params.validate({"suite": "standard", "run_id": "std-offline"})
    start = time.perf_counter()
    with pytest.raises(weights.HubUnreachable) as exc:
        loop.evaluate_run(p, card, paths.run_dir("std-offline"), progress=False)
    assert time.perf_counter() - start < 10
    msg = str(exc.value)
    assert msg.startswith("suite: standard needs the Hugging Face Hub")
    assert "HF_HUB_OFFLINE" in msg and "use `suite: embedded`" in msg
    assert not (paths.run_dir("std-offline") / "tasks").exists()


def test_without_offline_variables_a_failed_connection_fails_as_fast(card, monkeypatch):
    refuse_model_load(monkeypatch)
    for var in hub.OFFLINE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(hub, "HUB_URL", "https://127.0.0.1:9")  # nothing listens: refused at once
    p = params.validate({"suite": "standard", "run_id": "std-noconn", "tasks": ["boolq", "mbpp"]})
    start = time.perf_counter()
    with pytest.raises(weights.HubUnreachable, match=r"no answer from https://127\.0\.0\.1:9 .*suite: embedded"):
        loop.evaluate_run(p, card, paths.run_dir("std-noconn"), progress=False)
    assert time.perf_counter() - start < 10


def test_a_probe_that_gets_no_answer_gives_up_at_its_timeout(monkeypatch):
    import socket

    for var in hub.OFFLINE_VARS:
        monkeypatch.delenv(var, raising=False)
    with socket.socket() as silent:  # accepts the connection, never answers the TLS handshake
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        monkeypatch.setattr(hub, "HUB_URL", f"https://127.0.0.1:{silent.getsockname()[1]}")
        start = time.perf_counter()
        reason = hub.hub_unreachable_reason(timeout=0.5)
        assert time.perf_counter() - start < 2
    assert reason and reason.startswith("no answer from https://127.0.0.1:")


def test_an_embedded_only_task_needs_no_hub(monkeypatch):
    # basic arithmetic has no lm-eval task: the standard suite runs its embedded definition and data
    prep = loop.prepare_tasks(params.validate({"suite": "standard", "tasks": ["arithmetic"], "limit_generative": 3}))
    assert [p.bench.name for p in prep] == ["arithmetic"] and prep[0].spec is None
    assert prep[0].item_ids == prepared("arithmetic", 3).item_ids


# --- the mapping -----------------------------------------------------------------------

def test_standard_suite_maps_one_to_one_onto_the_embedded_suite_and_lm_evals_tasks():
    assert suites.SUITES["standard"] == suites.SUITES["embedded"]
    names = [get_benchmark(n).lm_eval_task for n in suites.SUITES["standard"]]
    assert len(set(names)) == len(names)
    assert {n: get_benchmark(n).lm_eval_task for n in suites.SUITES["standard"]} == {
        "mmlu": "mmlu", "arc_challenge": "arc_challenge", "hellaswag": "hellaswag",
        "truthfulqa_mc1": "truthfulqa_mc1", "humaneval": "humaneval", "mbpp": "mbpp", "gsm8k_cot": "gsm8k_cot",
        "arithmetic": None, "mathqa": "bigbench_elementary_math_qa_multiple_choice", "boolq": "boolq", "piqa": "piqa", "winogrande": "winogrande", "bbq": "bbq",
        "crows_pairs": "crows_pairs_english", "hhh_alignment": "bigbench_hhh_alignment_multiple_choice",
        "truthfulqa_mc2": "truthfulqa_mc2"}


def yaml_chain(path) -> list:
    """A task YAML and the files it includes (lm-eval's `include:`), without resolving functions."""
    from lm_eval.tasks._yaml_loader import load_yaml

    chain = [path.resolve()]
    cfg = load_yaml(path, resolve_func=False, recursive=False)
    for inc in [cfg["include"]] if isinstance(cfg.get("include"), str) else cfg.get("include") or []:
        chain += yaml_chain(path.parent / inc)
    return chain


@pytest.mark.parametrize("name", [n for n in suites.SUITES["standard"] if get_benchmark(n).lm_eval_task])
def test_each_lm_eval_task_exists_and_is_the_definition_the_embedded_one_follows(name):
    bench = get_benchmark(name)
    entry = harness.hub_task_manager().task_index[bench.lm_eval_task]
    if bench.lm_eval_yaml and name != "mmlu":  # MMLU is a group; its subjects include the same template
        assert (harness.lm_eval_tasks_dir() / bench.lm_eval_yaml).resolve() in yaml_chain(entry.yaml_path)
    elif name == "mmlu":
        assert entry.kind.name == "GROUP"
    else:  # the embedded config copies lm-eval's prompt
        from lm_eval.tasks._yaml_loader import load_yaml

        theirs = load_yaml(entry.yaml_path, resolve_func=False)
        assert harness.definition(bench)["doc_to_text"] == theirs["doc_to_text"]


@pytest.mark.parametrize("name, dataset, scorer", [("humaneval", ("openai/openai_humaneval", None), humaneval_pass),
                                                   ("mbpp", ("google-research-datasets/mbpp", "full"), mbpp_pass)])
def test_code_runs_in_slmlibs_sandbox_on_lm_evals_hub_data(name, dataset, scorer):
    spec = standard.hub_spec(get_benchmark(name))
    assert isinstance(spec, dict) and spec["task"] == name
    assert (spec["dataset_path"], spec.get("dataset_name")) == dataset and spec["test_split"] == "test"
    assert spec["process_results"] is scorer and "unsafe_code" not in spec
    assert spec["metric_list"] == [{"metric": "pass@1", "aggregation": "mean", "higher_is_better": True}]


def test_other_benchmarks_run_lm_evals_own_task_by_name():
    for name in ("mmlu", "bbq", "truthfulqa_mc2", "crows_pairs", "gsm8k_cot"):
        assert standard.hub_spec(get_benchmark(name)) == get_benchmark(name).lm_eval_task


# --- the preparation and scoring path, on local lm-eval tasks --------------------------

@pytest.mark.parametrize("name, limit", [("arc_challenge", 30), ("bbq", 24), ("truthfulqa_mc2", 20),
                                         ("hhh_alignment", 12), ("boolq", 10), ("crows_pairs", 10)])
def test_lm_eval_preparation_matches_the_embedded_items_and_baseline(name, limit):
    """prepare_lm_eval on the embedded config: the same items as the embedded suite (same seeded
    stratified draw), and the baseline from the task's own metric equals the definition's."""
    embedded = prepared(name, limit)
    bench = get_benchmark(name)
    prep = standard.prepare_lm_eval(bench, harness.task_config(prepared(name)), harness.task_manager(),
                                    limit, 1234)
    assert prep.indices == embedded.indices and prep.samples == {name: embedded.indices}
    assert prep.item_ids == [f"{name}/{i}" for i in embedded.indices] and prep.n_total == embedded.n_total
    assert prep.baseline == pytest.approx(embedded.baseline, abs=1e-9)
    if bench.n_choices is not None:
        assert prep.baseline > 0


def write_group(root, docs_a: list[dict], docs_b: list[dict]) -> str:
    """Two local multiple-choice tasks and a group over them, as lm-eval YAML files."""
    arc = {"output_type": "multiple_choice", "doc_to_text": "Question: {{question}}\nAnswer:",
           "doc_to_choice": "{{choices.text}}", "doc_to_target": "{{choices.label.index(answerKey)}}",
           "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
           "dataset_path": "json", "test_split": "test", "metadata": {"version": 1.0}}
    for leaf, docs in (("tiny_leaf_a", docs_a), ("tiny_leaf_b", docs_b)):
        (root / f"{leaf}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
        cfg = {**arc, "task": leaf, "dataset_kwargs": {"data_files": {"test": str(root / f"{leaf}.jsonl")}}}
        (root / f"{leaf}.yaml").write_text(yaml.safe_dump(cfg))
    (root / "tiny_group.yaml").write_text(yaml.safe_dump({
        "group": "tiny_group", "task": ["tiny_leaf_a", "tiny_leaf_b"],
        "aggregate_metric_list": [{"metric": "acc", "weight_by_size": True}], "metadata": {"version": 1.0}}))
    return "tiny_group"


def test_a_group_is_sampled_by_subtask_and_scored_over_all_items(card, tmp_path, monkeypatch):
    from lm_eval.tasks import TaskManager

    docs_a = [{**MC_DOCS[i % 4], "item_id": f"a{i}"} for i in range(12)]
    docs_b = [{**MC_DOCS[i % 4], "item_id": f"b{i}"} for i in range(4)]
    group = write_group(tmp_path, docs_a, docs_b)
    manager = TaskManager(include_path=str(tmp_path), include_defaults=False)
    bench = Benchmark(name="tiny_group_bench", title="Tiny group", pillar="reasoning", pack="local",
                      files=(), sha256="", load=lambda f: [], lm_eval_yaml=None, root=str(tmp_path),
                      n_choices=lambda d: len(d["choices"]["text"]), lm_eval_task=group)
    prep = standard.prepare_lm_eval(bench, group, manager, 8, 1234)
    # 8 of 16 items in proportion to the subtasks' sizes: 6 of 12 and 2 of 4
    assert {leaf: len(ix) for leaf, ix in prep.samples.items()} == {"tiny_leaf_a": 6, "tiny_leaf_b": 2}
    assert prep.n_total == 16 and len(prep.item_ids) == 8
    assert all(i.split("/")[0] in ("tiny_leaf_a", "tiny_leaf_b") for i in prep.item_ids)
    n_choices = {d["item_id"]: len(d["choices"]["text"]) for d in docs_a + docs_b}
    docs = {"tiny_leaf_a": docs_a, "tiny_leaf_b": docs_b}
    expected = [1 / n_choices[docs[leaf][i]["item_id"]] for leaf, ix in prep.samples.items() for i in ix]
    assert prep.baseline == pytest.approx(sum(expected) / len(expected))

    monkeypatch.setattr(harness, "hub_task_manager", lambda: manager)  # the Hub index, here local
    model, tok, _ = weights.load_model(card["weights"]["path"])
    record, rows = harness.run_task(harness.make_lm(model, tok, 4), prep, 1234)
    assert sorted(r["item_id"] for r in rows) == sorted(prep.item_ids)
    assert record["raw"] == pytest.approx(sum(r["value"] for r in rows) / 8)
    assert record["pack"] == "hub" and record["lm_eval_task"] == group
    assert set(record["config"]) == {"tiny_leaf_a", "tiny_leaf_b"}


def test_aggregate_accepts_hub_tasks_of_standard_runs_only():
    from test_aggregate_registry import make_run

    run = make_run("std", "m", {"boolq": 0.6})
    run["suite"] = "standard"
    run["tasks"]["boolq"].update(pack="hub", data_sha256="a" * 64, lm_eval_task="boolq")
    assert reconcile.check_data_packs(run) is None
    run["suite"] = "embedded"  # an embedded run cannot claim Hub data to skip the digest check
    assert "does not match the pinned" in reconcile.check_data_packs(run)

