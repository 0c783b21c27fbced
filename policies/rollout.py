"""RLOO rollouts through the harness's own engine: TRL's RLOO algorithm, the harness's generation.

``EngineRLOOTrainer`` is TRL's ``RLOOTrainer`` with one method replaced: the one that turns the
prompts' token ids into completion token ids. Everything else — the reward functions, the KL
term, the leave-one-out baseline, the clipped loss, checkpoints — is TRL's. Before each step's
generation the trainer's current LoRA adapter is saved and handed to the harness's vLLM engine
as a new adapter id (vLLM serves LoRA adapters per request, so the base weights load once); the
engine returns completion text, which is tokenized back to ids with the policy's tokenizer, plus
the end-of-sequence token where the sample stopped on it — exactly the ids TRL's own path keeps.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from harness.engines import EngineOptions, Renderer, Request, Sampling, load_engine
from harness.policy import Policy

KV_CACHE_GIB = 2.0  # plenty for one step's rollouts (tens of sequences, a few hundred tokens); training needs the rest


class EngineRollout:
    """The harness engine serving a LoRA policy whose adapter changes every training step."""

    def __init__(self, base_model: str, tokenizer, folder: Path, seed: int, max_model_len: int = 2048,
                 dtype: str = "auto", backend: str = "vllm"):
        self.base_model = base_model
        self.dtype = dtype
        self.tokenizer = tokenizer
        self.folder = folder
        self.seed = seed
        self.max_model_len = max_model_len
        self.backend = backend
        self.engine: Any = None
        self.step: int | None = None
        self.current: Path | None = None
        self.seconds_syncing = 0.0

    def sync(self, model, step: int) -> None:
        """Serve the adapter as it is at ``step`` (saved once per step; the previous copy is removed)."""
        if step == self.step:
            return
        import time

        started = time.perf_counter()
        path = self.folder / f"adapter-step-{step}"
        shutil.rmtree(path, ignore_errors=True)
        model.save_pretrained(path, selected_adapters=["default"])
        if self.engine is None:
            policy = Policy("rollout", self.base_model, str(path))
            options = EngineOptions(max_model_len=self.max_model_len, kv_cache_gib=KV_CACHE_GIB, dtype=self.dtype)
            self.engine = load_engine(self.backend, policy, Renderer(policy), options, seed=self.seed)
        else:
            from vllm.lora.request import LoRARequest

            self.engine.lora = LoRARequest(f"step-{step}", step + 1, str(path))
        if self.current is not None and self.current != path:
            shutil.rmtree(self.current, ignore_errors=True)
        self.step, self.current = step, path
        self.seconds_syncing += time.perf_counter() - started

    def generate(self, prompt_ids: list[list[int]], sampling: Sampling) -> list[list[int]]:
        """Completion ids for each prompt row; TRL repeats a prompt k times in a row, sent as one request of n=k."""
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
        shutil.rmtree(self.folder, ignore_errors=True)


def engine_trainer_class():
    """``RLOOTrainer`` with its generation routed through an ``EngineRollout`` (imported lazily: TRL is heavy)."""
    from trl import RLOOTrainer

    if not hasattr(RLOOTrainer, "_generate_single_turn"):
        raise RuntimeError("this TRL version has no RLOOTrainer._generate_single_turn; use rollout=trl")

    class EngineRLOOTrainer(RLOOTrainer):
        def __init__(self, *args: Any, rollout: EngineRollout, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.rollout = rollout

        def _generate_single_turn(self, prompt_ids, images, multimodal_fields):
            if not self.model.training:
                return super()._generate_single_turn(prompt_ids, images, multimodal_fields)
            self.rollout.sync(self.accelerator.unwrap_model(self.model), self.state.global_step)
            sampling = Sampling(temperature=self.temperature, top_p=self.top_p,
                                max_tokens=self.max_completion_length, seed=self.args.seed + self.state.global_step)
            return self.rollout.generate(prompt_ids, sampling)

    return EngineRLOOTrainer
