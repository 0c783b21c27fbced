"""The base of every method's configuration: what one training run computes, typed, with each field's help.

Each method (``policies/sft.py``, ``dpo.py``, ``rm.py``, ``rloo.py``, ``rft.py``) extends ``TrainConfig`` with its own
fields, as TRL's ``SFTConfig`` extends ``TrainingArguments``. A recipe's values load straight into the
method's dataclass through ``from_values``: a key the method does not have, or a value of the wrong type,
is a one-line error naming the key, so a typo never trains silently with the default.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

from harness.errors import HarnessError, choices

FINETUNES = ("lora", "full")
DTYPES = ("auto", "float32", "bfloat16")
# transformers' schedulers that need no lr_scheduler_kwargs (cosine_with_min_lr needs min_lr, plateau an eval set)
LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                 "inverse_sqrt")
SEEDS = 2**32  # numpy's seed range, which transformers' set_seed feeds


def setting(default: Any, help: str) -> Any:
    """A field with its help, as TRL's configs declare theirs; a list default is copied per instance."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Everything every method shares; stored beside the checkpoints (``to_json``) so that only the same
    configuration resumes."""

    method: ClassVar[str] = ""

    recipe: str = field(metadata={"help": "The recipe these values came from (policies/recipes/NAME.yaml)."})
    base: str = setting("smollm2", "Policy to start from: a trained policy's name, a model directory or a hub id "
                                   "(a reward model: minilm, an encoder directory or a hub id).")
    finetune: str = setting("lora", "lora (a peft adapter) or full (every weight).")
    lora_r: int = setting(16, "LoRA rank.")
    lora_alpha: int = setting(32, "LoRA scaling numerator (the update is scaled by lora_alpha / lora_r).")
    lora_dropout: float = setting(0.05, "Dropout on the LoRA input; applied to every adapter of the model, a "
                                        "continued one and TRL's reference copy included.")
    lora_targets: str = setting("all-linear", "Modules LoRA adapts: all-linear, or comma-separated module names.")
    dtype: str = setting("auto", "auto (bfloat16 where the processor or GPU has it natively, else float32), "
                                 "float32 or bfloat16; bfloat16 runs as autocast over float32 weights.")
    seed: int = setting(0, "Seeds data sampling, initialisation and training.")
    steps: int = setting(100, "Optimizer steps (TrainingArguments.max_steps).")
    grad_accum: int = setting(1, "Micro-batches accumulated per optimizer step.")
    learning_rate: float = setting(1e-4, "Peak learning rate.")
    lr_scheduler: str = setting("linear", "transformers' lr_scheduler_type: " + ", ".join(LR_SCHEDULERS) + ".")
    warmup_ratio: float = setting(0.0, "Fraction of the steps spent warming the learning rate up, in [0, 1).")
    save_steps: int = setting(25, "A checkpoint every this many steps: what an interrupted run resumes from.")
    logging_steps: int = setting(5, "Metrics are logged (and printed) every this many steps.")
    gradient_checkpointing: bool = setting(False, "Recompute activations in the backward pass to save memory.")
    data: list[dict[str, Any]] = setting([], "Data sources, each a {source: NAME, ...} mapping (policies/data.py); "
                                             "their rows are concatenated in order.")

    @classmethod
    def settings(cls) -> list[str]:
        """The keys a recipe or the command line may set for this method."""
        return [f.name for f in dataclasses.fields(cls) if f.name != "recipe"]

    @classmethod
    def from_values(cls, recipe: str, values: dict[str, Any]) -> TrainConfig:
        """This method's configuration from recipe values; an unknown key or a wrong type is a one-line error."""
        allowed = cls.settings()
        hints = typing.get_type_hints(cls)
        typed = {}
        for key, value in values.items():
            if key not in allowed:
                raise choices(f"{cls.method} setting", key, sorted(allowed))
            typed[key] = coerce(key, value, hints[key])
        config = cls(recipe=recipe, **typed)
        config.check()
        return config

    def to_json(self) -> dict[str, Any]:
        """The method and every field of it: the stored identity of the run."""
        return {"method": self.method, **dataclasses.asdict(self)}

    def check(self) -> None:
        """Ranges and choices that the types alone do not catch; a method extends it with its own. Every float
        must be finite (YAML's .nan and .inf are floats), every name non-blank."""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if hints[f.name] in (float, float | None) and value is not None and not math.isfinite(value):
                raise HarnessError(f"setting {f.name}={show(value)} must be a finite number")
        not_blank(self, "base", "lora_targets")
        if self.finetune not in FINETUNES:
            raise choices("finetune", self.finetune, list(FINETUNES))
        if self.dtype not in DTYPES:
            raise choices("dtype", self.dtype, list(DTYPES))
        if self.lr_scheduler not in LR_SCHEDULERS:
            raise choices("lr_scheduler", self.lr_scheduler, list(LR_SCHEDULERS))
        at_least_one(self, "steps", "grad_accum", "lora_r", "lora_alpha", "save_steps", "logging_steps")
        if not 0 <= self.seed < SEEDS:
            raise HarnessError(f"setting seed={show(self.seed)} must lie in [0, 2**32)")
        if self.learning_rate <= 0:
            raise HarnessError(f"setting learning_rate={self.learning_rate} must be positive")
        if not 0 <= self.warmup_ratio < 1:
            raise HarnessError(f"setting warmup_ratio={self.warmup_ratio} must lie in [0, 1)")
        if not 0 <= self.lora_dropout < 1:
            raise HarnessError(f"setting lora_dropout={self.lora_dropout} must lie in [0, 1)")
        if not all("source" in d for d in self.data):
            raise HarnessError(f"setting data={show(self.data)} must be a list of {{source: NAME, ...}} mappings")
        if not self.data:
            raise HarnessError(f"the {self.method} configuration names no data")


def show(value: Any, width: int = 60) -> str:
    """A user's value for a one-line message: its repr, cut to ``width`` characters (an integer of thousands of
    digits has no repr at all past Python's conversion limit)."""
    try:
        text = repr(value)
    except ValueError:
        return f"<an integer of {value.bit_length()} bits>"
    return text if len(text) <= width else text[:width - 3] + "..."


def at_least_one(config: TrainConfig, *keys: str) -> None:
    for key in keys:
        if getattr(config, key) < 1:
            raise HarnessError(f"setting {key}={show(getattr(config, key))} must be at least 1")


def not_blank(config: TrainConfig, *keys: str) -> None:
    """A name that is empty or only whitespace never silently means the default."""
    for key in keys:
        value = getattr(config, key)
        if value is not None and not value.strip():
            raise HarnessError(f"setting {key}={show(value)} is empty; name one")


def coerce(key: str, value: Any, kind: Any) -> Any:
    """``value`` as the type ``kind`` (a real type from ``typing.get_type_hints``), or a one-line error naming
    ``key``. YAML gives ints where a float is meant (``learning_rate=1``) and numbers where a string is
    (``lr_scheduler=1``): those convert; nothing else does."""
    optional = typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in typing.get_args(kind)
    if optional:
        if value is None:
            return None
        (kind,) = [a for a in typing.get_args(kind) if a is not type(None)]
    if kind is bool:
        if type(value) is not bool:
            raise HarnessError(f"setting {key}={show(value)} must be true or false")
    elif kind is int:
        if type(value) is not int:
            raise HarnessError(f"setting {key}={show(value)} must be an integer")
    elif kind is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-5 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise HarnessError(f"setting {key}={show(value)} must be a number") from None
        if type(value) not in (int, float):
            raise HarnessError(f"setting {key}={show(value)} must be a number")
        try:
            value = float(value)
        except OverflowError:  # an integer past float's range
            raise HarnessError(f"setting {key}={show(value)} must be a finite number") from None
    elif kind is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise HarnessError(f"setting {key}={show(value)} must be a string")
        value = str(value)
    elif typing.get_origin(kind) is list and typing.get_origin(typing.get_args(kind)[0]) is dict:
        if isinstance(value, dict):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise HarnessError(f"setting {key}={show(value)} must be a list of {{KEY: VALUE, ...}} mappings")
    else:  # a field type this loader does not know: a programming error, not the user's
        raise TypeError(f"setting {key}: no recipe loader for type {kind!r}")
    return value


def sampling_problem(temperature: float, top_p: float, max_tokens: int, greedy: bool = False) -> str | None:
    """What is wrong with rollout sampling settings (``temperature=... must ...``), or None: one rule for the
    recipe check and for the rollouts themselves (``policies/rollout.py``). RLOO and RFT sample (temperature > 0); a
    rollout engine asked directly may also decode greedily (``greedy``: temperature 0 allowed)."""
    if not (math.isfinite(temperature) and (temperature > 0 or greedy and temperature == 0)):
        return f"temperature={temperature} must be a positive number: training samples its completions"
    if not 0 < top_p <= 1:
        return f"top_p={top_p} must lie in (0, 1]"
    if max_tokens < 1:
        return f"max_completion_length={max_tokens} must be at least 1"
    return None
