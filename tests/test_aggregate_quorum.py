"""Quorum (issue 18): who counts as a runner, when an entry is confirmed, and what `todo` asks for."""

from __future__ import annotations

from slmlib import artifacts, paths, provenance
from slmlib.aggregate import quorum


def run(run_id: str, machine: str | None = None) -> dict:
    return {"run_id": run_id, "provenance": {"machine_id": machine} if machine else {}}


def test_a_runner_is_the_signer_else_the_machine_else_one_unknown_machine():
    signers = {"a__1": "alice"}
    assert quorum.runner_of(run("a__1", "m1"), signers) == "signer:alice"
    assert quorum.runner_of(run("b__1", "m1"), signers) == "machine:m1"
    assert quorum.runner_of(run("c__1"), signers) == quorum.runner_of(run("d__1"), signers) == quorum.UNKNOWN_MACHINE


def test_confirmed_needs_k_distinct_runners_that_agree():
    runs = [run("a__1", "m1"), run("a__2", "m1"), run("a__3", "m2")]
    two = quorum.quorum_status(runs, False, 2, {}, set(), False)
    assert two == {"required": 2, "runners": ["machine:m1", "machine:m2"], "unaudited": [], "status": "confirmed"}
    assert quorum.quorum_status(runs, False, 3, {}, set(), False)["status"] == "provisional"  # m1 twice is one
    assert quorum.quorum_status(runs, True, 2, {}, set(), False)["status"] == "provisional"  # they disagree
    signed = quorum.quorum_status(runs, False, 3, {"a__1": "alice", "a__2": "bob"}, set(), False)
    assert signed["runners"] == ["machine:m2", "signer:alice", "signer:bob"] and signed["status"] == "confirmed"
    assert quorum.quorum_status(runs[:1], False, 1, {}, set(), False)["status"] == "confirmed"  # a local study


def test_with_require_audit_a_foreign_run_counts_only_after_a_passing_audit():
    runs = [run("local__1", "m1"), run("remote__1", "m2")]
    waiting = quorum.quorum_status(runs, False, 2, {}, {"remote__1"}, True)
    assert waiting["status"] == "provisional" and waiting["unaudited"] == ["remote__1"]
    artifacts.write_json(paths.audit_file("remote__1"), {"verdict": "fail"})
    assert quorum.quorum_status(runs, False, 2, {}, {"remote__1"}, True)["status"] == "provisional"
    artifacts.write_json(paths.audit_file("remote__1"), {"verdict": "pass"})
    assert quorum.quorum_status(runs, False, 2, {}, {"remote__1"}, True)["status"] == "confirmed"
    paths.audit_file("remote__1").write_text("{not json")  # unreadable counts as never audited
    assert quorum.audit_verdict("remote__1") is None
    assert quorum.quorum_status(runs, False, 2, {}, {"remote__1"}, False)["status"] == "confirmed"  # not required


def test_todo_lists_runnable_commands_for_what_is_missing():
    base = {"suite": "embedded", "limit": 80, "limit_generative": None, "seed": 1234, "quantization_name": "F16",
            "tasks": {"mmlu": {}, "boolq": {}}}
    registry = {"tracks": [{"id": "t1", "protocol": {"suite": "embedded", "tasks": ["boolq", "crows_pairs", "mmlu"],
                                                   "limit": 80, "limit_generative": 80, "seed": 1234,
                                                   "apply_chat_template": "auto"}}],
                "models": [
        {**base, "entry_id": "a@1", "model_id": "a", "track": "t1", "disputed": False, "disputed_tasks": [],
         "quorum": {"required": 3, "runners": ["machine:m1"], "unaudited": [], "status": "provisional"}},
        {**base, "entry_id": "b@2", "model_id": "b", "disputed": True, "disputed_tasks": ["gsm8k_cot"],
         "quorum": {"required": 3, "runners": ["machine:m1", "machine:m2"], "unaudited": ["b__9"],
                    "status": "provisional"}},
        {**base, "entry_id": "c@3", "model_id": "c", "disputed": False, "disputed_tasks": [],
         "quorum": {"required": 1, "runners": ["machine:m1"], "unaudited": [], "status": "confirmed"}},
    ]}
    lines = quorum.todo(registry, {"a": "params/submissions/a.yaml"})
    assert len(lines) == 3
    assert lines[0].startswith("python -m slmlib run params/default.yaml --set submission=params/submissions/a.yaml")
    assert "--set 'tasks=[boolq, crows_pairs, mmlu]' --set limit=80 --set limit_generative=80" in lines[0]
    assert "--set seed=1234 --set apply_chat_template=auto  # a@1" in lines[0]
    assert "--set 'tasks=[boolq, mmlu]' --set limit=80 --set limit_generative=null" in lines[2]  # no track found
    assert "--set quantization=F16" in lines[0] and "# a@1: 2 more independent runner(s) needed (has 1 of 3)" in lines[0]
    assert lines[1] == "python -m slmlib audit b__9  # b@2: a foreign run waiting for its audit"
    assert "# b@2: tasks gsm8k_cot disputed" in lines[2]


def test_the_machine_id_is_made_once_and_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_CACHE_DIR", str(tmp_path))
    first = provenance.machine_id()
    assert len(first) == 32 and provenance.machine_id() == first
    (tmp_path / "machine-id").write_text("garbage")
    assert provenance.machine_id() != first and (tmp_path / "machine-id").read_text() == "garbage"  # not rewritten
