"""One runner per method: build TRL's trainer for it, train (resuming), save the result. TRL does the algorithms."""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.policy import Policy
from policies.data import Pair, example_messages
from policies.recipe import TrainConfig
from policies.rewards import VerifierReward
from policies.train import (
    Hardware,
    _callbacks,
    _replace_dir,
    final_metrics,
    load_policy_model,
    load_tokenizer,
    lora_config,
    set_lora_dropout,
    split_of_text,
    trainer_args,
)


@dataclass
class Result:
    """What a finished run reports into its manifest."""

    paths: dict[str, str | None]  # "adapter" or "model", relative to the output directory
    steps: int
    metrics: dict[str, float]
    tokens: int | None
    wall: float
    facts: dict[str, Any] = field(default_factory=dict)  # method-specific manifest entries (the rollout path)


def _fit(trainer, resume: Path | None, dropout: float) -> None:
    set_lora_dropout(trainer.model, dropout)
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)


def _tokens(trainer, metrics: dict[str, float]) -> int | None:
    seen = metrics.get("num_tokens") or getattr(trainer.state, "num_input_tokens_seen", 0)
    return int(seen) if seen else None


def save_policy(trainer, tokenizer, out: Path) -> dict[str, str | None]:
    """The adapter (LoRA) or the full weights, each with the tokenizer, swapped into place atomically.

    ``Trainer.save_model`` is collective under DeepSpeed/FSDP (it gathers sharded weights) and writes on the
    main process only; the swap happens there too.
    """
    lora = hasattr(trainer.accelerator.unwrap_model(trainer.model), "peft_config")
    kind = "adapter" if lora else "model"
    tmp = out / f".{kind}.tmp"
    if trainer.is_world_process_zero():
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(tmp))
    if trainer.is_world_process_zero():
        shutil.rmtree(tmp / "ref", ignore_errors=True)  # TRL's frozen reference copy of a continued adapter
        (tmp / "training_args.bin").unlink(missing_ok=True)
        tokenizer.save_pretrained(tmp)
        _replace_dir(tmp, out / kind)
    trainer.accelerator.wait_for_everyone()
    return {"adapter": kind if lora else None, "model": None if lora else kind}


def _result(trainer, tokenizer, out: Path, wall, extra: dict[str, float] | None = None) -> Result:
    metrics = {**final_metrics(trainer.state.log_history), **(extra or {})}
    paths = save_policy(trainer, tokenizer, out)
    return Result(paths, trainer.state.global_step, metrics, _tokens(trainer, metrics), wall(),
                  {"history": trainer.state.log_history})


# ---------------------------------------------------------------- SFT

def run_sft(config: TrainConfig, base: Policy, rows: list[Any], hw: Hardware, out: Path, resume: Path | None,
            wall_before: float, reward: Any) -> Result:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    tokenizer = load_tokenizer(base)
    model, peft = load_policy_model(config, base)
    args = SFTConfig(**trainer_args(config, out, hw), per_device_train_batch_size=config.batch_size,
                     max_length=config.max_length, packing=False)
    callbacks, wall = _callbacks("sft", config.steps, wall_before)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                         peft_config=peft, callbacks=callbacks)
    _fit(trainer, resume, config.lora_dropout)
    return _result(trainer, tokenizer, out, wall)


# ---------------------------------------------------------------- DPO

def dpo_row(pair: Pair) -> dict[str, Any]:
    return {"prompt": pair.prompt, "chosen": [{"role": "assistant", "content": pair.chosen}],
            "rejected": [{"role": "assistant", "content": pair.rejected}]}


def run_dpo(config: TrainConfig, base: Policy, rows: list[Pair], hw: Hardware, out: Path, resume: Path | None,
            wall_before: float, reward: Any) -> Result:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    tokenizer = load_tokenizer(base)
    model, peft = load_policy_model(config, base)
    args = DPOConfig(**trainer_args(config, out, hw), per_device_train_batch_size=config.batch_size,
                     max_length=config.max_length, beta=config.beta)
    callbacks, wall = _callbacks("dpo", config.steps, wall_before)
    trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list([dpo_row(p) for p in rows]),
                         processing_class=tokenizer, peft_config=peft, callbacks=callbacks)
    _fit(trainer, resume, config.lora_dropout)
    return _result(trainer, tokenizer, out, wall)


# ---------------------------------------------------------------- reward model

def rm_prompt_text(messages: list[dict[str, str]]) -> str:
    """The text a reward model reads as the prompt: the instruction, or a multi-turn chat written out by role."""
    if len(messages) == 1:
        return messages[0]["content"]
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)


def pair_ids(tokenizer, prompt: str, response: str, max_length: int) -> dict[str, list[int]]:
    """(prompt, response) as the tokenizer's text pair, as the ``rm`` verifier scores it: the response is kept and
    the prompt is cut from the left when the two do not fit (a response longer than the budget is cut at its end)."""
    budget = max_length - 8
    response_ids = tokenizer(response, add_special_tokens=False).input_ids
    if len(response_ids) > budget:
        response = tokenizer.decode(response_ids[:budget])
    tokenizer.truncation_side = "left"
    encoded = tokenizer(prompt, response, truncation="only_first", max_length=max_length)
    keys = ("input_ids", "token_type_ids")
    return {k: list(encoded[k]) for k in keys if k in encoded}


def _rm_rows(pairs: list[Pair], tokenizer, max_length: int) -> list[dict[str, Any]]:
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


def run_rm(config: TrainConfig, base: Policy, rows: list[Pair], hw: Hardware, out: Path, resume: Path | None,
           wall_before: float, reward: Any) -> Result:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    tokenizer = AutoTokenizer.from_pretrained(base.model)
    model = AutoModelForSequenceClassification.from_pretrained(base.model, num_labels=1, dtype=torch.float32)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    held = [split_of_text(rm_prompt_text(p.prompt), config.eval_fraction) for p in rows]
    train_pairs = [p for p, s in zip(rows, held, strict=True) if s == "train"]
    eval_pairs = [p for p, s in zip(rows, held, strict=True) if s == "eval"]
    if not train_pairs or not eval_pairs:
        raise HarnessError(f"{len(rows)} pairs split into {len(train_pairs)} train and {len(eval_pairs)} held-out; "
                           f"both need at least one (more data or another eval_fraction)")
    args = RewardConfig(**trainer_args(config, out, hw), per_device_train_batch_size=config.batch_size,
                        per_device_eval_batch_size=config.batch_size, max_length=config.max_length,
                        remove_unused_columns=False)
    callbacks, wall = _callbacks("rm", config.steps, wall_before)
    trainer = RewardTrainer(
        model=model, args=args, data_collator=_pair_collator(tokenizer.pad_token_id),
        train_dataset=Dataset.from_list(_rm_rows(train_pairs, tokenizer, config.max_length)),
        eval_dataset=Dataset.from_list(_rm_rows(eval_pairs, tokenizer, config.max_length)),
        processing_class=tokenizer, callbacks=callbacks,
        peft_config=lora_config(config, "SEQ_CLS") if config.finetune == "lora" else None)
    _fit(trainer, resume, config.lora_dropout)
    evaluation = trainer.evaluate()
    metrics = {**final_metrics(trainer.state.log_history), "heldout_pair_accuracy": evaluation["eval_accuracy"],
               "heldout_pairs": float(len(eval_pairs)), "train_pairs": float(len(train_pairs))}
    save_reward_model(trainer, tokenizer, out)
    return Result({"model": "."}, trainer.state.global_step, metrics, _tokens(trainer, metrics), wall(),
                  {"history": trainer.state.log_history})


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


# ---------------------------------------------------------------- RLOO

def choose_rollout(config: TrainConfig, hw: Hardware) -> str:
    """``auto``: TRL's own vLLM integration on a GPU; on a CPU, the harness's vLLM engine (measured faster:
    bench/train_speed.py), or TRL's transformers generation where vLLM is not installed."""
    has_vllm = importlib.util.find_spec("vllm") is not None
    if config.rollout != "auto":
        if config.rollout in ("engine", "trl-vllm", "trl-vllm-server") and not has_vllm:
            raise HarnessError(f"rollout={config.rollout} needs vLLM, which is not installed; use rollout=trl")
        return config.rollout
    if hw.device == "cuda":
        return "trl-vllm" if has_vllm else "trl"
    return "engine" if has_vllm else "trl"


def run_rloo(config: TrainConfig, base: Policy, examples: list[Any], hw: Hardware, out: Path,
             resume: Path | None, wall_before: float, reward: Any) -> Result:
    from datasets import Dataset
    from trl import RLOOConfig, RLOOTrainer

    from policies.rollout import EngineRollout, engine_trainer_class

    rollout = choose_rollout(config, hw)
    tokenizer = load_tokenizer(base)
    model, peft = load_policy_model(config, base)
    per_step = config.prompts_per_step * config.k
    args = RLOOConfig(
        **trainer_args(config, out, hw), per_device_train_batch_size=per_step // config.grad_accum,
        steps_per_generation=config.grad_accum, num_generations=config.k,
        max_completion_length=config.max_completion_length, temperature=config.temperature, top_p=config.top_p,
        beta=config.beta, use_transformers_continuous_batching=rollout == "trl-cb",
        use_vllm=rollout.startswith("trl-vllm"), vllm_mode="server" if rollout == "trl-vllm-server" else "colocate",
    )
    dataset = Dataset.from_list([{"prompt": example_messages(ex), "example": i} for i, ex in enumerate(examples)])
    rewards = VerifierReward(config.reward or "", examples, verifier=reward)
    callbacks, wall = _callbacks("rloo", config.steps, wall_before)
    common = dict(model=model, reward_funcs=[rewards], args=args, train_dataset=dataset, processing_class=tokenizer,
                  peft_config=peft, callbacks=callbacks)
    engine = None
    if rollout == "engine":
        longest = max(len(tokenizer.apply_chat_template(example_messages(ex), add_generation_prompt=True,
                                                        return_dict=False)) for ex in examples)
        engine = EngineRollout(base.model, tokenizer, seed=config.seed,
                               max_model_len=max(512, longest + config.max_completion_length + 16), dtype=hw.dtype)
        trainer = engine_trainer_class()(**common, rollout=engine)
    else:
        trainer = RLOOTrainer(**common)
    try:
        _fit(trainer, resume, config.lora_dropout)
    finally:
        if engine is not None:
            engine.close()
    result = _result(trainer, tokenizer, out, wall, {"reward_errors": float(rewards.errors)})
    result.facts["rollout"] = rollout
    return result


RUNNERS = {"sft": run_sft, "dpo": run_dpo, "rm": run_rm, "rloo": run_rloo}
