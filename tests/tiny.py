"""Builders for the end-to-end tests: a tiny random causal LM and tiny local benchmarks."""

from __future__ import annotations

import json
from pathlib import Path

CORPUS = [
    "Question: What is 2 + 3?\nAnswer: 5", "The cat sat on the mat.", "def add(a, b):\n    return a + b",
    "A. red\nB. blue\nC. green\nD. yellow", "Paris is the capital of France.", "0 1 2 3 4 5 6 7 8 9",
]


def build_tiny_model(out: Path, seed: int = 0) -> Path:
    """A 2-layer Llama with random weights and a byte-level BPE tokenizer trained on CORPUS."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
                         pad_token_id=fast.pad_token_id)
    model = LlamaForCausalLM(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    fast.save_pretrained(out)
    return out


MC_DOCS = [
    {"question": "What colour is the sky?", "choices": {"text": ["blue", "green", "red"], "label": ["A", "B", "C"]},
     "answerKey": "A", "item_id": "mc0", "group": "a"},
    {"question": "How many legs has a cat?", "choices": {"text": ["two", "four"], "label": ["A", "B"]},
     "answerKey": "B", "item_id": "mc1", "group": "a"},
    {"question": "What is 2 + 2?", "choices": {"text": ["3", "4", "5", "22"], "label": ["A", "B", "C", "D"]},
     "answerKey": "B", "item_id": "mc2", "group": "b"},
    {"question": "Which is a fruit?", "choices": {"text": ["apple", "stone"], "label": ["A", "B"]},
     "answerKey": "A", "item_id": "mc3", "group": "b"},
]
GEN_DOCS = [{"question": f"What is {a} + {b}?", "answer": str(a + b), "item_id": f"g{a}{b}"}
            for a, b in ((1, 2), (3, 4), (5, 1))]
CODE_DOCS = [
    {"task_id": "tiny/0", "prompt": "def add(a, b):\n", "entry_point": "add",
     "test": "def check(f):\n    assert f(2, 3) == 5\n", "item_id": "tiny/0"},
    {"task_id": "tiny/1", "prompt": "def neg(x):\n", "entry_point": "neg",
     "test": "def check(f):\n    assert f(2) == -2\n", "item_id": "tiny/1"},
]

PLUGIN = '''"""Tiny local benchmarks for the end-to-end test (written by the test)."""
from slmlib.benchmarks import Benchmark, read_jsonl, register
from slmlib.benchmarks.coding import humaneval_pass

ROOT = {root!r}


def load(files):
    return read_jsonl(files[0])


register(Benchmark(
    name="tiny_mc", title="Tiny multiple choice", pillar="reasoning", pack="local", root=ROOT,
    files=("tiny_mc.jsonl",), sha256={mc_sha!r}, load=load, lm_eval_yaml="arc/arc_easy.yaml",
    n_choices=lambda d: len(d["choices"]["text"]), stratify="group", license="CC0-1.0"))

register(Benchmark(
    name="tiny_gen", title="Tiny arithmetic", pillar="math", pack="local", root=ROOT, generative=True,
    files=("tiny_gen.jsonl",), sha256={gen_sha!r}, load=load, lm_eval_yaml=None,
    overrides={{"output_type": "generate_until", "doc_to_text": "Question: {{{{question}}}}\\nAnswer:",
               "doc_to_target": "{{{{answer}}}}",
               "generation_kwargs": {{"until": ["\\n"], "do_sample": False, "max_gen_toks": 6}},
               "metric_list": [{{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}}]}},
    metric="exact_match", license="CC0-1.0"))

register(Benchmark(
    name="tiny_code", title="Tiny code", pillar="coding", pack="local", root=ROOT, generative=True,
    files=("tiny_code.jsonl",), sha256={code_sha!r}, load=load, lm_eval_yaml=None,
    overrides={{"output_type": "generate_until", "doc_to_text": "{{{{prompt}}}}", "doc_to_target": "{{{{test}}}}",
               "generation_kwargs": {{"until": ["\\ndef"], "do_sample": False, "max_gen_toks": 8}},
               "process_results": humaneval_pass,
               "metric_list": [{{"metric": "pass@1", "aggregation": "mean", "higher_is_better": True}}]}},
    metric="pass@1", license="CC0-1.0"))
'''


def write_tiny_benchmarks(root: Path) -> Path:
    """Data files and a benchmark plugin file (for SLM_BENCHMARK_FILES) under `root`."""
    from slmlib import datapacks

    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    shas = {}
    for name, docs in (("mc", MC_DOCS), ("gen", GEN_DOCS), ("code", CODE_DOCS)):
        f = data / f"tiny_{name}.jsonl"
        f.write_text("".join(json.dumps(d) + "\n" for d in docs))
        shas[f"{name}_sha"] = datapacks.digest_files([f], data)
    plugin = root / "tiny_benchmarks.py"
    plugin.write_text(PLUGIN.format(root=str(data), **shas))
    return plugin


def tiny_model_with_benchmarks(root: Path) -> Path:
    """Register the tiny benchmarks (once per process) and build the tiny model under `root`."""
    from slmlib.benchmarks import all_benchmarks, load_plugin_files

    if "tiny_mc" not in all_benchmarks():
        load_plugin_files(str(write_tiny_benchmarks(root / "bench")))
    return build_tiny_model(root / "model")


def write_submission(path: Path, model_dir: Path) -> Path:
    path.write_text(
        "model:\n  name: Tiny-Random-Llama\n  family: TinyTest\n  license: mit\n"
        f"  model_type: pretrained\nweights:\n  dir: {model_dir}\n")
    return path
