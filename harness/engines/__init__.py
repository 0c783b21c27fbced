"""Generation engines, one backend per module: ``vllm`` (vLLM kept full through its step API) and ``hf``
(transformers ``generate``, the fallback). ``render`` turns an example into token ids for both.

Both take the same token ids (rendered once, by the policy's tokenizer) and return the same ``Completion``
objects, with raw-model cumulative logprobs (before temperature and top-p, as vLLM reports them), so their
records compare. Each engine yields a request's samples the moment they are all done, so the pipeline can store
them while the rest are still generating. This module holds what they share and ``load_engine``, which picks one.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from harness.console import console
from harness.errors import HarnessError, describe
from harness.hardware import cpu_dtype, native_bf16
from harness.policy import Policy
from harness.types import DEFAULT_TEMPERATURE, Completion

BACKENDS = ("auto", "vllm", "hf")
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class Sampling:
    """Decoding parameters shared by every engine (``n`` is per request, not part of a sample's identity)."""

    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = 1.0
    max_tokens: int = 256
    seed: int = 0
    stop: tuple[str, ...] = ()

    def key(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class EngineOptions:
    """How to run generation. None of it changes which samples are valid draws of a run, but dtype and batch
    invariance change the numbers, so ``Engine.describe()`` records them with the run.

    ``batch_size`` is the transformers engine's sequences per ``generate`` call; vLLM ignores it and keeps its
    engine full (``max_num_seqs`` bounds how many sequences it decodes at once). ``None`` means: chosen for the
    hardware (dtype: bf16 only where the CPU or GPU computes it natively; KV cache: from available memory;
    ``compile``: eager on CPU, where compiling lengthens the start more than a typical run gains; see
    ``docs/performance.md``). Keyword-only, so a new option cannot shift the meaning of a caller's arguments.
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
        if self.kv_cache_gib is not None and not (math.isfinite(self.kv_cache_gib) and self.kv_cache_gib > 0):
            raise HarnessError(f"--kv-cache-gib must be a positive number of GiB, got {self.kv_cache_gib}")


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


@dataclass(frozen=True)
class Sampled:
    """One sample as the tokens the engine drew, each with its log-probability under the distribution it was drawn
    from: what RL trains on, where re-tokenized text could differ from what was sampled."""

    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    finish_reason: str


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


# The backends build on the types above, so they are imported after them.
from harness.engines.hf import HFEngine, hf_dtype  # noqa: E402
from harness.engines.render import Renderer  # noqa: E402
from harness.engines.vllm import VLLMEngine, merged_model, vllm_kwargs  # noqa: E402

__all__ = ["BACKENDS", "DTYPES", "Engine", "EngineOptions", "HFEngine", "Renderer", "Request", "Sampled", "Sampling",
           "VLLMEngine", "load_engine", "merged_model", "numerics", "resolve_backend", "vllm_kwargs",
           "vllm_unavailable"]


def vllm_unavailable() -> str | None:
    """Why vLLM cannot run here (not installed, or no platform it supports), or None when it can try."""
    try:
        from vllm.platforms import current_platform
    except ImportError as exc:
        return f"vLLM is not installed ({exc})"
    if current_platform.is_unspecified():
        return "vLLM found no platform it supports on this machine"
    return None


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise HarnessError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")


def resolve_backend(backend: str) -> str:
    """The backend ``load_engine`` will start for ``backend``: ``auto`` is vLLM where it can run here, else hf."""
    check_backend(backend)
    if backend == "hf":
        return "hf"
    missing = vllm_unavailable()
    if missing and backend == "vllm":
        raise HarnessError(f"--backend vllm: {missing}")
    return "hf" if missing else "vllm"


def _vllm_on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def vllm_gpu_dtype(requested: str, model: str) -> str:
    """The dtype vLLM's ``auto`` runs a model in on a GPU, as vLLM decides it (``_resolve_auto_dtype``): the model's
    declared dtype, a float32 model (or a bf16 one on a GPU without bf16) in the GPU's preferred half precision."""
    if requested != "auto":
        return requested
    try:
        with open(f"{model}/config.json", encoding="utf-8") as fh:
            config = json.load(fh)
        declared = config.get("torch_dtype") or config.get("dtype") or "float32"
    except (OSError, ValueError, AttributeError):
        declared = "float32"
    preferred = "bfloat16" if native_bf16("cuda") else "float16"
    if declared not in ("bfloat16", "float16") or (declared == "bfloat16" and preferred == "float16"):
        return preferred
    return declared


def numerics(backend: str, options: EngineOptions, policy: Policy) -> dict[str, Any]:
    """The engine facts that change the numbers ``backend`` (``vllm`` or ``hf``, resolved) computes for ``policy``
    with ``options`` on this machine, each resolved as that engine resolves it, before any engine starts:
    ``harness.pipeline.sample_identity`` keys samples and names runs with them (and says why these and not the
    other options). An engine's ``describe()`` reports the same facts once it runs; the pipeline checks they agree."""
    if backend == "vllm":
        cpu = _vllm_on_cpu()
        return {"backend": "vllm", "device": "cpu" if cpu else "cuda",
                "dtype": cpu_dtype(options.dtype) if cpu else vllm_gpu_dtype(options.dtype, policy.model),
                "compile": options.compile if options.compile is not None else not cpu,
                "lora": None if not policy.adapter else "merged" if cpu else "per-request",
                "batch_invariant": options.batch_invariant, "tensor_parallel_size": options.tensor_parallel_size}
    check_backend(backend)
    device = "cuda" if _cuda() else "cpu"
    # transformers runs eagerly, applies an adapter through peft, on one device, with no batch-invariant mode
    return {"backend": "hf", "device": device, "dtype": hf_dtype(options.dtype, device), "compile": False,
            "lora": "peft" if policy.adapter else None, "batch_invariant": False, "tensor_parallel_size": 1}


def load_engine(backend: str, policy: Policy, renderer: Renderer, options: EngineOptions = EngineOptions(),
                seed: int = 0, *, sampler_logprobs: bool = False) -> Engine:
    """Start the requested engine. ``auto`` prefers vLLM and falls back to transformers only where vLLM is
    missing or has no platform here; any other failure (out of memory, a bad model) is the user's to see.
    ``sampler_logprobs``: vLLM reports log-probabilities after temperature and top-p (``VLLMEngine``)."""
    check_backend(backend)
    engine: Engine
    if backend in ("auto", "vllm"):
        missing = vllm_unavailable()
        if missing and backend == "vllm":
            raise HarnessError(f"--backend vllm: {missing}")
        if not missing:
            try:
                engine = VLLMEngine(policy, options, seed=seed, sampler_logprobs=sampler_logprobs)
            except Exception as exc:
                raise HarnessError(f"vLLM could not start: {describe(exc)}") from exc
            _announce(engine, "")
            return engine
        why = f", because {missing}"
    else:
        why = ""
    try:
        engine = HFEngine(policy, renderer.tokenizer, options)
    except Exception as exc:
        raise HarnessError(f"transformers could not load {policy.model}: {describe(exc)}") from exc
    _announce(engine, why)
    return engine


def _announce(engine: Engine, why: str) -> None:
    info = engine.describe()
    extra = ", batch-invariant" if info["batch_invariant"] else ""
    label = "vllm" if info["name"] == "vllm" else "hf (transformers)"
    console.print(f"engine: {label} {info['version']} ({info['device']}, {info['dtype']}{extra}){why}",
                  highlight=False)
