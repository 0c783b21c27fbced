"""The Countdown task and verifier: generation, splits, options, data files, the solver, both rules, hostile input."""

from __future__ import annotations

import itertools
import json
import random
import re
import time
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import harness
import tasks.countdown
from harness.splits import content_hash
from plugins.countdown import CountdownVerifier
from tasks.countdown import SHOT, CountdownTask, canonical, solve

VERIFIER = CountdownVerifier()
SUBSET = VERIFIER.configure("subset")
EXAMPLE = harness.Example(prompt="", meta={"numbers": [44, 19, 35], "target": 98})


def grade(answer: str, example: harness.Example = EXAMPLE) -> harness.Score:
    return VERIFIER.score(example, f"<think> working </think>\n<answer>{answer}</answer>")


def keys(examples: list[harness.Example]) -> set[str]:
    return {canonical(e.meta["numbers"], e.meta["target"]) for e in examples}


def reachable(numbers: list[int]) -> set[Fraction]:
    """Every value of + - * / over all of ``numbers``, each once: a brute force independent of ``solve``."""
    if len(numbers) == 1:
        return {Fraction(numbers[0])}
    values = set()
    for i, j in itertools.permutations(range(len(numbers)), 2):
        rest = [n for k, n in enumerate(numbers) if k not in (i, j)]
        a, b = Fraction(numbers[i]), Fraction(numbers[j])
        for c in {a + b, a - b, a * b, *([a / b] if b else [])}:
            values |= reachable([*rest, c])
    return values


def strictly_correct(example: harness.Example, answer: str) -> bool:
    return grade(answer, example).value == 1.0 and grade(answer, example).metrics["used_all"] == 1.0


# -- Task ---------------------------------------------------------------------------------


def test_same_seed_same_examples_and_other_seed_differs() -> None:
    task = CountdownTask()
    first = list(task.examples("test", limit=50, seed=3))
    assert first == list(task.examples("test", limit=50, seed=3))
    assert [e.id for e in first] != [e.id for e in task.examples("test", limit=50, seed=4)]
    assert len(first) == 50 and len({e.id for e in first}) == 50


@pytest.mark.parametrize("count", [2, 3, 4, 5, 6])
def test_every_stored_solution_uses_every_number_exactly_once(count: int) -> None:
    task = CountdownTask().configure(numbers=count)
    for example in task.examples("train", limit=100, seed=count):
        assert len(example.meta["numbers"]) == count
        assert example.reference == example.meta["solution"]
        assert strictly_correct(example, example.meta["solution"]), example


def test_train_validation_and_test_are_disjoint() -> None:
    task = CountdownTask()
    train = keys(list(task.examples("train", limit=2000)))
    validation = keys(list(task.examples("validation", limit=200)))
    test = keys(list(task.examples("test", limit=200)))
    assert (len(train), len(validation), len(test)) == (2000, 200, 200)
    assert not train & validation and not train & test and not validation & test


def test_the_validation_split_leaves_the_test_problems_as_they_were() -> None:
    """The test split is still the first problems the generator draws whose hash is 0 modulo 10."""
    for options in ({}, {"numbers": "3", "shots": "0"}):
        task = CountdownTask().configure(**options)
        before: list[str] = []
        for numbers, target, _ in filter(None, task._generate(random.Random(0))):
            key = canonical(numbers, target)
            if content_hash(key) % 10 == 0 and key not in before:
                before.append(key)
            if len(before) == 300:
                break
        assert [canonical(e.meta["numbers"], e.meta["target"]) for e in task.examples("test", limit=300)] == before


@pytest.mark.slow
def test_limit_none_gives_the_default_test_and_validation_sizes() -> None:
    assert len(list(CountdownTask().examples())) == 1024
    assert len(list(CountdownTask().examples("validation"))) == 1024


def test_difficulty_knobs_are_honoured() -> None:
    options = {"numbers": "4", "min_number": "5", "max_number": "20", "min_target": "50", "max_target": "60"}
    task = CountdownTask().configure(**options)
    examples = list(task.examples("train", limit=100))
    assert len(examples) == 100
    for e in examples:
        assert len(e.meta["numbers"]) == 4
        assert all(5 <= n <= 20 for n in e.meta["numbers"])
        assert 50 <= e.meta["target"] <= 60
    mixed = {len(e.meta["numbers"]) for e in CountdownTask().examples("train", limit=100)}
    assert mixed == {3, 4}


def test_tiny_problem_space_ends_instead_of_looping() -> None:
    task = CountdownTask().configure(numbers=3, min_number=1, max_number=2, min_target=10, max_target=100)
    assert list(task.examples("train", limit=10)) == []


def test_prompt_has_tinyzero_wording_and_one_shot_by_default() -> None:
    one = next(CountdownTask().examples(limit=1))
    zero = next(CountdownTask().configure(shots="0").examples(limit=1))
    numbers, target = zero.meta["numbers"], zero.meta["target"]
    assert zero.prompt.startswith(f"Using the numbers {numbers}, create an equation that equals {target}.")
    assert zero.prompt.endswith("for example <answer> (1 + 2) / 3 </answer>.")
    assert one.prompt == zero.prompt and one.shots == (SHOT,) and zero.shots == ()
    assert one.id == zero.id == f"cd-{'-'.join(map(str, numbers))}-{target}"


def test_the_worked_example_is_itself_correct() -> None:
    shot = harness.Example(prompt="", meta={"numbers": [25, 3, 7], "target": 46})
    assert VERIFIER.score(shot, SHOT[1]).value == 1.0


def test_configure_coerces_strings_and_rejects_bad_options() -> None:
    base = CountdownTask()
    task = base.configure(numbers="3-4", max_number="50", shots="0")
    assert (task.numbers, task.max_number, task.shots) == ((3, 4), 50, 0)
    assert base.max_number == 99  # a copy, not a mutation
    with pytest.raises(harness.HarnessError, match=r"option 'size'; choose one of: data, max_number"):
        base.configure(size=3)
    for bad in ({"max_number": "x"}, {"numbers": "1"}, {"numbers": "4-3"}, {"shots": 2}, {"min_number": 0}):
        with pytest.raises(harness.HarnessError):
            base.configure(**bad)


def test_unknown_split_lists_the_valid_ones() -> None:
    with pytest.raises(harness.HarnessError, match="unknown split 'dev'; choose one of: test, train, validation"):
        CountdownTask().examples("dev")


def test_local_jsonl_rows_load_split_and_skip_the_unsolvable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [{"nums": [i, i + 1, i + 2], "target": 10 + i % 50 if i % 3 else 3 * i + 3} for i in range(1, 301)]
    rows += [{"nums": [5, 6, 7, 8], "target": 26}, rows[0]]  # a 4-number row and a duplicate
    path = tmp_path / "countdown.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    solvable = {canonical(r["nums"], r["target"]) for r in rows if r["target"] in reachable(r["nums"])}
    unsolvable = {canonical(r["nums"], r["target"]) for r in rows} - solvable
    assert solvable and unsolvable
    warnings: list[str] = []
    monkeypatch.setattr(tasks.countdown, "warn", warnings.append)
    task = CountdownTask().configure(data=str(path))
    by_split = {split: list(task.examples(split)) for split in ("train", "validation", "test")}
    examples = [e for split in by_split.values() for e in split]
    assert keys(examples) == solvable and len(examples) == len(solvable)
    assert all(by_split.values())
    expected = {split: sum(tasks.countdown.split_of(k) == split for k in unsolvable) for split in by_split}
    said = {m[2]: int(m[1]) for m in re.finditer(r"skipped (\d+) (\w+) problems", " ".join(warnings))}
    assert said == {split: n for split, n in expected.items() if n} and len(warnings) == len(said)
    assert list(task.examples("train")) == by_split["train"] and len(warnings) == len(said)  # said once a process
    assert all(e.reference == e.meta["solution"] and strictly_correct(e, e.reference) for e in examples)
    four = next(e for e in examples if e.id == "cd-5-6-7-8-26")
    assert (four.meta["numbers"], four.meta["target"]) == ([5, 6, 7, 8], 26)
    three = task.configure(numbers=3)
    assert sum(len(list(three.examples(split))) for split in by_split) == len(solvable) - 1
    assert len(list(task.examples("train", limit=7))) == 7


def test_bad_data_files_are_one_line_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(harness.HarnessError, match=re.escape(str(missing))) as error:
        CountdownTask().configure(data=str(missing)).examples()
    assert "\n" not in str(error.value)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"nums": [1, 2, 3], "target": 6}\n{"nums": "1 2 3"}\n')
    with pytest.raises(harness.HarnessError, match=r"broken\.jsonl row 2"):
        list(CountdownTask().configure(data=str(broken)).examples("train"))


# -- Verifier -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "value", "well_formed", "used_all"),
    [
        ("44 + 19 + 35", 1.0, 1.0, 1.0),
        ("(35 + 44) + 19 = 98", 1.0, 1.0, 1.0),
        ("44 + 19 + 35 = 97", 0.1, 1.0, 1.0),  # a false claim
        ("44 + 19 - 35", 0.1, 1.0, 1.0),  # wrong value
        ("44 + 44 + 10", 0.1, 1.0, 0.0),  # number reused
        ("49 + 49", 0.1, 1.0, 0.0),  # number not in the list
        ("44 + 19 +", 0.0, 0.0, 0.0),  # unparseable
        ("-44 + 19", 0.0, 0.0, 0.0),  # unary minus is outside the grammar
        ("44.0 + 19 + 35", 0.0, 0.0, 0.0),
        ("44 ** 2", 0.0, 0.0, 0.0),
        ("True + 97", 0.0, 0.0, 0.0),
        ("x + 1", 0.0, 0.0, 0.0),
        ("", 0.0, 0.0, 0.0),
    ],
)
def test_verifier_table(answer: str, value: float, well_formed: float, used_all: float) -> None:
    score = grade(answer)
    metrics = {"well_formed": well_formed, "used_all": used_all}
    assert (score.value, score.metrics, score.answer) == (value, metrics, answer.strip())
    assert SUBSET.score(EXAMPLE, f"<answer>{answer}</answer>") == score  # no subset of these reaches 98


SMALL = harness.Example(prompt="", meta={"numbers": [2, 3, 5], "target": 5})


@pytest.mark.parametrize(
    ("answer", "strict", "subset", "used_all"),
    [
        ("5 * (3 - 2)", 1.0, 1.0, 1.0),
        ("5", 0.1, 1.0, 0.0),  # the target is one of the numbers
        ("2 + 3", 0.1, 1.0, 0.0),  # two of the three
        ("3 + 2 = 5", 0.1, 1.0, 0.0),
        ("2 + 3 + 5", 0.1, 0.1, 1.0),  # every number, wrong value
        ("5 + 5 - 5", 0.1, 0.1, 0.0),  # a number reused is wrong under both
        ("2 + 3 = 6", 0.1, 0.1, 0.0),
    ],
)
def test_strict_rule_needs_every_number_and_subset_rule_any_of_them(
    answer: str, strict: float, subset: float, used_all: float
) -> None:
    completion = f"<answer>{answer}</answer>"
    for verifier, value in ((VERIFIER, strict), (SUBSET, subset)):
        score = verifier.score(SMALL, completion)
        assert (score.value, score.metrics) == (value, {"well_formed": 1.0, "used_all": used_all}), verifier


def test_a_repeated_number_counts_as_often_as_it_is_given() -> None:
    eight = harness.Example(prompt="", meta={"numbers": [5, 5, 3], "target": 8})
    seven = harness.Example(prompt="", meta={"numbers": [5, 5, 3], "target": 7})
    for example, answer, strict, subset, used_all in (
        (eight, "5 + 3", 0.1, 1.0, 0.0),  # one 5 left over
        (eight, "5 + 3 * 5 / 5", 0.1, 0.1, 0.0),  # three 5s
        (seven, "5 + 5 - 3", 1.0, 1.0, 1.0),
    ):
        for verifier, value in ((VERIFIER, strict), (SUBSET, subset)):
            score = verifier.score(example, f"<answer>{answer}</answer>")
            assert (score.value, score.metrics["used_all"]) == (value, used_all), (answer, verifier)


def test_rule_is_named_by_spec_or_option_and_an_unknown_rule_is_one_line() -> None:
    from harness.plugins import Spec, registry

    assert harness.get_verifier("countdown") == harness.get_verifier("countdown:strict") == VERIFIER
    assert harness.get_verifier("countdown:subset") == SUBSET
    assert registry().build(Spec.parse("verifier", "countdown", {"rule": "subset"})) == SUBSET
    assert harness.get_verifier(CountdownTask().verifier).rule == "strict"
    for spec in ("countdown:lenient", "countdown:"):
        with pytest.raises(harness.HarnessError) as error:
            harness.get_verifier(spec)
        assert "\n" not in str(error.value)
    with pytest.raises(harness.HarnessError, match="unknown countdown rule 'lenient'; choose one of: strict, subset"):
        harness.get_verifier("countdown:lenient")


def test_rescoring_a_record_under_each_rule_records_the_rule(tmp_path: Path) -> None:
    from harness.pipeline import rescore
    from harness.record import read_record

    source = Path(__file__).parent / "fixtures" / "records-v2" / "canned-countdown-greedy-n1-9851e53b"
    records, _ = read_record(source)
    completions = [(r.example, r.samples[r.selected].completion.text) for r in records]
    for spec, verifier in (("countdown", VERIFIER), ("countdown:subset", SUBSET)):
        _, summary = read_record(rescore(source, tmp_path, grader=spec))
        assert summary.components["grader"].spec == spec
        expected = [verifier.score(example, text) for example, text in completions]
        assert summary.metric.value == sum(s.value == 1.0 for s in expected) / len(expected)
        assert summary.metrics["used_all"].value == sum(s.metrics["used_all"] for s in expected) / len(expected)


def test_exact_fractions_count() -> None:
    example = harness.Example(prompt="", meta={"numbers": [1, 3, 9], "target": 3})
    assert grade("(1 / 3) * 9", example).value == 1.0
    assert grade("1 / 3 * 3", example).value == 0.1  # 3 used twice


def test_division_by_zero_is_well_formed_but_wrong() -> None:
    example = harness.Example(prompt="", meta={"numbers": [5, 5, 3], "target": 3})
    assert grade("3 + 5 - 5", example).value == 1.0  # the same numbers are allowed
    score = grade("3 / (5 - 5)", example)  # every number once, but divided by zero
    assert (score.value, score.metrics) == (0.1, {"well_formed": 1.0, "used_all": 1.0})


def test_missing_tags_score_zero_with_no_answer() -> None:
    for text in ("44 + 19 + 35", "<answer> 44 + 19 + 35", "44 + 19 + 35 </answer>", "</answer><answer>"):
        score = VERIFIER.score(EXAMPLE, text)
        assert (score.value, score.answer, score.metrics) == (0.0, None, {"well_formed": 0.0, "used_all": 0.0})


def test_last_answer_tag_wins() -> None:
    assert VERIFIER.score(EXAMPLE, "<answer>1 + 2</answer> <answer>44 + 19 + 35</answer>").value == 1.0
    assert VERIFIER.score(EXAMPLE, "<answer>44 + 19 + 35</answer> <answer>1 + 2</answer>").value == 0.1


def test_example_without_meta_is_an_error_not_an_exception() -> None:
    score = VERIFIER.score(harness.Example(prompt=""), "<answer>1 + 2</answer>")
    assert score.value == 0.0 and score.error


def test_hostile_inputs_are_scored_quickly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    hostile = [
        "x" * 1_000_000,
        "<answer>" + "1 + " * 250_000 + "1</answer>",
        "<answer>" * 100_000 + "</answer>" * 100_000,
        "<answer>9**9**9**9</answer>",
        "<answer>" + "(" * 5000 + "1" + ")" * 5000 + "</answer>",
        "<answer>" + "(" * 100 + "44" + ")" * 100 + "</answer>",
        '<answer>__import__("os").system("touch pwned")</answer>',
        "<answer>(lambda: 44)() + 19 + 35</answer>",
        "<answer>(44).real + 19 + 35</answer>",
        "<answer>[x for x in range(10**9)]</answer>",
        "<answer>" + "9" * 200 + " * " + "9" * 50 + "</answer>",
        "<answer>1 + 2\x00</answer>",
    ]
    for text in hostile:
        start = time.perf_counter()
        score = VERIFIER.score(EXAMPLE, text)
        assert time.perf_counter() - start < 0.5, text[:40]
        assert score.value in (0.0, 0.1)
    assert not (tmp_path / "pwned").exists()
    assert grade('__import__("os").system("touch pwned")').metrics == {"well_formed": 0.0, "used_all": 0.0}


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_score_never_raises_on_any_text(text: str) -> None:
    assert grade(text).value in (0.0, 0.1, 1.0)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789+-*/() =.", max_size=40))
def test_score_never_raises_on_arithmetic_like_text(text: str) -> None:
    score = grade(text)
    assert score.value in (0.0, 0.1, 1.0)
    assert score.metrics["well_formed"] == (0.0 if score.value == 0.0 else 1.0)


# -- Solver -------------------------------------------------------------------------------


def test_solver_agrees_with_brute_force_and_its_answers_are_strictly_correct() -> None:
    rng = random.Random(7)
    found = {True: 0, False: 0}
    for _ in range(150):
        numbers = [rng.randint(1, 25) for _ in range(rng.choice((2, 3, 4)))]
        target = rng.randint(1, 60)
        solution = solve(numbers, target)
        found[solution is not None] += 1
        assert (solution is not None) == (target in reachable(numbers)), (numbers, target)
        if solution is not None:
            assert strictly_correct(harness.Example(prompt="", meta={"numbers": numbers, "target": target}), solution)
    assert found[True] and found[False]


def test_solver_edge_cases() -> None:
    assert solve([], 0) is None and solve([7], 7) == "7" and solve([7], 8) is None
    assert solve([1, 1, 1], 100) is None and solve([2, 4], 0) is None
    for numbers, target in (([0, 4], 0), ([0, 5, 3], 0), ([5, 0], 5), ([3, 5], -2), ([2, 2], 0), ([3, 6], 2)):
        solution = solve(numbers, target)
        example = harness.Example(prompt="", meta={"numbers": numbers, "target": target})
        assert solution is not None and strictly_correct(example, solution), (numbers, target, solution)


def test_solver_finds_a_solution_for_every_generated_problem_up_to_six_numbers() -> None:
    for count in (5, 6):
        for example in CountdownTask().configure(numbers=count).examples("train", limit=4, seed=count):
            solution = solve(example.meta["numbers"], example.meta["target"])
            assert solution is not None and strictly_correct(example, solution), example
