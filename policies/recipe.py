"""Recipes: small YAML files in the package; top-level keys apply to every method, a method's section overrides them.

The effective configuration of one training run is: the method's dataclass defaults
(``SFTTrainConfig``, ``DPOTrainConfig``, ``RMTrainConfig``, ``RLOOTrainConfig``,
``RFTTrainConfig``), then the recipe's
top level (the keys the method has), then its section for the method, then the command line's
``--base``/``--reward``, then ``key=value`` overrides (values parsed as YAML: ``steps=20``,
``learning_rate=1e-4``, ``data=[{source: lima, rows: 100}]``). Every key is type-checked; a key the
method does not have is an error, so a typo never trains silently with the default.

A section is named by its method (``sft:``, ``dpo:``, ...) or names its method itself (``judge: {method: rm,
...}``); ``--recipe NAME:SECTION`` picks such a section. Methods of one recipe refer to each other by the
names they are trained under (``base: sft-instruct``, ``reward: rm:rm-instruct``). The ``judge`` section is
the reward model that grades the recipe's policies: its data may share no prompt with any other section's
(``policies.data.overlap``), else loading any section of the recipe is a one-line error naming both.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

from harness.errors import HarnessError, choices, describe
from policies import dpo, rft, rloo, rm, sft
from policies.common import Method
from policies.config import TrainConfig, show

METHODS: dict[str, Method] = {"sft": sft.METHOD, "dpo": dpo.METHOD, "rm": rm.METHOD, "rloo": rloo.METHOD,
                              "rft": rft.METHOD}
JUDGE = "judge"  # the section whose reward model grades the recipe's policies


def available() -> list[str]:
    """Recipe names shipped in the package."""
    folder = resources.files("policies") / "recipes"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load(recipe: str, method: str, base: str | None = None, reward: str | None = None,
         overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """The effective configuration of ``method`` under ``recipe`` (``NAME`` or ``NAME:SECTION``) with the command
    line's changes applied."""
    if method not in METHODS:
        raise choices("training method", method, list(METHODS))
    name, _, section = recipe.partition(":")
    section = section or method
    if name not in available():
        raise choices("recipe", name, available())
    document = read(name)
    sections = sections_of(document)
    if section not in sections:
        offered = [f"{s} ({m})" if s != m else s for s, m in sections.items()]
        raise HarnessError(f"recipe {name!r} has no {section} section; it trains: {', '.join(offered)}")
    if sections[section] != method:
        raise HarnessError(f"recipe {name!r} section {section} trains {sections[section]}, not {method}")
    config = METHODS[method].config
    allowed = set(config.settings())
    values = _values(document, section, allowed)
    if base is not None:
        values["base"] = base
    if reward is not None:
        if "reward" not in allowed:
            raise HarnessError(f"--reward applies to rloo and rft only, not to {method}")
        values["reward"] = reward
    for text_pair in overrides:
        key, value = parse_override(text_pair)
        if key not in allowed:
            raise choices(f"{method} setting", key, sorted(allowed))
        values[key] = value
    loaded = config.from_values(recipe, values)
    check_judge(name, {s: loaded.data if s == section else _data_of(document, s) for s in sections})
    return loaded


def read(name: str) -> dict[str, Any]:
    """A shipped recipe's YAML document."""
    text = (resources.files("policies") / "recipes" / f"{name}.yaml").read_text(encoding="utf-8")
    document = yaml.safe_load(text) or {}
    if not isinstance(document, dict):
        raise HarnessError(f"recipe {name!r} is not a mapping of settings and sections")
    return document


def sections_of(document: dict[str, Any]) -> dict[str, str]:
    """Each section's name and the method it trains: a method's name, or a mapping that says ``method:``."""
    out = {}
    for key, value in document.items():
        if key in METHODS:
            out[key] = key
        elif isinstance(value, dict) and "method" in value:
            method = value["method"]
            if not isinstance(method, str):
                raise HarnessError(f"recipe section {key}: method={show(method)} must be one of: "
                                   f"{', '.join(METHODS)}")
            if method not in METHODS:
                raise choices(f"section {key}'s method", method, list(METHODS))
            out[key] = method
    return out


def _values(document: dict[str, Any], section: str, allowed: set[str]) -> dict[str, Any]:
    """A section's values: the recipe's top level (the keys the method has), then the section itself."""
    sections = sections_of(document)
    values = {k: v for k, v in document.items() if k not in sections and k in allowed}
    own = document[section] or {}
    if not isinstance(own, dict):
        raise HarnessError(f"recipe section {section} must be a mapping of settings, not {show(own)}")
    values.update({k: v for k, v in own.items() if k != "method"})
    return values


def _data_of(document: dict[str, Any], section: str) -> list[dict[str, Any]]:
    data = _values(document, section, {"data"}).get("data") or []
    return [d for d in ([data] if isinstance(data, dict) else data) if isinstance(d, dict)]


def check_judge(recipe: str, data: dict[str, list[dict[str, Any]]]) -> None:
    """The judge section's data share no prompt with any other section's; else one line naming both sources."""
    from policies.data import overlap

    if JUDGE not in data:
        return
    for section, specs in data.items():
        found = overlap(data[JUDGE], specs) if section != JUDGE else None
        if found:
            raise HarnessError(f"recipe {recipe!r}: the judge's data {found[0]} may share prompts with {section}'s "
                               f"{found[1]}; train them on different halves (half: A / half: B)")


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
