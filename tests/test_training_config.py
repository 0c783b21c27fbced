"""The training methods' configurations: one dataclass per method over a shared base, every field with its help,
recipes loaded into them with real types, and the trainer arguments built from them. No training here."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import re
import tomllib
import typing
from pathlib import Path

import pytest
from conftest import ROOT
from packaging.requirements import Requirement

from harness import HarnessError
from policies import common, recipe
from policies.config import TrainConfig, coerce
from policies.dpo import DPOTrainConfig
from policies.rloo import RLOOTrainConfig
from policies.rm import RMTrainConfig
from policies.sft import SFTTrainConfig

CONFIGS = {"sft": SFTTrainConfig, "dpo": DPOTrainConfig, "rm": RMTrainConfig, "rloo": RLOOTrainConfig}


def test_each_method_has_its_own_config_extending_the_base_with_every_field_helped():
    assert {name: method.config for name, method in recipe.METHODS.items()} == CONFIGS
    base = {f.name for f in dataclasses.fields(TrainConfig)}
    for name, config in CONFIGS.items():
        assert issubclass(config, TrainConfig) and config.method == name
        for f in dataclasses.fields(config):
            assert f.metadata.get("help", "").strip(), f"{config.__name__}.{f.name} has no help"
        own = {f.name for f in dataclasses.fields(config)} - base
        assert own and not own & base
    assert "k" in {f.name for f in dataclasses.fields(RLOOTrainConfig)} - base
    assert "eval_fraction" not in {f.name for f in dataclasses.fields(SFTTrainConfig)}


def test_a_config_is_stored_as_its_method_and_its_own_fields_only():
    config = recipe.load("quick", "dpo")
    assert isinstance(config, DPOTrainConfig)
    stored = config.to_json()
    assert stored["method"] == "dpo" and stored["recipe"] == "quick" and stored["beta"] == 0.1
    assert set(stored) == {"method", *(f.name for f in dataclasses.fields(DPOTrainConfig))}
    assert not {"k", "reward", "eval_fraction", "rollout"} & set(stored)


def test_recipe_values_are_checked_against_the_real_field_types():
    hints = typing.get_type_hints(RLOOTrainConfig)
    assert hints["steps"] is int and hints["learning_rate"] is float and hints["reward"] == str | None
    config = recipe.load("quick", "rloo", reward="countdown", overrides=[
        "learning_rate=1", "lr_scheduler=5", "gradient_checkpointing=true", "data={source: countdown-data}"])
    assert config.learning_rate == 1.0 and type(config.learning_rate) is float
    assert config.lr_scheduler == "5" and config.gradient_checkpointing is True
    assert config.data == [{"source": "countdown-data"}]
    for override, message in (("steps=2.5", "setting steps=2.5 must be an integer"),
                              ("beta=high", "setting beta='high' must be a number"),
                              ("gradient_checkpointing=1", "setting gradient_checkpointing=1 must be true or false"),
                              ("rollout=[a]", "setting rollout=['a'] must be a string"),
                              ("data=5", "setting data=5 must be a list of"),
                              ("data=[{path: x}]", "must be a list of {source: NAME, ...} mappings"),
                              ("reward=null", "rloo needs a reward"),
                              ("warmup_ratio=1", "setting warmup_ratio=1.0 must lie in [0, 1)")):
        with pytest.raises(HarnessError, match=re.escape(message)) as raised:
            recipe.load("quick", "rloo", reward="countdown", overrides=[override])
        assert "\n" not in str(raised.value)
    assert coerce("reward", None, str | None) is None and coerce("reward", 3, str | None) == "3"
    with pytest.raises(TypeError, match="no recipe loader"):
        coerce("odd", 1, tuple[int])


def test_a_key_the_method_does_not_have_is_a_one_line_error_naming_it():
    for values in ({"k": 4}, {"stepz": 10}):
        with pytest.raises(HarnessError, match=f"unknown sft setting '{next(iter(values))}'"):
            SFTTrainConfig.from_values("quick", {"data": [{"source": "lima"}], **values})
    with pytest.raises(HarnessError, match="--reward applies to rloo only, not to rm"):
        recipe.load("quick", "rm", reward="countdown")


@pytest.mark.parametrize("steps, ratio, warmup", [(10, 0.25, 3), (100, 0.0, 0), (7, 0.5, 4), (3, 0.1, 1)])
def test_warmup_ratio_reaches_the_trainer_as_whole_steps(tmp_path, steps, ratio, warmup):
    """An int is steps on every transformers; a float below 1 is a ratio only on transformers 5."""
    from transformers import TrainingArguments

    config = recipe.load("quick", "sft", overrides=[f"steps={steps}", f"warmup_ratio={ratio}"])
    args = common.trainer_args(config, tmp_path, common.Hardware("cpu", "float32"))
    assert type(args["warmup_steps"]) is int and args["warmup_steps"] == warmup
    assert TrainingArguments(**args).get_warmup_steps(steps) == warmup
    ratio_read = TrainingArguments(**{**args, "warmup_steps": ratio}).get_warmup_steps(steps)
    assert ratio_read == warmup  # what transformers 5 made of the ratio itself: the schedule is unchanged


def test_trl_is_pinned_to_the_tested_range_and_the_installed_one_is_in_it():
    """``policies/rollout.py`` overrides a private RLOOTrainer method: TRL is pinned to the minor tested."""
    extras = tomllib.loads(Path(ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (trl,) = [Requirement(r) for r in extras["train"] if Requirement(r).name == "trl"]
    assert trl.specifier.contains(importlib.metadata.version("trl"))
    assert not trl.specifier.contains("1.0.0") and any(s.operator == "<" for s in trl.specifier)
