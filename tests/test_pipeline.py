"""The fast tier: the real run path (plan → generate → grade → select → aggregate → write → rescore → curves →
leaderboard) driven by a fake engine whose canned completions have known right answers, so a wrong choice or
a wrong formula fails. Real engines are exercised in test_engines.py and test_run.py."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import multiprocessing
import shutil
from pathlib import Path

import pytest
from conftest import ROOT
from fakes import FakeEngine
from rich.console import Console
from transformers import AutoTokenizer
from typer.testing import CliRunner

import harness
from harness import cli, leaderboard
from harness.cache import GenerationCache
from harness.compare import compare_runs
from harness.errors import HarnessError, RunFailed
from harness.metrics import accuracy, mean_score, micro
from harness.pipeline import RunConfig, examples_of, execute, plan, rescore
from harness.plugins import KINDS, registry
from harness.record import RunSummary, read_record
from harness.types import SCHEMA_VERSION, Completion, Score, data_members
from tasks.countdown import solve as countdown_solve

RECORDS = sorted((ROOT / "tests" / "fixtures").glob("records-v*/*"))  # written by earlier versions, kept as written


@pytest.fixture(scope="module")
def tokenizer(tiny_llama):
    return AutoTokenizer.from_pretrained(tiny_llama)


def run(out: Path, policy: Path, tokenizer, answer, **fields) -> tuple[list, dict, FakeEngine]:
    config = RunConfig(policy=str(policy), **fields)
    examples = examples_of(plan(config).task, config)
    engine = FakeEngine(tokenizer, answer, [e.prompt for e in examples])
    records, summary = read_record(execute(config, out, engine=engine))
    return records, summary, engine


@contextlib.contextmanager
def registered(kind: str, component):
    """A component registered in this process, as a plugin would, for one test."""
    reg = registry()
    reg.add(kind, component, f"tests:{component.name}")
    try:
        yield component
    finally:
        del reg.components[kind][component.name]
        del reg.sources[kind, component.name]


def solve(numbers: list[int], target: int) -> str:
    """A Countdown solution using every number once (TinyZero's rule), from the task's exact solver."""
    found = countdown_solve(numbers, target)
    assert found is not None, f"no solution for {numbers} -> {target}"
    return found


# -- selection and metrics, with answers known in advance ---------------------------------------------


def test_best_of_n_picks_the_known_best_and_the_numbers_follow(tmp_path, tiny_llama, tokenizer):
    examples = list(harness.get_task("countdown").examples(limit=6))
    solvable = {e.prompt: (solve(e.meta["numbers"], e.meta["target"]), i % 2 == 0) for i, e in enumerate(examples)}

    def answer(prompt: str, j: int) -> tuple[str, float]:
        solution, right = solvable[prompt]
        return [("no tags here", -0.1),                           # malformed, most confident: never best
                ("<answer>1 + 2</answer>", -0.2),                  # well-formed but wrong
                (f"<answer>{solution if right else '2 * 2'}</answer>", -9.0),  # right on even examples only
                ("<answer>(1 +", -0.3)][j]                         # truncated

    records, summary, _ = run(tmp_path, tiny_llama, tokenizer, answer, sampler="bon", n=4, limit=6)
    assert [r.selected for r in records] == [2, 1] * 3
    assert (summary.metric.name, summary.metric.value) == ("accuracy", 0.5)
    low, high = summary.metric.ci95
    assert 0.0 <= low < 0.5 < high <= 1.0
    assert summary.metrics["well_formed"].value == 1.0
    assert summary.counts.extraction_failures == 6 * 2 and summary.counts.credited == 3
    curves = summary.curves
    assert curves.accuracy["bon"][-1] == 0.5 and curves.accuracy["bon"][0] == pytest.approx(0.5 / 4)
    assert curves.pass_at_k[-1] == 0.5


def test_majority_picks_the_known_mode(tmp_path, tiny_llama, tokenizer, shared_data):
    data = shared_data / "gsm8k"
    golds = [json.loads(line)["answer"].split("####")[-1].strip().replace(",", "")
             for line in (data / "test.jsonl").read_text().splitlines()[:4]]
    task = harness.get_task("gsm8k").configure(data=str(data))
    prompts = [e.prompt for e in task.examples(limit=4)]
    plan_of = {0: ["g", "g", "w", "g", "x"], 1: ["w", "g", "g", "n", "g"], 2: ["w", "g", "w", "g", "w"],
               3: ["n", "n", "n", "n", "n"]}  # g: gold, w: gold + 1, x: gold + 2, n: no number at all

    def answer(prompt: str, j: int) -> tuple[str, float]:
        e = prompts.index(next(p for p in prompts if p == prompt))
        gold = int(golds[e])
        kind = plan_of[e][j]
        text = {"g": f"Final answer: {gold}", "w": f"Final answer: {gold + 1}", "x": f"Final answer: {gold + 2}",
                "n": "I do not know."}[kind]
        return text, -1.0 - j

    records, summary, _ = run(tmp_path, tiny_llama, tokenizer, answer, task="gsm8k", sampler="majority", n=5,
                              limit=4, task_args={"data": str(data)})
    chosen = [r.chosen.grade.answer for r in records]
    assert chosen[:3] == [golds[0], golds[1], str(int(golds[2]) + 1)]
    assert records[3].selected == 0  # nobody answered: the most confident sample (mean logprob)
    assert summary.metric.value == 0.5
    assert summary.metrics["strict"].value == 0.5 and summary.metrics["lenient"].value == 0.5


class Coin:
    """A win-rate-like grader: 'win' 1, 'tie' 0.5, 'loss' 0; its headline is a mean, so a tie counts half."""

    name = "coin"
    reference_free = True
    metrics = [mean_score("win_rate"), accuracy("wins")]

    def score(self, example, completion):
        return Score({"win": 1.0, "tie": 0.5, "loss": 0.0}[completion.split()[0]], answer=completion.split()[0])


def test_a_tie_counts_half_in_the_headline_and_in_the_curves(tmp_path, tiny_llama, tokenizer):
    outcomes = ["win", "tie", "tie", "loss"]
    prompts = [e.prompt for e in harness.get_task("countdown").examples(limit=4)]
    with registered("verifier", Coin()):
        records, summary, _ = run(tmp_path / "a", tiny_llama, tokenizer,
                                  lambda p, j: (outcomes[prompts.index(p)] + " x", -1.0), grader="coin", limit=4)
        assert summary.metric.name == "win_rate" and summary.metric.value == 0.5
        assert summary.metrics["wins"].value == 0.25
        assert [r.credit for r in records] == [1.0, 0.5, 0.5, 0.0]
        _, summary, _ = run(tmp_path / "b", tiny_llama, tokenizer, lambda p, j: (["tie x", "win x"][j], -1.0 - j),
                            grader="coin", sampler="majority", n=2, limit=4)
        assert summary.curves.accuracy["majority"][0] == pytest.approx(0.75)  # mean of 0.5 and 1


class Instructions:
    """IFEval-like: 'k/m' means k of m instructions followed; instruction-level accuracy is a micro-average."""

    name = "instructions"
    reference_free = True
    metrics = [accuracy("prompt_level"), micro("inst_level", "followed", "count")]

    def score(self, example, completion):
        k, m = map(int, completion.split()[0].split("/"))
        return Score(float(k == m), metrics={"followed": k / m, "count": float(m)})


def test_instruction_level_accuracy_is_micro_averaged(tmp_path, tiny_llama, tokenizer):
    answers = ["1/1 ok", "0/3 no", "2/4 half"]
    prompts = [e.prompt for e in harness.get_task("countdown").examples(limit=3)]
    with registered("verifier", Instructions()):
        _, summary, _ = run(tmp_path, tiny_llama, tokenizer, lambda p, j: (answers[prompts.index(p)], -1.0),
                            grader="instructions", limit=3)
    assert summary.metric.value == pytest.approx(1 / 3)
    assert summary.metrics["inst_level"].value == pytest.approx(3 / 8)  # macro would be 0.5
    low, high = summary.metrics["inst_level"].ci95
    assert low <= 3 / 8 <= high


# -- plugin failures are the plugin's ---------------------------------------------------------------


class Broken:
    name = "broken"
    greedy = False
    uses_scores = False

    def select(self, candidates):
        raise RuntimeError("boom")


class OutOfRange(Broken):
    name = "outofrange"

    def select(self, candidates):
        return 7


def test_a_broken_sampler_the_run_did_not_ask_for_loses_only_its_curve(tmp_path, tiny_llama, tokenizer):
    with registered("sampler", Broken()):
        records, summary, _ = run(tmp_path, tiny_llama, tokenizer, lambda p, j: ("<answer>1 + 2</answer>", -1.0),
                                  sampler="bon", n=2, limit=2)
    assert "broken" in summary.curves.skipped and "boom" in summary.curves.skipped["broken"]
    assert "bon" in summary.curves.samplers and len(records) == 2


@pytest.mark.parametrize(("sampler", "says"), [(Broken(), "RuntimeError: boom"), (OutOfRange(), "chose 7")])
def test_a_failing_sampler_is_contained_and_named(tmp_path, tiny_llama, tokenizer, sampler, says):
    with registered("sampler", sampler):
        records, summary, _ = run(tmp_path, tiny_llama, tokenizer, lambda p, j: ("x", -1.0), sampler=sampler.name,
                                  n=2, limit=2)
    assert all(r.selected is None and r.credit == 0.0 for r in records)
    assert all(f"sampler {sampler.name!r}" in r.selection_error and says in r.selection_error for r in records)
    assert summary.counts.selection_errors == 2 and summary.metric.value == 0.0


def test_a_misspelt_hook_is_reported_as_a_broken_plugin(monkeypatch):
    import importlib.metadata
    import types

    module = types.ModuleType("misspelt")
    module.register_verifier = harness.hookimpl(lambda: [])  # the hook is register_verifiers

    class EntryPoint:
        name, dist = "misspelt", None

        def load(self):
            return module

    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group: [*real(group=group), EntryPoint()] if group == "harness" else real(group=group))
    registry.cache_clear()
    try:
        problems = registry().problems
        assert any("misspelt" in p and "register_verifier" in p for p in problems), problems
        assert harness.get_verifier("countdown").name == "countdown"
    finally:
        monkeypatch.undo()
        registry.cache_clear()


# -- records: rescoring, resuming, the cache ----------------------------------------------------------


def test_rescoring_writes_a_new_record_and_never_touches_its_source(tmp_path, tiny_llama, tokenizer):
    _, summary, _ = run(tmp_path, tiny_llama, tokenizer, lambda p, j: ("<answer>1 + 2</answer>", -1.0), limit=2)
    source = tmp_path / summary.run_id
    before = {p.name: p.read_bytes() for p in source.iterdir() if p.is_file()}
    again = rescore(source, tmp_path)
    assert again != source and {p.name: p.read_bytes() for p in source.iterdir() if p.is_file()} == before
    _, new = read_record(again)
    assert new.rescored_from == str(source) and new.config.rescored_from == summary.run_id
    assert new.metric == summary.metric


def test_raising_n_generates_only_the_new_samples(tmp_path, tiny_llama, tokenizer):
    answer = lambda p, j: (f"<answer>{j} + 1</answer>", -1.0 - j)  # noqa: E731
    first, _, engine = run(tmp_path, tiny_llama, tokenizer, answer, sampler="bon", n=2, limit=3)
    assert engine.generated == 6 and not engine.closed  # an engine passed in is the caller's to close
    second, summary, engine = run(tmp_path, tiny_llama, tokenizer, answer, sampler="bon", n=4, limit=3)
    assert engine.generated == 6 and summary.cached_samples == 6
    assert [s.completion for r in second for s in r.samples[:2]] == [s.completion for r in first for s in r.samples]
    _, again, engine = run(tmp_path, tiny_llama, tokenizer, answer, sampler="bon", n=4, limit=3)
    assert engine.generated == 0 and again == summary  # the finished record is read back, never rewritten


def _numbers(summary: RunSummary) -> tuple:
    """What a record measured: the headline with its interval, every side metric, the counts and the curves."""
    curves = summary.curves and (summary.curves.n, summary.curves.tokens, summary.curves.pass_at_k,
                                 summary.curves.accuracy, summary.curves.method)
    return summary.metric, {k: m.value for k, m in summary.metrics.items()}, summary.counts, curves


@pytest.mark.parametrize("source", RECORDS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_records_of_every_earlier_version_read_back_and_rescore_to_their_numbers(tmp_path, source):
    written = json.loads((source / "summary.json").read_text())
    records, summary = read_record(source)
    assert summary.schema_version == SCHEMA_VERSION and summary.run_id == source.name
    assert summary.metric.name == written["metric"]["name"] and summary.metric.value == written["metric"]["value"]
    assert list(summary.metric.ci95) == written["metric"]["ci95"]
    side = {k: v["value"] if isinstance(v, dict) else v for k, v in written["metrics"].items()}  # v1: bare values
    assert {k: m.value for k, m in summary.metrics.items()} == side
    counts = {**written["counts"], "credited": written["counts"].get("credited", written["counts"].get("correct"))}
    assert {k: v for k, v in dataclasses.asdict(summary.counts).items() if k in counts} == \
        {k: v for k, v in counts.items() if k != "correct"}
    assert sum(r.credit for r in records) == summary.counts.credited
    if written["curves"]:
        assert summary.curves.accuracy == written["curves"]["accuracy"]
        assert summary.curves.pass_at_k == written["curves"]["pass@k"]

    # These records were graded when ``countdown`` took any subset of the numbers: that rule, named, gives their
    # numbers back; the strict rule credits no more.
    rule = ["--grader", "countdown:subset"] if summary.grader == "countdown" else []
    rule += ["--verifier", "countdown:subset"] if summary.verifier == "countdown" else []
    result = CliRunner().invoke(cli.app, ["score", str(source), "-o", str(tmp_path / "as-written"), *rule])
    assert result.exit_code == 0, result.output
    (again,) = [p.parent for p in (tmp_path / "as-written").glob("*/summary.json")]
    assert f"{summary.metric.name} {summary.metric.value:.3f}" in result.output
    _, new = read_record(again)
    headline, side, counts, curves = _numbers(new)
    assert (headline, {k: side[k] for k in summary.metrics}, counts, curves) == _numbers(summary)
    assert new.rescored_from == str(source) and new.policy_name == summary.policy_name
    if rule:
        result = CliRunner().invoke(cli.app, ["score", str(source), "-o", str(tmp_path / "strict")])
        assert result.exit_code == 0, result.output
        (strict,) = [read_record(p.parent)[1] for p in (tmp_path / "strict").glob("*/summary.json")]
        assert strict.grader == "countdown" and strict.counts.credited <= summary.counts.credited


def test_a_record_newer_than_the_harness_is_a_one_line_error(tmp_path):
    source = next(p for p in RECORDS if p.parent.name == f"records-v{SCHEMA_VERSION}")
    copy = shutil.copytree(source, tmp_path / "runs" / source.name)
    summary = json.loads((copy / "summary.json").read_text())
    (copy / "summary.json").write_text(json.dumps({**summary, "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(HarnessError, match=f"version {SCHEMA_VERSION + 1} record, newer than") as info:
        read_record(copy)
    assert "\n" not in str(info.value)
    assert leaderboard.rows(tmp_path / "runs") == []  # skipped with a warning, not a crash


def _writer(path: str, start: int) -> None:
    cache = GenerationCache(Path(path))
    for i in range(start, start + 300):
        cache.put([(f"k{i}", Completion(f"from {start}", 1, -1.0, "stop"), 0.0)])


@pytest.mark.slow
def test_two_processes_share_one_cache(tmp_path):
    path = str(tmp_path / "cache.sqlite")
    GenerationCache(Path(path)).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, start)) for start in (0, 150)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    cache = GenerationCache(Path(path))
    got = cache.get_many([f"k{i}" for i in range(450)])
    assert len(got) == len(cache) == 450
    assert {got[f"k{i}"][0].text for i in range(150, 300)} <= {"from 0", "from 150"}  # first writer kept


# -- components with arguments, and the one verification API -----------------------------------------


def test_component_specs_and_their_errors():
    with pytest.raises(HarnessError, match="takes no arguments"):
        harness.get_verifier("sympy:extra")
    with pytest.raises(HarnessError, match="unknown countdown rule 'extra'; choose one of: strict, subset"):
        harness.get_verifier("countdown:extra")
    with pytest.raises(HarnessError, match="NAME or NAME:ARG"):
        harness.get_verifier("countdown:")
    task = harness.get_task("countdown")
    assert task.configure(numbers="3").numbers == (3, 3)


class Logits:
    """A logit-scale verifier (a reward model, say): each verdict carries the logistic value and the raw reward."""

    name = "logits"
    reference_free = True

    def score(self, example, completion):
        return self.score_batch([(example, completion)])[0]

    def score_batch(self, pairs):
        return [Score.from_logit(float(len(text)) - 2) for _, text in pairs]


class Wild:
    name = "wild"
    reference_free = True

    def score(self, example, completion):
        if completion == "crash":
            raise ValueError("bad input")
        if completion == "made":
            return Score(3.0)  # raises where it is made: the plugin's own failure
        return {"big": 3.0, "nan": math.nan, "ok": 0.25, "word": "high"}[completion]


def test_a_score_is_valid_wherever_it_is_made_and_verify_contains_what_is_not():
    for bad, says in ((1.5, "outside"), (-0.1, "outside"), (math.nan, "NaN"), ("0.5", "not a score")):
        with pytest.raises((TypeError, ValueError), match=says):
            Score(bad)
    assert Score.from_logit(-1000.0).value == 0.0 and Score.from_logit(1000.0).value == 1.0
    assert Score.from_logit(math.nan) == Score(0.0, error="score is NaN")
    ex = harness.Example("q")
    scores = harness.verify(Logits(), [(ex, "ab"), (ex, "abcd")])
    assert [s.value for s in scores] == [0.5, pytest.approx(1 / (1 + math.exp(-2)))]
    assert [s.raw for s in scores] == [0.0, 2.0]
    wild = harness.verify(Wild(), [(ex, "ok"), (ex, "big"), (ex, "nan"), (ex, "word")])
    assert wild[0].value == 0.25 and wild[0].error is None
    assert "outside [0, 1]" in wild[1].error and "NaN" in wild[2].error and "not a score" in wild[3].error
    for bad in ("crash", "made"):
        crashed = harness.verify(Wild(), [(ex, "ok"), (ex, bad)])
        assert all("'wild' failed: ValueError" in s.error and s.value == 0.0 for s in crashed)


class Strict:
    """A plugin's object that notes every read of a member the contract does not declare (``harness.types``).

    It stands in for ``inner`` under another name; what its ``configure`` builds is strict too. A read
    of an undeclared member is noted (the core may contain a plugin's exception, so raising alone could
    pass unseen) and raises; a declared member the plugin lacks is an ``AttributeError`` as usual.
    """

    def __init__(self, inner, kind: str, reads: list, **overrides):
        contract, optional = KINDS[kind].contract, KINDS[kind].optional
        declared = {n for n in vars(contract) if not n.startswith("_")} | set(data_members(contract))
        declared |= {f.name for f in dataclasses.fields(optional)}
        object.__setattr__(self, "_state", (inner, kind, reads, overrides, declared))

    def __getattribute__(self, name):
        if name.startswith("__") or name == "_state":
            return object.__getattribute__(self, name)
        inner, kind, reads, overrides, declared = object.__getattribute__(self, "_state")
        if name not in declared:
            reads.append((kind, name))
            raise AssertionError(f"the core read {name!r} of a {kind}, which the contract does not declare")
        if name in overrides:
            return overrides[name]
        value = getattr(inner, name)
        if name == "configure":
            return lambda *args, **options: Strict(value(*args, **options), kind, reads, **overrides)
        return value


def test_the_core_reads_no_member_the_contract_does_not_declare(tmp_path, tiny_llama, tokenizer):
    reads: list = []
    strict = [("task", Strict(harness.get_task("countdown"), "task", reads, name="strict-task",
                              verifier="strict-verifier")),
              ("verifier", Strict(harness.get_verifier("countdown"), "verifier", reads, name="strict-verifier")),
              ("verifier", Strict(Judged(), "verifier", reads, name="strict-judged")),
              ("sampler", Strict(harness.get_sampler("bon"), "sampler", reads, name="strict-bon"))]
    answer = lambda p, j: (["<answer>1 + 2</answer>", "none"][j % 2], -1.0 - j)  # noqa: E731
    with contextlib.ExitStack() as stack:
        for kind, component in strict:
            stack.enter_context(registered(kind, component))
        _, summary, _ = run(tmp_path, tiny_llama, tokenizer, answer, task="strict-task", sampler="strict-bon",
                            n=2, limit=2)
        assert summary.verifier == "strict-verifier" and summary.curves is not None
        with pytest.raises(RunFailed, match="all 4 grades errored: verifier 'strict-judged' failed"):
            rescore(tmp_path / summary.run_id, tmp_path, grader="strict-judged")  # Judged reads no <answer> tags
        (again,) = [p.parent for p in tmp_path.glob("*/summary.json") if p.parent.name != summary.run_id]
        assert read_record(again)[1].judge.spec == Judged.judge  # the record is kept all the same
        assert len(leaderboard.rows(tmp_path)) == 2
        assert CliRunner().invoke(cli.app, ["plugins"]).exit_code == 0
    assert reads == []


def test_leaderboard_shows_each_side_metric_value(tmp_path, tiny_llama, tokenizer):
    run(tmp_path, tiny_llama, tokenizer, lambda p, j: ("<answer>1 + 2</answer>", -1.0), limit=2)
    (row,) = leaderboard.rows(tmp_path)
    assert row["well_formed"] == 1.0 and row["value"] == 0.0 and row["policy"] == Path(tiny_llama).name


class Judged(Coin):
    name = "judged"
    judge = "rm:/models/judge"


def test_a_judge_that_trained_the_policy_is_flagged(tmp_path, tiny_llama, tokenizer):
    from harness.policy import policies_dir

    manifest = policies_dir() / "judged-policy" / "policy.json"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    prompts = [e.prompt for e in harness.get_task("countdown").examples(limit=2)]
    try:
        with registered("verifier", Judged()):
            for reward, flagged in (("rm:/models/judge/", True), ("rm:/models/other", False)):
                manifest.write_text(json.dumps({"base": str(tiny_llama), "reward": reward}))
                config = RunConfig(policy="judged-policy", grader="judged", limit=2)
                engine = FakeEngine(tokenizer, lambda p, j: ("win x", -1.0), prompts)
                _, summary = read_record(execute(config, tmp_path / reward.replace("/", "_"), engine=engine))
                judge = summary.judge
                assert (judge.spec, judge.model, judge.trained_against) == ("rm:/models/judge", None, flagged)
                assert judge.independent == (False if flagged else "unknown")
                assert summary.policy.trained_against == reward
    finally:
        manifest.unlink()


def test_a_float32_run_is_another_run_and_never_reuses_bf16_samples(tmp_path, tiny_llama, tokenizer):
    from harness.engines import EngineOptions

    prompts = [e.prompt for e in harness.get_task("countdown").examples(limit=2)]
    dirs = set()
    for dtype in ("bfloat16", "float32"):
        config = RunConfig(policy=str(tiny_llama), limit=2)
        engine = FakeEngine(tokenizer, lambda p, j: ("<answer>1 + 2</answer>", -1.0), prompts)
        dirs.add(execute(config, tmp_path, EngineOptions(dtype=dtype), engine=engine))
        assert engine.generated == 2
    assert len(dirs) == 2 and all((d / "summary.json").exists() for d in dirs)


def test_a_policy_retrained_under_the_same_name_gets_a_new_record(tmp_path, tiny_llama, tokenizer):
    policy = shutil.copytree(tiny_llama, tmp_path / "policy")
    first, summary, engine = run(tmp_path / "runs", policy, tokenizer, lambda p, j: ("<answer>1 + 2</answer>", -1.0),
                                 limit=2)
    config = json.loads((policy / "config.json").read_text())
    (policy / "config.json").write_text(json.dumps({**config, "rms_norm_eps": 1e-5}))  # "retrained" in place
    second, again, engine = run(tmp_path / "runs", policy, tokenizer, lambda p, j: ("<answer>3 - 1</answer>", -1.0),
                                limit=2)
    assert engine.generated == 2, "new weights never reuse the old weights' samples"
    assert summary.run_id != again.run_id
    assert summary.policy.fingerprint != again.policy.fingerprint
    old, kept = read_record(tmp_path / "runs" / summary.run_id)
    assert kept == summary and [s.completion.text for r in old for s in r.samples] == ["<answer>1 + 2</answer>"] * 2


def test_leaderboard_puts_a_trained_policys_cost_beside_its_numbers(tmp_path, tiny_llama, tokenizer):
    from harness.policy import policies_dir

    manifest = policies_dir() / "costed" / "policy.json"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"name": "costed", "base": str(tiny_llama), "method": "sft", "steps": 100,
                                    "wall_seconds": 1234.5, "tokens": 56789}))
    prompts = [e.prompt for e in harness.get_task("countdown").examples(limit=2)]
    try:
        for policy in ("costed", str(tiny_llama)):
            engine = FakeEngine(tokenizer, lambda p, j: ("<answer>1 + 2</answer>", -1.0), prompts)
            execute(RunConfig(policy=policy, limit=2), tmp_path, engine=engine)
        by_policy = {r["policy"]: r for r in leaderboard.rows(tmp_path)}
        assert by_policy["costed"] | {"train_method": "sft", "train_steps": 100, "train_s": 1234.5,
                                      "train_tokens": 56789} == by_policy["costed"]
        assert "train_s" not in by_policy[Path(tiny_llama).name]
        assert "56,789" in leaderboard.render(tmp_path, "md")
    finally:
        manifest.unlink()


def test_the_leaderboard_says_where_a_sampler_did_as_well_as_pass_at_n(tmp_path):
    """Best-of-4 with the exact Countdown verifier chose a right answer wherever one was sampled (= pass@4); majority
    voting over 5 GSM8K samples did not."""
    for name in ("canned-countdown-bon-n4-19e76204", "canned-gsm8k-majority-n5-ac39c5c1"):
        shutil.copytree(ROOT / "tests" / "fixtures" / "records-v2" / name, tmp_path / name)
    marks = {row["sampler"]: row["=pass@N"] for row in leaderboard.rows(tmp_path)}
    assert marks == {"bon": "yes", "majority": "no"}


def test_the_leaderboard_tells_apart_runs_that_differ_only_in_an_option(tmp_path, tiny_llama, tokenizer):
    """Best-of-2 of one policy at two temperatures, and on the validation split: an ``options`` column names what
    differs; a table of default runs has no such column."""
    for split, temperature in (("test", None), ("test", 1.3), ("validation", None)):
        prompts = [e.prompt for e in harness.get_task("countdown").examples(split=split, limit=2)]
        engine = FakeEngine(tokenizer, lambda p, j: ("<answer>1 + 2</answer>", -1.0), prompts)
        execute(RunConfig(policy=str(tiny_llama), sampler="bon", n=2, limit=2, split=split, temperature=temperature),
                tmp_path / "runs", engine=engine)
    assert sorted(r["options"] or "" for r in leaderboard.rows(tmp_path / "runs")) == ["", "split=validation",
                                                                                        "temperature=1.3"]
    assert "| options |" in leaderboard.render(tmp_path / "runs", "md").splitlines()[0]
    piped = Console(file=io.StringIO(), width=80)  # not a terminal: the table keeps every column whole
    leaderboard.render(tmp_path / "runs", "table", piped)
    assert "split=validation" in piped.file.getvalue() and "temperature=1.3" in piped.file.getvalue()
    hot, cold = (next(r for r in leaderboard.rows(tmp_path / "runs") if r["options"] == o) for o in ("temperature=1.3",
                                                                                                    None))
    names = compare_runs(tmp_path / "runs" / hot["run"], tmp_path / "runs" / cold["run"]).names
    assert names == (f"{Path(tiny_llama).name}/bon temperature=1.3", f"{Path(tiny_llama).name}/bon")
    engine = FakeEngine(tokenizer, lambda p, j: ("<answer>1 + 2</answer>", -1.0),
                        [e.prompt for e in harness.get_task("countdown").examples(limit=2)])
    execute(RunConfig(policy=str(tiny_llama), limit=2), tmp_path / "plain", engine=engine)
    assert "options" not in leaderboard.render(tmp_path / "plain", "md").splitlines()[0]
