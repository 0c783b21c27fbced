"""The plugin contract, exercised by a real third-party distribution pip-installed from tests/fixtures."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest
from conftest import ROOT, harness_cli

import harness
from harness.errors import HarnessError
from harness.plugins import KINDS, Registry, Spec
from harness.types import data_members
from plugins.countdown import CountdownVerifier
from plugins.reward_model import RewardModelFactory
from plugins.winrate import WinRateFactory


def test_builtins_come_from_the_entry_point_group():
    assert harness.get_task("countdown").verifier == "countdown"
    assert harness.get_verifier("countdown").reference_free is True
    assert harness.get_verifier("sympy").reference_free is False
    assert harness.get_sampler("bon").uses_scores and harness.get_sampler("greedy").greedy
    with pytest.raises(HarnessError, match="choose one of: .*countdown"):
        harness.get_task("nope")


def test_two_plugins_registering_one_name_is_an_error_naming_both():
    reg = Registry()
    reg.add("verifier", CountdownVerifier(), "first-dist:a")
    with pytest.raises(HarnessError, match="first-dist:a.*second-dist:b"):
        reg.add("verifier", CountdownVerifier(), "second-dist:b")


# Attributes the core reads with getattr/hasattr of objects that are no plugin's: an entry point's
# distribution, an OSError's message, a tokenizer's chat template, a Hugging Face model config's quantization,
# an sqlite3 error's code, a YAML error's position and problem, a type's name.
NOT_PLUGINS = {"dist", "strerror", "chat_template", "quantization_config", "sqlite_errorcode", "problem_mark",
               "problem", "__name__"}
PROBES = ("getattr", "hasattr")


def test_the_core_probes_plugins_only_for_declared_members():
    declared = set()
    for kind in KINDS.values():
        declared |= {n for n in vars(kind.contract) if not n.startswith("_")} | set(data_members(kind.contract))
        declared |= {f.name for f in dataclasses.fields(kind.optional)}
    probed = []
    for path in sorted((ROOT / "harness").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            probe = isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in PROBES
            if probe and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
                probed.append((path.relative_to(ROOT).as_posix(), node.lineno, node.args[1].value))
    undeclared = [p for p in probed if p[2] not in declared | NOT_PLUGINS]
    assert not undeclared, f"declare these in harness.types (TaskOptional, ...) and read them with .of(): {undeclared}"


def test_a_factory_is_registered_by_its_configure_and_checked_once_built():
    assert not hasattr(RewardModelFactory(), "score") and not hasattr(WinRateFactory(), "score")
    assert {"rm", "winrate"} <= set(harness.plugins.registry().components["verifier"])

    class Builds:
        name, reference_free = "builds", True

        def __init__(self, product):
            self.product = product

        def configure(self, *args, **options):
            return self.product

    reg = Registry()
    reg.add("verifier", Builds(CountdownVerifier()), "dist:good")
    assert reg.build(Spec.parse("verifier", "builds")).name == "countdown"
    reg = Registry()
    reg.add("verifier", Builds(object()), "dist:bad")
    with pytest.raises(HarnessError, match="dist:bad: configure\\(\\) returned object, which breaks the verifier "
                                           "contract") as info:
        reg.build(Spec.parse("verifier", "builds"))
    assert "\n" not in str(info.value)

    class Undescribed:  # a verifier factory that does not say whether what it builds reads the gold answer
        name = "undescribed"

        def configure(self):
            return CountdownVerifier()

    reg = Registry()
    reg.add("verifier", Undescribed(), "dist:vague")
    assert "undescribed" not in reg.components["verifier"]
    assert reg.problems == ["plugin dist:vague: verifier 'undescribed' breaks the verifier contract; skipped"]


def test_plugins_lists_third_party_and_reports_broken_ones(third_party):
    result = harness_cli("plugins", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "shortest" in result.stdout and "harness-shortest:shortest" in result.stdout
    assert "countdown" in result.stdout and "harness:countdown-verifier" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert any("harness-shortest:broken" in w and "broken on purpose" in w for w in warnings), warnings
    assert any("no-score" in w and "contract" in w for w in warnings), warnings
    assert "Traceback" not in result.stderr


def test_a_plugin_adds_a_command_and_a_failing_one_is_reported(third_party):
    result = harness_cli("shortest-length", "abcd")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "4"
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert any("harness-shortest:misshapen" in w and "register_commands" in w and "on purpose" in w
               for w in warnings), warnings
    assert "Traceback" not in result.stderr


def test_third_party_verifier_selects_in_harness_run(third_party, tiny_llama, tmp_path):
    out = tmp_path / "runs"
    harness_cli("run", "--policy", str(tiny_llama), "--limit", "2", "--sampler", "bon", "--n", "3",
                "--verifier", "shortest", "--max-tokens", "24", "--backend", "hf", "-o", str(out), check=True)
    (run_dir,) = [p.parent for p in out.glob("*/summary.json")]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["verifier"] == "shortest" and summary["grader"] == "countdown"
    for line in (run_dir / "samples.jsonl").read_text().splitlines():
        row = json.loads(line)
        for s in row["samples"]:
            assert s["score"]["value"] == pytest.approx(1 / (1 + len(s["text"])))
            assert s["score"]["answer"] == str(len(s["text"]))
        lengths = [len(s["text"]) for s in row["samples"]]
        assert lengths[row["selected"]] == min(lengths)


def test_gold_reading_verifier_needs_oracle_and_reports_pass_at_n(third_party, tiny_llama, tmp_path):
    args = ["run", "--policy", str(tiny_llama), "--limit", "2", "--sampler", "bon", "--n", "2",
            "--verifier", "peeks-at-gold", "--max-tokens", "8", "--backend", "hf", "-o", str(tmp_path)]
    refused = harness_cli(*args)
    assert refused.returncode == 2 and "--oracle" in refused.stderr and "shortest" in refused.stderr
    harness_cli(*args, "--oracle", check=True)
    (summary,) = [json.loads(p.read_text()) for p in Path(tmp_path).glob("*/summary.json")]
    assert summary["metric"]["name"] == "pass@2" and summary["oracle"] is True
