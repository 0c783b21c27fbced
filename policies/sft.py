"""Supervised fine-tuning: TRL's ``SFTTrainer`` on prompt-completion chats, the loss on the completion only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from policies import common
from policies.common import Method, Result, Run
from policies.config import TrainConfig, at_least_one, setting


@dataclass
class SFTTrainConfig(TrainConfig):
    """SFT: the shared settings, and how the conversations are batched."""

    method: ClassVar[str] = "sft"

    batch_size: int = setting(8, "Conversations per device per micro-batch.")
    max_length: int = setting(512, "Tokens per conversation (prompt and completion); longer ones are cut.")

    def check(self) -> None:
        super().check()
        at_least_one(self, "batch_size", "max_length")


def build_trainer(config: SFTTrainConfig, run: Run):
    """TRL's ``SFTTrainer`` over ``run.rows`` (``prompt``/``completion`` message lists), unpacked."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    tokenizer = common.load_tokenizer(run.base)
    model, peft = common.load_policy_model(config, run.base)
    args = SFTConfig(**common.trainer_args(config, run.out, run.hardware),
                     per_device_train_batch_size=config.batch_size, max_length=config.max_length, packing=False)
    callbacks, wall = common.callbacks(config, run)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(run.rows),
                         processing_class=tokenizer, peft_config=peft, callbacks=callbacks)
    return trainer, tokenizer, wall


def train(config: SFTTrainConfig, run: Run) -> Result:
    return common.fit_and_save(build_trainer(config, run), config, run)


METHOD = Method(SFTTrainConfig, train)
