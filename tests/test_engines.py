"""Engines and policies on real weights: vLLM on the embedded SmolLM2, transformers, LoRA adapters, manifests."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
from rich.console import Console

from harness import engines, hardware
from harness.engines import EngineOptions, HFEngine, Renderer, Request, Sampling, load_engine
from harness.errors import HarnessError
from harness.policy import harness_home, resolve_policy
from harness.provenance import versions
from harness.types import Example

SKIP_VLLM = pytest.mark.skipif(os.environ.get("HARNESS_SKIP_VLLM") == "1", reason="HARNESS_SKIP_VLLM=1")
ROOT = Path(__file__).resolve().parents[1]


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


@pytest.fixture
def screen(monkeypatch) -> io.StringIO:
    """What the engines print on the harness console."""
    out = io.StringIO()
    monkeypatch.setattr(engines, "console", Console(file=out, width=200))
    return out


def collect(engine, requests: list[Request], sampling: Sampling) -> list[list]:
    """The engine's yields, put back in request order (each index exactly once)."""
    got = dict(engine.generate(requests, sampling))
    assert sorted(got) == list(range(len(requests)))
    return [got[i] for i in range(len(requests))]


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


# --- options and hardware, no model needed ----------------------------------------------------------------------


def test_engine_options_reject_bad_values():
    with pytest.raises(HarnessError, match="dtype"):
        EngineOptions(dtype="fp8")
    with pytest.raises(HarnessError, match="--max-num-seqs"):
        EngineOptions(max_num_seqs=0)
    with pytest.raises(HarnessError, match="--kv-cache-gib"):
        EngineOptions(kv_cache_gib=-1)
    with pytest.raises(TypeError):
        EngineOptions(32)  # keyword-only: a new option cannot shift a caller's arguments


def test_cpu_dtype_follows_the_processor(monkeypatch, tiny_llama):
    policy = resolve_policy(str(tiny_llama))
    for limit in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(limit, raising=False)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "avx512f", "fma"})  # a Xeon without AVX512-BF16
    assert engines.vllm_kwargs(policy, EngineOptions(), 0, cpu=True)["dtype"] == "float32"
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx512f", "avx512_bf16", "amx_bf16"})
    assert engines.vllm_kwargs(policy, EngineOptions(), 0, cpu=True)["dtype"] == "bfloat16"
    assert engines.vllm_kwargs(policy, EngineOptions(dtype="float32"), 0, cpu=True)["dtype"] == "float32"
    assert engines.vllm_kwargs(policy, EngineOptions(), 0, cpu=False)["dtype"] == "auto"  # vLLM knows its GPU


def test_onednn_limited_below_bf16_counts_as_no_native_bf16(monkeypatch, tiny_llama):
    policy = resolve_policy(str(tiny_llama))
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx512f", "avx512_bf16", "amx_bf16"})
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx512_core")  # what `bench/throughput.py --no-native-bf16` sets
    assert engines.vllm_kwargs(policy, EngineOptions(), 0, cpu=True)["dtype"] == "float32"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")  # a limit that keeps bf16
    assert engines.vllm_kwargs(policy, EngineOptions(), 0, cpu=True)["dtype"] == "bfloat16"
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "AVX2")  # oneDNN's older name
    assert engines.vllm_kwargs(policy, EngineOptions(), 0, cpu=True)["dtype"] == "float32"


def test_vllm_arguments_follow_the_options(monkeypatch, tiny_llama):
    policy = resolve_policy(str(tiny_llama))
    monkeypatch.setattr(hardware, "available_memory", lambda: 10 * hardware.GIB)
    cpu = engines.vllm_kwargs(policy, EngineOptions(), 7, cpu=True)
    assert cpu["enforce_eager"] and cpu["seed"] == 7 and cpu["kv_cache_memory_bytes"] == 3 * hardware.GIB
    assert "max_num_seqs" not in cpu and "enable_prefix_caching" not in cpu
    assert cpu["enable_chunked_prefill"] is False and cpu["max_num_batched_tokens"] >= cpu["max_model_len"]
    with pytest.raises(HarnessError, match="--max-num-batched-tokens"):
        engines.vllm_kwargs(policy, EngineOptions(max_num_batched_tokens=512, max_model_len=1024), 0, cpu=True)
    tuned = engines.vllm_kwargs(policy, EngineOptions(max_num_seqs=64, max_num_batched_tokens=2048, kv_cache_gib=1.5,
                                                      compile=True, max_model_len=1024), 0, cpu=True)
    assert tuned["max_num_seqs"] == 64 and tuned["max_num_batched_tokens"] == 2048
    assert tuned["kv_cache_memory_bytes"] == int(1.5 * hardware.GIB) and not tuned["enforce_eager"]
    assert tuned["max_model_len"] == 1024
    invariant = engines.vllm_kwargs(policy, EngineOptions(batch_invariant=True), 0, cpu=True)
    assert invariant["max_num_seqs"] == 1 and invariant["enable_prefix_caching"] is False
    gpu = engines.vllm_kwargs(policy, EngineOptions(batch_invariant=True), 0, cpu=False)
    assert not gpu["enforce_eager"] and "kv_cache_memory_bytes" not in gpu and "max_num_seqs" not in gpu
    assert "enable_chunked_prefill" not in gpu


def test_kv_cache_is_sized_from_available_memory(monkeypatch):
    monkeypatch.setattr(hardware, "available_memory", lambda: 20 * hardware.GIB)
    assert hardware.cpu_kv_cache_bytes(None) == 6 * hardware.GIB
    monkeypatch.setattr(hardware, "available_memory", lambda: 2 * hardware.GIB)
    assert hardware.cpu_kv_cache_bytes(None) == 1 * hardware.GIB
    monkeypatch.setattr(hardware, "available_memory", lambda: 1024 * hardware.GIB)
    assert hardware.cpu_kv_cache_bytes(None) == 32 * hardware.GIB
    assert hardware.cpu_kv_cache_bytes(2) == 2 * hardware.GIB
    assert hardware.available_memory() > 0  # the real reading


@pytest.mark.slow
def test_vllm_reads_the_cpu_defaults_and_a_users_own_setting_wins():
    pytest.importorskip("vllm")
    probe = ("from harness.engines.vllm import apply_cpu_defaults; apply_cpu_defaults(); import vllm.envs as e; "
             "print(e.VLLM_USE_AOT_COMPILE, e.VLLM_ENABLE_V1_MULTIPROCESSING, e.VLLM_CPU_OMP_THREADS_BIND)")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_")}

    def read(**env: str) -> list[str]:
        return subprocess.run([sys.executable, "-c", probe], env={**clean, **env}, capture_output=True, text=True,
                              check=True, cwd=Path(__file__).parents[1]).stdout.split()

    cores = f"0-{(os.cpu_count() or 1) - 1}"
    assert read() == ["False", "False", cores]  # AOT artifacts off: they fail to reload on the CPU build
    assert read(VLLM_USE_AOT_COMPILE="1", VLLM_CPU_OMP_THREADS_BIND="0") == ["True", "False", "0"]


def test_entry_point_preloads_the_cpu_libraries_once():
    libs = hardware.cpu_preload_libraries()
    if versions(["vllm-cpu"])["vllm-cpu"] is None or not libs:
        pytest.skip("vllm-cpu, tcmalloc or intel-openmp is not installed here")
    code = textwrap.dedent("""
        import os, sys
        from harness.hardware import reexec_with_preload
        print("start", flush=True)
        reexec_with_preload()
        print(os.environ.get("LD_PRELOAD", ""), os.environ.get("HARNESS_PRELOADED"), os.environ.get("KMP_BLOCKTIME"),
              sys.argv[1:])
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "HARNESS_PRELOADED", "KMP_BLOCKTIME")}
    out = subprocess.run([sys.executable, "-c", code, "--flag"], capture_output=True, text=True, env=env,
                         cwd=ROOT, check=True).stdout.splitlines()
    assert out[:2] == ["start", "start"] and len(out) == 3, out  # restarted exactly once
    assert all(lib in out[2] for lib in libs) and out[2].endswith(" 1 5 ['--flag']")
    mine = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                          env={**env, "KMP_BLOCKTIME": "0"}).stdout.splitlines()
    assert mine[2].endswith(" 1 0 []"), "a spin time the user set is kept"
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                           env={**env, "HARNESS_NO_PRELOAD": "1"}).stdout.splitlines()
    assert quiet[0] == "start" and len(quiet) == 2 and quiet[1].startswith(" None None")


# --- choosing the backend ---------------------------------------------------------------------------------------


def test_auto_falls_back_to_transformers_only_when_vllm_is_missing(monkeypatch, tiny_llama, screen):
    policy = resolve_policy(str(tiny_llama))
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` now raises ImportError
    monkeypatch.setitem(sys.modules, "vllm.platforms", None)
    engine = load_engine("auto", policy, Renderer(policy))
    assert engine.name == "hf" and "because vLLM is not installed" in screen.getvalue()
    engine.close()
    with pytest.raises(HarnessError, match="--backend vllm: vLLM is not installed"):
        load_engine("vllm", policy, Renderer(policy))


def test_auto_falls_back_when_vllm_has_no_platform_here(monkeypatch, tiny_llama, screen):
    policy = resolve_policy(str(tiny_llama))
    fake = types.ModuleType("vllm.platforms")
    fake.current_platform = types.SimpleNamespace(is_unspecified=lambda: True)
    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))
    monkeypatch.setitem(sys.modules, "vllm.platforms", fake)
    engine = load_engine("auto", policy, Renderer(policy))
    assert engine.name == "hf" and "no platform it supports" in screen.getvalue()
    engine.close()


def test_auto_reports_a_vllm_failure_instead_of_falling_back(monkeypatch, tiny_llama, screen):
    if engines.vllm_unavailable():
        pytest.skip("vLLM is not installed here")
    policy = resolve_policy(str(tiny_llama))

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB\nmore detail")

    def never(*args, **kwargs):
        raise AssertionError("fell back to transformers")

    monkeypatch.setattr(engines, "VLLMEngine", out_of_memory)
    monkeypatch.setattr(engines, "HFEngine", never)
    with pytest.raises(HarnessError, match=r"vLLM could not start: RuntimeError: CUDA out of memory") as caught:
        load_engine("auto", policy, Renderer(policy))
    assert "more detail" not in str(caught.value) and isinstance(caught.value.__cause__, RuntimeError)
    assert screen.getvalue() == ""


# --- transformers -----------------------------------------------------------------------------------------------


class GenerateSpy:
    """Wraps a model's real ``generate``: records its keyword arguments and outputs, changes nothing."""

    def __init__(self, model):
        self.real, self.calls = model.generate, []
        model.generate = self

    def __call__(self, **kwargs):
        out = self.real(**kwargs)
        self.calls.append((kwargs, out))
        return out


def test_hf_logprobs_are_the_raw_models_and_nothing_is_hoarded(tiny_llama):
    import torch

    policy = resolve_policy(str(tiny_llama))
    renderer = Renderer(policy)
    prompts = [renderer.render(Example(p))[1] for p in ("Add 2 and 3.", "Name a colour, please, and a fruit.")]
    engine = HFEngine(policy, renderer.tokenizer, EngineOptions(batch_size=3))
    spy = GenerateSpy(engine.model)
    requests = [Request(prompts[0], 2), Request(prompts[1], 3)]
    sampling = Sampling(temperature=0.5, top_p=0.9, max_tokens=10)  # warped probabilities differ from the raw ones
    got = collect(engine, requests, sampling)
    assert [len(c) for c in got] == [2, 3] and len(spy.calls) == 2  # 5 sequences, 3 per generate call
    for kwargs, _ in spy.calls:
        assert not {"output_logits", "output_scores", "return_dict_in_generate"} & set(kwargs)
        assert kwargs["input_ids"].shape[0] <= 3
    rows = [(kwargs["input_ids"].shape[1], seq) for kwargs, out in spy.calls for seq in out]
    flat = [(prompt, c) for r, cs in zip(requests, got, strict=True) for prompt, c in ((r.token_ids, c) for c in cs)]
    model = engine.model
    for (width, seq), (prompt, completion) in zip(rows, flat, strict=True):
        generated = seq[width:width + completion.tokens]
        ids = torch.tensor([prompt + generated.tolist()])
        with torch.no_grad():
            logits = model(ids).logits[0, len(prompt) - 1:-1].float()
        direct = logits.log_softmax(-1).gather(-1, generated.unsqueeze(-1)).sum().item()
        assert completion.logprob == pytest.approx(direct, abs=1e-3)
        assert completion.logprob != pytest.approx((logits / 0.5).log_softmax(-1).gather(
            -1, generated.unsqueeze(-1)).sum().item(), abs=1e-3)
    engine.close()
    assert engine.describe()["dtype"] == "float32" and engine.describe()["device"] == "cpu"


@pytest.mark.slow
def test_hf_memory_does_not_grow_with_vocabulary_times_steps(tiny_llama):
    """16 sequences x 256 steps x 49k vocabulary is 800 MB of float32 logits if kept: peak memory must not see it."""
    code = textwrap.dedent(f"""
        import resource, sys
        from harness.engines import EngineOptions, HFEngine, Renderer, Request, Sampling
        from harness.policy import resolve_policy
        from harness.types import Example
        policy = resolve_policy({str(tiny_llama)!r})
        renderer = Renderer(policy)
        engine = HFEngine(policy, renderer.tokenizer, EngineOptions(batch_size=16))
        prompt = renderer.render(Example("Say something long."))[1]
        list(engine.generate([Request(prompt, 2)], Sampling(1.0, max_tokens=4)))  # warm: allocator, kernels
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        (_, out), = engine.generate([Request(prompt, 16)], Sampling(1.0, max_tokens=256))
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(sum(c.tokens for c in out), grown // 1024)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert result.returncode == 0, result.stderr[-2000:]
    tokens, grown_mib = map(int, result.stdout.split())
    assert tokens > 16 * 128, "the tiny random model stopped early: the case is too small to show hoarding"
    assert grown_mib < 300, f"peak memory grew {grown_mib} MiB while generating"


def test_hf_engine_batches_samples_and_applies_the_adapter(tiny_llama, adapter):
    base = resolve_policy(str(tiny_llama))
    renderer = Renderer(base)
    prompts = [renderer.render(Example(p))[1] for p in ("Add 2 and 3.", "Name a colour, please.")]
    engine = HFEngine(base, renderer.tokenizer)
    greedy = Sampling(temperature=0.0, max_tokens=12)
    first = collect(engine, [Request(p, 1) for p in prompts], greedy)
    assert collect(engine, [Request(p, 1) for p in prompts], greedy) == first
    assert all(len(out) == 1 and 0 < out[0].tokens <= 12 and out[0].logprob < 0 for out in first)
    sampled = collect(engine, [Request(prompts[0], 3), Request(prompts[1], 2)], Sampling(1.0, max_tokens=12))
    assert [len(out) for out in sampled] == [3, 2]
    assert len({c.text for c in sampled[0]}) > 1, "three samples at temperature 1 were identical"
    engine.close()
    tuned = HFEngine(resolve_policy(str(adapter)), renderer.tokenizer)
    assert collect(tuned, [Request(p, 1) for p in prompts], greedy) != first
    tuned.close()


@pytest.mark.slow
def test_hf_runs_the_numerics_its_samples_are_keyed_by(tiny_llama, adapter):
    """What ``numerics`` resolves before the engine starts is what the started engine reports (the pipeline checks
    it on every run): dtype, device, LoRA serving, batch invariance."""
    from harness.pipeline import _check_engine

    for policy in (resolve_policy(str(tiny_llama)), resolve_policy(str(adapter))):
        for options in (EngineOptions(), EngineOptions(dtype="bfloat16", batch_invariant=True, compile=True)):
            engine = HFEngine(policy, Renderer(policy).tokenizer, options)
            expected = engines.numerics("hf", options, policy)
            _check_engine(expected, engine.describe())
            assert engine.describe()["lora"] == ("peft" if policy.adapter else None) == expected["lora"]
            engine.close()


def test_hf_engine_stops_at_a_task_stop_string(smollm2):
    policy = resolve_policy("smollm2")
    renderer = Renderer(policy)
    engine = HFEngine(policy, renderer.tokenizer)
    prompt = renderer.render(Example("Count to ten."))[1]
    ((free,),) = collect(engine, [Request(prompt, 1)], Sampling(temperature=0.0, max_tokens=24))
    words = free.text.split()
    stop = words[len(words) // 2]
    assert len(words) > 4 and len(stop) >= 2, free.text
    ((cut,),) = collect(engine, [Request(prompt, 1)], Sampling(temperature=0.0, max_tokens=24, stop=(stop,)))
    assert cut.text == free.text[:free.text.find(stop)] and cut.finish_reason == "stop"
    assert cut.tokens < free.tokens and cut.logprob > free.logprob
    engine.close()


# --- vLLM on the embedded model ----------------------------------------------------------------------------------

VLLM_OPTIONS = EngineOptions(dtype="float32", max_num_seqs=8, max_num_batched_tokens=1024, kv_cache_gib=1,
                             max_model_len=1024)


@pytest.fixture(scope="module")
def vllm_engine(smollm2):
    policy = resolve_policy("smollm2")
    engine = load_engine("vllm", policy, Renderer(policy), VLLM_OPTIONS, seed=3)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def prompts(smollm2) -> dict[str, list[int]]:
    renderer = Renderer(resolve_policy("smollm2"))
    asks = {"short": "Reply with the single word: yes.", "long": "Count from 1 to 100, separated by commas.",
            "colour": "Name a colour.", "sum": "What is 2+3?"}
    return {key: renderer.render(Example(text))[1] for key, text in asks.items()}


@SKIP_VLLM
@pytest.mark.vllm
def test_vllm_options_reach_the_engine(vllm_engine):
    import torch

    config = vllm_engine.llm.llm_engine.vllm_config
    assert config.model_config.dtype == torch.float32 and config.model_config.max_model_len == 1024
    assert config.scheduler_config.max_num_seqs == 8 and config.scheduler_config.max_num_batched_tokens == 1024
    assert config.cache_config.kv_cache_memory_bytes == hardware.GIB and config.model_config.enforce_eager
    info = vllm_engine.describe()
    assert info["name"] == "vllm" and info["dtype"] == "float32" and info["batch_invariant"] is False
    assert info["options"]["max_num_seqs"] == 8 and info["options"]["kv_cache_gib"] == 1
    assert info["version"] == versions(["vllm-cpu"])["vllm-cpu"] or info["device"] == "cuda"
    from harness.pipeline import _check_engine

    _check_engine(engines.numerics("vllm", VLLM_OPTIONS, resolve_policy("smollm2")), info)  # what keyed the samples


@SKIP_VLLM
@pytest.mark.vllm
def test_vllm_yields_each_request_as_it_finishes(vllm_engine, prompts):
    greedy = Sampling(temperature=0.0, max_tokens=200)
    requests = [Request(prompts["long"], 1), Request(prompts["short"], 1), Request(prompts["colour"], 2)]
    stream = vllm_engine.generate(requests, greedy)
    index, first = next(stream)
    assert index != 0 and vllm_engine.llm.llm_engine.has_unfinished_requests(), "the first answer waited for all"
    rest = dict(stream)
    assert sorted([index, *rest]) == [0, 1, 2] and len(rest[0]) == 1 and rest[0][0].tokens > first[0].tokens
    colour = first if index == 2 else rest[2]
    assert len(colour) == 2 and colour[0] == colour[1], "greedy: n copies of the one sequence"
    assert all(c.logprob < 0 and c.finish_reason in ("stop", "length") for c in rest[0] + first)


@SKIP_VLLM
@pytest.mark.vllm
def test_vllm_samples_do_not_depend_on_the_other_requests(vllm_engine, prompts):
    """Per-request seeds; long prompts fill more than one step's token budget, which crashed seeded requests
    on CPU while vLLM split prompts across steps (chunked prefill)."""
    sampling = Sampling(temperature=1.0, max_tokens=12, seed=5)
    alone = collect(vllm_engine, [Request(prompts["sum"], 3)], sampling)[0]
    renderer = Renderer(resolve_policy("smollm2"))
    long = [renderer.render(Example(f"{i}. Repeat after me: " + "the quick brown fox jumps " * 30))[1]
            for i in range(8)]
    assert sum(map(len, long)) > VLLM_OPTIONS.max_num_batched_tokens
    crowd = collect(vllm_engine, [Request(prompts["colour"], 4), Request(prompts["sum"], 3),
                                  *(Request(t, 1) for t in long)], sampling)[1]
    assert [c.text for c in crowd] == [c.text for c in alone] and len({c.text for c in alone}) > 1
    other = collect(vllm_engine, [Request(prompts["sum"], 3, first=3)], sampling)[0]
    assert [c.text for c in other] != [c.text for c in alone], "samples 3..5 repeat samples 0..2"


@SKIP_VLLM
@pytest.mark.vllm
def test_vllm_abandoned_generation_leaves_the_engine_empty(vllm_engine, prompts):
    stream = vllm_engine.generate([Request(p, 2) for p in prompts.values()], Sampling(1.0, max_tokens=24))
    next(stream)
    stream.close()
    assert not vllm_engine.llm.llm_engine.has_unfinished_requests()
    assert len(collect(vllm_engine, [Request(prompts["sum"], 1)], Sampling(0.0, max_tokens=4))) == 1


@SKIP_VLLM
@pytest.mark.vllm
def test_vllm_closes_and_a_second_engine_starts_in_the_same_process(vllm_engine, prompts, adapter, tiny_llama):
    """Runs after the module's other vLLM tests (file order); closing twice (here, then the fixture) is fine."""
    greedy = Sampling(temperature=0.0, max_tokens=8)
    vllm_engine.close()
    options = EngineOptions(dtype="float32", kv_cache_gib=1, max_model_len=512)
    base_policy = resolve_policy(str(tiny_llama))
    renderer = Renderer(base_policy)
    ids = [renderer.render(Example(p))[1] for p in ("Add 2 and 3.", "Name a colour, please.")]
    base = load_engine("vllm", base_policy, renderer, options)
    plain = collect(base, [Request(t, 1) for t in ids], greedy)
    base.close()
    policy = resolve_policy(str(adapter))
    tuned = load_engine("vllm", policy, renderer, options)
    assert collect(tuned, [Request(t, 1) for t in ids], greedy) != plain
    # on CPU the adapter is served merged into a copy of the base, made once per adapter content
    merged = harness_home() / "merged" / policy.fingerprint
    assert tuned.describe()["lora"] == "merged" and tuned.kwargs["model"] == str(merged)
    from harness.pipeline import _check_engine

    _check_engine(engines.numerics("vllm", options, policy), tuned.describe())
    assert "enable_lora" not in tuned.kwargs
    tuned.close()
    stamp = (merged / "config.json").stat().st_mtime_ns
    assert engines.merged_model(policy) == str(merged) and (merged / "config.json").stat().st_mtime_ns == stamp


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux-only")
def test_cpu_share_names_the_cpus_a_pinned_process_may_use():
    """A trainer pinned to fewer CPUs than the machine has says so where it starts (its header)."""
    def share(cpus: set[int], threads: int) -> str:
        probe = ("import os, torch; from harness.hardware import cpu_share; "
                 f"torch.set_num_threads({threads}); os.sched_setaffinity(0, {cpus}); print(cpu_share())")
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
        return out.stdout.strip() or out.stderr[-2000:]

    allowed = os.sched_getaffinity(0)
    last = max(allowed)
    assert share({last}, 1) == f"1 thread on CPUs {last} of {os.cpu_count()}"
    if {0, 1, 3} <= allowed:
        assert share({0, 1, 3}, 3) == f"3 threads on CPUs 0-1,3 of {os.cpu_count()}"
    if {0, 1} <= allowed:
        assert share({0, 1}, 2) == f"2 threads on CPUs 0-1 of {os.cpu_count()}"
