"""What every training method shares: the hardware, loading the policy and tokenizer, LoRA, the trainer
arguments, the progress callback, fitting (resumable) and saving the result.

A method module (``policies/sft.py``, ``dpo.py``, ``rm.py``, ``rloo.py``, ``rft.py``) builds its TRL trainer from these
and declares itself with a ``Method``; ``policies/train.py`` prepares a ``Run`` and calls it. TRL does the
algorithms.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.console import console
from harness.errors import HarnessError
from harness.policy import Policy, resolve_policy
from harness.provenance import CHECKPOINTS
from policies.config import TrainConfig
from policies.manifest import write_json

WALL = "harness_wall.json"  # seconds of training kept in a checkpoint, so resumed runs report the whole cost
SHOWN = ("loss", "reward", "rewards/accuracies", "accuracy", "eval_accuracy", "kl", "step_time",
         "completions/mean_length")  # the metrics on the progress line


@dataclass(frozen=True)
class Hardware:
    """Where training runs and in which precision; bf16 only where the processor or GPU has it natively."""

    device: str
    dtype: str

    @property
    def bf16(self) -> bool:
        return self.dtype == "bfloat16"


def detect_hardware(setting: str) -> Hardware:
    import torch

    from harness.hardware import native_bf16

    device = "cuda" if torch.cuda.is_available() else "cpu"
    native = native_bf16(device)
    if setting == "bfloat16" and not native:
        raise HarnessError(f"dtype=bfloat16 asked for, but this {device} has no native bf16 (it would run several "
                           f"times slower than float32); use dtype=auto or dtype=float32")
    dtype = setting if setting != "auto" else ("bfloat16" if native else "float32")
    return Hardware(device, dtype)


@dataclass
class Run:
    """One run's inputs besides its configuration, as ``policies/train.py`` prepared them."""

    base: Policy
    rows: list[Any]
    hardware: Hardware
    out: Path
    resume: Path | None  # the checkpoint to go on from, if any
    wall_before: float  # seconds of training that checkpoint already holds
    reward: Any = None  # the method's verifier, resolved before anything slow (rloo)
    callbacks: list[Any] = field(default_factory=list)  # more TrainerCallbacks (benches measure with them)


@dataclass
class Result:
    """What a finished run reports into its manifest."""

    paths: dict[str, str | None]  # "adapter" or "model", relative to the output directory
    steps: int
    metrics: dict[str, float]
    tokens: int | None
    wall: float
    facts: dict[str, Any] = field(default_factory=dict)  # method-specific manifest entries (the rollout path)


def causal_base(config: TrainConfig) -> Policy:
    """The policy a causal-LM method starts from; an unknown one is a one-line error."""
    return resolve_policy(config.base)


@dataclass(frozen=True)
class Method:
    """A training method as ``policies/train.py`` runs it."""

    config: type[TrainConfig]
    train: Callable[[Any, Run], Result]
    resolve_base: Callable[[Any], Policy] = causal_base
    # (the spec as recorded, the verifier), resolved before the data and the model load
    resolve_reward: Callable[[Any], tuple[str, Any]] | None = None


# ---------------------------------------------------------------- models

def load_tokenizer(base: Policy):
    from transformers import AutoTokenizer

    source = base.adapter if base.adapter and (Path(base.adapter) / "tokenizer_config.json").exists() else base.model
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_policy_model(config: TrainConfig, base: Policy):
    """The causal LM to train, in float32 (bf16 runs as autocast), and the LoRA config for the trainer to apply
    (None where there is none to apply: full fine-tuning, or a LoRA base whose adapter trains on)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base.model, dtype=torch.float32)
    if base.adapter:
        from peft import PeftModel

        if config.finetune == "lora":
            return PeftModel.from_pretrained(model, base.adapter, is_trainable=True), None
        model = PeftModel.from_pretrained(model, base.adapter).merge_and_unload()
    return model, lora_config(config, "CAUSAL_LM") if config.finetune == "lora" else None


def lora_config(config: TrainConfig, task_type: str):
    from peft import LoraConfig

    targets: Any = config.lora_targets if config.lora_targets == "all-linear" else config.lora_targets.split(",")
    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=targets, task_type=task_type)


def set_lora_dropout(model, p: float) -> None:
    """Give every LoRA adapter in ``model`` the recipe's dropout, continued adapters and TRL's frozen ``ref`` copy
    included (they keep the dropout they were saved with otherwise).

    RLOO wants none: TRL computes the old and reference log-probabilities in training mode, so dropout makes
    the importance ratio and the KL noise, and it slows a LoRA forward on CPU (docs/training.md).
    """
    import torch

    for module in model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if isinstance(dropouts, torch.nn.ModuleDict):
            for adapter in list(dropouts.keys()):
                dropouts[adapter] = torch.nn.Dropout(p) if p else torch.nn.Identity()


# ---------------------------------------------------------------- the trainer

def warmup_steps(config: TrainConfig) -> int:
    """``warmup_ratio`` as whole steps, rounded up as transformers rounds a ratio. An int: transformers before 5
    takes ``warmup_steps`` as steps only, 5 reads a float below 1 as a ratio."""
    return math.ceil(config.steps * config.warmup_ratio)


def trainer_args(config: TrainConfig, out: Path, hw: Hardware) -> dict[str, Any]:
    """The ``TrainingArguments`` every method shares."""
    return dict(
        output_dir=str(out / CHECKPOINTS), max_steps=config.steps, learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler, warmup_steps=warmup_steps(config),
        gradient_accumulation_steps=config.grad_accum, logging_steps=config.logging_steps,
        save_strategy="steps", save_steps=config.save_steps, save_total_limit=2, seed=config.seed,
        bf16=hw.bf16, fp16=False, use_cpu=hw.device == "cpu", gradient_checkpointing=config.gradient_checkpointing,
        report_to="none", disable_tqdm=True, dataloader_num_workers=0,
    )


def callbacks(config: TrainConfig, run: Run) -> tuple[list[Any], Callable[[], float]]:
    """The run's trainer callbacks (the harness's progress line and cost, then ``run.callbacks``), and a clock
    of the training seconds so far, resumed checkpoints included."""
    from transformers import TrainerCallback

    started = time.perf_counter()
    method, steps, wall_before = config.method, config.steps, run.wall_before

    class Progress(TrainerCallback):
        """The harness's own progress line per logging step, and the training time kept with each checkpoint."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            shown = {k: v for k, v in (logs or {}).items() if k in SHOWN}
            if not shown or not state.is_world_process_zero:
                return
            text = "  ".join(f"{k} {v:.4g}" for k, v in shown.items())
            console.print(f"{method} step {state.global_step}/{steps}  {text}", highlight=False)

        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir() and state.is_world_process_zero:
                write_json(folder / WALL, {"seconds": wall_before + time.perf_counter() - started})

    return [Progress(), *run.callbacks], lambda: wall_before + time.perf_counter() - started


def fit(trainer, config: TrainConfig, run: Run) -> None:
    """Train, from ``run.resume`` where there is one, every LoRA adapter with the recipe's dropout."""
    set_lora_dropout(trainer.model, config.lora_dropout)
    if run.resume and not getattr(trainer, "is_deepspeed_enabled", False):  # DeepSpeed restores every weight itself
        load_trained_adapter(trainer.model, run.resume)
    trainer.train(resume_from_checkpoint=str(run.resume) if run.resume else None)


def load_trained_adapter(model, checkpoint: Path) -> None:
    """Put a checkpoint's trained adapter (PEFT's ``default``, saved at its root) back into ``model`` before
    transformers resumes it.

    A checkpoint of a model holding a second adapter (TRL's frozen ``ref`` copy of a continued adapter, saved in
    a sub-folder) is resumed by transformers from its sub-folders alone: the trained adapter would go on from its
    starting weights, its KL to the reference back at zero, with the optimizer's and scheduler's state resumed.
    """
    from peft import set_peft_model_state_dict
    from peft.utils import load_peft_weights

    adapters = getattr(model, "peft_config", None)
    if not isinstance(adapters, dict) or "default" not in adapters or not any(
            (checkpoint / name).is_file() for name in ("adapter_model.safetensors", "adapter_model.bin")):
        return
    loaded = set_peft_model_state_dict(model, load_peft_weights(str(checkpoint), device="cpu"), adapter_name="default")
    unfit = [*loaded.unexpected_keys, *(k for k in loaded.missing_keys if ".default." in k)]
    if unfit:
        raise HarnessError(f"checkpoint {checkpoint}: its adapter does not fit the model being resumed ({len(unfit)} "
                           f"weights missing or unknown, e.g. {unfit[0]})")


# ---------------------------------------------------------------- the result

def final_metrics(log_history: list[dict[str, Any]]) -> dict[str, float]:
    """The last logged value of every numeric training metric (TRL logs per ``logging_steps``)."""
    metrics: dict[str, float] = {}
    for entry in log_history:
        for key, value in entry.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and key not in ("epoch", "step"):
                metrics[key] = float(value)
    return metrics


def tokens_seen(trainer, metrics: dict[str, float]) -> int | None:
    seen = metrics.get("num_tokens") or getattr(trainer.state, "num_input_tokens_seen", 0)
    return int(seen) if seen else None


def replace_dir(tmp: Path, final: Path) -> None:
    """Swap a finished directory into place: readers see the old one or the new one, never a mix."""
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old)
    else:
        tmp.rename(final)


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
        replace_dir(tmp, out / kind)
    trainer.accelerator.wait_for_everyone()
    return {"adapter": kind if lora else None, "model": None if lora else kind}


def fit_and_save(built: tuple[Any, Any, Callable[[], float]], config: TrainConfig, run: Run) -> Result:
    """Train a policy ``(trainer, tokenizer, wall)`` as built by its method, save its weights, say what it did."""
    trainer, tokenizer, wall = built
    fit(trainer, config, run)
    return result(trainer, save_policy(trainer, tokenizer, run.out), wall)


def result(trainer, paths: dict[str, str | None], wall: Callable[[], float],
           extra: dict[str, float] | None = None) -> Result:
    """The manifest's view of a trained ``trainer`` whose weights are saved under ``paths``."""
    metrics = {**final_metrics(trainer.state.log_history), **(extra or {})}
    return Result(paths, trainer.state.global_step, metrics, tokens_seen(trainer, metrics), wall(),
                  {"history": trainer.state.log_history})
