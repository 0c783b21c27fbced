"""The transformers engine: ``generate`` in fixed batches, the fallback where vLLM is missing or has no platform.

It reports the same raw-model logprobs as vLLM and cuts completions at stop strings the way vLLM does, so a run
on either engine records comparable samples.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from typing import Any

from harness.engines import EngineOptions, Request, Sampling
from harness.hardware import native_bf16
from harness.policy import Policy
from harness.provenance import versions
from harness.types import Completion


class _TokenLogprobs:
    """Collects each generated token's raw-model logprob as ``generate`` goes, holding one step's logits at a time.

    A forward hook keeps the last position's log-softmax (before temperature and top-p, as vLLM reports);
    as a stopping criterion, called once each step's token is appended, it gathers that token's logprob.
    Memory: one rows x vocabulary tensor, where ``output_logits=True`` would keep one per step.
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


def hf_dtype(requested: str, device: str) -> str:
    """The dtype the transformers engine runs in: the one requested, else bf16 on a GPU that computes it natively
    and float32 elsewhere (transformers' CPU kernels run these small models fastest in float32)."""
    if requested != "auto":
        return requested
    return "bfloat16" if device == "cuda" and native_bf16("cuda") else "float32"


class HFEngine:
    """transformers ``generate``, ``batch_size`` sequences at a time with left padding, on CUDA when present."""

    name = "hf"

    def __init__(self, policy: Policy, tokenizer, options: EngineOptions | None = None):
        import torch
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the harness shows its own progress
        options = options if options is not None else EngineOptions()
        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.dtype = dtype = hf_dtype(options.dtype, self.device)
        self.options = replace(options, dtype=dtype)
        model = AutoModelForCausalLM.from_pretrained(policy.model, dtype=getattr(torch, dtype))
        if policy.adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, policy.adapter)
        self.lora = "peft" if policy.adapter else None
        self.model = model.to(self.device).eval()
        self._core = model.get_base_model() if policy.adapter else model  # the module whose output has logits
        self.tokenizer = tokenizer
        self.batch_size = options.batch_size
        config = self.model.generation_config
        eos = config.eos_token_id if config.eos_token_id is not None else tokenizer.eos_token_id
        self.eos = set(eos if isinstance(eos, list) else [eos])
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(self.eos))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": versions(["transformers"])["transformers"], "device": self.device,
                "dtype": self.dtype, "batch_invariant": False, "lora": self.lora, "options": asdict(self.options)}

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
