"""Countdown (TinyZero style): combine 3 or 4 numbers with + - * / to reach a target.

Problems come from a seeded generator that builds a random expression first, so every
problem is solvable and carries one solution; or from rows of ``nums`` and ``target``
(Hugging Face ``Jiayi-Pan/Countdown-Tasks-3to4``, or a local JSONL file in that layout).
Train and test are told apart by a hash of the problem itself, so they never overlap
whatever the source, seed or limit.
"""

from __future__ import annotations

import itertools
import math
import operator
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

import harness
from harness.errors import choices
from harness.plugins import as_text, int_option, with_options
from harness.rows import checked, read_rows
from harness.splits import in_bucket

SPLITS = ("train", "test")
REMEDY = "pass --task-arg data=PATH to a local JSONL of rows with 'nums' and 'target'"
# What limit=None yields from the generator; 1024 is TinyZero's test size.
GENERATED_SIZE = {"train": 10_000, "test": 1024}
MAX_MISSES = 2_000  # consecutive draws without a new problem before a too-small space counts as exhausted
TREE_TRIES = 20  # random expressions tried on one draw of numbers before drawing new ones
PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}  # exact on Fractions

Problem = tuple[list[int], int, str | None]  # numbers, target, a known solution


def instruction(numbers: list[int], target: int) -> str:
    """TinyZero's prompt wording."""
    return (
        f"Using the numbers {numbers}, create an equation that equals {target}. You can use basic "
        "arithmetic operations (+, -, *, /) and each number can only be used once. Show your work in "
        "<think> </think> tags. And return the final answer in <answer> </answer> tags, for example "
        "<answer> (1 + 2) / 3 </answer>."
    )


# One worked example, given as a prior chat turn: the bundled 135M model never writes the
# <answer> tags zero-shot (0/20); with this turn it does for about a third of problems.
SHOT = (
    instruction([25, 3, 7], 46),
    "<think> 25 + 7 + 3 = 35 is too small. 3 * 7 = 21, and 21 + 25 = 46. </think>\n<answer> 3 * 7 + 25 </answer>",
)


def canonical(numbers: list[int], target: int) -> str:
    """The problem up to the order of its numbers: the key for deduplication and the split."""
    return f"{'-'.join(map(str, sorted(numbers)))}:{target}"


def split_of(key: str) -> str:
    """'test' for one problem in ten, chosen by content so the splits are disjoint by construction."""
    return "test" if in_bucket(key, 10) else "train"


def random_solution(rng: random.Random, numbers: list[int]) -> tuple[str, Fraction]:
    """A random expression using all of ``numbers`` (none is a one-step sum), with its exact value."""
    nodes = [(str(n), Fraction(n), 3) for n in numbers]
    while len(nodes) > 1:
        i, j = rng.sample(range(len(nodes)), 2)
        (left, a, pa), (right, b, pb) = nodes[i], nodes[j]
        op = rng.choice("+-*/" if b else "+-*")
        p = PRECEDENCE[op]
        left = f"({left})" if pa < p else left
        right = f"({right})" if pb < p or (pb == p and op in "-/") else right
        rest = [n for k, n in enumerate(nodes) if k not in (i, j)]
        nodes = [*rest, (f"{left} {op} {right}", OPS[op](a, b), p)]
    return nodes[0][0], nodes[0][1]


def _option(key: str, value: Any) -> Any:
    if key == "numbers":
        return _counts(value)
    return as_text(key, value) if key == "data" else int_option("countdown", key, value)


def _valid_row(row: Any) -> bool:
    numbers, target = (row.get("nums"), row.get("target")) if isinstance(row, dict) else (None, None)
    return isinstance(numbers, list) and all(type(n) is int and n >= 0 for n in numbers) and type(target) is int


def _counts(value: Any) -> tuple[int, int]:
    """'3', 3 or '3-4' as the inclusive range of how many numbers a problem has."""
    lo, _, hi = str(value).partition("-")
    counts = (int_option("countdown", "numbers", lo), int_option("countdown", "numbers", hi or lo))
    if not 2 <= counts[0] <= counts[1] <= 6:
        raise harness.HarnessError(f"countdown option numbers={value!r} must be N or N-M, 2 <= N <= M <= 6")
    return counts


@dataclass(frozen=True)
class CountdownTask:
    """Reach ``target`` with some of 3-4 numbers; graded by the reference-free ``countdown`` verifier."""

    name: ClassVar[str] = "countdown"
    verifier: ClassVar[str] = "countdown"

    numbers: tuple[int, int] = (3, 4)
    min_number: int = 1
    max_number: int = 99
    min_target: int = 10
    max_target: int = 100
    shots: int = 1
    data: str | None = None

    def configure(self, **options: Any) -> CountdownTask:
        """A copy with ``options`` applied; values may be strings, as the CLI passes them."""
        task = with_options(self, "countdown", options, _option)
        if not 1 <= task.min_number <= task.max_number:
            raise harness.HarnessError("countdown needs 1 <= min_number <= max_number")
        if task.min_target > task.max_target:
            raise harness.HarnessError("countdown needs min_target <= max_target")
        if task.shots not in (0, 1):
            raise harness.HarnessError(f"countdown option shots={task.shots} must be 0 or 1")
        return task

    def examples(
        self, split: str = "test", limit: int | None = None, seed: int = 0
    ) -> Iterator[harness.Example]:
        """Problems of ``split`` in a fixed order; ``seed`` drives the generator, data keeps its order."""
        if split not in SPLITS:
            raise choices("split", split, list(SPLITS))
        if self.data is None:
            selected = self._select(self._generate(random.Random(seed)), split, patience=MAX_MISSES)
            return itertools.islice(selected, GENERATED_SIZE[split] if limit is None else limit)
        rows = read_rows(self.data, "countdown", REMEDY)  # read now, so a bad path fails at the call
        return itertools.islice(self._select(self._read(self.data, rows), split), limit)

    def _generate(self, rng: random.Random) -> Iterator[Problem | None]:
        """Endless solvable problems: keep a random expression whose value is an integer target.

        A draw that finds none yields None, so that ``_select`` can give up on an impossible range.
        """
        while True:
            count = rng.randint(*self.numbers)
            numbers = [rng.randint(self.min_number, self.max_number) for _ in range(count)]
            for _ in range(TREE_TRIES):
                solution, value = random_solution(rng, numbers)
                if value.denominator == 1 and self.min_target <= value <= self.max_target:
                    yield numbers, int(value), solution
                    break
            else:
                yield None

    def _read(self, data: str, rows: Iterable[Any]) -> Iterator[Problem]:
        """Validated rows with as many numbers as the ``numbers`` option allows."""
        lo, hi = self.numbers
        for row in checked(rows, "countdown", data, _valid_row, "int list nums, int target"):
            if lo <= len(row["nums"]) <= hi:
                yield row["nums"], row["target"], None

    def _select(
        self, problems: Iterable[Problem | None], split: str, patience: float = math.inf
    ) -> Iterator[harness.Example]:
        """First appearances of the problems of ``split``; stops after ``patience`` draws without one."""
        seen: set[str] = set()
        misses = 0
        for problem in problems:
            if problem is not None:
                numbers, target, solution = problem
                key = canonical(numbers, target)
                if key not in seen and split_of(key) == split:
                    seen.add(key)
                    misses = 0
                    yield harness.Example(
                        prompt=instruction(numbers, target),
                        shots=(SHOT,) if self.shots else (),
                        reference=solution,
                        meta={"numbers": numbers, "target": target, "solution": solution},
                        id=f"cd-{'-'.join(map(str, numbers))}-{target}",
                    )
                    continue
            misses += 1
            if misses >= patience:
                return


@harness.hookimpl
def register_tasks() -> list:
    return [CountdownTask()]
