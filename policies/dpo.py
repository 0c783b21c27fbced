"""Direct preference optimisation: TRL's ``DPOTrainer`` on preference pairs, against the base as reference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from harness.errors import HarnessError
from policies import common
from policies.common import Method, Result, Run
from policies.config import TrainConfig, at_least_one, setting
from policies.data import Pair


@dataclass
class DPOTrainConfig(TrainConfig):
    """DPO: the shared settings, how the pairs are batched, and the preference temperature."""

    method: ClassVar[str] = "dpo"

    batch_size: int = setting(8, "Preference pairs per device per micro-batch.")
    max_length: int = setting(512, "Tokens per sequence (prompt and reply); longer ones are cut.")
    beta: float = setting(0.1, "DPO's temperature: how strongly the policy is held to the reference model.")

    def check(self) -> None:
        super().check()
        at_least_one(self, "batch_size", "max_length")
        if self.beta <= 0:
            raise HarnessError(f"setting beta={self.beta} must be positive")


def dpo_row(pair: Pair) -> dict[str, Any]:
    """TRL's conversational preference row: the prompt's messages, and each reply as an assistant turn."""
    return {"prompt": pair.prompt, "chosen": [{"role": "assistant", "content": pair.chosen}],
            "rejected": [{"role": "assistant", "content": pair.rejected}]}


def build_trainer(config: DPOTrainConfig, run: Run):
    """TRL's ``DPOTrainer`` over ``run.rows`` (``Pair``s); a LoRA base's adapter keeps training."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    tokenizer = common.load_tokenizer(run.base)
    model, peft = common.load_policy_model(config, run.base)
    args = DPOConfig(**common.trainer_args(config, run.out, run.hardware),
                     per_device_train_batch_size=config.batch_size, max_length=config.max_length, beta=config.beta)
    callbacks, wall = common.callbacks(config, run)
    trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list([dpo_row(p) for p in run.rows]),
                         processing_class=tokenizer, peft_config=peft, callbacks=callbacks)
    return trainer, tokenizer, wall


def train(config: DPOTrainConfig, run: Run) -> Result:
    return common.fit_and_save(build_trainer(config, run), config, run)


METHOD = Method(DPOTrainConfig, train)
