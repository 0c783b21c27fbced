"""One error path (fast tier, the fake engine): a corrupt cache is set aside and the run generates afresh; a plugin's
failure, ``SystemExit`` included, is that plugin's; a run whose every grade errored exits non-zero and keeps its
record, and one where over a tenth errored warns."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from test_pipeline import registered, run, tokenizer  # noqa: F401  (tokenizer: the fixture)
from typer.testing import CliRunner

import harness
from harness import cli
from harness.cache import GenerationCache
from harness.errors import HarnessError, RunFailed
from harness.record import read_record
from harness.types import Completion

runner = CliRunner()
ANSWER = lambda p, j: ("<answer>1 + 2</answer>", -1.0)  # noqa: E731


# -- a corrupt or foreign cache ---------------------------------------------------------------------------------


def garbage(path: Path) -> None:
    path.write_bytes(os.urandom(3000))


def damaged_page(path: Path) -> None:
    """A real cache whose samples table's root page (page 2) is overwritten: opens, fails on the first look-up."""
    cache = GenerationCache(path)
    cache.put([(f"k{i}", Completion("x" * 100, 1, -1.0, "stop"), 0.0) for i in range(500)])
    cache.close()  # the last connection checkpoints the WAL into the file
    data = bytearray(path.read_bytes())
    page = 4096
    data[page:2 * page] = os.urandom(page)
    path.write_bytes(bytes(data))


def other_tables(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    db.close()


def other_columns(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE samples (key TEXT PRIMARY KEY, completion BLOB)")
    db.close()


@pytest.mark.parametrize("spoil", [garbage, damaged_page, other_tables, other_columns], ids=lambda f: f.__name__)
def test_a_corrupt_or_foreign_cache_is_set_aside_and_the_run_generates_afresh(tmp_path, tiny_llama, tokenizer,  # noqa: F811
                                                                              capsys, spoil):
    path = tmp_path / "cache" / "generations.sqlite"
    path.parent.mkdir()
    spoil(path)
    spoilt = path.read_bytes()
    records, summary, engine = run(tmp_path, tiny_llama, tokenizer, ANSWER, limit=2)
    assert engine.generated == 2 and len(records) == 2
    (aside,) = path.parent.glob("generations.sqlite.corrupt-*[0-9Z]")
    assert aside.read_bytes() == spoilt, "nothing deleted: the spoilt cache is kept beside the new one"
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and f"set aside as {aside.name}" in warnings[0] and "generating afresh" in warnings[0]
    again = GenerationCache(path)
    assert len(again) == 2  # the fresh cache holds the run's samples
    again.close()


def test_a_locked_cache_is_an_error_not_set_aside(tmp_path, monkeypatch):
    path = tmp_path / "generations.sqlite"
    GenerationCache(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    real = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: real(*a, **{**k, "timeout": 0.1}))
    try:
        with pytest.raises(HarnessError, match="cannot use the generation cache .* database is locked"):
            GenerationCache(path).put([("k", Completion("x", 1, -1.0, "stop"), 0.0)])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not list(tmp_path.glob("*.corrupt-*"))


# -- plugins fail as themselves ----------------------------------------------------------------------------------


class Listing:
    """A task whose ``examples`` is given per test."""

    verifier = "countdown"

    def __init__(self, name, examples):
        self.name, self._examples = name, examples

    def examples(self, split="test", limit=None, seed=0):
        return self._examples()


def raises():
    raise RuntimeError("data server down")


def exits():
    raise SystemExit(3)


def yields_a_dict():
    yield harness.Example("fine")
    yield {"prompt": "not an Example"}


def yields_a_bad_example():
    yield harness.Example(42, id="row-7")


@pytest.mark.parametrize(("examples", "says"), [
    (raises, "failed to list its examples: RuntimeError: data server down"),
    (exits, "failed to list its examples: SystemExit: 3"),
    (yields_a_dict, "yielded dict {'prompt': 'not an Example'} as example 1, not a harness.Example"),
    (yields_a_bad_example, "yielded example 0 (row-7) whose prompt is 42, not str"),
], ids=lambda x: getattr(x, "__name__", "says"))
def test_a_task_that_fails_is_one_line_naming_it(tmp_path, examples, says):
    with registered("task", Listing("listing", examples)):
        result = runner.invoke(cli.app, ["run", "--task", "listing", "-o", str(tmp_path)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"error: task 'listing' (plugin tests:listing) {says}"]


class ExitingFactory:
    """A verifier factory whose ``configure`` calls ``sys.exit``."""

    name = "exiting-factory"
    reference_free = True

    def configure(self, *args, **options):
        raise SystemExit("configure gave up")


def test_a_configure_that_exits_is_that_plugins_error(tmp_path):
    with registered("verifier", ExitingFactory()):
        result = runner.invoke(cli.app, ["run", "--grader", "exiting-factory:x", "-o", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == ("error: verifier exiting-factory:x from plugin tests:exiting-factory failed to "
                                     "configure: SystemExit: configure gave up")


class Exiting:
    name = "exiting"
    reference_free = True
    greedy = False
    uses_scores = False

    def score(self, example, completion):
        raise SystemExit(3)

    def select(self, candidates):
        raise SystemExit(4)


class NonNumeric:
    name = "non-numeric"
    reference_free = True

    def score(self, example, completion):
        return harness.Score(1.0, metrics={"length": "long"})


@pytest.mark.parametrize(("grader", "says"), [
    (Exiting(), "verifier 'exiting' failed: SystemExit: 3"),
    (NonNumeric(), "verifier 'non-numeric' failed: TypeError: a score's metric 'length' is 'long', not a finite "
                   "number"),
], ids=["SystemExit", "non-numeric-metrics"])
def test_a_grader_that_fails_on_every_sample_exits_non_zero_and_keeps_its_record(tmp_path, tiny_llama, tokenizer,  # noqa: F811
                                                                               grader, says):
    with registered("verifier", grader):
        with pytest.raises(RunFailed, match=f"^all 2 grades errored: {says}$"):
            run(tmp_path, tiny_llama, tokenizer, ANSWER, grader=grader.name, limit=2)
        (kept,) = [p.parent for p in tmp_path.glob("*/summary.json")]
        records, summary = read_record(kept)
        assert summary.counts.grader_errors == 2 and all(r.chosen.grade.error == says for r in records)
        result = runner.invoke(cli.app, ["run", "--policy", str(tiny_llama), "--grader", grader.name, "--limit", "2",
                                         "-o", str(tmp_path)])  # read back: the same verdict, the same exit code
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[-1] == f"error: all 2 grades errored: {says}"
    assert "Traceback" not in result.output


def test_a_sampler_that_exits_fails_its_examples_only(tmp_path, tiny_llama, tokenizer):  # noqa: F811
    with registered("sampler", Exiting()):
        records, summary, _ = run(tmp_path, tiny_llama, tokenizer, ANSWER, sampler="exiting", n=2, limit=2)
    assert summary.counts.selection_errors == 2
    assert all(r.selection_error == "sampler 'exiting' failed: SystemExit: 4" for r in records)


class Flaky:
    """Fails to check the problems whose prompt is in ``failing`` (an error verdict, as for a timeout)."""

    name = "flaky"
    reference_free = True

    def __init__(self, failing):
        self.failing = failing

    def score(self, example, completion):
        if example.prompt in self.failing:
            return harness.Score(0.0, error="checker timed out")
        return 1.0


@pytest.mark.parametrize(("limit", "warned"), [(5, True), (10, False)])
def test_over_a_tenth_of_grades_erroring_warns_in_one_line(tmp_path, tiny_llama, tokenizer, capsys, limit,  # noqa: F811
                                                          warned):
    first = next(iter(harness.get_task("countdown").examples(limit=1))).prompt
    with registered("verifier", Flaky({first})):
        _, summary, _ = run(tmp_path, tiny_llama, tokenizer, ANSWER, grader="flaky", limit=limit)
    assert summary.counts.grader_errors == 1
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    expected = [f"warning: 1 of {limit} grades errored: checker timed out"]
    assert warnings == (expected if warned else [])
