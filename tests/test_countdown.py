"""The Countdown task and verifier: generation, splits, options, data files, grading, hostile input."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import harness
from plugins.countdown import CountdownVerifier
from tasks.countdown import SHOT, CountdownTask, canonical

VERIFIER = CountdownVerifier()
EXAMPLE = harness.Example(prompt="", meta={"numbers": [44, 19, 35], "target": 98})


def grade(answer: str, example: harness.Example = EXAMPLE) -> harness.Score:
    return VERIFIER.score(example, f"<think> working </think>\n<answer>{answer}</answer>")


def keys(examples: list[harness.Example]) -> set[str]:
    return {canonical(e.meta["numbers"], e.meta["target"]) for e in examples}


# -- Task ---------------------------------------------------------------------------------


def test_same_seed_same_examples_and_other_seed_differs() -> None:
    task = CountdownTask()
    first = list(task.examples("test", limit=50, seed=3))
    assert first == list(task.examples("test", limit=50, seed=3))
    assert [e.id for e in first] != [e.id for e in task.examples("test", limit=50, seed=4)]
    assert len(first) == 50 and len({e.id for e in first}) == 50


def test_every_stored_solution_is_accepted() -> None:
    for count in (3, 4):
        task = CountdownTask().configure(numbers=count)
        for example in task.examples("train", limit=200, seed=count):
            assert len(example.meta["numbers"]) == count
            assert example.reference == example.meta["solution"]
            score = grade(example.meta["solution"], example)
            assert score.value == 1.0, example


def test_train_and_test_are_disjoint() -> None:
    task = CountdownTask()
    train = list(task.examples("train", limit=2000))
    test = list(task.examples("test", limit=200))
    assert len(keys(train)) == 2000 and len(keys(test)) == 200
    assert not keys(train) & keys(test)


@pytest.mark.slow
def test_limit_none_gives_the_default_test_size() -> None:
    assert len(list(CountdownTask().examples())) == 1024


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
    with pytest.raises(harness.HarnessError, match="unknown split 'dev'; choose one of: test, train"):
        CountdownTask().examples("dev")


def test_local_jsonl_rows_load_and_split(tmp_path: Path) -> None:
    rows = [{"nums": [i, i + 1, i + 2], "target": 10 + i % 50} for i in range(1, 301)]
    rows += [{"nums": [5, 6, 7, 8], "target": 26}, rows[0]]  # a 4-number row and a duplicate
    path = tmp_path / "countdown.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    task = CountdownTask().configure(data=str(path))
    train, test = list(task.examples("train")), list(task.examples("test"))
    assert keys(train) | keys(test) == {canonical(r["nums"], r["target"]) for r in rows}
    assert len(train) + len(test) == 301 and test and not keys(train) & keys(test)
    assert all(e.reference is None and e.meta["solution"] is None for e in train + test)
    first = next(e for e in train + test if e.id == "cd-1-2-3-11")
    assert first.meta == {"numbers": [1, 2, 3], "target": 11, "solution": None}
    three = task.configure(numbers=3)
    assert len(list(three.examples("train"))) + len(list(three.examples("test"))) == 300
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
    ("answer", "value", "well_formed"),
    [
        ("44 + 19 + 35", 1.0, 1.0),
        ("(35 + 44) + 19 = 98", 1.0, 1.0),
        ("44 + 19 + 35 = 97", 0.1, 1.0),  # a false claim
        ("44 + 19 - 35", 0.1, 1.0),  # wrong value
        ("44 + 44 + 10", 0.1, 1.0),  # number reused
        ("49 + 49", 0.1, 1.0),  # number not in the list
        ("44 + 19 +", 0.0, 0.0),  # unparseable
        ("-44 + 19", 0.0, 0.0),  # unary minus is outside the grammar
        ("44.0 + 19 + 35", 0.0, 0.0),
        ("44 ** 2", 0.0, 0.0),
        ("True + 97", 0.0, 0.0),
        ("x + 1", 0.0, 0.0),
        ("", 0.0, 0.0),
    ],
)
def test_verifier_table(answer: str, value: float, well_formed: float) -> None:
    score = grade(answer)
    assert (score.value, score.metrics, score.answer) == (value, {"well_formed": well_formed}, answer.strip())


def test_exact_fractions_count() -> None:
    example = harness.Example(prompt="", meta={"numbers": [1, 3, 9], "target": 3})
    assert grade("(1 / 3) * 9", example).value == 1.0
    assert grade("1 / 3 * 3", example).value == 0.1  # 3 used twice


def test_division_by_zero_is_well_formed_but_wrong() -> None:
    example = harness.Example(prompt="", meta={"numbers": [5, 5, 3], "target": 3})
    assert grade("3 + 5 - 5", example).value == 1.0  # the same numbers are allowed
    score = grade("3 + 5 / (5 - 5)", example)
    assert (score.value, score.metrics) == (0.1, {"well_formed": 1.0})


def test_missing_tags_score_zero_with_no_answer() -> None:
    for text in ("44 + 19 + 35", "<answer> 44 + 19 + 35", "44 + 19 + 35 </answer>", "</answer><answer>"):
        score = VERIFIER.score(EXAMPLE, text)
        assert (score.value, score.answer, score.metrics) == (0.0, None, {"well_formed": 0.0})


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
    assert grade('__import__("os").system("touch pwned")').metrics == {"well_formed": 0.0}


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
