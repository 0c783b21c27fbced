"""Every bad input: one line naming the problem, exit code 2, no traceback, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app

runner = CliRunner()


def fails(args: list[str], *must_mention: str) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for word in must_mention:
        assert word in lines[0], (word, lines[0])
    return lines[0]


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["--policy", "no-such-policy"], ("no-such-policy", "smollm2", "adapter")),
        (["--task", "nope"], ("nope", "countdown")),
        (["--sampler", "nope"], ("nope", "bon", "greedy")),
        (["--sampler", "bon", "--n", "4", "--verifier", "nope"], ("nope", "countdown")),
        (["--n", "0"], ("--n",)),
        (["--sampler", "greedy", "--n", "16"], ("greedy", "--n 1")),
        (["--sampler", "greedy", "--temperature", "0.9"], ("temperature",)),
        (["--sampler", "greedy", "--verifier", "countdown"], ("--verifier",)),
        (["--sampler", "bon", "--n", "2", "--oracle"], ("reference-free", "--oracle")),
        (["--limit", "0"], ("--limit",)),
        (["--top-p", "0"], ("--top-p",)),
        (["--task-arg", "shots"], ("KEY=VALUE",)),
        (["--task-arg", "bogus=1"], ("bogus",)),
        (["--split", "validation", "--limit", "2"], ("validation", "test", "train")),
    ],
)
def test_bad_run_input(tmp_path, args, mentions):
    fails(["run", "-o", str(tmp_path / "runs"), *args], *mentions)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").glob("*/summary.json"))


def test_unknown_policy_lists_valid_choices(tmp_path):
    line = fails(["run", "--policy", "gpt-17", "-o", str(tmp_path)])
    assert "choose a name" in line


def test_trained_policy_without_checkpoint_says_how_to_produce_it(tmp_path):
    line = fails(["run", "--policy", "rloo", "-o", str(tmp_path)], "rloo", "policy.json")
    assert "train" in line


def test_model_directory_without_weights(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    fails(["run", "--policy", str(model), "-o", str(tmp_path / "runs")], "no weights")


def test_directory_that_is_no_model(tmp_path):
    fails(["run", "--policy", str(tmp_path), "-o", str(tmp_path / "runs")], "config.json")


def test_hub_id_offline_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fails(["run", "--policy", "someone/never-published-model", "-o", str(tmp_path)], "someone/never-published-model")


def test_bad_backend(tmp_path, tiny_llama):
    fails(["run", "--policy", str(tiny_llama), "--backend", "tpu", "--limit", "1", "-o", str(tmp_path)], "tpu", "vllm")


def test_score_on_missing_or_corrupt_run_dir(tmp_path):
    fails(["score", str(tmp_path / "missing")], "missing")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "summary.json").write_text("{not json")
    fails(["score", str(corrupt)], "corrupt", "summary.json")
    summary = {"config": {}, "metric": {"name": "accuracy", "value": 0.5}, "counts": {"examples": 3}}
    (corrupt / "summary.json").write_text(json.dumps(summary))
    (corrupt / "samples.jsonl").write_text('{"id": 1}\n')
    fails(["score", str(corrupt)], "samples.jsonl")
    fails(["compare", str(corrupt), str(tmp_path / "missing")], "corrupt", "samples.jsonl")
    fails(["compare", str(tmp_path / "missing"), str(corrupt)], "missing", "not a readable run directory")


def test_leaderboard_bad_format_and_missing_dir(tmp_path):
    fails(["leaderboard", "-o", str(tmp_path), "--format", "xml"], "xml", "md")
    fails(["leaderboard", "-o", str(tmp_path / "none")], "does not exist")


def test_corrupt_runs_are_skipped_by_the_leaderboard(tmp_path: Path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "summary.json").write_text("[]")
    result = runner.invoke(app, ["leaderboard", "-o", str(tmp_path), "--format", "json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []
    assert "skipping" in result.stderr and "broken" in result.stderr
