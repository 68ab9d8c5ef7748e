"""docs/suites.md's table of the embedded suite matches the benchmark registry: every task, its pillar
(or "bias measure"), its split's item count and the first 16 hex digits of its pinned SHA-256."""

from __future__ import annotations

import re
from pathlib import Path

from slmlib.benchmarks import get_benchmark
from slmlib.evaluate import SUITES

DOC = Path(__file__).resolve().parents[1] / "docs" / "suites.md"
ITEMS = {"mmlu": "14,042", "arc_challenge": "1,172", "hellaswag": "10,042", "truthfulqa_mc1": "299",
         "humaneval": "164", "mbpp": "500", "gsm8k_cot": "1,319", "arithmetic": "3,000", "mathqa": "7,688",
         "boolq": "3,270", "piqa": "1,838", "winogrande": "1,267", "bbq": "1,012", "crows_pairs": "1,018",
         "hhh_alignment": "221", "truthfulqa_mc2": "299"}  # the counts tests/test_evaluate_suites.py checks


def test_the_suite_table_names_every_task_with_its_pillar_items_and_digest():
    text = DOC.read_text(encoding="utf-8")
    table = text[text.index("| pillar | task | data"):text.index("The full digests")]
    rows = {m.group(2): m.group(0) for m in re.finditer(r"^\| ([a-z ]+) \| `([a-z0-9_]+)` \|.*$", table, re.M)}
    assert sorted(rows) == sorted(SUITES["embedded"]) == sorted(ITEMS)
    for name, row in rows.items():
        bench = get_benchmark(name)
        assert row.startswith(f"| {bench.pillar if bench.ranked else 'bias measure'} |"), name
        assert f"`{bench.sha256[:16]}`" in row and ITEMS[name] in row, name
