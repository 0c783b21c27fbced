"""harness compare over several runs a side (one per training seed): each pair, the mean, the pooled difference with
an interval that resamples seeds and examples, whether the claim holds, and the study's comparisons pooled.

Most records are canned: copies of a kept Countdown record whose examples' credits are set by hand, so every answer
is known without a model or an engine; the last tests compare records the pipeline wrote with the fake engine."""

from __future__ import annotations

import json
import math
import re
import shutil
import statistics
from pathlib import Path

import pytest
from conftest import ROOT
from fakes import FakeEngine
from rich.console import Console
from transformers import AutoTokenizer
from typer.testing import CliRunner

import harness
from harness.cli import app
from harness.compare import compare_pooled, compare_runs
from harness.errors import HarnessError
from harness.metrics import bootstrap_ci, t_interval, t_quantile
from harness.pipeline import RunConfig, examples_of, execute, plan
from harness.record import RunSummary, read_record
from harness.study import load
from harness.study_run import compare, show_table, write_study
from tasks.countdown import solve

SOURCE = ROOT / "tests" / "fixtures" / "records-v2" / "canned-countdown-greedy-n1-9851e53b"


def record(out: Path, name: str, right: set[int], problems: int = 20, prompt: str = "") -> Path:
    """A greedy Countdown record of ``problems`` examples (the kept record's, each made its own problem), credited 1
    on the examples in ``right``."""
    lines = [json.loads(line) for line in (SOURCE / "samples.jsonl").read_text().splitlines()]
    run = out / name
    run.mkdir(parents=True)
    examples = []
    for i in range(problems):
        line = dict(lines[i % len(lines)])
        line["prompt"] += f" (problem {i}){prompt}"
        line["credit"] = float(i in right)
        examples.append(json.dumps(line) + "\n")
    (run / "samples.jsonl").write_text("".join(examples))
    summary = json.loads((SOURCE / "summary.json").read_text())
    summary["counts"]["examples"] = problems
    summary["policy"]["name"] = name.split("@")[0]
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def runs(out: Path, policy: str, rights: list[set[int]], problems: int = 20) -> list[Path]:
    return [record(out, f"{policy}-s{i}@{len(rights)}x{problems}", right, problems) for i, right in enumerate(rights)]


B = set(range(8))  # the other policy: right on the first 8 of 20 problems, every seed


def test_the_pooled_difference_is_the_mean_of_the_seeds_and_holds_when_every_seed_agrees(tmp_path):
    """A right on the first 12, 13, 14 of 20: seed differences +0.20, +0.25, +0.30, pooled +0.25, A never worse."""
    a = runs(tmp_path, "rloo", [set(range(12)), set(range(13)), set(range(14))])
    b = runs(tmp_path, "sft", [B, B, B])
    result = compare_pooled(a, b)
    assert [p.difference for p in result.pairs] == pytest.approx([0.20, 0.25, 0.30])
    assert result.difference == pytest.approx(0.25) and result.means == pytest.approx((0.65, 0.40))
    assert result.spread == pytest.approx(statistics.stdev([0.20, 0.25, 0.30]))
    assert result.shared == 20 and result.unpaired == 0
    assert result.seeds_better == (3, 0) and result.better == (4 + 5 + 6, 0)
    low, high = result.ci95
    assert 0 < low < 0.25 < high
    half = 4.3027 * 0.05 / math.sqrt(3)  # t(0.975, 2 df) x sd / sqrt(seeds)
    assert result.t95 == pytest.approx((0.25 - half, 0.25 + half))
    assert "[+0.126, +0.374] (95% t over the 3 seeds' differences, 2 df)" in result.line()
    assert result.holds and "holds: rloo-s0,rloo-s1,rloo-s2/greedy > sft-s0,sft-s1,sft-s2/greedy holds on 3 of 3 " \
                              "seeds and the pooled interval and the t interval over seeds exclude 0" in result.line()
    assert result.names == ("rloo-s0,rloo-s1,rloo-s2/greedy", "sft-s0,sft-s1,sft-s2/greedy")
    assert [p.names for p in result.pairs] == [(f"rloo-s{i}/greedy", f"sft-s{i}/greedy") for i in range(3)]
    assert result.pairing == "the i-th run of each side together"


def test_one_run_a_side_is_the_paired_comparison_draw_for_draw(tmp_path):
    (a,), (b,) = runs(tmp_path, "rloo", [set(range(12))]), runs(tmp_path, "sft", [B])
    one = compare_pooled([a], [b])
    diffs = [float(i < 12) - float(i < 8) for i in range(20)]
    assert one.pairs == (compare_runs(a, b),) and one.spread is None and one.t95 is None
    assert one.ci95 == compare_runs(a, b).ci95 == bootstrap_ci(diffs)


def test_a_seed_of_the_other_sign_means_the_claim_does_not_hold(tmp_path):
    """Seeds +0.20, +0.25, -0.20: pooled +0.083, but one seed says the opposite."""
    a = runs(tmp_path, "rloo", [set(range(12)), set(range(13)), set(range(4))])
    result = compare_pooled(a, runs(tmp_path, "sft", [B, B, B]), names=("rloo", "sft"))
    assert result.difference == pytest.approx((0.20 + 0.25 - 0.20) / 3)
    assert result.seeds_better == (2, 1) and not result.holds
    assert "does not hold across seeds: rloo > sft holds on 2 of 3 seeds; the seeds disagree (1 not in favour)" \
        in result.line()


def test_one_seed_against_is_enough_to_refuse_the_claim_even_when_the_pooled_interval_excludes_zero(tmp_path):
    """Four seeds +0.40 and one -0.05 (right on 16 of 20 against 8, or on 7): pooled +0.31, clearly above 0."""
    a = runs(tmp_path, "rloo", [set(range(16))] * 4 + [set(range(7))])
    result = compare_pooled(a, runs(tmp_path, "sft", [B] * 5), names=("rloo", "sft"))
    assert result.difference == pytest.approx((4 * 0.40 - 0.05) / 5) and result.ci95[0] > 0
    assert not result.holds
    assert result.verdict() == "does not hold across seeds: rloo > sft holds on 4 of 5 seeds; the seeds disagree " \
                               "(1 not in favour)"


def test_seeds_that_agree_on_a_small_difference_do_not_hold_when_the_pooled_interval_includes_zero(tmp_path):
    """Each seed +0.05 (right on 3 problems the other misses, wrong on 2 it gets): every seed agrees, 20 problems
    cannot tell."""
    a = runs(tmp_path, "rloo", [{0, 1, 2}] * 3)
    b = runs(tmp_path, "sft", [{3, 4}] * 3)
    result = compare_pooled(a, b, names=("rloo", "sft"))
    assert result.difference == pytest.approx(0.05) and result.seeds_better == (3, 0)
    low, high = result.ci95
    assert low < 0 < high and not result.holds
    assert result.verdict() == "does not hold across seeds: rloo > sft holds on 3 of 3 seeds; the pooled interval " \
                               "includes 0"


def test_seeds_that_agree_but_spread_widely_do_not_hold_when_the_t_interval_over_seeds_includes_zero(tmp_path):
    """Seeds +0.30, +0.30, +0.80 (the other right on 4 of 20 problems, each seed right on those and more): no problem
    favours the other, so the bootstrap's lower bound is above 0, but three seeds this far apart cannot tell."""
    a = runs(tmp_path, "rloo", [set(range(10)), set(range(10)), set(range(20))])
    result = compare_pooled(a, runs(tmp_path, "sft", [set(range(4))] * 3), names=("rloo", "sft"))
    assert [p.difference for p in result.pairs] == pytest.approx([0.30, 0.30, 0.80])
    assert result.ci95[0] > 0 and result.seeds_better == (3, 0)
    half = 4.3027 * statistics.stdev([0.30, 0.30, 0.80]) / math.sqrt(3)
    assert result.t95 == pytest.approx((0.8 / 3 + 0.2 - half, 0.8 / 3 + 0.2 + half)) and result.t95[0] < 0
    assert not result.holds
    assert result.verdict() == "does not hold across seeds: rloo > sft holds on 3 of 3 seeds; the t interval over " \
                               "seeds includes 0"


def test_the_t_quantiles_are_student_s():
    """The table and the expansion beyond it, against scipy's exact quantile (where scipy is installed)."""
    stats = pytest.importorskip("scipy.stats")
    for df in [*range(1, 61), 100, 1000]:
        assert t_quantile(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-4), df
    assert t_interval([1.0]) != t_interval([1.0])  # NaN: one seed has no spread to measure
    assert t_interval([0.1, 0.3]) == pytest.approx((0.2 - 12.7062 * math.sqrt(0.02) / math.sqrt(2),
                                                   0.2 + 12.7062 * math.sqrt(0.02) / math.sqrt(2)))


def _width(result) -> float:
    return result.ci95[1] - result.ci95[0]


def test_the_pooled_interval_shrinks_with_more_seeds_and_more_problems(tmp_path):
    """The same spread of seed differences (+0.10, +0.30, +0.50 over B) on more seeds, then on more problems."""
    rights = [set(range(10)), set(range(14)), set(range(18))]
    three = compare_pooled(runs(tmp_path, "a", rights), runs(tmp_path, "b", [B] * 3))
    nine = compare_pooled(runs(tmp_path, "a", rights * 3), runs(tmp_path, "b", [B] * 9))
    assert nine.difference == pytest.approx(three.difference) == pytest.approx(0.30)
    assert three.ci95[0] < 0.30 < three.ci95[1] and nine.ci95[0] < 0.30 < nine.ci95[1]
    assert _width(nine) < _width(three)

    tiled = [{i + 20 * k for i in right for k in range(4)} for right in rights]
    more = compare_pooled(runs(tmp_path, "a", tiled, 80), runs(tmp_path, "b", [{i + 20 * k for i in B
                                                                                  for k in range(4)}] * 3, 80))
    assert more.difference == pytest.approx(0.30) and _width(more) < _width(three)


def test_seeds_that_repeat_one_run_keep_its_interval_since_every_run_shares_the_problem_draw(tmp_path):
    """Three seeds with the same answers carry no more evidence about the problems than one: the problems drawn are
    the same for every run, so the pooled interval is the one run's, draw for draw."""
    rights = [set(range(12))] * 3
    pooled = compare_pooled(runs(tmp_path, "a", rights), runs(tmp_path, "b", [B] * 3))
    one = compare_runs(*runs(tmp_path, "a", rights[:1]), *runs(tmp_path, "b", [B]))
    assert pooled.ci95 == pytest.approx(one.ci95) and pooled.spread == pytest.approx(0, abs=1e-12)


def test_one_run_against_several_pairs_with_each(tmp_path):
    a = runs(tmp_path, "rloo", [set(range(12)), set(range(13)), set(range(14))])
    base = record(tmp_path, "base", B)
    result = compare_pooled(a, [base])
    assert [p.names[1] for p in result.pairs] == ["base/greedy"] * 3 and result.difference == pytest.approx(0.25)
    assert result.pairing == "the one run of the second side with each of the first"


def _edit(run: Path, change) -> Path:
    summary = json.loads((run / "summary.json").read_text())
    change(summary)
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def test_runs_of_other_task_data_or_shapes_that_do_not_pair_are_refused_in_one_line(tmp_path):
    a = runs(tmp_path, "a", [B, B, B])
    b = runs(tmp_path, "b", [B, B, B])
    shots = _edit(record(tmp_path, "shots", B), lambda s: s["config"]["task_args"].update(shots="1"))
    metric = _edit(record(tmp_path, "metric", B), lambda s: s["metric"].update(name="win_rate"))
    other = record(tmp_path, "other", B, prompt=" of another data file")
    cases = [
        (([*a[:2], shots], b), r"runs of different task data \(task arguments \{\} against \{'shots': '1'\}\)"),
        ((a, [*b[:2], metric]), "reports accuracy and .* reports win_rate: nothing to compare"),
        ((a, [*b[:2], other]), "the 6 runs share no examples by content"),
        ((a, b[:2]), "3 runs against 2: give both sides the same number of runs"),
        (([a[0], a[1], a[0]], b), "is given twice on one side"),
        (([], b), "at least one run on each side"),
    ]
    for (first, second), says in cases:
        with pytest.raises(HarnessError, match=says) as info:
            compare_pooled(first, second)
        assert "\n" not in str(info.value)


def _sampler(name: str):
    def change(summary: dict) -> None:
        summary["sampler"] = summary["config"]["sampler"] = summary["components"]["sampler"]["spec"] = name
    return change


def test_runs_pooled_into_one_claim_must_share_sampler_n_and_grader(tmp_path):
    """Within a side or across a pair: a claim pooled over seeds is about the policy; two runs alone may differ."""
    a = runs(tmp_path, "a", [B, B, B])
    b = runs(tmp_path, "b", [B, B, B])
    bon = _edit(record(tmp_path, "bon", B), _sampler("bon"))
    n4 = _edit(record(tmp_path, "n4", B), lambda s: s["config"].update(n=4))
    subset = _edit(record(tmp_path, "subset", B), lambda s: s["components"]["grader"].update(spec="countdown:subset"))
    args = _edit(record(tmp_path, "args", B), lambda s: s["config"]["grader_args"].update(strict="1"))
    cases = [
        (([*a[:2], bon], b), "differ in sampler ('greedy' against 'bon')"),  # within the first side
        ((a, [*b[:2], n4]), "differ in n (1 against 4)"),  # across the third pair
        (([bon], b), "differ in sampler ('bon' against 'greedy')"),  # one run against each of the other side
        ((a, [*b[:2], subset]), "differ in grader ('countdown' against 'countdown:subset')"),
        ((a, [args, *b[1:]]), "differ in grader ('countdown' against \"countdown {'strict': '1'}\")"),
    ]
    for (first, second), says in cases:
        with pytest.raises(HarnessError, match=re.escape(says)) as info:
            compare_pooled(first, second)
        assert "\n" not in str(info.value) and "may differ only in policy and seed" in str(info.value)
    assert compare_runs(bon, a[0]).difference == 0  # one pair: best-of-N against greedy is a question of its own


def invoke(*args: str | Path):
    return CliRunner().invoke(app, ["compare", *map(str, args)])


def test_the_cli_takes_each_sides_runs_and_prints_each_pair_and_the_pooled_verdict(tmp_path):
    a = runs(tmp_path, "rloo", [set(range(12)), set(range(13)), set(range(4))])
    b = runs(tmp_path, "sft", [B, B, B])
    result = invoke(*a, "--vs", *b)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["pair 1", "pair 2", "pair 3", "pooled"]
    assert "rloo-s2/greedy 0.200 vs sft-s2/greedy 0.400" in lines[2]
    assert "per seed +0.200, +0.250, -0.200 (mean +0.083" in lines[3] and "does not hold across seeds" in lines[3]

    data = json.loads(invoke(*a, "--vs", *b, "--format", "json").stdout)
    assert data["difference"] == pytest.approx(0.25 / 3) and data["holds"] is False and len(data["pairs"]) == 3
    assert data["pairs"][2]["difference"] == pytest.approx(-0.2)
    pooled = compare_pooled(a, b)
    assert data["verdict"] == pooled.verdict() and lines[3].endswith(data["verdict"])
    assert data["t95"] == pytest.approx(list(t_interval([0.2, 0.25, -0.2])))

    two = invoke(a[0], b[0])  # A B: the one paired line, as before
    assert two.exit_code == 0 and two.stdout.splitlines() == [compare_runs(a[0], b[0]).line()]


@pytest.mark.parametrize(("args", "says"), [
    (["A"], "compare takes two runs (A B)"),
    (["A", "B", "C"], "got 3 runs and no --vs"),
    (["A", "--vs"], "a side has no run"),
    (["A", "--vs", "B", "--vs", "C"], "--vs separates the two sides"),
    (["A", "B", "--bogus"], "no such option '--bogus'"),
    (["A", "B", "--format", "xml"], "--format 'xml' is not one of text, json"),
])
def test_a_bad_compare_invocation_is_one_line(args, says):
    result = invoke(*args)
    lines = result.stderr.splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], lines


def test_the_study_reports_each_seed_and_the_claim_pooled_over_seeds(tmp_path):
    text = ("seeds: [0, 1, 2]\npolicies:\n  base: smollm2\n  sft: {train: sft}\n  rloo: {train: rloo, base: sft}\n"
            "runs:\n  - {policy: [base, sft, rloo], sampler: greedy, limit: 20}\n"
            "compare:\n  - {a: rloo, b: sft}\n  - {a: sft, b: base}\n")
    path = tmp_path / "study.yaml"
    path.write_text(text)
    study = load(path)
    study.output = tmp_path / "runs"
    right = {"base": [B], "sft": [B, B, B], "rloo": [set(range(12)), set(range(13)), set(range(4))]}
    for cell in study.runs:
        record(study.output, cell.config.policy, right[cell.label][cell.seed or 0])
        cell.status, cell.record = "done", cell.config.policy
    compared = compare(study)
    assert [(c["compare"], c["a"], c["b"], c["seed"]) for c in compared.seeds] == [
        *((1, f"rloo-s{s}", f"sft-s{s}", s) for s in range(3)), *((2, f"sft-s{s}", "smollm2", s) for s in range(3))]
    rloo, sft = compared.pooled
    assert rloo["seeds"] == [0, 1, 2] and rloo["difference"] == pytest.approx(0.25 / 3) and not rloo["holds"]
    assert "rloo > sft holds on 2 of 3 seeds" in rloo["line"]
    assert sft["difference"] == 0 and sft["pairing"] == "the one run of the second side with each of the first"
    assert "does not hold: sft and base do not differ pooled" in sft["line"]

    console = Console(record=True, width=400)
    show_table(study, study.output, compared, console)
    shown = console.export_text()
    assert "compare[1] pooled over seeds 0, 1, 2 countdown greedy n=1: accuracy: rloo 0.483 vs sft 0.400" in shown
    assert "compare[1] seed 2 countdown greedy n=1: accuracy: rloo-s2/greedy 0.200" in shown
    saved = json.loads(write_study(study, "local", compared).read_text())
    assert [p["difference"] for p in saved["pooled"]] == [rloo["difference"], 0.0]
    assert len(saved["comparisons"]) == 6


def two_seed_study(tmp_path):
    """sft and rloo on two training seeds, greedy on 20 problems, rloo compared with sft; records under runs/."""
    path = tmp_path / "study.yaml"
    path.write_text("seeds: [0, 1]\npolicies:\n  sft: {train: sft}\n  rloo: {train: rloo, base: sft}\n"
                    "runs:\n  - {policy: [sft, rloo], sampler: greedy, limit: 20}\ncompare:\n  - {a: rloo, b: sft}\n")
    study = load(path)
    study.output = tmp_path / "runs"
    return study


def test_a_study_s_seed_shows_the_difference_its_pooled_claim_pools(tmp_path):
    """rloo's seed 1 answered 16 of the 20 problems: the claim is pooled on those 16, and seed 0's entry is its pair
    there (right on 12 against 8 of 16: +0.25), not its two runs' own 20 problems (+0.20)."""
    study = two_seed_study(tmp_path)
    for cell in study.runs:
        problems = 16 if cell.label == "rloo" and cell.seed == 1 else 20
        right = set(range(12)) if cell.label == "rloo" else B
        cell.status, cell.record = "done", record(study.output, cell.config.policy, right, problems).name
    compared = compare(study)
    (pooled,) = compared.pooled
    assert pooled["shared"] == 16 and pooled["unpaired"] == 4
    for seed, pair in zip(compared.seeds, pooled["pairs"], strict=True):
        assert seed["basis"] == "the examples every run of the claim answered" and seed["shared"] == 16
        assert {k: seed[k] for k in pair} == pair and seed["difference"] == pytest.approx(0.25)
    own = compare_runs(study.output / compared.seeds[0]["runs"][0], study.output / compared.seeds[0]["runs"][1])
    assert own.difference == pytest.approx(0.20)  # what the seed would have shown on its own pair's examples
    assert pooled["verdict"] == compare_pooled(*([study.output / r for r in side] for side in zip(
        *pooled["runs"], strict=True)), names=("rloo", "sft")).verdict()


def test_a_study_pools_only_when_every_seed_ran(tmp_path):
    study = two_seed_study(tmp_path)
    for cell in study.runs:
        if cell.seed == 0:
            cell.status, cell.record = "done", record(study.output, cell.config.policy, B).name
    compared = compare(study)
    assert [c.get("note") for c in compared.seeds] == [None, "not run"]
    assert compared.seeds[0]["basis"] == "the examples both runs answered"
    assert compared.pooled[0]["note"] == "not pooled: 1 of 2 seeds not run"


# -- two runs the real pipeline wrote (the fake engine's canned completions) ------------------------------------------


@pytest.fixture(scope="module")
def tokenizer(tiny_llama):
    return AutoTokenizer.from_pretrained(tiny_llama)


def run(out: Path, policy: Path, tokenizer, answer, **fields) -> tuple[list, RunSummary, FakeEngine]:
    config = RunConfig(policy=str(policy), **fields)
    engine = FakeEngine(tokenizer, answer, [e.prompt for e in examples_of(plan(config).task, config)])
    records, summary = read_record(execute(config, out, engine=engine))
    return records, summary, engine


def test_compare_pairs_the_examples_two_runs_share(tmp_path, tiny_llama, tokenizer):
    """A (right on the first 6 of 8) vs B (right on the even ones): +0.25, better on 3 against 1, paired CI."""
    examples = list(harness.get_task("countdown").examples(limit=8))
    index = {e.prompt: i for i, e in enumerate(examples)}

    def answers(right):
        def answer(prompt: str, j: int) -> tuple[str, float]:
            e = examples[index[prompt]]
            return (f"<answer>{solve(e.meta['numbers'], e.meta['target']) if right(index[prompt]) else '1'}</answer>",
                    -1.0)
        return answer

    run(tmp_path / "a", tiny_llama, tokenizer, answers(lambda i: i < 6), limit=8)
    run(tmp_path / "b", tiny_llama, tokenizer, answers(lambda i: i % 2 == 0), limit=8)
    (a,), (b,) = [p.parent for p in (tmp_path / "a").glob("*/summary.json")], \
        [p.parent for p in (tmp_path / "b").glob("*/summary.json")]
    result = compare_runs(a, b)
    diffs = [float(i < 6) - float(i % 2 == 0) for i in range(8)]
    assert result.metric == "accuracy" and result.shared == 8
    assert result.means == (0.75, 0.5) and result.difference == 0.25 and result.better == (3, 1)
    assert result.ci95 == bootstrap_ci(diffs) and result.ci95[0] < 0.25 < result.ci95[1]
    assert compare_runs(b, a).difference == -0.25

    train = tmp_path / "train"
    run(train, tiny_llama, tokenizer, lambda p, j: ("<answer>1</answer>", -1.0), limit=2, split="train")
    (c,) = [p.parent for p in train.glob("*/summary.json")]
    with pytest.raises(HarnessError, match=r"different task data \(split 'test' against 'train'\)"):
        compare_runs(a, c)
    c = shutil.copytree(b, tmp_path / "c" / b.name)
    summary = json.loads((c / "summary.json").read_text())
    summary["metric"]["name"] = "win_rate"
    (c / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(HarnessError, match="reports accuracy and .* reports win_rate"):
        compare_runs(a, c)


def _edit_examples(run_dir: Path, out: Path, change) -> Path:
    """A copy of a record whose examples ``change(i, line)`` edits (ids kept), digests dropped as in old records."""
    copy = shutil.copytree(run_dir, out / run_dir.name)
    lines = [json.loads(line) for line in (copy / "samples.jsonl").read_text().splitlines()]
    for i, line in enumerate(lines):
        line.pop("digest")
        change(i, line)
    (copy / "samples.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return copy


def test_compare_pairs_by_content_not_by_id(tmp_path, tiny_llama, tokenizer):
    """The same ids over other problems (GSM8K numbers its rows) never pair; a record without digests gets them
    computed on read, and the line says how many examples paired."""
    _, summary, _ = run(tmp_path, tiny_llama, tokenizer, lambda p, j: ("<answer>1</answer>", -1.0), limit=6)
    a = tmp_path / summary.run_id
    records, _ = read_record(a)
    assert all(r.digest == r.example.digest and len(r.digest) == 16 for r in records)
    assert len({r.digest for r in records}) == 6

    def other_problem(i, line):
        if i % 2:
            line["prompt"] += " (another problem under the same id)"

    b = _edit_examples(a, tmp_path / "b", other_problem)
    assert [r.example.id for r in read_record(b)[0]] == [r.example.id for r in records]
    result = compare_runs(a, b)
    assert result.shared == 3 and result.unpaired == (3, 3)
    assert "on 3 examples paired by content (3 and 3 unpaired)" in result.line()
    same = _edit_examples(a, tmp_path / "same", lambda i, line: None)  # no digest stored: computed when read
    assert compare_runs(a, same).shared == 6
    meta = _edit_examples(a, tmp_path / "meta", lambda i, line: line["meta"].update(target=-1))
    with pytest.raises(HarnessError, match="share no examples by content"):
        compare_runs(a, meta)
    result = CliRunner().invoke(app, ["compare", str(a), str(b)])
    assert result.exit_code == 0 and "3 examples paired by content" in result.stdout


def test_compare_refuses_runs_of_other_task_arguments_in_one_line(tmp_path, tiny_llama, tokenizer):
    answer = lambda p, j: ("<answer>1</answer>", -1.0)  # noqa: E731
    _, first, _ = run(tmp_path, tiny_llama, tokenizer, answer, limit=2, task_args={"shots": "0"})
    _, second, _ = run(tmp_path, tiny_llama, tokenizer, answer, limit=2, task_args={"shots": "1"})
    with pytest.raises(HarnessError, match=r"different task data \(task arguments \{'shots': '0'\} against "
                                           r"\{'shots': '1'\}\)") as info:
        compare_runs(tmp_path / first.run_id, tmp_path / second.run_id)
    assert "\n" not in str(info.value)
