"""Audit by re-execution (issue 18) on the real default model: an honest run passes, a run made with
another quantization but labelled as the default one fails, naming the items; and the sample drawn."""

from __future__ import annotations

import json
import shutil

import pytest

from slmlib import artifacts, cli, detect, evaluate, params, paths, signing
from slmlib.tools import audit

SUBMISSION = "params/submissions/smollm2-135m-instruct.yaml"
TASKS = ["arc_challenge", "arithmetic"]  # a multiple-choice and a generative task


def test_the_audit_sample_is_seeded_and_sized():
    ids = [f"i{k}" for k in range(200)]
    first = audit.audit_sample(ids, 0.05, 1234, "mmlu")
    assert first == audit.audit_sample(ids, 0.05, 1234, "mmlu") and len(first) == 10
    assert first != audit.audit_sample(ids, 0.05, 1234, "boolq")
    assert len(audit.audit_sample(ids[:30], 0.05, 1, "t")) == audit.MIN_ITEMS  # at least 5 per task
    assert audit.audit_sample(ids[:3], 0.05, 1, "t") == [0, 1, 2]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An honest F16 run, and a Q4_1 run relabelled as F16 (card, settings), both small and real."""
    root = tmp_path_factory.mktemp("audit")
    made = {}
    for quant, run_id in (("F16", "honest"), ("Q4_1", "relabelled")):
        card, report = detect.detect_submission(SUBMISSION, quantization=quant)
        assert report.ok, report.errors
        p = params.validate({"tasks": TASKS, "limit": 10, "limit_generative": 10, "run_id": run_id})
        evaluate.evaluate_run(p, card, root / run_id, progress=False)
        made[quant] = card
    forged = json.loads((root / "relabelled" / "results.json").read_text())
    honest = json.loads((root / "honest" / "results.json").read_text())
    forged["model_card"] = honest["model_card"]
    forged["settings"] = honest["settings"]
    for name, task in forged["tasks"].items():
        task["settings"] = honest["tasks"][name]["settings"]
    artifacts.write_json(root / "relabelled" / "results.json", forged)
    return root


@pytest.mark.real_model
def test_an_honest_run_passes_and_a_relabelled_quantization_fails(runs, monkeypatch, capsys):
    monkeypatch.setenv("SLM_OUTPUT_ROOT", str(runs.parent / "outputs"))
    for run_id in ("honest", "relabelled"):
        shutil.copytree(runs / run_id, paths.run_dir(run_id))
    assert cli.main(["audit", "honest", "--fraction", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "audit of honest: pass (10/10 items agree" in out
    record = json.loads(paths.audit_file("honest").read_text())
    assert record["verdict"] == "pass" and record["tasks"]["arc_challenge"] == {"audited": 5, "agreeing": 5, "of": 10}
    assert cli.main(["audit", "relabelled", "--fraction", "0.5"]) == 1
    out = capsys.readouterr().out
    record = json.loads(paths.audit_file("relabelled").read_text())
    assert record["verdict"] == "fail" and record["agreeing"] < record["audited"]
    assert "differs: arc_challenge" in out and "log-likelihood differs" in out
    signing.pack_run("honest", runs.parent / "honest.tar.gz")  # an archive is audited as it came
    paths.audit_file("honest").unlink()
    assert cli.main(["audit", str(runs.parent / "honest.tar.gz"), "--fraction", "0.2"]) == 0
    assert json.loads(paths.audit_file("honest").read_text())["audited"] == 10  # at least 5 per task


def test_a_run_whose_weights_are_not_here_is_not_audited(tmp_path, monkeypatch):
    from test_aggregate_reconcile import BOOLQ, good_run
    from test_aggregate_registry import write_run

    run = good_run("elsewhere__1")
    write_run(paths.runs_dir(), run, {"boolq": BOOLQ})
    with pytest.raises(audit.AuditError, match="no submission params/submissions/elsewhere.yaml here"):
        audit.audit_run(paths.run_dir("elsewhere__1"))
    with pytest.raises(audit.AuditError, match="--fraction"):
        audit.audit_run(paths.run_dir("elsewhere__1"), fraction=0)
