"""RLOO rollouts through the harness's own vLLM engine: TRL's RLOO algorithm, the harness's generation.

``EngineRLOOTrainer`` is TRL's ``RLOOTrainer`` with one method replaced: the one that turns the
prompts' token ids into completion token ids. Everything else — the reward functions, the KL
term, the leave-one-out baseline, the clipped loss, checkpoints — is TRL's.

Before each step's generation the trainer's current weights (LoRA deltas merged into a copy, the
model itself untouched; or the full weights) are loaded in place into the engine's vLLM model with
vLLM's ``reload_weights``, which redoes the CPU weight packing that makes plain ``load_weights``
(and so TRL's colocate mode) fail on CPU, and the prefix cache is reset. Merged weights, because on
CPU vLLM's per-request LoRA path generates several times slower (docs/performance.md). The engine
returns completion text, tokenized back to ids with the policy's tokenizer, plus the end-of-sequence
token where the sample stopped on it, as TRL's own path keeps it.

The override is of a private TRL method, so ``pyproject.toml`` pins the TRL versions it is tested with
and ``tests/test_rollout_override.py`` checks that the method and its signature are still there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from harness.engines import EngineOptions, Renderer, Request, Sampling, VLLMEngine, load_engine
from harness.errors import HarnessError
from harness.policy import Policy
from policies.rloo import sampling_problem

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

    def __init__(self, base_model: str, tokenizer, seed: int, max_model_len: int = 2048, dtype: str = "auto"):
        self.base_model = base_model
        self.tokenizer = tokenizer
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
            engine = load_engine("vllm", policy, Renderer(policy), options, seed=self.seed)  # errors in one line
            assert isinstance(engine, VLLMEngine)
            self.engine = engine
        self.engine.load_weights(merged_weights(model))
        self.step = step

    def generate(self, prompt_ids: list[list[int]], sampling: Sampling) -> list[list[int]]:
        """Completion ids for each prompt row; TRL repeats a prompt k times in a row, sent as one request of n=k."""
        problem = sampling_problem(sampling.temperature, sampling.top_p, sampling.max_tokens, greedy=True)
        if problem:
            raise HarnessError(f"RLOO rollouts: {problem}")
        if self.engine is None:
            raise HarnessError("RLOO rollouts: sync(model, step) loads the engine before the first generate")
        groups: list[tuple[list[int], int]] = []
        for ids in prompt_ids:
            if groups and groups[-1][0] == list(ids):
                groups[-1] = (groups[-1][0], groups[-1][1] + 1)
            else:
                groups.append((list(ids), 1))
        requests = [Request(ids, n) for ids, n in groups]
        done: dict[int, list] = dict(self.engine.generate(requests, sampling))
        eos = self.tokenizer.eos_token_id
        out = []
        for index in range(len(requests)):
            for completion in done[index]:
                ids = self.tokenizer(completion.text, add_special_tokens=False).input_ids[:sampling.max_tokens]
                if (completion.finish_reason == "stop" and len(ids) < sampling.max_tokens) or not ids:
                    ids = [*ids, eos]
                out.append(ids)
        return out

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


# RLOOTrainer._generate_single_turn's parameters, as the override takes them: prompt token ids in, a list of
# completion token ids out (TRL's ``_generate`` decodes them)
OVERRIDDEN = ("self", "prompt_ids", "images", "multimodal_fields")


def override_mismatch() -> str | None:
    """Why this TRL's ``RLOOTrainer`` cannot take the override, or None when it can."""
    import inspect

    from trl import RLOOTrainer

    method = getattr(RLOOTrainer, "_generate_single_turn", None)
    if method is None:
        return "this TRL's RLOOTrainer has no _generate_single_turn"
    parameters = tuple(inspect.signature(method).parameters)
    if parameters != OVERRIDDEN:
        return (f"this TRL's RLOOTrainer._generate_single_turn takes ({', '.join(parameters)}), not "
                f"({', '.join(OVERRIDDEN)})")
    return None


def engine_trainer_class():
    """``RLOOTrainer`` with its generation routed through an ``EngineRollout`` (imported lazily: TRL is heavy)."""
    from trl import RLOOTrainer

    mismatch = override_mismatch()
    if mismatch:
        raise HarnessError(f"rollout=engine: {mismatch}; use rollout=trl")

    class EngineRLOOTrainer(RLOOTrainer):
        def __init__(self, *args: Any, rollout: EngineRollout, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.rollout = rollout

        def _generate_single_turn(self, prompt_ids, images, multimodal_fields):
            if not self.model.training:
                return super()._generate_single_turn(prompt_ids, images, multimodal_fields)
            problem = sampling_problem(self.temperature, self.top_p, self.max_completion_length)
            if problem:  # before the engine starts or loads weights
                raise HarnessError(f"RLOO rollouts: {problem}")
            sampling = Sampling(temperature=self.temperature, top_p=self.top_p,
                                max_tokens=self.max_completion_length, seed=self.args.seed + self.state.global_step)
            self.rollout.sync(self.accelerator.unwrap_model(self.model), self.state.global_step)
            return self.rollout.generate(prompt_ids, sampling)

    return EngineRLOOTrainer
