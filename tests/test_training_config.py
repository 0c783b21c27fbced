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
from policies.rft import RFTTrainConfig
from policies.rloo import RLOOTrainConfig
from policies.rm import RMTrainConfig
from policies.sft import SFTTrainConfig

CONFIGS = {"sft": SFTTrainConfig, "dpo": DPOTrainConfig, "rm": RMTrainConfig, "rloo": RLOOTrainConfig,
           "rft": RFTTrainConfig}


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
        "learning_rate=1", "lora_targets=5", "gradient_checkpointing=true", "data={source: countdown-data}"])
    assert config.learning_rate == 1.0 and type(config.learning_rate) is float
    assert config.lora_targets == "5" and config.gradient_checkpointing is True
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
    with pytest.raises(HarnessError, match="--reward applies to rloo and rft only, not to rm"):
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


def _fields_of(config: type[TrainConfig], kind: type) -> list[str]:
    hints = typing.get_type_hints(config)
    return [f.name for f in dataclasses.fields(config) if hints[f.name] in (kind, kind | None) and f.name != "recipe"]


def _refused(method: str, *overrides: str) -> str:
    reward = "countdown" if method == "rloo" else None
    with pytest.raises(HarnessError) as raised:
        recipe.load("quick", method, reward=reward, overrides=list(overrides))
    message = str(raised.value)
    assert "\n" not in message and len(message) < 300, message
    return message


@pytest.mark.parametrize("method", CONFIGS)
def test_every_float_setting_must_be_finite(method):
    floats = _fields_of(CONFIGS[method], float)
    assert {"learning_rate", "warmup_ratio", "lora_dropout"} <= set(floats)
    for key in floats:
        for value in (".nan", ".inf", "-.inf", "nan", "inf", "1e999"):
            message = _refused(method, f"{key}={value}")
            assert message.startswith(f"setting {key}=") and "must be a finite number" in message, message


@pytest.mark.parametrize("method", CONFIGS)
def test_every_count_setting_must_be_positive(method):
    counts = [k for k in _fields_of(CONFIGS[method], int) if k not in ("seed", "k")]
    assert {"steps", "grad_accum", "lora_r", "save_steps", "logging_steps", "batch_size"} <= set(counts) or \
        method == "rloo"
    for key in counts:
        for value in (0, -1, -10**40):
            message = _refused(method, f"{key}={value}")
            assert message.startswith(f"setting {key}=") and "must be at least 1" in message, message


@pytest.mark.parametrize("method, override, says", [
    ("sft", "base=''", "setting base='' is empty"),
    ("sft", "base='  '", "setting base='  ' is empty"),
    ("rm", "base=' '", "setting base=' ' is empty"),
    ("sft", "lora_targets=' '", "setting lora_targets=' ' is empty"),
    ("rloo", "reward=' '", "setting reward=' ' is empty"),
    ("sft", "seed=-1", "setting seed=-1 must lie in [0, 2**32)"),
    ("sft", f"seed={2**32}", f"setting seed={2**32} must lie in [0, 2**32)"),
    ("sft", "lora_dropout=1", "setting lora_dropout=1.0 must lie in [0, 1)"),
    ("sft", "lora_dropout=-0.1", "setting lora_dropout=-0.1 must lie in [0, 1)"),
    ("sft", "learning_rate=0", "setting learning_rate=0.0 must be positive"),
    ("sft", "learning_rate=-1e-4", "setting learning_rate=-0.0001 must be positive"),
    ("sft", "warmup_ratio=-0.5", "setting warmup_ratio=-0.5 must lie in [0, 1)"),
    ("sft", "lr_scheduler=cosine_with_min_lr", "unknown lr_scheduler 'cosine_with_min_lr'; choose one of: constant"),
    ("dpo", "beta=0", "setting beta=0.0 must be positive"),
    ("rm", "eval_fraction=1", "setting eval_fraction=1.0 must lie strictly between 0 and 1"),
    ("rloo", "beta=-0.1", "setting beta=-0.1 must be at least 0"),
    ("rloo", "top_p=0", "setting top_p=0.0 must lie in (0, 1]"),
    ("rloo", "top_p=1.01", "setting top_p=1.01 must lie in (0, 1]"),
    ("rloo", "temperature=0", "setting temperature=0.0 must be a positive number: training samples its completions"),
    ("rloo", "temperature=-1", "setting temperature=-1.0 must be a positive number: training samples its completions"),
    ("rloo", "k=0", "setting k=0: RLOO needs at least 2 samples"),
    ("rloo", "data=[{source: task, rows: 0}]", "rows=0 must be a positive integer"),
    ("sft", "steps=1" + "0" * 5000, "the value does not parse (ValueError: Exceeds the limit"),
    ("sft", "learning_rate=1" + "0" * 400, "setting learning_rate=1000000"),
])
def test_ranges_and_names_are_checked_where_the_config_is(method, override, says):
    if "rows:" in override:  # data sources are checked before anything slow, by policies.data.check
        from policies import data

        config = recipe.load("quick", method, reward="countdown", overrides=[override])
        with pytest.raises(HarnessError, match=re.escape(says)):
            data.check(config.data, data.KIND_OF_METHOD[method])
        return
    assert says in _refused(method, override)


def test_a_float_written_as_yaml_reads_it_is_a_float():
    """YAML 1.1 reads 1e-5 (no dot) as a string; the README's `learning_rate=1e-5` means the number."""
    config = recipe.load("quick", "rloo", reward="countdown", overrides=["learning_rate=1e-5", "beta=2E-3"])
    assert config.learning_rate == 1e-5 and config.beta == 2e-3
    assert "setting learning_rate='fast' must be a number" in _refused("sft", "learning_rate=fast")


@pytest.mark.parametrize("method, source, says", [
    ("sft", "{source: jsonl, path: 5}", "data source jsonl: path=5 must be a non-empty string"),
    ("sft", "{source: lima, path: ' '}", "data source lima: path=' ' must be a non-empty string"),
    ("sft", '{source: jsonl, path: "a\\0b"}', "data source jsonl: path='a\\x00b' must be a non-empty string"),
    ("sft", "{source: lima, split: ''}", "data source lima: split='' must be a non-empty string"),
    ("sft", "{source: task, task: countdown, args: [1]}", "data source task: args=[1] must be a mapping"),
    ("dpo", "{source: alpaca-judge, min_margin: .nan}", "data source alpaca-judge: min_margin=nan must be a finite"),
    ("dpo", "{source: alpaca-judge, min_margin: -1}", "data source alpaca-judge: min_margin=-1 must be a finite"),
    ("rloo", "{source: countdown-data, shots: -1}", "data source countdown-data: shots=-1 must be a non-negative"),
    ("rloo", "{source: countdown-data, rows: .inf}", "data source countdown-data: rows=inf must be a positive"),
    ("rloo", "{source: countdown-data, rows: -3}", "data source countdown-data: rows=-3 must be a positive"),
    ("sft", "{source: lima}, {source: hh-harmless}", "data source 'hh-harmless' gives no SFT conversations"),
])
def test_a_data_option_of_the_wrong_type_is_one_line_before_anything_loads(method, source, says):
    from policies import data

    config = recipe.load("quick", method, reward="countdown" if method == "rloo" else None,
                         overrides=[f"data=[{source}]"])
    with pytest.raises(HarnessError) as raised:
        data.check(config.data, data.KIND_OF_METHOD[method])
    assert str(raised.value).startswith(says) and "\n" not in str(raised.value), str(raised.value)


def test_a_section_named_apart_from_its_method_is_picked_with_recipe_colon_section():
    judge = recipe.load("quick-instruct:judge", "rm")
    assert isinstance(judge, RMTrainConfig) and judge.steps == 60 and judge.recipe == "quick-instruct:judge"
    assert {d.get("half") for d in judge.data} == {"B"}
    plain = recipe.load("quick-instruct", "rm")
    assert plain.steps == 150 and {d.get("half") for d in plain.data} == {"A"}
    assert judge.lora_r == plain.lora_r == 16 and judge.seed == 0  # the top level applies to a named section too
    assert recipe.load("quick-instruct", "rloo").reward == "rm:rm-instruct"
    assert recipe.load("quick-instruct", "dpo").base == "sft-instruct"


@pytest.mark.parametrize("spec, method, says", [
    ("quick-instruct:judge", "dpo", "recipe 'quick-instruct' section judge trains rm, not dpo"),
    ("quick-instruct:nope", "rm", "recipe 'quick-instruct' has no nope section; it trains: sft, dpo, rm, rloo, "
                                  "judge (rm)"),
    ("nope:judge", "rm", "unknown recipe 'nope'"),
    ("quick:judge", "rm", "recipe 'quick' has no judge section"),
])
def test_a_section_that_does_not_train_the_method_is_one_line(spec, method, says):
    with pytest.raises(HarnessError, match=re.escape(says)):
        recipe.load(spec, method)


@pytest.mark.parametrize("spec, method, data, judge, other", [
    ("quick-instruct:judge", "rm", "[{source: alpaca-judge, half: A}]", "alpaca-judge (alpaca_eval, half A)",
     "sft's instructions (alpaca_eval, half A)"),
    ("quick-instruct", "dpo", "[{source: alpaca-judge}]", "alpaca-judge (alpaca_eval, half B)",
     "dpo's alpaca-judge (alpaca_eval, no half)"),
    ("quick-instruct", "rloo", "[{source: instructions, half: B}]", "alpaca-judge (alpaca_eval, half B)",
     "rloo's instructions (alpaca_eval, half B)"),
    ("quick-instruct:judge", "rm", "[{source: jsonl, path: lima/train.jsonl, half: B}]",
     "jsonl (lima/train.jsonl, half B)", "sft's lima (lima/train.jsonl, no half)"),
    ("quick-instruct:judge", "rm", "[{source: hh-harmless, half: B}]", None, None),
    ("quick-instruct", "sft", "[{source: hh-harmless, half: A}]", None, None),
])
def test_a_judge_that_may_share_prompts_with_a_policy_is_one_line_naming_both(spec, method, data, judge, other):
    """The judge's data against every other section's, the command line's data= included."""
    if judge is None:
        assert recipe.load(spec, method, overrides=[f"data={data}"]).data
        return
    with pytest.raises(HarnessError) as error:
        recipe.load(spec, method, overrides=[f"data={data}"])
    message = str(error.value)
    assert "\n" not in message and f"the judge's data {judge}" in message and f"with {other}" in message


@pytest.mark.parametrize("spelled", ["absolute", "dotted", "linked"])
def test_a_judge_file_spelled_as_another_path_to_the_same_pool_is_still_caught(tmp_path, monkeypatch, spelled):
    """The AlpacaEval pool and any other file are matched by where they are, not by how the recipe wrote them."""
    root = tmp_path / "data"
    for name in ("alpaca_eval/judge_annotations.jsonl", "lima/train.jsonl"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")
    (tmp_path / "link").symlink_to(root)
    monkeypatch.setenv("HARNESS_DATA", str(root))
    place = {"absolute": root, "dotted": root / "lima" / "..", "linked": tmp_path / "link"}[spelled]
    for path, other in (("alpaca_eval/judge_annotations.jsonl", "sft's instructions (alpaca_eval, half A)"),
                        ("lima/train.jsonl", "sft's lima (lima/train.jsonl, no half)")):
        data = f"[{{source: jsonl, path: '{place / path}', half: A}}]"
        with pytest.raises(HarnessError) as error:
            recipe.load("quick-instruct:judge", "rm", overrides=[f"data={data}"])
        assert f"may share prompts with {other}" in str(error.value)


@pytest.mark.parametrize("method", [["rm"], {"rm": 1}, 3, None])
def test_a_section_method_that_is_no_name_is_one_line(monkeypatch, method):
    monkeypatch.setattr(recipe, "read", lambda name: {"steps": 5, "judge": {"method": method, "steps": 2}})
    with pytest.raises(HarnessError, match=r"recipe section judge: method=.* must be one of: sft, dpo, rm, rloo, rft$"):
        recipe.load("quick:judge", "rm")


def test_a_run_is_named_after_its_recipe_section_unless_named():
    from policies.train import default_name

    assert default_name(recipe.load("quick-instruct:judge", "rm")) == "judge"
    assert default_name(recipe.load("quick-instruct", "rm")) == "rm"
    assert default_name(recipe.load("quick", "sft")) == "sft"


@pytest.mark.parametrize("path", ["~nobody-h11/a.jsonl", "a\\0b.jsonl"])
def test_a_judge_path_no_file_system_resolves_is_compared_as_written(path):
    """An unknown user's ``~`` or a NUL byte: the judge check compares the name; the data check then says why."""
    config = recipe.load("quick-instruct:judge", "rm", overrides=[f'data=[{{source: jsonl, path: "{path}", half: B}}]'])
    assert config.data[0]["path"] == path.replace("\\0", "\0")
