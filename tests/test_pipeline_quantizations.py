"""Quantizations: a submission's listed variants (validation, which file a run's card describes,
the ledger), the registry's `quantizations` section on synthetic runs, and `quantization: all`
in the runner. llama.cpp's conversion is replaced by a fake that writes a GGUF with the target
file type (the real one runs on the default model in test_detect)."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from test_detect import write_submission
from test_detect_rules import write_gguf
from test_aggregate_registry import make_run, sample_rows, with_values

from slmlib import artifacts, detect, params, runner, weights as wts
from slmlib.detect import ledger, submission
from slmlib.aggregate import build_registry, reconcile, write_registry
from slmlib.benchmarks import PILLARS

SHAPES = {"w": (4, 8), "b": (8,)}


@pytest.fixture
def tiny(tmp_path) -> Path:
    """A folder with tiny.gguf (F32 header, 40 parameters) and another file of the model, tiny.q8.gguf."""
    write_gguf(tmp_path / "tiny.gguf", SHAPES)
    write_gguf(tmp_path / "tiny.q8.gguf", SHAPES, file_type="MOSTLY_Q8_0")
    return tmp_path


@pytest.fixture
def conversions(tmp_path, monkeypatch) -> list[str]:
    """llama.cpp's conversion faked: the source's tensors under a header of the target file type, and the
    record `wts.convert_gguf` writes; returns the formats converted, in order."""
    done = []

    def convert(weights: wts.Weights, fmt: str):
        out = tmp_path / "cache" / f"{weights.sha256}-{fmt.lower()}.gguf"
        out.parent.mkdir(exist_ok=True)
        write_gguf(out, SHAPES, file_type="ALL_F32" if fmt == "F32" else f"MOSTLY_{fmt}")
        converted = wts.resolve_weights({"gguf": str(out)})
        artifacts.write_json(out.with_suffix(".json"), {"source_sha256": weights.sha256, "format": fmt,
                                                        "sha256": converted.sha256, "seconds": 1.25,
                                                        "llama_cpp_python": "0.0.test"})
        done.append(fmt)
        return converted, 1.25

    monkeypatch.setattr(wts, "convert_gguf", convert)
    return done


QUANTS = [{"name": "BF16", "convert": "BF16"}, {"name": "Q8_0", "gguf": "tiny.q8.gguf", "source": "elsewhere"},
          {"name": "F32", "format": "gguf"}]


def submit(folder: Path, quants, **extra) -> Path:
    return write_submission(folder, {"model": {"family": "T", "model_type": "pretrained", "quantizations": quants},
                                     "weights": {"gguf": "tiny.gguf"}, **extra}, name="tiny-q")


# --- detect: which file a quantization run evaluates ------------------------------------------

def test_the_first_listed_quantization_is_the_default_and_converts(tiny, conversions):
    card, report = detect.detect_submission(submit(tiny, QUANTS))
    assert report.errors == [] and conversions == ["BF16"]
    assert (card["quantization_name"], card["quantization"]) == ("BF16", "BF16")  # the name, and the header's
    source = wts.resolve_weights({"gguf": str(tiny / "tiny.gguf")})
    assert card["source_weights"]["sha256"] == source.sha256 != card["weights"]["sha256"]
    assert card["weights"]["path"].endswith(f"{source.sha256}-bf16.gguf") and card["weights"]["kind"] == "gguf"
    assert card["conversion"] == {"format": "BF16", "source_sha256": source.sha256, "seconds": 1.25,
                                  "llama_cpp_python": "0.0.test"}
    assert card["parameter_count"] == 40 and card["quantizations"] == QUANTS  # rules apply to the evaluated file


def test_a_named_quantization_another_file_or_the_weights_as_given(tiny, conversions):
    path = submit(tiny, QUANTS)
    q8, report = detect.detect_submission(path, quantization="q8_0")  # any case
    assert report.errors == [] and conversions == []
    assert (q8["quantization_name"], q8["quantization"]) == ("Q8_0", "Q8_0") and "conversion" not in q8
    assert q8["weights"]["path"] == str(tiny / "tiny.q8.gguf")
    given, report = detect.detect_submission(path, params.validate({"quantization": "F32"}))
    assert report.errors == [] and given["weights"] == given["source_weights"]
    assert (given["quantization_name"], given["quantization"]) == ("F32", "F32")
    plain, report = detect.detect_submission(submit(tiny, None))  # no list: the weights as given, as before
    assert report.errors == [] and "quantization_name" not in plain and "source_weights" not in plain


@pytest.mark.parametrize("quants, field, words", [
    ([{"name": "A"}, {"name": "a", "convert": "F16"}], "model.quantizations[1].name", "already the name of"),
    ([{"name": "A", "convert": "F8"}], "model.quantizations[0].convert", "use one of F32, F16, BF16, Q8_0, Q4_0"),
    ([{"name": "A", "convert": "F16", "gguf": "x.gguf"}], "model.quantizations[0]", "at most one of convert"),
    ([{"convert": "F16"}], "model.quantizations[0].name", "missing; name the quantization"),
    ([{"name": "Q4 K"}], "model.quantizations[0].name", "it becomes part of the run id"),
    ([{"name": "all"}], "model.quantizations[0].name", "and not 'all'"),
    ([{"name": "A", "gguf": "missing.gguf"}], "model.quantizations[0].gguf", "is not a .gguf file"),
])
def test_each_broken_quantization_names_its_field(tiny, conversions, quants, field, words):
    _, report = detect.detect_submission(submit(tiny, quants))
    assert len(report.errors) == 1, report.errors
    assert report.errors[0].startswith(f"{field}: ") and words in report.errors[0]
    assert conversions == []


@pytest.mark.parametrize("quantization, words", [
    ("Q5_0", "'Q5_0' is not listed in model.quantizations (BF16, Q8_0, F32); name one of them"),
    ("all", '"all" runs each listed quantization (BF16, Q8_0, F32) as its own run'),
])
def test_picking_an_unlisted_quantization(tiny, conversions, quantization, words):
    _, report = detect.detect_submission(submit(tiny, QUANTS), quantization=quantization)
    assert len(report.errors) == 1 and report.errors[0].startswith("quantization: ") and words in report.errors[0]


def test_a_quantization_without_a_list(tiny):
    _, report = detect.detect_submission(submit(tiny, None), quantization="BF16")
    assert report.errors == ["quantization: 'BF16' given, but the submission lists no model.quantizations; list "
                             'them (see params/submissions/template.yaml) or leave it ""']


def test_convert_needs_gguf_weights(tmp_path, conversions):
    from test_detect import write_safetensors

    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "max_position_embeddings": 512}))
    write_safetensors(folder / "model.safetensors", {"w": [4, 8]})
    path = write_submission(tmp_path, {"model": {"name": "T", "family": "T", "license": "mit", "quantizations": [
        {"name": "float32"}, {"name": "BF16", "convert": "BF16"}]}, "weights": {"dir": "hf"}}, name="hf-q")
    _, report = detect.detect_submission(path)
    assert report.errors == ["model.quantizations[1].convert: converts the submission's own GGUF file, but "
                             "`weights:` are hf_dir; remove convert, or point weights at a GGUF file"]
    assert conversions == []


def test_a_missing_llama_cpp_is_an_error_with_a_way_out(tiny, monkeypatch):
    def convert(weights, fmt):
        raise ModuleNotFoundError("No module named 'llama_cpp'")

    monkeypatch.setattr(wts, "convert_gguf", convert)
    _, report = detect.detect_submission(submit(tiny, QUANTS))
    assert len(report.errors) == 1 and report.errors[0].startswith("model.quantizations[0].convert: converting needs "
                                                                    "the llama_cpp package")
    assert "choose a quantization without convert" in report.errors[0]


def test_every_quantization_of_a_submission_is_one_ledger_submission(tiny, conversions):
    path = submit(tiny, QUANTS, **{"model": {"family": "T", "model_type": "pretrained", "submitted_by": "me",
                                             "quantizations": QUANTS}})
    for i, name in enumerate(("BF16", "Q8_0", "F32")):
        card, report = detect.detect_submission(path, quantization=name)
        assert report.errors == []
        detect.save_card(tiny / f"run{i}", card, report)
    assert len(ledger.read_ledger()) == 1


def test_schema_and_template_document_quantizations():
    schema = submission.json_schema()["properties"]["model"]["properties"]["quantizations"]["items"]
    assert schema["required"] == ["name"] and schema["not"] == {"required": ["convert", "gguf"]}
    assert schema["properties"]["convert"]["enum"] == list(wts.GGUF_FORMATS)
    assert json.loads(submission.SCHEMA_PATH.read_text()) == submission.json_schema()  # python -m slmlib schema
    template = (submission.SCHEMA_PATH.parent / "submissions" / "template.yaml").read_text()
    assert "convert: BF16" in template and "gguf: ~/models/" in template


# --- the registry's quantizations section --------------------------------------------------------

TASK_SKILL = {"boolq": 0.5, "arc_challenge": 0.25, "gsm8k_cot": 0.0}  # task: baseline


def quant_run(quant: str, skill: float, *, model_id: str = "m", seed: int = 1234, dtype: str = "float32",
              backend: str = "hf", tasks=tuple(TASK_SKILL)) -> tuple[dict, dict]:
    """A run of quantization `quant`: items answered from the model's shared draws, so a lower skill
    gets a subset of the items right (as a coarser copy of the same weights would)."""
    rng = random.Random(f"{model_id}:{seed}")
    values = {t: [float(rng.random() < skill) for _ in range(40)] for t in tasks}
    run = make_run(f"{model_id}__{quant.lower()}__{dtype}__{backend}", model_id, {t: 0 for t in tasks},
                   sha=f"sha-{model_id}-{quant}", baselines=TASK_SKILL, seed=seed,
                   edge={"size_bytes": {"F32": 540, "BF16": 270, "Q4_1": 85}.get(quant, 100) * 10**6,
                         "peak_rss_mb": 900.0, "load_seconds": 0.3, "decode_tokens_per_s": 20.0})
    run["model_card"].update(quantization=quant, quantization_name=quant)
    run["settings"].update(dtype=dtype, backend=backend)
    with_values(run, values)
    return run, {t: sample_rows(run["tasks"][t], v) for t, v in values.items()}


def build(*made, resamples: int = 200) -> dict:
    runs = [r for r, _ in made]
    return build_registry(runs, samples={r["run_id"]: s for r, s in made}, resamples=resamples)


def test_each_quantization_against_the_highest_precision():
    registry = build(quant_run("Q4_1", 0.3), quant_run("BF16", 0.55), quant_run("F32", 0.56),
                     quant_run("F32", 0.6, model_id="other"))
    (qset,) = registry["quantizations"]  # the other model has one quantization: nothing to compare
    entries = {e["entry_id"]: e for e in registry["models"]}
    ref = entries[qset["reference"]]
    assert ref["quantization"] == "F32" and [v["name"] for v in qset["variants"]] == ["F32", "BF16", "Q4_1"]
    assert (qset["model_key"], qset["suite"], qset["limit"], qset["seed"]) == ("repo:org/m", "embedded", 40, 1234)
    assert qset["variants"][0]["reference"] and qset["variants"][0]["differences"] is None
    assert [v["size_bytes"] for v in qset["variants"]] == [540e6, 270e6, 85e6]
    comparisons = {frozenset((c["a"], c["b"])): c for c in registry["comparisons"]}
    for v in qset["variants"][1:]:
        d, e = v["differences"], entries[v["entry_id"]]
        assert v["aggregate"] == e["aggregate"] and v["aggregate_ci"] == e["intervals"]["aggregate"]
        assert d["aggregate"]["difference"] == pytest.approx(e["aggregate"] - ref["aggregate"], abs=1e-3)
        assert set(d["pillars"]) == {"reasoning", "language", "math"}
        for p, pd in d["pillars"].items():
            assert pd["paired"] and pd["difference"] == pytest.approx(e["pillars"][p] - ref["pillars"][p], abs=1e-3)
        # the same paired bootstrap as the registry's pairwise comparison of the two entries
        c = comparisons[frozenset((v["entry_id"], ref["entry_id"]))]
        sign = 1 if c["a"] == v["entry_id"] else -1
        assert d["aggregate"]["p_value"] == c["p_value"] and d["aggregate"]["paired"] is True
        assert d["aggregate"]["difference_ci"] == sorted(sign * x for x in c["difference_ci"])
    q4 = qset["variants"][2]["differences"]
    assert q4["aggregate"]["significant"] and q4["aggregate"]["difference"] < 0 and q4["aggregate"]["p_value"] < 0.05


def test_the_default_models_three_llama_cpp_runs_are_one_set():
    """Settings as the llama.cpp backend records them (no dtype; the file's format): BF16 and F32
    converted from the shipped Q4_1, and Q4_1, side by side against F32."""
    made = [quant_run(q, skill) for q, skill in (("BF16", 0.55), ("F32", 0.56), ("Q4_1", 0.4))]
    for run, _ in made:
        run["settings"] = {"backend": "llamacpp", "format": run["model_card"]["quantization"], "threads": 2,
                           "llama_cpp_python": "0.3.36", "apply_chat_template": "auto", "seed": 1234}
    (qset,) = build(*made)["quantizations"]
    assert [v["name"] for v in qset["variants"]] == ["F32", "BF16", "Q4_1"] and qset["backend"] == "llamacpp"
    assert all(v["differences"]["aggregate"]["paired"] for v in qset["variants"][1:])


@pytest.mark.parametrize("quants, reference", [(["Q4_1", "Q8_0", "BF16"], "BF16"), (["Q4_K_M", "Q8_0"], "Q8_0"),
                                               (["Q4_1", "BF16", "float16"], "float16"), (["Q4_1", "Q2_K"], "Q2_K")])
def test_the_reference_is_the_highest_precision_present(quants, reference):
    registry = build(*(quant_run(q, 0.5) for q in quants), resamples=20)
    (qset,) = registry["quantizations"]
    assert next(v["name"] for v in qset["variants"] if v["reference"]) == reference


def test_only_quantizations_measured_alike_are_compared():
    registry = build(quant_run("F32", 0.5), quant_run("BF16", 0.5, seed=7), quant_run("Q4_1", 0.5, backend="llamacpp"),
                     resamples=20)
    assert registry["quantizations"] == []
    same = build(quant_run("Q4_1", 0.5, dtype="float32"), quant_run("Q4_1", 0.5, dtype="bfloat16"), resamples=20)
    (qset,) = same["quantizations"]  # dtype is a precision, not a setting apart: names say which
    assert sorted(v["name"] for v in qset["variants"]) == ["Q4_1 (bfloat16)", "Q4_1 (float32)"]


def test_different_items_are_not_paired():
    q4 = quant_run("Q4_1", 0.4)
    q4[0]["tasks"]["gsm8k_cot"]["item_ids"] = [f"x{i}" for i in range(40)]  # other items (another data pack)
    for i, row in enumerate(q4[1]["gsm8k_cot"]):
        row["item_id"] = f"x{i}"
    registry = build(quant_run("F32", 0.6), q4, resamples=50)
    d = registry["quantizations"][0]["variants"][1]["differences"]
    assert d["aggregate"]["paired"] is False and d["aggregate"]["p_value"] is None  # math's items differ
    assert d["pillars"]["language"]["paired"] is True and d["pillars"]["math"]["paired"] is False


def test_other_task_sets_are_other_tracks_and_never_one_set():
    registry = build(quant_run("F32", 0.6), quant_run("Q4_1", 0.4, tasks=("boolq", "arc_challenge")), resamples=50)
    assert registry["quantizations"] == [] and len({e["track"] for e in registry["models"]}) == 2


def test_the_section_is_rebuilt_byte_for_byte(tmp_path):
    made = [quant_run("Q4_1", 0.3), quant_run("BF16", 0.55), quant_run("F32", 0.56)]
    runs_dir = tmp_path / "runs"
    for run, rows in made:
        artifacts.write_json(runs_dir / run["run_id"] / "results.json", run)
        for task, task_rows in rows.items():
            artifacts.write_jsonl(runs_dir / run["run_id"] / "samples" / f"{task}.jsonl", task_rows)

    def rebuild(order) -> bytes:
        study = reconcile.load_study(runs_dir, inbox=tmp_path)
        path = write_registry(build_registry(order(study.runs), samples=study.samples), tmp_path / "registry.json")
        return path.read_bytes()

    first = rebuild(list)
    assert rebuild(lambda runs: list(reversed(runs))) == first  # validated against the schema, too
    section = json.loads(first)["quantizations"]
    assert len(section) == 1 and all(set(v["differences"]["pillars"]) <= set(PILLARS)
                                     for v in section[0]["variants"][1:])


# --- the runner: quantization: all ------------------------------------------------------------------

def test_quantization_all_runs_detect_and_evaluate_per_quantization_then_aggregate_once(monkeypatch):
    ran = []
    monkeypatch.setattr(runner, "run_stage", lambda stage, p, progress=True: ran.append((stage, p.resolved_run_id())))
    monkeypatch.setattr(runner, "write_reports_index", lambda: None)
    p = params.load(submission.SCHEMA_PATH.parent / "quantizations.yaml", run_id="q")
    runs_ = ["q__f16", "q__f32", "q__bf16", "q__q4_1"]
    assert runner.run_plan(p, progress=False) == runs_
    assert ran == [(stage, r) for r in runs_ for stage in ("detect", "evaluate")] + [
        ("aggregate", "q__q4_1"), ("publish", "q__q4_1")]
    _, report = detect.detect_submission(p.submission, quantization="all")  # one run at a time: refused
    assert any('"all" runs each listed quantization' in e for e in report.errors), report.errors
