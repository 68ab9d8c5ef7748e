"""Quorum (issue 18): who counts as a runner, when an entry is confirmed, and what `todo` asks for."""

from __future__ import annotations

from slmlib import artifacts, paths, provenance
from slmlib.aggregate import quorum


def run(run_id: str, machine: str | None = None, score: float = 0.5) -> dict:
    return {"run_id": run_id, "provenance": {"machine_id": machine} if machine else {},
            "tasks": {"boolq": {"score": score, "baseline": 0.5}, "crows_pairs": {"score": 0.9, "baseline": 0.5}}}


TASKS = {"boolq": {"normalized": 0.0}}  # the entry's median (crows_pairs is a bias measure: not compared)


def status(runs, required, signers=None, foreign=(), require_audit=False):
    return quorum.quorum_status(runs, TASKS, required, signers or {}, set(foreign), require_audit, 0.5)


def test_a_runner_is_the_signer_else_the_machine_else_one_unknown_machine():
    signers = {"a__1": "alice"}
    assert quorum.runner_of(run("a__1", "m1"), signers) == "signer:alice"
    assert quorum.runner_of(run("b__1", "m1"), signers) == "machine:m1"
    assert quorum.runner_of(run("c__1"), signers) == quorum.runner_of(run("d__1"), signers) == quorum.UNKNOWN_MACHINE


def test_confirmed_needs_k_distinct_runners_that_agree_with_the_median():
    runs = [run("a__1", "m1"), run("a__2", "m1"), run("a__3", "m2")]
    assert status(runs, 2) == {"required": 2, "runners": ["machine:m1", "machine:m2"],
                               "agreeing": ["machine:m1", "machine:m2"], "unaudited": [], "audits": {},
                               "status": "confirmed"}
    assert status(runs, 3)["status"] == "provisional"  # m1 twice is one runner
    off = [run("a__1", "m1"), run("a__3", "m2", score=0.51)]  # 2 points from the median: disagrees
    assert status(off, 2) == {"required": 2, "runners": ["machine:m1", "machine:m2"], "agreeing": ["machine:m1"],
                              "unaudited": [], "audits": {}, "status": "provisional"}
    assert status(off, 1)["status"] == "confirmed"  # one machine's disagreeing repeats: DISPUTED, still ranked
    signed = status(runs, 3, {"a__1": "alice", "a__2": "bob"})
    assert signed["runners"] == ["machine:m2", "signer:alice", "signer:bob"] and signed["status"] == "confirmed"
    assert status(runs[:1], 1)["status"] == "confirmed"  # a local study


def test_with_require_audit_a_foreign_run_counts_only_after_a_passing_audit():
    runs = [run("local__1", "m1"), run("remote__1", "m2")]
    waiting = status(runs, 2, foreign={"remote__1"}, require_audit=True)
    assert waiting["status"] == "provisional" and waiting["unaudited"] == ["remote__1"]
    artifacts.write_json(paths.audit_file("remote__1"), {"verdict": "fail"})
    assert status(runs, 2, foreign={"remote__1"}, require_audit=True)["status"] == "provisional"
    artifacts.write_json(paths.audit_file("remote__1"), {"verdict": "pass"})
    passed = status(runs, 2, foreign={"remote__1"}, require_audit=True)
    assert passed["status"] == "confirmed" and passed["audits"] == {"remote__1": "pass"}
    paths.audit_file("remote__1").write_text("{not json")  # unreadable counts as never audited
    assert quorum.audit_verdict("remote__1") is None
    assert status(runs, 2, foreign={"remote__1"})["status"] == "confirmed"  # audits not required


def test_todo_lists_runnable_commands_for_what_is_missing():
    base = {"suite": "embedded", "limit": 80, "limit_generative": None, "seed": 1234, "quantization_name": "F16",
            "tasks": {"mmlu": {}, "boolq": {}}}
    registry = {"tracks": [{"id": "t1", "protocol": {"suite": "embedded", "tasks": ["boolq", "crows_pairs", "mmlu"],
                                                   "limit": 80, "limit_generative": 80, "seed": 1234,
                                                   "apply_chat_template": "auto"}}],
                "models": [
        {**base, "entry_id": "a@1", "model_id": "a", "track": "t1", "disputed": False, "disputed_tasks": [],
         "quorum": {"required": 3, "runners": ["machine:m1"], "agreeing": ["machine:m1"], "unaudited": [],
                    "status": "provisional"}},
        {**base, "entry_id": "b@2", "model_id": "b", "disputed": True, "disputed_tasks": ["gsm8k_cot"],
         "quorum": {"required": 3, "runners": ["machine:m1", "machine:m2"], "agreeing": ["machine:m1"],
                    "unaudited": ["b__9"], "status": "provisional"}},
        {**base, "entry_id": "c@3", "model_id": "c", "disputed": False, "disputed_tasks": [],
         "quorum": {"required": 1, "runners": ["machine:m1"], "agreeing": ["machine:m1"], "unaudited": [],
                    "status": "confirmed"}},
    ]}
    lines = quorum.todo(registry, {"a": "params/submissions/a.yaml"})
    assert len(lines) == 3
    assert lines[0].startswith("python -m slmlib run params/default.yaml --set submission=params/submissions/a.yaml")
    assert "--set 'tasks=[boolq, crows_pairs, mmlu]' --set limit=80 --set limit_generative=80" in lines[0]
    assert "--set seed=1234 --set apply_chat_template=auto  # a@1" in lines[0]
    assert "--set 'tasks=[boolq, mmlu]' --set limit=80 --set limit_generative=null" in lines[2]  # no track found
    assert "--set quantization=F16" in lines[0] and "# a@1: 2 more independent runner(s) needed (1 of 3 agree)" in lines[0]
    assert lines[1] == "python -m slmlib audit b__9  # b@2: a foreign run waiting for its audit"
    assert "# b@2: tasks gsm8k_cot disputed" in lines[2]


def test_the_machine_id_is_made_once_and_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_CACHE_DIR", str(tmp_path))
    first = provenance.machine_id()
    assert len(first) == 32 and provenance.machine_id() == first
    (tmp_path / "machine-id").write_text("garbage")
    assert provenance.machine_id() != first and (tmp_path / "machine-id").read_text() == "garbage"  # not rewritten


def test_a_community_registry_ranks_confirmed_entries_and_lists_provisional_ones(tmp_path):
    from slmlib.aggregate.registry import build_registry, write_registry
    from test_aggregate_registry import make_run

    def machine_run(run_id, model, machine, score):
        r = make_run(run_id, model, {"arc_challenge": score, "boolq": 0.7}, baselines={"arc_challenge": 0.25})
        r["provenance"]["machine_id"] = machine
        return r

    runs = [machine_run(f"a__{i}", "a", f"m{i}", 0.5) for i in range(3)]  # three machines agree
    runs += [machine_run("b__0", "b", "m0", 0.6), machine_run("b__1", "b", "m0", 0.6)]  # one machine twice
    runs += [machine_run(f"c__{i}", "c", f"m{i}", s) for i, s in enumerate((0.4, 0.4, 0.7))]  # one disagrees
    reg = build_registry(runs, quorum=3, resamples=200)
    write_registry(reg, tmp_path / "registry.json")  # valid against the schema
    by_model = {e["model_id"]: e for e in reg["models"]}
    assert by_model["a"]["quorum"]["status"] == "confirmed" and by_model["a"]["rank"] == 1
    assert by_model["b"]["quorum"] == {"required": 3, "runners": ["machine:m0"], "agreeing": ["machine:m0"],
                                       "unaudited": [], "audits": {}, "status": "provisional"}
    assert by_model["c"]["quorum"]["agreeing"] == ["machine:m0", "machine:m1"] and by_model["c"]["rank"] is None
    assert [e["model_id"] for e in reg["models"]] == ["a", "b", "c"]  # ranked first, then provisional
    (track,) = [t for t in reg["tracks"] if t["entries"]]
    assert (track["ranked"], track["provisional"]) == (1, 2) and reg["quorum"] == {"required": 3, "require_audit": False}
    assert len(quorum.todo(reg, {})) == 2
    local = build_registry(runs, resamples=200)  # quorum 1: every entry ranked, as before
    assert all(e["rank"] is not None for e in local["models"])


def test_todo_command_reads_the_registry(tmp_path, capsys):
    from slmlib import cli
    from slmlib.aggregate.registry import build_registry, write_registry
    from test_aggregate_registry import make_run

    assert cli.main(["todo"]) == 2 and "no registry yet" in capsys.readouterr().err
    write_registry(build_registry([make_run("a__1", "a", {"boolq": 0.7})], quorum=2, resamples=50))
    assert cli.main(["todo"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("python -m slmlib run params/default.yaml --set submission=params/submissions/a.yaml")
    assert "1 more independent runner(s) needed (1 of 2 agree)" in out
    write_registry(build_registry([make_run("a__1", "a", {"boolq": 0.7})], resamples=50))
    assert cli.main(["todo"]) == 0 and capsys.readouterr().out.startswith("nothing to do")
