"""Recipes: small YAML files in the package; top-level keys apply to every method, a method's section overrides them.

The effective configuration of one training run is: ``TrainConfig`` defaults, then the recipe's
top level, then its section for the method, then the command line's ``--base``/``--reward``, then
``key=value`` overrides (values parsed as YAML: ``steps=20``, ``learning_rate=1e-4``,
``data=[{source: lima, rows: 100}]``). Every key is type-checked; a key the method does not use
is an error, so a typo never trains silently with the default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from harness.errors import HarnessError, choices

METHODS = ("sft", "dpo", "rm", "rloo")
FINETUNES = ("lora", "full")
DTYPES = ("auto", "float32", "bfloat16")
ROLLOUTS = ("auto", "engine", "trl", "trl-cb", "trl-vllm", "trl-vllm-server")

COMMON = ("base", "finetune", "lora_r", "lora_alpha", "lora_dropout", "lora_targets", "dtype", "seed", "steps",
          "grad_accum", "learning_rate", "lr_scheduler", "warmup_ratio", "save_steps", "logging_steps",
          "gradient_checkpointing", "data")
SPECIFIC = {
    "sft": ("batch_size", "max_length"),
    "dpo": ("batch_size", "max_length", "beta"),
    "rm": ("batch_size", "max_length", "eval_fraction"),
    # one step = prompts_per_step prompts x k samples, in grad_accum micro-batches
    "rloo": ("reward", "k", "prompts_per_step", "max_completion_length", "temperature", "top_p", "beta", "rollout"),
}


@dataclass
class TrainConfig:
    """Everything that decides what one training run computes; stored beside its checkpoints to resume safely."""

    method: str
    recipe: str
    base: str = "smollm2"
    finetune: str = "lora"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: str = "all-linear"
    dtype: str = "auto"
    seed: int = 0
    steps: int = 100
    batch_size: int = 8
    grad_accum: int = 1
    learning_rate: float = 1e-4
    lr_scheduler: str = "linear"
    warmup_ratio: float = 0.0
    max_length: int = 512
    save_steps: int = 25
    logging_steps: int = 5
    gradient_checkpointing: bool = False
    data: list[dict[str, Any]] = field(default_factory=list)
    # dpo: preference temperature; rloo: KL coefficient
    beta: float = 0.1
    # rm
    eval_fraction: float = 0.1
    # rloo
    reward: str | None = None
    k: int = 4
    prompts_per_step: int = 4
    max_completion_length: int = 128
    temperature: float = 1.0
    top_p: float = 1.0
    rollout: str = "auto"

    def to_json(self) -> dict[str, Any]:
        """The keys this method uses, and nothing else (the stored identity of the run)."""
        used = ("method", "recipe", *COMMON, *SPECIFIC[self.method])
        return {k: v for k, v in dataclasses.asdict(self).items() if k in used}


def available() -> list[str]:
    """Recipe names shipped in the package."""
    folder = resources.files("policies") / "recipes"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load(recipe: str, method: str, base: str | None = None, reward: str | None = None,
         overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """The effective configuration of ``method`` under ``recipe`` with the command line's changes applied."""
    if method not in METHODS:
        raise choices("training method", method, list(METHODS))
    if recipe not in available():
        raise choices("recipe", recipe, available())
    text = (resources.files("policies") / "recipes" / f"{recipe}.yaml").read_text(encoding="utf-8")
    document = yaml.safe_load(text) or {}
    if method not in document:
        offered = [m for m in METHODS if m in document]
        raise HarnessError(f"recipe {recipe!r} has no {method} section; it trains: {', '.join(offered)}")
    allowed = set(COMMON) | set(SPECIFIC[method])
    values: dict[str, Any] = {}
    for key, value in document.items():
        if key not in METHODS and key in allowed:
            values[key] = value
    values.update(document[method] or {})
    if base is not None:
        values["base"] = base
    if reward is not None:
        if method != "rloo":
            raise HarnessError(f"--reward applies to rloo only, not to {method}")
        values["reward"] = reward
    for text_pair in overrides:
        key, value = parse_override(text_pair)
        if key not in allowed:
            raise choices(f"{method} setting", key, sorted(allowed))
        values[key] = value
    config = TrainConfig(method=method, recipe=recipe)
    for key, value in values.items():
        setattr(config, key, _typed(key, value))
    _check(config)
    return config


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with the value parsed as YAML (numbers, booleans, lists); anything else is a one-line error."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise HarnessError(f"override {text!r} is not KEY=VALUE")
    try:
        return key, yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        reason = str(exc).splitlines()[0]
        raise HarnessError(f"override {text!r}: the value does not parse ({reason})") from None


def _typed(key: str, value: Any) -> Any:
    """``value`` as the field's type, or a one-line error naming the key."""
    kind = {f.name: f.type for f in dataclasses.fields(TrainConfig)}[key]
    if kind == "int":
        if type(value) is not int:
            raise HarnessError(f"setting {key}={value!r} must be an integer")
    elif kind == "float":
        if type(value) not in (int, float):
            raise HarnessError(f"setting {key}={value!r} must be a number")
        value = float(value)
    elif kind == "bool":
        if type(value) is not bool:
            raise HarnessError(f"setting {key}={value!r} must be true or false")
    elif kind in ("str", "str | None"):
        if value is None and kind == "str | None":
            return None
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise HarnessError(f"setting {key}={value!r} must be a string")
        value = str(value)
    elif key == "data":
        if isinstance(value, dict):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(d, dict) and "source" in d for d in value):
            raise HarnessError(f"setting data={value!r} must be a list of {{source: NAME, ...}} mappings")
    return value


def _check(c: TrainConfig) -> None:
    """Ranges and choices that the types alone do not catch."""
    if c.finetune not in FINETUNES:
        raise choices("finetune", c.finetune, list(FINETUNES))
    if c.dtype not in DTYPES:
        raise choices("dtype", c.dtype, list(DTYPES))
    if c.rollout not in ROLLOUTS:
        raise choices("rollout", c.rollout, list(ROLLOUTS))
    for key in ("steps", "batch_size", "grad_accum", "lora_r", "lora_alpha", "max_length", "save_steps",
                "logging_steps", "prompts_per_step", "max_completion_length"):
        if getattr(c, key) < 1:
            raise HarnessError(f"setting {key}={getattr(c, key)} must be at least 1")
    if c.learning_rate <= 0:
        raise HarnessError(f"setting learning_rate={c.learning_rate} must be positive")
    if not 0 <= c.warmup_ratio < 1:
        raise HarnessError(f"setting warmup_ratio={c.warmup_ratio} must lie in [0, 1)")
    if not 0 < c.eval_fraction < 1:
        raise HarnessError(f"setting eval_fraction={c.eval_fraction} must lie strictly between 0 and 1")
    if c.method == "rloo":
        if c.k < 2:
            raise HarnessError(f"setting k={c.k}: RLOO needs at least 2 samples per prompt for its baseline")
        if not c.reward:
            raise HarnessError("rloo needs a reward: --reward VERIFIER (e.g. countdown, sympy, rm:PATH)")
        if (c.prompts_per_step * c.k) % c.grad_accum:
            raise HarnessError(f"prompts_per_step x k = {c.prompts_per_step * c.k} samples per step must divide "
                               f"into grad_accum={c.grad_accum} equal micro-batches")
        if c.temperature <= 0:
            raise HarnessError(f"setting temperature={c.temperature} must be positive for RLOO sampling")
    if not c.data:
        raise HarnessError(f"the {c.method} configuration names no data")
