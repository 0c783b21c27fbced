"""RLOO: TRL's ``RLOOTrainer`` with the harness's verifiers as the reward (``policies/rewards.py``).

One step samples ``k`` completions for each of ``prompts_per_step`` prompts, in ``grad_accum``
micro-batches. Rollouts go through TRL's own generation (transformers, or its vLLM integration on a GPU)
or, on a CPU, through the harness's vLLM engine serving the current weights (``policies/rollout.py``), which also
measures, and with ``importance_cap`` corrects, the gap between its and the trainer's log-probabilities.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import ClassVar

from harness.errors import HarnessError, choices
from policies import common
from policies.common import Hardware, Method, Result, Run
from policies.config import TrainConfig, at_least_one, not_blank, sampling_problem, setting, show
from policies.data import example_messages
from policies.rewards import VerifierReward, resolve_reward

ROLLOUTS = ("auto", "engine", "trl", "trl-cb", "trl-vllm", "trl-vllm-server")


@dataclass
class RLOOTrainConfig(TrainConfig):
    """RLOO: the shared settings, the reward, the sampling and where rollouts are generated."""

    method: ClassVar[str] = "rloo"

    reward: str | None = setting(None, "The reward: any installed verifier spec (countdown, sympy, rm:PATH, ...).")
    k: int = setting(4, "Completions sampled per prompt; each is baselined by the mean of the other k - 1.")
    prompts_per_step: int = setting(4, "Prompts per optimizer step (a step trains on prompts_per_step x k samples).")
    max_completion_length: int = setting(128, "Tokens generated per completion at most.")
    temperature: float = setting(1.0, "Sampling temperature of the rollouts.")
    top_p: float = setting(1.0, "Nucleus sampling of the rollouts (1: none).")
    beta: float = setting(0.1, "KL coefficient against the reference (base) policy.")
    importance_cap: float = setting(2.0, "rollout=engine: sequence-level truncated importance sampling against the "
                                         "engine/trainer log-probability gap, each sampled sequence's loss weighted "
                                         "by min(p_trainer(y) / p_engine(y), cap), the product of its tokens' ratios "
                                         "(verl's rollout_is: sequence); 0: none, else at least 1 "
                                         "(docs/training.md).")
    rollout: str = setting("auto", "Where rollouts are generated: auto (trl-vllm on a GPU, engine on a CPU, trl "
                                   "without vLLM), engine (the harness's vLLM engine), trl (transformers), trl-cb "
                                   "(transformers continuous batching), trl-vllm (colocated), trl-vllm-server.")

    def check(self) -> None:
        if self.rollout not in ROLLOUTS:
            raise choices("rollout", self.rollout, list(ROLLOUTS))
        super().check()
        not_blank(self, "reward")
        at_least_one(self, "prompts_per_step", "max_completion_length")
        if self.k < 2:
            raise HarnessError(f"setting k={show(self.k)}: RLOO needs at least 2 samples per prompt for its baseline")
        if not self.reward:
            raise HarnessError("rloo needs a reward: --reward VERIFIER (e.g. countdown, sympy, rm:PATH)")
        if (self.prompts_per_step * self.k) % self.grad_accum:
            raise HarnessError(f"prompts_per_step x k = {show(self.prompts_per_step * self.k)} samples per step must "
                               f"divide into grad_accum={show(self.grad_accum)} equal micro-batches")
        problem = sampling_problem(self.temperature, self.top_p, self.max_completion_length)
        if problem:
            raise HarnessError(f"setting {problem}")
        if self.beta < 0:
            raise HarnessError(f"setting beta={self.beta} must be at least 0 (0: no KL term)")
        if not (self.importance_cap == 0 or self.importance_cap >= 1):
            raise HarnessError(f"setting importance_cap={self.importance_cap} must be 0 (no correction) or at least 1")


def choose_rollout(config: RLOOTrainConfig, hw: Hardware) -> str:
    """``auto``: TRL's own vLLM integration on a GPU; on a CPU, the harness's vLLM engine (faster there:
    docs/training.md), or TRL's transformers generation where vLLM is not installed."""
    has_vllm = importlib.util.find_spec("vllm") is not None
    if config.rollout != "auto":
        if config.rollout in ("engine", "trl-vllm", "trl-vllm-server") and not has_vllm:
            raise HarnessError(f"rollout={config.rollout} needs vLLM, which is not installed; use rollout=trl")
        return config.rollout
    if hw.device == "cuda":
        return "trl-vllm" if has_vllm else "trl"
    return "engine" if has_vllm else "trl"


def build_trainer(config: RLOOTrainConfig, run: Run, rollout: str):
    """TRL's ``RLOOTrainer`` over ``run.rows`` (harness ``Example``s), rewarded by ``run.reward``; with
    ``rollout=engine`` its generation goes through an ``EngineRollout`` (``trainer.rollout``, to close)."""
    from datasets import Dataset
    from trl import RLOOConfig, RLOOTrainer

    from policies.rollout import EngineRollout, engine_trainer_class

    examples = run.rows
    tokenizer = common.load_tokenizer(run.base)
    model, peft = common.load_policy_model(config, run.base)
    per_step = config.prompts_per_step * config.k
    args = RLOOConfig(
        **common.trainer_args(config, run.out, run.hardware), per_device_train_batch_size=per_step // config.grad_accum,
        steps_per_generation=config.grad_accum, num_generations=config.k,
        max_completion_length=config.max_completion_length, temperature=config.temperature, top_p=config.top_p,
        beta=config.beta, use_transformers_continuous_batching=rollout == "trl-cb",
        use_vllm=rollout.startswith("trl-vllm"), vllm_mode="server" if rollout == "trl-vllm-server" else "colocate",
    )
    dataset = Dataset.from_list([{"prompt": example_messages(ex), "example": i} for i, ex in enumerate(examples)])
    rewards = VerifierReward(config.reward or "", examples, verifier=run.reward)
    callbacks, wall = common.callbacks(config, run)
    shared = dict(model=model, reward_funcs=[rewards], args=args, train_dataset=dataset, processing_class=tokenizer,
                  peft_config=peft, callbacks=callbacks)
    if rollout != "engine":
        return RLOOTrainer(**shared), tokenizer, wall
    longest = max(len(tokenizer.apply_chat_template(example_messages(ex), add_generation_prompt=True,
                                                    return_dict=False)) for ex in examples)
    engine = EngineRollout(run.base.model, seed=config.seed,
                           max_model_len=max(512, longest + config.max_completion_length + 16),
                           dtype=run.hardware.dtype)
    return engine_trainer_class()(**shared, rollout=engine, importance_cap=config.importance_cap), tokenizer, wall


def train(config: RLOOTrainConfig, run: Run) -> Result:
    rollout = choose_rollout(config, run.hardware)
    trainer, tokenizer, wall = build_trainer(config, run, rollout)
    engine = trainer.rollout if rollout == "engine" else None
    try:
        common.fit(trainer, config, run)
    finally:
        if engine is not None:
            engine.close()
    (rewards,) = trainer.reward_funcs
    result = common.result(trainer, common.save_policy(trainer, tokenizer, run.out), wall,
                           {"reward_errors": float(rewards.errors)})
    result.facts["rollout"] = rollout
    return result


METHOD = Method(RLOOTrainConfig, train, resolve_reward=resolve_reward)
