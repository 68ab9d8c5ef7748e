"""Unit tests for slmlib.publish and slmlib.plots: the static site from a small registry."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from matplotlib.figure import Figure  # noqa: E402

from slmlib.plots import figure_svg, pillar_bars  # noqa: E402
from slmlib.publish import leaderboard_json, render_index, write_site  # noqa: E402
from slmlib.registry import build_registry  # noqa: E402

HOSTILE = "<script>alert(1)</script>"
PILLAR_OF = {"arc_challenge": "reasoning", "mbpp": "coding", "gsm8k_cot": "math", "boolq": "language",
             "crows_pairs": "safety"}


def make_run(model_id: str, scores: dict[str, float], name: str | None = None,
             parameter_count: int = 134_515_008) -> dict:
    """A minimal valid results.json record (baselines 0)."""
    return {
        "schema_version": 1, "run_id": f"{model_id}__1", "model_id": model_id,
        "model_card": {"model_id": model_id, "name": name or model_id, "family": "Fam", "hf_repo": f"org/{model_id}",
                       "parameters": "135M", "parameter_count": parameter_count, "license": "apache-2.0",
                       "quantization": "Q4_1", "weights": {"kind": "gguf", "sha256": f"sha-{model_id}"}},
        "suite": "embedded", "limit": 40, "seed": 1234, "settings": {"backend": "hf"},
        "tasks": {t: {"task": t, "pillar": PILLAR_OF[t], "raw": s, "score": s, "baseline": 0.0, "stderr": None,
                      "n": 40} for t, s in scores.items()},
        "edge": {"load_seconds": 0.2},
    }


def make_registry() -> dict:
    return build_registry([
        make_run("smol", {"arc_challenge": 0.5, "mbpp": 0.1, "gsm8k_cot": 0.2, "boolq": 0.7, "crows_pairs": 0.4},
                 name="SmolLM2-135M-Instruct"),
        make_run("partial", {"arc_challenge": 0.3}, parameter_count=1_100_000_000),
    ])


def test_leaderboard_json_fields():
    board = leaderboard_json(make_registry())
    assert board["schema_version"] == 1
    first = board["models"][0]
    assert set(first) >= {"rank", "name", "family", "parameters", "quantization", "aggregate", "pillars",
                          "badges", "license", "hf_repo", "disputed"}
    assert first["name"] == "SmolLM2-135M-Instruct" and first["rank"] == 1
    assert board["models"][1]["badges"] == []
    json.dumps(board, allow_nan=False)  # plain JSON


def test_index_page_contents():
    page = render_index(leaderboard_json(make_registry()))
    assert "<title>SLM Study leaderboard</title>" in page
    assert "SmolLM2-135M-Instruct" in page and "SLM-Optimized" in page and "apache-2.0" in page
    for head in ("Rank", "Model", "Family", "Parameters", "Quantization", "Aggregate", "Reasoning", "Coding",
                 "Math", "Language", "Safety", "Badges", "License"):
        assert f">{head}</th>" in page
    partial_row = next(r for r in page.split("<tr>") if ">partial<" in r)
    assert partial_row.count("\u2014") >= 4  # the four missing pillars
    assert "max(0,(raw\u2212baseline)/(1\u2212baseline))\u00b7100" in page
    assert "reasoning 0.35" in page and "math 0.15" in page
    assert 'href="../index.html"' in page


def test_index_page_is_self_contained():
    page = render_index(leaderboard_json(make_registry()))
    assert "<style>" in page and "addEventListener" in page  # inline CSS and sorting JS
    assert not re.search(r"""\bsrc\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page and "@import" not in page and "url(" not in page


def test_hostile_model_name_is_escaped():
    registry = build_registry([make_run("evil", {"boolq": 0.5}, name=HOSTILE)])
    page = render_index(leaderboard_json(registry))
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script>") == 1  # only the page's own sorting script
    assert HOSTILE not in figure_svg(pillar_bars(registry))


def test_empty_registry_page_says_no_models_yet():
    page = render_index(leaderboard_json(build_registry([])))
    assert "No models yet" in page and "<table" not in page
    assert "<title>SLM Study leaderboard</title>" in page


def test_pillar_bars_figure():
    fig = pillar_bars(make_registry())
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_ylim() == (0, 100)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Reasoning", "Coding", "Math", "Language", "Safety"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["SmolLM2-135M-Instruct [Q4_1]", "partial [Q4_1]"]
    assert len(ax.patches) == 5 + 1  # missing pillars have no bar
    assert isinstance(pillar_bars({"models": []}), Figure)


def test_write_site_writes_three_files(tmp_path):
    site = tmp_path / "site"
    written = write_site(make_registry(), site)
    assert written == [site / "leaderboard.json", site / "index.html", site / "pillars.svg"]
    assert all(p.is_file() and p.stat().st_size > 0 for p in written)
    assert json.loads((site / "leaderboard.json").read_text())["models"][0]["rank"] == 1
    assert (site / "pillars.svg").read_text().lstrip().startswith("<?xml")
    assert sorted(p.name for p in site.iterdir()) == ["index.html", "leaderboard.json", "pillars.svg"]  # no temp files
    before = [p.read_bytes() for p in written]
    write_site(make_registry(), site)
    assert [p.read_bytes() for p in written] == before  # stable bytes, SVG included


def test_methodology_lists_the_licence_allowlist_detect_enforces():
    from slmlib.submission import LICENSES

    page = render_index(leaderboard_json({"models": []}))
    for licence in LICENSES:
        assert f"<code>{licence}</code>" in page
