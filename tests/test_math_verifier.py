"""The sympy verifier: extraction, exact equivalence, real GSM8K golds, and bounded work on hostile input."""

from __future__ import annotations

import json
import os
import random
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import harness
from plugins.math_verifier import RULES, Extracted, SympyVerifier, extract_answer, register_verifiers

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 1.0


@pytest.fixture(scope="module")
def verifier() -> SympyVerifier:
    """A verifier whose worker has started, so timings below measure checks, not interpreter start-up."""
    v = SympyVerifier(timeout=TIMEOUT)
    assert v.score(harness.Example("q", reference="7"), "Final answer: 2*3+1").value == 1.0
    return v


def grade(v: SympyVerifier, gold: str, completion: str) -> harness.Score:
    return v.score(harness.Example("q", reference=gold), completion)


EXTRACTION = [
    # each marker rule
    ("Janet sells 16 - 3 - 4 = 9 eggs.\nShe makes 9 * 2 = $18.\nFinal answer: 18", "18", "final_answer"),
    ("**Final answer:** $18", "18", "final_answer"),
    ("Final Answer: 1,234.50 dollars.", "1234.50", "final_answer"),
    ("final answer: -7", "-7", "final_answer"),
    ("Final answer:\n\n42", "42", "final_answer"),
    ("Final answer: x = 5", "5", "final_answer"),
    ("Final answer: 16 - 3 - 4 = 9", "9", "final_answer"),
    ("Final answer: 5 apples", "5", "final_answer"),
    ("Final answer: 75%", "75", "final_answer"),
    ("Final answer: \\$12.", "12", "final_answer"),
    ("Final answer: $\\dfrac{3}{4}$", "\\frac{3}{4}", "final_answer"),
    ("Final answer: 3 / 4 cup", "3/4", "final_answer"),
    ("Final answer: 1{,}000", "1000", "final_answer"),
    ("Final answer: 18 \\text{ dollars}", "18", "final_answer"),
    ("Final answer: 2*3+1", "2*3+1", "final_answer"),
    ("Final answer: \\boxed{20}", "20", "final_answer"),
    ("Final answer: 5. Then she buys 6 more.", "5", "final_answer"),
    ("Final answer: Janet makes $18 every day.", "18", "final_answer"),
    ("Final answer: \u22127", "-7", "final_answer"),
    ("He pays 3 * 4 = <<3*4=12>>12 dollars.\n#### 12", "12", "hash"),
    ("#### 1,000", "1000", "hash"),
    ("####-3", "-3", "hash"),
    ("#### 0.5", "0.5", "hash"),
    ("So the total is $\\boxed{72}$.", "72", "boxed"),
    ("The result is \\boxed{\\frac{3}{4}} of the pie.", "\\frac{3}{4}", "boxed"),
    ("\\boxed{\\$1,200}", "1200", "boxed"),
    ("First \\boxed{3}, then corrected: \\boxed{4}", "4", "boxed"),
    ("There are 15 trees and 21 after planting. 21 - 15 = 6. The answer is 6.", "6", "answer_is"),
    ("the answer is 18 dollars per week.", "18", "answer_is"),
    ("THE ANSWER IS: 25", "25", "answer_is"),
    ("So the final answer is 0.75.", "0.75", "answer_is"),
    ("The answer is 18.\n\nQuestion: Tom has 3 apples.", "18", "answer_is"),
    ("The answer is 50%.", "50", "answer_is"),
    # priority between rules
    ("The answer is 5.\nFinal answer: 6", "6", "final_answer"),
    ("\\boxed{5}\nFinal answer: 6", "6", "final_answer"),
    ("#### 5\nFinal answer: 6", "6", "final_answer"),
    ("\\boxed{5}\n#### 6", "6", "hash"),
    ("The answer is 5. So \\boxed{6}", "6", "boxed"),
    ("The answer is 5. Then 7 more.", "5", "answer_is"),
    ("Final answer: see above.\nShe has 7 left.", "7", "last_number"),  # a marker without a number
    ("Final answer: 7\nLater I think it is 8.", "7", "final_answer"),
    # last-number fallback
    ("She makes 9 * 2 = $18 every day.", "18", "last_number"),
    ("It costs $1,250.", "1250", "last_number"),
    ("The temperature fell to -5 degrees.", "-5", "last_number"),
    ("10-5", "5", "last_number"),
    ("x = -3", "-3", "last_number"),
    ("(-5)", "-5", "last_number"),
    ("He ran 3.5 miles.", "3.5", "last_number"),
    ("That is 40% of them", "40", "last_number"),
    ("She ate 3/4 of it", "3/4", "last_number"),
    ("a total of 12 apples, 4 of them red.", "4", "last_number"),
    ("Costs went up by \u20ac30.", "30", "last_number"),
]


@pytest.mark.parametrize(("completion", "answer", "rule"), EXTRACTION)
def test_extraction(completion: str, answer: str, rule: str) -> None:
    assert extract_answer(completion) == Extracted(answer, rule)


@pytest.mark.parametrize("completion", ["", "No idea.", "Final answer: unknown", "\\boxed{}", "####"])
def test_nothing_to_extract_scores_zero_without_answer(verifier: SympyVerifier, completion: str) -> None:
    assert extract_answer(completion) is None
    assert grade(verifier, "18", completion) == harness.Score(0.0, metrics={"strict": 0.0, "lenient": 0.0})


def test_every_rule_is_exercised() -> None:
    assert {rule for _, _, rule in EXTRACTION} == set(RULES)


EQUAL = [
    ("18", "18.00"),
    ("18", "18.0"),
    ("3/4", "0.75"),
    ("\\frac{3}{4}", "0.75"),
    ("\\dfrac{3}{4}", "0.75"),
    ("\\frac{6}{8}", "3/4"),
    ("1,000", "1000"),
    ("1,450,000", "1450000"),
    ("$5", "5"),
    ("\\$5", "5"),
    ("50%", "50"),
    ("5 apples", "5"),
    ("-3", "-3.0"),
    ("2*3+1", "7"),
    ("2^3", "8"),
    ("\\sqrt{49}", "7"),
    ("0.5", ".5"),
]
NOT_EQUAL = [
    ("0.333", "1/3"),
    ("7", "70"),
    ("18", "-18"),
    ("1,000", "100"),
    ("0.75", "\\frac{3}{5}"),
    ("1/2", "2"),
    ("2*3+1", "8"),
    ("18", "18.01"),
    ("1000000000000000000001", "1000000000000000000000"),
    ("3,4", "34"),
]


@pytest.mark.parametrize(("a", "b"), EQUAL + [(b, a) for a, b in EQUAL])
def test_equivalent_answers_match(verifier: SympyVerifier, a: str, b: str) -> None:
    score = grade(verifier, a, f"Final answer: {b}")
    assert (score.value, score.error) == (1.0, None)


@pytest.mark.parametrize(("a", "b"), NOT_EQUAL + [(b, a) for a, b in NOT_EQUAL])
def test_different_answers_do_not_match(verifier: SympyVerifier, a: str, b: str) -> None:
    score = grade(verifier, a, f"Final answer: {b}")
    assert (score.value, score.error) == (0.0, None)


def test_strict_and_lenient_differ_on_a_last_number_answer(verifier: SympyVerifier) -> None:
    score = grade(verifier, "18", "She has 16 - 3 = 13 eggs, then 13 + 5 = 18 eggs.")
    assert score == harness.Score(1.0, answer="18", metrics={"strict": 0.0, "lenient": 1.0})
    marked = grade(verifier, "18", "13 + 5 = 18 eggs.\nFinal answer: 18")
    assert marked.metrics == {"strict": 1.0, "lenient": 1.0}


def test_a_marker_outranks_a_correct_last_number(verifier: SympyVerifier) -> None:
    score = grade(verifier, "18", "Final answer: 17\nWait, it is 18.")
    assert (score.value, score.answer, score.metrics) == (0.0, "17", {"strict": 0.0, "lenient": 0.0})


def test_every_gsm8k_test_gold_verifies_against_itself_and_not_gold_plus_one(verifier: SympyVerifier,
                                                                            shared_data: Path) -> None:
    with (shared_data / "gsm8k" / "test.jsonl").open() as f:
        golds = [json.loads(line)["answer"].split("####")[-1].strip() for line in f]
    assert len(golds) == 1319
    for gold in golds:
        wrong = str(int(gold.replace(",", "")) + 1)
        example = harness.Example("q", reference=gold)
        scores = verifier.score_batch(
            [(example, t) for t in (f"#### {gold}", f"Final answer: {gold}", f"Final answer: {wrong}")]
        )
        assert [s.value for s in scores] == [1.0, 1.0, 0.0], gold
        assert scores[0].metrics == {"strict": 1.0, "lenient": 1.0}
        assert all(s.error is None for s in scores)


@pytest.fixture
def target() -> Iterator[Path]:
    """A file the hostile code would create; its path has no digits, so no number can be read from it."""
    path = Path(tempfile.gettempdir()) / ("pwned_" + "".join(random.choices(string.ascii_lowercase, k=16)))
    assert not any(c.isdigit() for c in str(path))
    yield path
    path.unlink(missing_ok=True)


def shell(target: Path) -> str:
    return f"__import__('os').system('touch {target}')"


def hostile(target: Path) -> dict[str, str]:
    code = shell(target)
    return {
        "tower": "9**9**9**9",
        "tower_marked": "Final answer: 9**9**9**9",
        "tower_boxed": "\\boxed{9^{9^{9^{9}}}}",
        "digits": "9" * 100_000,
        "digits_marked": "Final answer: " + "9" * 100_000,
        "nested": "(" * 10_000 + "1" + ")" * 10_000,
        "nested_marked": "Final answer: " + "(" * 10_000 + "1" + ")" * 10_000,
        "nested_in_worker": "Final answer: " + "(" * 140 + "1" + ")" * 140,
        "nested_latex_in_worker": "\\boxed{" + "{" * 140 + "1" + "}" * 141,
        "nested_braces": "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_001,
        "megabyte": "The answer is 7. " * 60_000,
        "code": code,
        "code_marked": f"Final answer: {code}",
        "code_boxed": f"\\boxed{{{code}}}",
        "code_arithmetic": f"Final answer: 1+{code}",
        "code_unparsed": f"Final answer: {code} x1",
        "unbalanced_frac": "Final answer: \\frac{",
        "unbalanced_boxed": "\\boxed{\\frac{3}{4}",
        "null_bytes": "Final answer: 1\x002\x00\x00",
        "backslashes": "Final answer: 1" + "\\" * 5_000,
    }


@pytest.mark.parametrize("case", list(hostile(Path("/x"))))
def test_hostile_completion_returns_a_score_in_bounded_time(
    verifier: SympyVerifier, target: Path, case: str
) -> None:
    start = time.monotonic()
    score = grade(verifier, "7", hostile(target)[case])
    assert time.monotonic() - start < TIMEOUT + 2
    assert isinstance(score, harness.Score) and score.value in (0.0, 1.0)
    assert not target.exists()


def test_code_that_reaches_the_worker_is_never_run(verifier: SympyVerifier, target: Path) -> None:
    text = f"{shell(target)} x1"
    assert extract_answer(f"Final answer: {text}") == Extracted(text, "final_answer")  # not a plain number
    assert grade(verifier, "7", f"Final answer: {text}") == harness.Score(
        0.0, answer=text, metrics={"strict": 0.0, "lenient": 0.0}
    )
    hostile_gold = grade(verifier, shell(target), "Final answer: 2*3+1")
    assert (hostile_gold.value, hostile_gold.error) == (0.0, None)
    assert not target.exists()


def test_a_timed_out_check_scores_zero_and_the_verifier_recovers() -> None:
    v = SympyVerifier(timeout=0.5)
    assert grade(v, "7", "Final answer: 2*3+1").value == 1.0  # start the worker
    start = time.monotonic()
    score = grade(v, "7", "Final answer: 9^{9^{9}}")
    assert time.monotonic() - start < 0.5 + 2
    assert score == harness.Score(
        0.0, answer="9^{9^{9}}", error="timeout", metrics={"strict": 0.0, "lenient": 0.0}
    )
    assert grade(v, "7", "Final answer: 2*3+1") == harness.Score(
        1.0, answer="2*3+1", metrics={"strict": 1.0, "lenient": 1.0}
    )
    assert grade(v, "7", "Final answer: \\sqrt{49}").value == 1.0


def test_a_batch_checks_a_repeated_slow_answer_once() -> None:
    v = SympyVerifier(timeout=0.5)
    assert grade(v, "7", "Final answer: 2*3+1").value == 1.0  # start the worker
    start = time.monotonic()
    example = harness.Example("q", reference="7")
    scores = v.score_batch([(example, t) for t in ["Final answer: 9^{9^{9}}"] * 4 + ["#### 7"]])
    assert time.monotonic() - start < 2 * 0.5 + 2
    assert [s.error for s in scores] == ["timeout"] * 4 + [None]
    assert [s.value for s in scores] == [0.0] * 4 + [1.0]


def test_many_instances_and_threads_share_workers_safely() -> None:
    verifiers = [SympyVerifier() for _ in range(50)]
    jobs = [(v, f"{i}*2+1", str(2 * i + 1 + (i % 2))) for i, v in enumerate(verifiers)]
    with ThreadPoolExecutor(4) as pool:
        values = list(pool.map(lambda job: grade(job[0], job[2], f"Final answer: {job[1]}").value, jobs))
    assert values == [float(i % 2 == 0) for i in range(50)]


def test_missing_reference_is_an_error_not_an_exception(verifier: SympyVerifier) -> None:
    score = verifier.score(harness.Example("q"), "Final answer: 7")
    assert (score.value, score.answer, score.error) == (0.0, "7", "no reference")


def test_plain_numbers_never_start_a_worker_or_import_sympy() -> None:
    code = (
        "import multiprocessing, sys, harness\n"
        "from plugins.math_verifier import SympyVerifier\n"
        "v = SympyVerifier()\n"
        "for gold, text in [('18', 'Final answer: 18.00'), ('0.75', '#### 3/4'), ('1,000', 'so 1000'),\n"
        "                   ('0.75', '\\\\boxed{\\\\frac{3}{4}}'), ('5', 'The answer is $5.')]:\n"
        "    assert v.score(harness.Example('q', reference=gold), text).value == 1.0\n"
        "assert not multiprocessing.active_children()\n"
        "assert 'sympy' not in sys.modules and 'math_verify' not in sys.modules\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_exact_comparison_has_no_float_tolerance(verifier: SympyVerifier) -> None:
    third = Fraction(1, 3)
    assert grade(verifier, "1/3", f"Final answer: {float(third)}").value == 0.0
    assert grade(verifier, "1/3", "Final answer: \\frac{2}{6}").value == 1.0


def test_registered_through_the_hook() -> None:
    [v] = register_verifiers()
    assert isinstance(v, SympyVerifier) and isinstance(v, harness.types.Verifier)
    assert (v.name, v.reference_free, v.timeout) == ("sympy", False, 1.0)


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout"):
        SympyVerifier(timeout=0)


MARKUP = [
    "Final answer:",
    "####",
    "\\boxed{",
    "The answer is",
    "\\frac{",
    "\\sqrt",
    "1,000",
    "0.5",
    "**",
    "\x00",
    "\u2212",
]
PIECES = st.sampled_from([*MARKUP, *"{}$-/=9. %\n^()x"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PIECES | st.text(max_size=20), max_size=30).map("".join), st.sampled_from(["7", "0.75", "x"]))
def test_score_never_raises(text: str, gold: str) -> None:
    score = SympyVerifier(timeout=0.3).score(harness.Example("q", reference=gold), text)
    assert isinstance(score, harness.Score) and score.value in (0.0, 1.0)
    assert set(score.metrics) == {"strict", "lenient"}
