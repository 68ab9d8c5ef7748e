"""Tracks: the protocol an entry was measured under, and ranks, tests and badges computed within one
track only (slmlib.aggregate.tracks and build_registry), on synthetic run folders (tests/site_study.py)."""
from __future__ import annotations

import copy
import re

import pytest
from hypothesis import given, settings, strategies as st

from site_study import PROTOCOL_MODELS, PROTOCOLS, protocol_run, write_protocol_study
from slmlib import artifacts, params, paths
from slmlib.aggregate import build_registry, leaderboard_frame, schemas, significance_matrix, tracks, write_registry
from slmlib.evaluate import suite_tasks

ID = re.compile(schemas.TRACK_ID["pattern"])


def protocol_of(name: str) -> dict:
    return tracks.params_protocol(params.load(paths.PARAMS_DIR / name))


def test_the_default_track_is_the_protocol_of_params_default_read_at_run_time():
    default = tracks.default_protocol()
    p = params.load(paths.PARAMS_DIR / "default.yaml")
    assert default == protocol_of("default.yaml")
    assert default["tasks"] == sorted(suite_tasks(p.suite))  # the suite as the code defines it today
    assert (default["suite"], default["limit"], default["limit_generative"], default["seed"]) == \
        (p.suite, p.limit, p.limit_generative, p.seed)
    assert default["fewshot"]["gsm8k_cot"] == 8 and default["apply_chat_template"] == p.apply_chat_template


def test_default_micro_and_quick_have_three_ids_and_readable_names():
    ids = {name: tracks.track_id(protocol_of(name)) for name in PROTOCOLS}
    assert len(set(ids.values())) == 3 and all(ID.match(i) for i in ids.values())
    assert tracks.track_id(protocol_of("default.yaml")) == ids["default.yaml"]  # stable
    n = len(suite_tasks("embedded"))
    assert tracks.track_name(protocol_of("default.yaml")) == f"embedded \u00b7 {n} tasks \u00b7 80/80 items \u00b7 seed 1234"
    assert tracks.track_name(protocol_of("micro.yaml")) == \
        "embedded \u00b7 gsm8k_cot, truthfulqa_mc1 \u00b7 5/5 items \u00b7 seed 1234"
    assert tracks.track_name(protocol_of("quick.yaml")) == f"embedded \u00b7 {n} tasks \u00b7 4/2 items \u00b7 seed 1234"
    assert ids["micro.yaml"].startswith("embedded-2t-5-5-s1234-")


def test_the_track_table_of_docs_scores_is_what_the_code_derives():
    text = (paths.REPO_ROOT / "docs" / "scores.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+\.yaml)` \| `([a-z0-9-]+)` \| (.+?) \|$", text, re.M)
    assert [name for name, _, _ in rows] == ["default.yaml", "quick.yaml", "micro.yaml"]
    for name, tid, title in rows:
        assert (tracks.track_id(protocol_of(name)), tracks.track_name(protocol_of(name))) == (tid, title), name


def test_what_is_protocol_and_what_is_not():
    base = protocol_of("default.yaml")
    same = tracks.protocol(base["suite"], list(reversed(base["tasks"])), base["limit"], None, base["seed"],
                           base["apply_chat_template"], base["fewshot"])
    assert same == base  # task order and an unset generative limit (= limit) change nothing
    for change in ({"seed": 7}, {"apply_chat_template": False}, {"limit": 40},
                   {"fewshot": {**base["fewshot"], "gsm8k_cot": 5}}, {"tasks": base["tasks"][1:]}):
        assert tracks.track_id({**base, **change}) != tracks.track_id(base), change
    assert tracks.shots({"mmlu_a": 0, "mmlu_b": 0}) == 0 and tracks.shots({"a": 0, "b": 5}) is None
    assert tracks.shots(True) is None and tracks.shots("5") is None


def test_three_protocols_of_one_model_are_three_tracks_each_ranked_on_its_own(tmp_path):
    registry = write_protocol_study(tmp_path / "runs")
    listed = registry["tracks"]
    assert [t["default"] for t in listed] == [True, False, False]
    assert listed[0]["id"] == tracks.track_id(tracks.default_protocol())
    assert {t["id"] for t in listed} == {tracks.track_id(protocol_of(n)) for n in PROTOCOLS}
    by_track = {t["id"]: [e for e in registry["models"] if e["track"] == t["id"]] for t in listed}
    assert [len(v) for v in by_track.values()] == [2, 2, 2] == [t["entries"] for t in listed]
    assert [e["track"] for e in registry["models"]] == [t["id"] for t in listed for _ in range(2)]  # grouped
    for members in by_track.values():
        assert sorted(e["model_id"] for e in members) == sorted({"smol", "qwen-05b"})
        assert [e["rank"] for e in members] == [1, 2]  # each track ranked on its own
        assert all(e["rank_range"][1] <= 2 for e in members)  # bands among the track's entries only
        frame = leaderboard_frame(registry, members[0]["track"])
        assert frame["rank"].tolist() == [1, 2] and len(significance_matrix(registry, track=members[0]["track"])) == 2
    track_of = {e["entry_id"]: e["track"] for e in registry["models"]}
    assert len(registry["comparisons"]) == 3  # one pair per track, never across
    assert all(track_of[c["a"]] == track_of[c["b"]] for c in registry["comparisons"])
    micro = tracks.track_id(protocol_of("micro.yaml"))
    assert {e["model_id"]: e["rank"] for e in by_track[micro]} != {}  # a micro run appears only in its track
    assert all(len(e["tasks"]) <= 2 for e in by_track[micro])
    write_registry(registry, tmp_path / "registry.json")  # valid against the schema


def test_badges_and_quantization_sets_stay_within_a_track(tmp_path):
    runs = [protocol_run(key, name) for key in PROTOCOL_MODELS for name in PROTOCOLS]
    quant = copy.deepcopy(runs[0])  # smol on the default protocol, another quantization
    quant[0]["run_id"] = "smol-q8__default"
    quant[0]["model_card"].update(quantization="Q8_0", quantization_name="Q8_0",
                                  weights={**quant[0]["model_card"]["weights"], "sha256": "9" * 64})
    runs.append(quant)
    registry = build_registry([r for r, _ in runs], samples={r["run_id"]: s for r, s in runs}, resamples=100)
    default = registry["tracks"][0]["id"]
    (qset,) = registry["quantizations"]
    assert qset["track"] == default
    assert {e["track"] for e in registry["models"] if e["entry_id"] in {v["entry_id"] for v in qset["variants"]}} \
        == {default}
    # Eco-Efficient compares efficiency with the entry's own track only: the same registry with every
    # other track removed gives every entry of this track the same badges
    alone = build_registry([r for r, _ in runs if r["limit"] == 80], samples={r["run_id"]: s for r, s in runs},
                           resamples=100)
    assert {e["entry_id"]: e["badges"] for e in alone["models"]} == \
        {e["entry_id"]: e["badges"] for e in registry["models"] if e["track"] == default}


def test_registry_of_one_track_rebuilds_identically_and_names_stay_unique(tmp_path):
    runs = [protocol_run(key, "micro.yaml") for key in PROTOCOL_MODELS]
    twin = copy.deepcopy(runs[0])  # the same protocol except one task's few-shot count
    twin[0]["run_id"] = "smol__micro-fewshot"
    twin[0]["tasks"]["gsm8k_cot"]["n_fewshot"] = 3
    split = build_registry([r for r, _ in [*runs, twin]], resamples=50)  # not a repeat: its own entry and track
    assert split["rejected"] == [] and len(split["tracks"]) == 3  # default (empty), micro, micro with 3 shots
    (mine,) = [e for e in split["models"] if e["run_ids"] == ["smol__micro-fewshot"]]
    assert mine["track"] not in {e["track"] for e in split["models"] if e is not mine} and mine["rank"] == 1
    twin[0]["model_card"]["weights"]["sha256"] = "7" * 64  # other weights: their own entry, in another track
    runs.append(twin)
    first = build_registry([r for r, _ in runs], resamples=50)
    again = build_registry([r for r, _ in reversed(runs)], resamples=50)
    assert artifacts.dumps(first) == artifacts.dumps(again)
    names = [t["name"] for t in first["tracks"]]
    assert len(names) == len(set(names)) == 3  # the default and two micro tracks told apart by their ids
    assert sum(t["id"] in t["name"] for t in first["tracks"]) == 2


def test_leaderboard_frame_of_an_unknown_track_names_the_known_ones(tmp_path):
    registry = write_protocol_study(tmp_path / "runs")
    with pytest.raises(ValueError, match=r"track: no track 'x' in the registry; its tracks: embedded-"):
        leaderboard_frame(registry, "x")


@settings(max_examples=150, deadline=None)
@given(suite=st.text(max_size=40), tasks=st.lists(st.text(min_size=1, max_size=20), max_size=6, unique=True),
       limit=st.one_of(st.none(), st.integers(1, 10**6)), limit_generative=st.one_of(st.none(), st.integers(0, 10**6)),
       seed=st.integers(-2**63, 2**63 - 1),
       chat=st.one_of(st.none(), st.booleans(), st.text(max_size=5), st.integers(-1, 2), st.floats(0, 1)),
       shots=st.dictionaries(st.text(max_size=20), st.one_of(st.none(), st.booleans(), st.integers(), st.text(),
                                                            st.dictionaries(st.text(max_size=5), st.integers()))))
def test_fuzz_any_recorded_protocol_gets_a_url_safe_id_and_a_valid_track(suite, tasks, limit, limit_generative, seed,
                                                                        chat, shots):
    """Protocol fields come from run folders (other machines): any values give a URL-safe id that matches
    the schema, and a track that validates."""
    proto = tracks.protocol(suite, tasks, limit, limit_generative, seed, chat, shots)
    tid = tracks.track_id(proto)
    assert ID.fullmatch(tid) and tid == tracks.track_id(copy.deepcopy(proto))
    (track,) = [t for t in tracks.build_tracks({"e": proto}, proto)]
    track["ranked"] = track["provisional"] = 0  # set by build_registry
    assert schemas.first_error(track, schemas.track_schema()) is None
    name = tracks.track_name(proto)
    assert name.isprintable() and len(name) <= 4 * tracks.NAME_PART + 120
