"""Every bad input: one line naming the problem, exit code 2, no traceback, nothing written."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
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
        (["--split", "dev", "--limit", "2"], ("dev", "test", "validation", "train")),
        (["--task", "gsm8k", "--split", "validation", "--limit", "2"], ("validation", "test", "train")),
        # every number's range, NaN and infinities included, before anything loads
        (["--temperature", "nan"], ("--temperature", "nan")),
        (["--sampler", "bon", "--n", "2", "--temperature", "inf"], ("--temperature", "inf")),
        (["--sampler", "bon", "--n", "2", "--temperature", "-1"], ("--temperature", "-1")),
        (["--top-p", "inf"], ("--top-p", "inf")),
        (["--top-p", "nan"], ("--top-p", "nan")),
        (["--kv-cache-gib", "nan"], ("--kv-cache-gib", "nan")),
        (["--kv-cache-gib", "inf"], ("--kv-cache-gib", "inf")),
        (["--kv-cache-gib", "-1"], ("--kv-cache-gib",)),
        (["--seed", "-1"], ("--seed", "-1")),
        (["--seed", str(2**32)], ("--seed",)),
        (["--max-model-len", "0"], ("--max-model-len",)),
        # an empty or padded name never silently becomes a default
        (["--grader", ""], ("--grader is empty",)),
        (["--verifier", " "], ("--verifier is empty",)),
        (["--sampler", "bon", "--n", "2", "--verifier", ""], ("--verifier is empty",)),
        (["--task", ""], ("--task is empty",)),
        (["--policy", ""], ("--policy is empty",)),
        (["--policy", "  "], ("--policy is empty",)),
        (["--sampler", ""], ("--sampler is empty",)),
        (["--split", " "], ("--split is empty",)),
        (["--task", "countdown\n"], ("--task", "whitespace")),
        (["--backend", "foo"], ("unknown backend 'foo'", "auto, vllm, hf")),
        (["--backend", ""], ("unknown backend ''",)),
    ],
)
def test_bad_run_input(tmp_path, args, mentions):
    fails(["run", "-o", str(tmp_path / "runs"), *args], *mentions)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").glob("*/summary.json"))


@pytest.mark.slow
def test_unknown_policy_lists_valid_choices(tmp_path):
    line = fails(["run", "--policy", "gpt-17", "-o", str(tmp_path)])
    assert "choose a name" in line


@pytest.mark.slow
def test_trained_policy_without_checkpoint_says_how_to_produce_it(tmp_path):
    line = fails(["run", "--policy", "rloo", "-o", str(tmp_path)], "rloo", "policy.json")
    assert "train" in line


@pytest.mark.slow
def test_model_directory_without_weights(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    fails(["run", "--policy", str(model), "-o", str(tmp_path / "runs")], "no weights")


@pytest.mark.slow
def test_directory_that_is_no_model(tmp_path):
    fails(["run", "--policy", str(tmp_path), "-o", str(tmp_path / "runs")], "config.json")


@pytest.mark.slow
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


# -- stored state and output paths ------------------------------------------------------------------------------

FIXTURES = Path(__file__).parent / "fixtures" / "records-v2"


@pytest.fixture
def runs(tmp_path) -> Path:
    """A runs directory holding copies of canned records (best-of-4 with scaling curves, greedy)."""
    out = tmp_path / "runs"
    for source in FIXTURES.iterdir():
        shutil.copytree(source, out / source.name)
    return out


def bon(runs: Path) -> Path:
    return next(p for p in runs.iterdir() if "-bon-" in p.name)


def checksums(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_output_paths_of_the_wrong_kind_or_inside_a_record_are_refused_before_any_work(runs, tmp_path):
    record = bon(runs)
    a_file = tmp_path / "hostname"
    a_file.write_text("not a directory\n")
    before = checksums(tmp_path)
    fails(["run", "--limit", "1", "-o", str(a_file)], str(a_file), "is not a directory")
    fails(["run", "--limit", "1", "-o", str(record)], str(record), "is a run record")
    fails(["run", "--limit", "1", "-o", str(record / "sub")], "lies inside the run record", str(record))
    fails(["run", "--limit", "1", "-o", str(a_file / "runs")], str(a_file), "is not a directory")
    fails(["score", str(record), "-o", str(a_file)], str(a_file), "is not a directory")  # before grading
    fails(["score", str(record), "-o", str(record)], "is a run record")
    fails(["plot", str(record), "--out", str(record / "summary.json")], "lies inside the run record")
    fails(["plot", str(record), "--out", str(record / "curves.png")], "lies inside the run record")
    fails(["plot", str(record), "--out", str(runs)], "is a directory")
    fails(["report", str(runs), "--out", str(record / "report.html")], "lies inside the run record")
    assert checksums(tmp_path) == before


@pytest.mark.parametrize(("args", "says"), [
    (["--grader", ""], "--grader is empty"),
    (["--verifier", " ", "--grader", "countdown"], "--verifier is empty"),
    (["--grader", "countdown "], "whitespace"),
])
def test_bad_score_input_is_refused_before_grading(runs, tmp_path, args, says):
    fails(["score", str(bon(runs)), "-o", str(tmp_path / "rescored"), *args], says)
    assert not (tmp_path / "rescored").exists()


def test_a_directory_at_the_cache_path_is_one_line(tmp_path, tiny_llama):
    (tmp_path / "cache" / "generations.sqlite").mkdir(parents=True)
    fails(["run", "--policy", str(tiny_llama), "--limit", "1", "--backend", "hf", "-o", str(tmp_path)],
          "generations.sqlite is a directory", "move it aside")


def test_a_prompt_longer_than_the_context_is_refused_before_an_engine_starts(tmp_path, tiny_llama):
    line = fails(["run", "--policy", str(tiny_llama), "--limit", "2", "--backend", "hf", "--max-model-len", "64",
                  "-o", str(tmp_path)], "--max-tokens 256", "--max-model-len 64")
    assert re.match(r"error: example \S+: its prompt is \d+ tokens, which with", line), line
    for more in ([], ["--max-model-len", "8192"]):  # the model itself has 4,096 positions: no flag raises that
        fails(["run", "--policy", str(tiny_llama), "--limit", "2", "--backend", "hf", "--max-tokens", "4090", *more,
               "-o", str(tmp_path)], "exceeds the model's context of 4096 tokens (all its positions); lower "
                                     "--max-tokens")
    assert not list(tmp_path.glob("*/summary.json")) and not list(tmp_path.glob("*/engine.log"))


def test_an_unknown_backend_with_cached_samples_writes_no_record(tmp_path, tiny_llama):
    from test_pipeline import run
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    run(tmp_path, tiny_llama, tokenizer, lambda p, j: ("<answer>1 + 2</answer>", -1.0), limit=1)
    before = checksums(tmp_path)
    fails(["run", "--policy", str(tiny_llama), "--limit", "1", "--backend", "foo", "-o", str(tmp_path)],
          "unknown backend 'foo'")
    assert checksums(tmp_path) == before


@pytest.mark.parametrize(("field", "value", "says"), [
    ("metric", {"name": "accuracy", "value": "high"}, "metric.value is 'high', not float"),
    ("counts", {"examples": "12"}, "counts.examples is '12', not int"),
    ("timings", {"wall_s": "slow"}, "timings.wall_s is 'slow'"),
    ("config", [], "summary.json"),
    ("tokens", {"generated": 1.5, "per_example": 1, "per_sample": 1}, "tokens.generated is 1.5, not int"),
    ("curves", {"n": [1, "2"], "tokens": [], "pass@k": [], "accuracy": {}, "samplers": []}, "curves.n[1]"),
])
def test_a_wrong_typed_summary_is_skipped_by_the_leaderboard(runs, field, value, says):
    broken = bon(runs)
    summary = json.loads((broken / "summary.json").read_text())
    summary[field] = value
    (broken / "summary.json").write_text(json.dumps(summary))
    result = runner.invoke(app, ["leaderboard", "-o", str(runs), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert [row["run"] for row in json.loads(result.stdout)] == sorted(p.name for p in runs.iterdir() if p != broken)
    warning = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(warning) == 1 and warning[0].startswith("warning: skipping") and broken.name in warning[0]
    assert says in warning[0], warning[0]
    fails(["compare", str(broken), str(broken)], "not a readable run directory", says)
    assert runner.invoke(app, ["leaderboard", "-o", str(runs)]).exit_code == 0


def test_a_path_with_a_newline_stays_one_line(runs, tmp_path):
    odd = tmp_path / "odd\ndir"
    line = fails(["compare", str(odd), str(bon(runs))], "odd\\ndir", "not a readable run directory")
    assert "\x1b" not in line
    broken = runs / "broken\nrun [bold]x"
    broken.mkdir()
    (broken / "summary.json").write_text("[]")
    result = runner.invoke(app, ["leaderboard", "-o", str(runs), "--format", "json"])
    assert result.exit_code == 0, result.output
    (warning,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert warning.startswith("warning: skipping") and "broken\\nrun [bold]x" in warning
