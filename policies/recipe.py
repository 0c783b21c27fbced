"""Recipes: small YAML files in the package; top-level keys apply to every method, a method's section overrides them.

The effective configuration of one training run is: the method's dataclass defaults
(``SFTTrainConfig``, ``DPOTrainConfig``, ``RMTrainConfig``, ``RLOOTrainConfig``), then the recipe's
top level (the keys the method has), then its section for the method, then the command line's
``--base``/``--reward``, then ``key=value`` overrides (values parsed as YAML: ``steps=20``,
``learning_rate=1e-4``, ``data=[{source: lima, rows: 100}]``). Every key is type-checked; a key the
method does not have is an error, so a typo never trains silently with the default.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

from harness.errors import HarnessError, choices, describe
from policies import dpo, rloo, rm, sft
from policies.common import Method
from policies.config import TrainConfig, show

METHODS: dict[str, Method] = {"sft": sft.METHOD, "dpo": dpo.METHOD, "rm": rm.METHOD, "rloo": rloo.METHOD}


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
    config = METHODS[method].config
    allowed = set(config.settings())
    values: dict[str, Any] = {k: v for k, v in document.items() if k not in METHODS and k in allowed}
    values.update(document[method] or {})
    if base is not None:
        values["base"] = base
    if reward is not None:
        if "reward" not in allowed:
            raise HarnessError(f"--reward applies to rloo only, not to {method}")
        values["reward"] = reward
    for text_pair in overrides:
        key, value = parse_override(text_pair)
        if key not in allowed:
            raise choices(f"{method} setting", key, sorted(allowed))
        values[key] = value
    return config.from_values(recipe, values)


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with the value parsed as YAML (numbers, booleans, lists); anything else is a one-line error."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise HarnessError(f"override {show(text)} is not KEY=VALUE")
    try:
        return key, yaml.safe_load(raw) if raw.strip() else ""
    except (yaml.YAMLError, ValueError, RecursionError) as exc:  # ValueError: an integer past Python's digit limit
        reason = describe(exc)
        raise HarnessError(f"override {show(text)}: the value does not parse ({reason})") from None
