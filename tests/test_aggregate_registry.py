"""Unit tests for slmlib.aggregate.registry on run folders built in tmp_path."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from slmlib import artifacts, datapacks
from slmlib.aggregate import reconcile, schemas  # noqa: E402
from slmlib.benchmarks import PILLARS, get_benchmark  # noqa: E402
from slmlib.aggregate import build_registry, leaderboard_frame, write_registry  # noqa: E402
from slmlib.artifacts import outputs_digest  # noqa: E402

PILLAR_OF = {"arc_challenge": "reasoning", "hellaswag": "reasoning", "mbpp": "coding",
             "gsm8k_cot": "math", "boolq": "language", "crows_pairs": "safety", "bbq": "safety"}


def make_task(name: str, score: float, baseline: float = 0.0, n: int = 40) -> dict:
    bench = get_benchmark(name)
    return {"task": name, "pillar": PILLAR_OF[name], "metric": "acc", "filter": "none", "raw": score,
            "stderr": 0.07, "score": score, "baseline": baseline, "n": n, "n_total": 1000,
            "item_ids": [str(i) for i in range(n)], "data_sha256": bench.sha256, "pack": bench.pack}


def make_run(run_id: str, model_id: str, scores: dict[str, float], *, sha: str | None = None,
             baselines: dict[str, float] | None = None, parameter_count: int = 134_515_008,
             edge: dict | None = None, seed: int = 1234, name: str | None = None,
             energy: dict | None = None) -> dict:
    """A valid results.json record: `scores` maps task name -> score."""
    baselines = baselines or {}
    return {
        "schema_version": 1, "run_id": run_id, "model_id": model_id,
        "model_card": {"model_id": model_id, "name": name or model_id.upper(), "family": "Fam",
                       "hf_repo": f"org/{model_id}", "parameters": f"{parameter_count // 1_000_000}M",
                       "parameter_count": parameter_count, "architecture": "llama", "context_length": 8192,
                       "license": "apache-2.0", "categories": ["instruct"], "quantization": "Q4_1",
                       "weights": {"kind": "gguf", "path": f"/somewhere/{run_id}.gguf",
                                   "sha256": sha or f"sha-{model_id}", "size_bytes": 98_362_432}},
        "suite": "embedded", "limit": 40, "limit_generative": 16, "seed": seed,
        "settings": {"backend": "hf", "dtype": "float32", "batch_size": 8, "apply_chat_template": False},
        "tasks": {t: make_task(t, s, baselines.get(t, 0.0)) for t, s in scores.items()},
        "edge": edge if edge is not None else {"load_seconds": 0.2, "size_bytes": 98_362_432, "peak_rss_mb": 1500.0},
        "energy": energy,
        "provenance": {"slmlib": "0.1.0", "data_packs": datapacks.pack_manifest()},
        "started_at": "2026-11-24T14:00:00Z", "finished_at": "2026-11-24T14:10:00Z", "wall_seconds": 600.0,
    }


def with_values(run: dict, values: dict[str, list[float]], transform=None) -> dict:
    """`run` with tasks re-scored from per-item values (raw = mean; score = transform(raw))."""
    for name, vals in values.items():
        raw = sum(vals) / len(vals)
        run["tasks"][name].update(raw=raw, score=transform(raw) if transform else raw, n=len(vals),
                                  item_ids=[str(i) for i in range(len(vals))])
        run["tasks"][name]["outputs_sha256"] = outputs_digest(sample_rows(run["tasks"][name], vals))
    return run


def sample_rows(task: dict, values: list[float]) -> list[dict]:
    return [{"doc_id": i, "item_id": item, "prompt": "", "target": 0, "response": [[-1.0, v == 1]], "value": v}
            for i, (item, v) in enumerate(zip(task["item_ids"], values))]


def write_run(runs_dir: Path, run: dict, values: dict[str, list[float]] | None = None) -> Path:
    """A run folder: results.json and, for the tasks in `values`, samples/<task>.jsonl."""
    folder = runs_dir / run["run_id"]
    for name, vals in (values or {}).items():
        artifacts.write_jsonl(folder / "samples" / f"{name}.jsonl", sample_rows(run["tasks"][name], vals))
    artifacts.write_json(folder / "results.json", run)
    return folder


def entry_of(registry: dict, model_id: str) -> dict:
    (entry,) = [e for e in registry["models"] if e["model_id"] == model_id]
    return entry


def test_median_and_disputed_over_three_runs():
    runs = [
        make_run(f"m__{i}", "m", {"arc_challenge": arc, "boolq": bq}, baselines={"arc_challenge": 0.25})
        for i, (arc, bq) in enumerate([(0.30, 0.500), (0.32, 0.502), (0.31, 0.501)])
    ]
    entry = entry_of(build_registry(runs), "m")
    arc, boolq = entry["tasks"]["arc_challenge"], entry["tasks"]["boolq"]
    assert arc["score"] == 0.31 and arc["n_runs"] == 3
    assert arc["normalized"] == round((0.31 - 0.25) / 0.75 * 100, 4)  # 8.0
    assert arc["spread"] == round((0.32 - 0.30) / 0.75 * 100, 4)  # 2.6667 > 0.5
    assert boolq["score"] == 0.501 and boolq["spread"] == 0.2  # <= 0.5
    assert entry["disputed"] is True and entry["disputed_tasks"] == ["arc_challenge"]
    assert entry["run_ids"] == ["m__0", "m__1", "m__2"]


def test_spread_of_at_most_half_a_point_is_not_disputed():
    runs = [make_run(f"m__{i}", "m", {"boolq": s}) for i, s in enumerate([0.500, 0.505, 0.503])]
    entry = entry_of(build_registry(runs), "m")
    assert entry["tasks"]["boolq"]["spread"] == 0.5
    assert entry["disputed"] is False and entry["disputed_tasks"] == []


def test_entry_shape_pillars_aggregate_and_badges():
    run = make_run("m__1", "m", {"arc_challenge": 0.5, "hellaswag": 0.75, "gsm8k_cot": 0.2},
                   baselines={"arc_challenge": 0.25, "hellaswag": 0.5})
    registry = build_registry([run])
    assert registry["schema_version"] == 4
    entry = registry["models"][0]
    assert entry["pillars"] == {"reasoning": round((100 / 3 + 50) / 2, 4), "math": 20.0}
    assert entry["aggregate"] == round((0.35 * (100 / 3 + 50) / 2 + 0.15 * 20) / 0.5, 4)
    assert entry["rank"] == 1 and entry["size_bucket"] == "small" and entry["badges"] == ["SLM-Optimized"]
    assert entry["name"] == "M" and entry["quantization"] == "Q4_1" and entry["parameter_count"] == 134_515_008
    assert set(entry["tasks"]["gsm8k_cot"]) >= {"raw", "score", "baseline", "normalized", "stderr", "n"}
    assert entry["edge"] == {"load_seconds": 0.2, "peak_rss_mb": 1500.0, "size_bytes": 98_362_432}
    assert "path" not in entry["weights"]  # machine-specific, left out


def test_runs_group_by_weights_suite_limit_and_seed():
    runs = [make_run("a__1", "a", {"boolq": 0.6}), make_run("a__2", "a", {"boolq": 0.7}, seed=7),
            make_run("b__1", "b", {"boolq": 0.6}, sha="sha-a")]  # same weights and seed as a__1
    models = build_registry(runs)["models"]
    assert sorted(tuple(e["run_ids"]) for e in models) == [("a__1", "b__1"), ("a__2",)]


def test_equal_aggregates_share_a_rank():
    runs = [make_run("c__1", "c", {"boolq": 0.5}), make_run("a__1", "a", {"boolq": 0.5}),
            make_run("b__1", "b", {"boolq": 0.4}), make_run("d__1", "d", {"boolq": 0.9})]
    models = build_registry(runs)["models"]
    assert [(e["model_id"], e["rank"]) for e in models] == [("d", 1), ("a", 2), ("c", 2), ("b", 4)]


def test_edge_metrics_cannot_change_rank():
    fast = {"load_seconds": 0.1, "size_bytes": 10, "peak_rss_mb": 100.0}
    slow = {"load_seconds": 9.0, "size_bytes": 10_000, "peak_rss_mb": 9000.0}

    def ranks(edge_x, edge_y):
        runs = [make_run("x__1", "x", {"boolq": 0.6, "mbpp": 0.3}, edge=edge_x),
                make_run("y__1", "y", {"boolq": 0.5, "mbpp": 0.3}, edge=edge_y)]
        return [(e["model_id"], e["rank"], e["aggregate"]) for e in build_registry(runs)["models"]]

    assert ranks(fast, slow) == ranks(slow, fast)
    assert [r[:2] for r in ranks(slow, fast)] == [("x", 1), ("y", 2)]


def test_edge_is_the_median_over_runs():
    runs = [make_run(f"m__{i}", "m", {"boolq": 0.5}, edge={"load_seconds": s, "peak_rss_mb": 1.0 * i})
            for i, s in enumerate([0.3, 0.1, 0.2])]
    assert entry_of(build_registry(runs), "m")["edge"] == {"load_seconds": 0.2, "peak_rss_mb": 1.0}


def test_other_weights_are_recorded_and_used():
    run = make_run("m__1", "m", {"arc_challenge": 0.4, "gsm8k_cot": 0.8})
    registry = build_registry([run], weights={"reasoning": 1.0, "math": 3.0})
    assert registry["pillar_weights"] == {"reasoning": 1.0, "math": 3.0}
    assert registry["models"][0]["aggregate"] == 70.0
    with pytest.raises(ValueError):
        build_registry([run], weights={"vibes": 1.0})


def test_incomplete_and_invalid_run_folders_are_reported(tmp_path):
    runs_dir = tmp_path / "runs"
    write_run(runs_dir, make_run("good__1", "good", {"boolq": 0.5}))
    (runs_dir / "interrupted__1" / "samples").mkdir(parents=True)  # no results.json yet
    (runs_dir / "broken__1").mkdir()
    (runs_dir / "broken__1" / "results.json").write_text('{"schema_version": 1, "run_', encoding="utf-8")
    write_run(runs_dir, {**make_run("future__1", "f", {"boolq": 0.5}), "schema_version": 2})
    write_run(runs_dir, {**make_run("notasks__1", "n", {}), "tasks": {}})
    write_run(runs_dir, {**make_run("boolseed__1", "b", {"boolq": 0.5}), "seed": True})
    write_run(runs_dir, {k: v for k, v in make_run("nocard__1", "n", {"boolq": 0.5}).items() if k != "model_card"})
    bad_task = make_run("badtask__1", "t", {"boolq": 0.5})
    bad_task["tasks"]["boolq"]["score"] = "high"
    write_run(runs_dir, bad_task)
    huge = make_run("huge__1", "h", {"boolq": 0.5}, parameter_count=7_000_000_000)
    write_run(runs_dir, huge)
    moved = write_run(runs_dir, make_run("orig__1", "o", {"boolq": 0.5}))
    moved.rename(runs_dir / "copy__1")
    (runs_dir / "README.txt").write_text("not a run", encoding="utf-8")

    study = reconcile.load_study(runs_dir, inbox=tmp_path)
    assert [r["run_id"] for r in study.runs] == ["good__1"] and study.incomplete == ["interrupted__1"]
    reasons = {p["run_id"]: p["reason"] for p in study.rejected}
    assert set(reasons) == {"broken__1", "future__1", "notasks__1", "boolseed__1",
                            "nocard__1", "badtask__1", "huge__1", "copy__1"}
    assert "unreadable" in reasons["broken__1"]
    assert "schema_version" in reasons["future__1"] and "tasks" in reasons["notasks__1"]
    assert "seed" in reasons["boolseed__1"] and "model_card" in reasons["nocard__1"]
    assert "tasks/boolq/score" in reasons["badtask__1"] and "parameter_count" in reasons["huge__1"]
    assert "does not match its folder" in reasons["copy__1"]
    registry = build_registry(study.runs, rejected=study.rejected)
    assert registry["models"][0]["model_id"] == "good"
    assert [r["run_id"] for r in registry["rejected"]] == sorted(reasons)


def test_missing_runs_dir_gives_nothing(tmp_path):
    study = reconcile.load_study(tmp_path / "nope", inbox=tmp_path / "nope")
    assert (study.runs, study.rejected, study.incomplete) == ([], [], [])
    assert build_registry([])["models"] == []


def build_from(runs_dir: Path, path: Path) -> bytes:
    study = reconcile.load_study(runs_dir, inbox=runs_dir.parent)
    write_registry(build_registry(list(reversed(study.runs)), samples=study.samples, rejected=study.rejected), path)
    return path.read_bytes()


def test_rebuild_gives_identical_bytes(tmp_path):
    runs_dir = tmp_path / "runs"
    for i, s in enumerate([0.31, 0.30, 0.35]):
        write_run(runs_dir, make_run(f"m__{i}", "m", {"arc_challenge": s, "mbpp": 0.1 * i, "boolq": 0.7},
                                     baselines={"arc_challenge": 0.25, "boolq": 0.5}))
    write_run(runs_dir, make_run("z__1", "z", {"gsm8k_cot": 1 / 3, "crows_pairs": 0.6}, parameter_count=1_700_000_000))
    values = {"boolq": [1.0] * 24 + [0.0] * 16, "mbpp": [1.0, 0.0] * 20}  # 0.6 (20 points), 0.5 (50 points)
    s_run = make_run("s__1", "s", {"boolq": 0, "mbpp": 0}, baselines={"boolq": 0.5})
    write_run(runs_dir, with_values(s_run, values), values)
    write_run(runs_dir, {**make_run("bad__1", "b", {"boolq": 0.5}), "seed": "x"})
    path = tmp_path / "outputs" / "registry.json"

    first = build_from(runs_dir, path)
    path.unlink()
    assert build_from(runs_dir, path) == first
    data = json.loads(first)
    assert first.decode() == artifacts.dumps(data)  # sorted keys, canonical form
    # three task sets: three tracks, each entry ranked first in its own, none compared with another
    assert [(e["model_id"], e["rank"]) for e in data["models"]] == [("m", 1), ("s", 1), ("z", 1)]
    m, s, z = data["models"]
    assert len({m["track"], s["track"], z["track"]}) == 3 and data["comparisons"] == []
    assert [t["entries"] for t in data["tracks"]] == [0, 1, 1, 1] and data["tracks"][0]["default"]
    assert z["pillars"] == {"math": 33.3333}  # rounded to 4 decimals; CrowS-Pairs is beside the ranking
    assert z["bias"]["crows_pairs"]["value"] == 0.6 and "crows_pairs" not in z["tasks"]
    assert z["aggregate"] == 33.3333 and z["size_bucket"] == "large"
    assert m["pillars"] == {"reasoning": 8.0, "coding": 10.0, "language": 40.0}
    assert m["aggregate"] == round((0.35 * 8 + 0.20 * 10 + 0.20 * 40) / 0.75, 4)
    assert m["intervals"]["aggregate"] is None and m["tasks"]["boolq"]["ci_note"] == "no per-sample results"
    lo, hi = s["intervals"]["aggregate"]
    assert s["aggregate"] == 35.0 and lo < 35.0 < hi
    assert s["tasks"]["boolq"]["ci"][0] < 20.0 < s["tasks"]["boolq"]["ci"][1]
    assert data["bootstrap"]["resamples"] == 1000 and data["bootstrap"]["seed"] == 1234
    assert [r["run_id"] for r in data["rejected"]] == ["bad__1"]


def test_write_registry_validates_against_its_schema(tmp_path):
    registry = build_registry([make_run("m__1", "m", {"boolq": 0.6})])
    registry["models"][0]["rank_band"] = "first"
    with pytest.raises(ValueError, match="registry does not match its JSON Schema: models/0/rank_band"):
        write_registry(registry, tmp_path / "registry.json")
    assert not (tmp_path / "registry.json").exists()


def test_published_schema_files_are_current():
    for name, make in schemas.SCHEMA_FILES.items():
        assert json.loads((ROOT / "params" / name).read_text()) == make(), f"regenerate params/{name}"


def test_leaderboard_frame_columns():
    runs = [make_run("a__1", "a", {"boolq": 0.7, "gsm8k_cot": 0.2}), make_run("b__1", "b", {"boolq": 0.6, "gsm8k_cot": 0.2}),
            make_run("c__1", "c", {"boolq": 0.9})]  # another task set: another track
    registry = build_registry(runs)
    frame = leaderboard_frame(registry)  # the first track with entries
    assert list(frame.columns) == ["rank", "band", "model", "parameters", "quantization", "aggregate",
                                   "aggregate_ci", *PILLARS, "badges", "disputed"]
    assert frame["model"].tolist() == ["A", "B"] and frame["rank"].tolist() == [1, 2]
    assert frame.loc[0, "badges"] == "SLM-Optimized" and frame["safety"].isna().all()
    (other,) = [t for t in registry["tracks"] if t["entries"] == 1]
    assert leaderboard_frame(registry, other["id"])[["model", "rank"]].values.tolist() == [["C", 1]]
    with pytest.raises(ValueError, match="track: no track 'nope' in the registry"):
        leaderboard_frame(registry, "nope")


def test_a_batched_run_is_its_own_entry_and_unbatched_runs_keep_their_ids():
    from slmlib.aggregate import registry

    plain = make_run("m__1", "m", {"boolq": 0.5})
    batched = make_run("m__2", "m", {"boolq": 0.5})
    batched["settings"] = {**batched["settings"], "decode_batch": 8}
    assert registry.entry_id(plain) != registry.entry_id(batched)
    # the key of a run decoded one at a time has no extra element: earlier registries' entry ids stand
    assert registry.group_key(plain) == registry.group_key(batched)[:-1]
    assert len(registry.group_key(plain)) == 5 + len(registry.SCORE_SETTINGS)


def test_notebook_tables_are_rounded_narrow_and_name_no_local_path(tmp_path):
    """What notebook 03 shows: weights as a table, scores to 1 decimal and p-values to 4 / P(A > B) to 3
    as the site shows them, the per-pillar quantization differences one per row, a summary sentence."""
    from site_study import write_study
    from slmlib.aggregate import WEIGHTS, tables

    registry = write_study(tmp_path / "runs")
    weights = tables.weights_frame(WEIGHTS)
    assert weights["pillar"].tolist() == list(PILLARS) and weights["share_%"].tolist()[0] == 31.8
    frame = leaderboard_frame(registry)
    scores = frame[["aggregate", *PILLARS]].stack().dropna()
    assert all(round(x, 1) == x for x in scores) and len(scores) > 10
    p = tables.significance_matrix(registry, "p_value").stack()
    above = tables.significance_matrix(registry, "p_a_above_b").stack()
    assert all(round(x, 4) == x for x in p if isinstance(x, float))
    assert all(round(x, 3) == x for x in above if isinstance(x, float))
    assert tables.quantization_frame(registry)["vs_reference"].tolist()[0] == "\u2014"  # the reference row
    pillars = tables.quantization_pillars_frame(registry)
    assert list(pillars.columns) == ["model", "quantization", "pillar", "vs_reference"] and len(pillars) == 10
    assert max(len(line) for line in tables.quantization_frame(registry).to_string().splitlines()) <= 150  # was 290
    written = write_registry(registry, tmp_path / "outputs" / "registry.json")
    sentence = tables.registry_summary(registry, written)
    assert str(tmp_path) not in sentence and "in 2 tracks" in sentence and sentence.startswith("Wrote ")
