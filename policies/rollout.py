"""RLOO rollouts through the harness's own vLLM engine: TRL's RLOO algorithm, the harness's generation.

``EngineRLOOTrainer`` is TRL's ``RLOOTrainer`` with the method that turns the prompts' token ids into
completion token ids replaced, and two hooks around its scoring. Everything else — the reward functions, the
KL term, the leave-one-out baseline, the clipped loss, checkpoints — is TRL's.

Before each step's generation the trainer's current weights (LoRA deltas merged into a copy, the
model itself untouched; or the full weights) are loaded in place into the engine's vLLM model with
vLLM's ``reload_weights``, which redoes the CPU weight packing that makes plain ``load_weights``
(and so TRL's colocate mode) fail on CPU, and the prefix cache is reset. Merged weights, because on
CPU vLLM's per-request LoRA path generates several times slower (docs/performance.md).

The trainer gets the token ids the engine sampled (the stop token included, as TRL's own path keeps it), never
text tokenized again, which can merge bytes into other tokens than were drawn. The engine also reports each
token's log-probability under the distribution it was drawn from; each step logs how far the trainer's own
log-probabilities of the same tokens are from them (``sampling/sampling_logp_difference/mean|max``, TRL's
names) and, with ``importance_cap``, weights each sequence's loss by its truncated importance ratio
``min(p_trainer(y) / p_engine(y), cap)``: sequence-level truncated importance sampling (verl's ``rollout_is:
sequence``, TRL GRPO's ``sequence_truncate``), one ratio per sequence, the product of its tokens' ratios, so the
per-token gap compounds over a long completion; the token-level mode truncates each token's ratio instead
(docs/training.md).

The overrides are of private TRL methods, so ``pyproject.toml`` pins the TRL versions they are tested with
and ``tests/test_rollout_override.py`` checks that the methods and their signatures are still there.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from harness.engines import EngineOptions, Renderer, Request, Sampled, Sampling, VLLMEngine, load_engine
from harness.errors import HarnessError
from harness.policy import Policy
from policies.config import sampling_problem

KV_CACHE_GIB = 2.0  # plenty for one step's rollouts (tens of sequences, a few hundred tokens); training needs the rest


def merged_weights(model) -> Iterator[tuple[str, Any]]:
    """The model's weights under their Hugging Face names, with the active LoRA adapter's deltas added."""
    import torch

    if not hasattr(model, "peft_config"):
        yield from model.state_dict().items()
        return
    from peft.tuners.lora import LoraLayer

    inner = model.get_base_model()
    adapter = model.active_adapter
    with torch.no_grad():
        deltas = {f"{name}.weight": module.get_delta_weight(adapter) for name, module in inner.named_modules()
                  if isinstance(module, LoraLayer) and adapter in module.lora_A}
        for name, tensor in inner.state_dict().items():
            if ".lora_" in name:
                continue
            name = name.replace(".base_layer", "")
            yield name, tensor + deltas[name] if name in deltas else tensor


class EngineRollout:
    """The harness's vLLM engine, its weights replaced by the policy's at every training step."""

    def __init__(self, base_model: str, seed: int, max_model_len: int = 2048, dtype: str = "auto"):
        self.base_model = base_model
        self.seed = seed
        self.max_model_len = max_model_len
        self.dtype = dtype
        self.engine: VLLMEngine | None = None
        self.step: int | None = None

    def sync(self, model, step: int) -> None:
        """Serve the weights as they are at ``step`` (loaded once per step)."""
        if step == self.step:
            return
        if self.engine is None:
            policy = Policy("rollout", self.base_model)
            options = EngineOptions(max_model_len=self.max_model_len, kv_cache_gib=KV_CACHE_GIB, dtype=self.dtype)
            engine = load_engine("vllm", policy, Renderer(policy), options, seed=self.seed,  # errors in one line
                                 sampler_logprobs=True)
            assert isinstance(engine, VLLMEngine)
            self.engine = engine
        self.engine.load_weights(merged_weights(model))
        self.step = step

    def sample(self, prompt_ids: list[list[int]], sampling: Sampling) -> list[Sampled]:
        """The samples for each prompt row, as drawn; TRL repeats a prompt k times in a row, sent as one request
        of n=k."""
        problem = sampling_problem(sampling.temperature, sampling.top_p, sampling.max_tokens, greedy=True)
        if problem:
            raise HarnessError(f"RLOO rollouts: {problem}")
        if self.engine is None:
            raise HarnessError("RLOO rollouts: sync(model, step) loads the engine before the first sample")
        groups: list[tuple[list[int], int]] = []
        for ids in prompt_ids:
            if groups and groups[-1][0] == list(ids):
                groups[-1] = (groups[-1][0], groups[-1][1] + 1)
            else:
                groups.append((list(ids), 1))
        requests = [Request(ids, n) for ids, n in groups]
        done = dict(self.engine.sample(requests, sampling))
        return [sample for index in range(len(requests)) for sample in done[index]]

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


def logprob_gap(trainer, engine, mask) -> tuple[float, float]:
    """Mean and largest absolute difference between the trainer's and the engine's log-probabilities of the sampled
    tokens (``mask``: 1 on a sampled token, 0 on padding), tensors of one shape; (0, 0) where nothing was sampled."""
    gaps = (trainer.float() - engine.float()).abs()[mask.bool()]
    if not gaps.numel():
        return 0.0, 0.0
    return gaps.mean().item(), gaps.max().item()


def log_ratios(trainer, engine, mask):
    """Each sequence's log importance ratio, log p_trainer(y) - log p_engine(y), summed over its sampled tokens."""
    return ((trainer.float() - engine.float()) * mask).sum(-1)


def truncated_weights(log_ratio, cap: float):
    """Sequence-level truncated importance sampling: each sequence's ``min(p_trainer(y) / p_engine(y), cap)`` from
    its summed log ratio, capped in log space so that a long sequence's ratio cannot overflow."""
    import torch

    return torch.exp(torch.clamp(log_ratio, max=math.log(cap)))


def pad_logprobs(samples: list[Sampled], like):
    """The samples' engine log-probabilities as a tensor shaped and placed as the trainer's ``like`` (B, T), zero
    after each sample's end and cut at ``T`` where a sample is longer than the trainer scored."""
    import torch

    out = torch.zeros(like.shape, dtype=torch.float32, device=like.device)
    for row, sample in enumerate(samples):
        n = min(len(sample.logprobs), like.shape[1])
        out[row, :n] = torch.tensor(sample.logprobs[:n], dtype=torch.float32)
    return out


# The private RLOOTrainer methods the trainer overrides, with the parameters each override takes:
# _generate_single_turn takes prompt token ids and returns completion token ids (TRL's ``_generate`` decodes them);
# _generate_and_score_completions returns the batch the loss reads (``advantages``, ``completion_mask``);
# _get_per_token_logps_and_entropies scores completions, the policy first and then the reference.
OVERRIDDEN = {"_generate_single_turn": ("self", "prompt_ids", "images", "multimodal_fields"),
              "_generate_and_score_completions": ("self", "inputs"),
              "_get_per_token_logps_and_entropies": ("self", "model", "input_ids", "attention_mask", "logits_to_keep")}


def override_mismatch() -> str | None:
    """Why this TRL's ``RLOOTrainer`` cannot take the overrides, or None when it can."""
    import inspect

    from trl import RLOOTrainer

    for name, expected in OVERRIDDEN.items():
        method = getattr(RLOOTrainer, name, None)
        if method is None:
            return f"this TRL's RLOOTrainer has no {name}"
        parameters = tuple(inspect.signature(method).parameters)
        if parameters[:len(expected)] != expected or name != "_get_per_token_logps_and_entropies" and \
                len(parameters) != len(expected):
            return f"this TRL's RLOOTrainer.{name} takes ({', '.join(parameters)}), not ({', '.join(expected)})"
    return None


def engine_trainer_class():
    """``RLOOTrainer`` with its generation routed through an ``EngineRollout`` (imported lazily: TRL is heavy)."""
    from trl import RLOOTrainer

    mismatch = override_mismatch()
    if mismatch:
        raise HarnessError(f"rollout=engine: {mismatch}; use rollout=trl")

    class EngineRLOOTrainer(RLOOTrainer):
        def __init__(self, *args: Any, rollout: EngineRollout, importance_cap: float = 0.0, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.rollout = rollout
            self.importance_cap = importance_cap
            self._sampled: list[Sampled] | None = None  # this generation's samples, as the engine drew them
            self._scored = None  # the trainer's log-probabilities of them, once the policy has scored them
            self._scoring = False

        def _generate_single_turn(self, prompt_ids, images, multimodal_fields):
            self._sampled = None
            if not self.model.training:
                return super()._generate_single_turn(prompt_ids, images, multimodal_fields)
            problem = sampling_problem(self.temperature, self.top_p, self.max_completion_length)
            if problem:  # before the engine starts or loads weights
                raise HarnessError(f"RLOO rollouts: {problem}")
            sampling = Sampling(temperature=self.temperature, top_p=self.top_p,
                                max_tokens=self.max_completion_length, seed=self.args.seed + self.state.global_step)
            self.rollout.sync(self.accelerator.unwrap_model(self.model), self.state.global_step)
            self._sampled = self.rollout.sample(prompt_ids, sampling)
            return [list(s.token_ids) for s in self._sampled]

        def _get_per_token_logps_and_entropies(self, *args: Any, **kwargs: Any):
            out = super()._get_per_token_logps_and_entropies(*args, **kwargs)
            if self._scoring:  # the first scoring after generation is the policy's, before the reference's
                self._scored, self._scoring = out[0], False
            return out

        def _generate_and_score_completions(self, inputs):
            self._scoring, self._scored = True, None
            try:
                batch = super()._generate_and_score_completions(inputs)
            finally:
                self._scoring = False
            if self._sampled is not None and self._scored is not None:
                self._correct(batch, self._scored, pad_logprobs(self._sampled, self._scored))
            return batch

        def _correct(self, batch: dict[str, Any], trainer, engine) -> None:
            """Log the gap and the sequences' log importance ratios; with a cap, weight each sequence by its truncated
            sequence ratio (scaling its advantage scales both terms of TRL's clipped sequence loss by one factor)."""
            mask = batch["completion_mask"]
            mean, largest = logprob_gap(trainer, engine, mask)
            ratios = log_ratios(trainer, engine, mask)
            metrics = self._metrics["train"]
            metrics["sampling/sampling_logp_difference/mean"].append(mean)
            metrics["sampling/sampling_logp_difference/max"].append(largest)
            metrics["sampling/importance_log_ratio/min"].append(ratios.min().item())
            metrics["sampling/importance_log_ratio/max"].append(ratios.max().item())
            if self.importance_cap:
                weights = truncated_weights(ratios, self.importance_cap)
                metrics["sampling/importance_truncated"].append((ratios > math.log(self.importance_cap))
                                                                       .float().mean().item())
                batch["advantages"] = batch["advantages"] * weights.to(batch["advantages"].dtype)

    return EngineRLOOTrainer
