"""Countdown (TinyZero style): combine every one of 3 or 4 numbers with + - * / to reach a target.

Problems come from a seeded generator that builds a random expression of all the numbers first, so
every problem is solvable by TinyZero's rule (each number used exactly once) and carries one
solution; or from rows of ``nums`` and ``target`` (Hugging Face ``Jiayi-Pan/Countdown-Tasks-3to4``,
or a local JSONL file in that layout), where ``solve`` finds a solution and rows without one are
skipped and counted. Train, validation and test are told apart by a hash of the problem itself, so
they never overlap whatever the source, seed or limit.
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
from harness.console import warn
from harness.errors import choices
from harness.plugins import as_text, int_option, with_options
from harness.rows import checked, read_rows
from harness.splits import bucket

SPLITS = ("train", "validation", "test")
BUCKETS = {0: "test", 1: "validation"}  # of ten content-hash buckets; the other eight are train
REMEDY = "pass --task-arg data=PATH to a local JSONL of rows with 'nums' and 'target'"
NEEDS = "nums a non-empty list of non-negative ints, target an int"
# What limit=None yields from the generator; 1024 is TinyZero's test size, and validation matches it so that a
# recipe choice made there is measured as finely as the final number.
GENERATED_SIZE = {"train": 10_000, "validation": 1024, "test": 1024}
MAX_MISSES = 2_000  # consecutive draws without a new problem before a too-small space counts as exhausted
TREE_TRIES = 20  # random expressions tried on one draw of numbers before drawing new ones
PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}  # exact on Fractions

Problem = tuple[list[int], int, str | None]  # numbers, target, a known solution
Node = tuple[str, int]  # an expression and the precedence of its outermost operator (3: a number)
_WARNED: set[tuple[str | None, str, int]] = set()  # (data, split, count) already said: once a process


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
    """'test' for one problem in ten and 'validation' for another, chosen by content so the splits are disjoint by
    construction; test keeps the bucket it always had, so the held-out problems stay the same."""
    return BUCKETS.get(bucket(key, 10), "train")


def _join(left: Node, op: str, right: Node) -> Node:
    """``left op right`` with the parentheses the precedence needs, and no more."""
    p = PRECEDENCE[op]
    lhs = f"({left[0]})" if left[1] < p else left[0]
    rhs = f"({right[0]})" if right[1] < p or (right[1] == p and op in "-/") else right[0]
    return f"{lhs} {op} {rhs}", p


def random_solution(rng: random.Random, numbers: list[int]) -> tuple[str, Fraction]:
    """A random expression using all of ``numbers`` (none is a one-step sum), with its exact value."""
    nodes = [((str(n), 3), Fraction(n)) for n in numbers]
    while len(nodes) > 1:
        i, j = rng.sample(range(len(nodes)), 2)
        (left, a), (right, b) = nodes[i], nodes[j]
        op = rng.choice("+-*/" if b else "+-*")
        rest = [n for k, n in enumerate(nodes) if k not in (i, j)]
        nodes = [*rest, (_join(left, op, right), OPS[op](a, b))]
    return nodes[0][0][0], nodes[0][1]


Multiset = tuple[int, ...]  # sorted
Step = tuple[str, Fraction, Multiset, Fraction, Multiset] | None  # how a value was made; None for a given number


def _halves(numbers: Multiset) -> set[tuple[Multiset, Multiset]]:
    """Every cut of a multiset into two non-empty parts, each once: the first part holds the first number."""
    first, rest = numbers[0], numbers[1:]
    cuts = set()
    for mask in range(2 ** len(rest) - 1):  # the all-ones mask would leave the second part empty
        cuts.add(((first, *(n for i, n in enumerate(rest) if mask >> i & 1)),
                  tuple(n for i, n in enumerate(rest) if not mask >> i & 1)))
    return cuts


class _Solver:
    """Every value each sub-multiset of the numbers reaches using each of its numbers exactly once, memoised."""

    def __init__(self) -> None:
        self.memo: dict[Multiset, dict[Fraction, Step]] = {}

    def reachable(self, numbers: Multiset) -> dict[Fraction, Step]:
        if numbers not in self.memo:
            values: dict[Fraction, Step] = {Fraction(numbers[0]): None} if len(numbers) == 1 else {}
            for left, right in sorted(_halves(numbers)):
                rights = self.reachable(right)
                for a in self.reachable(left):
                    for b in rights:
                        for op, x, xs, y, ys in (("+", a, left, b, right), ("*", a, left, b, right),
                                                 ("-", a, left, b, right), ("-", b, right, a, left),
                                                 ("/", a, left, b, right), ("/", b, right, a, left)):
                            if op != "/" or y:
                                values.setdefault(OPS[op](x, y), (op, x, xs, y, ys))
            self.memo[numbers] = values
        return self.memo[numbers]

    def render(self, value: Fraction, numbers: Multiset) -> Node:
        step = self.reachable(numbers)[value]
        if step is None:
            return str(numbers[0]), 3
        op, x, xs, y, ys = step
        return _join(self.render(x, xs), op, self.render(y, ys))

    def meet(self, goal: Fraction, left: Multiset, right: Multiset) -> str | None:
        """An expression of ``goal`` joining a value of ``left`` to one of ``right``, looked up rather than listed."""
        rights = self.reachable(right)
        for a in self.reachable(left):
            partners = [("+", goal - a, False), ("-", a - goal, False), ("-", goal + a, True)]
            if a:
                partners += [("*", goal / a, False), ("/", goal * a, True)]
            elif not goal:
                partners.append(("*", next(iter(rights)), False))  # zero times anything
            if goal:
                partners.append(("/", a / goal, False))
            for op, b, swap in partners:
                if b in rights and (op != "/" or (a if swap else b)):
                    x, y = self.render(a, left), self.render(b, right)
                    return (_join(y, op, x) if swap else _join(x, op, y))[0]
        return None


def solve(numbers: list[int], target: int) -> str | None:
    """An expression that uses every one of ``numbers`` exactly once with + - * / and equals ``target`` exactly,
    or None when there is none: TinyZero's rule. Exhaustive (quick up to six numbers), so None means unsolvable."""
    if not numbers:
        return None
    ordered, goal = tuple(sorted(numbers)), Fraction(target)
    if len(ordered) == 1:
        return str(ordered[0]) if ordered[0] == goal else None
    solver = _Solver()
    for left, right in sorted(_halves(ordered)):
        found = solver.meet(goal, *sorted((left, right), key=len))  # list the smaller side, look up in the larger
        if found is not None:
            return found
    return None


def _option(key: str, value: Any) -> Any:
    if key == "numbers":
        return _counts(value)
    return as_text(key, value) if key == "data" else int_option("countdown", key, value)


def valid_row(row: Any) -> bool:
    """A data row the task and the training data read: ``NEEDS``, the numbers non-negative."""
    numbers, target = (row.get("nums"), row.get("target")) if isinstance(row, dict) else (None, None)
    return (isinstance(numbers, list) and bool(numbers) and all(type(n) is int and n >= 0 for n in numbers)
            and type(target) is int)


def example(numbers: list[int], target: int, solution: str | None, shots: int) -> harness.Example:
    """A problem as the task poses it and RL training prompts it; ``solution`` None where none was sought."""
    return harness.Example(
        prompt=instruction(numbers, target),
        shots=(SHOT,) if shots else (),
        reference=solution,
        meta={"numbers": numbers, "target": target, **({"solution": solution} if solution is not None else {})},
        id=f"cd-{'-'.join(map(str, numbers))}-{target}",
    )


def _counts(value: Any) -> tuple[int, int]:
    """'3', 3 or '3-4' as the inclusive range of how many numbers a problem has."""
    lo, _, hi = str(value).partition("-")
    counts = (int_option("countdown", "numbers", lo), int_option("countdown", "numbers", hi or lo))
    if not 2 <= counts[0] <= counts[1] <= 6:
        raise harness.HarnessError(f"countdown option numbers={value!r} must be N or N-M, 2 <= N <= M <= 6")
    return counts


@dataclass(frozen=True)
class CountdownTask:
    """Reach ``target`` with every one of 3-4 numbers; graded by the reference-free ``countdown`` verifier."""

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
        for row in checked(rows, "countdown", data, valid_row, NEEDS):
            if lo <= len(row["nums"]) <= hi:
                yield row["nums"], row["target"], None

    def _select(
        self, problems: Iterable[Problem | None], split: str, patience: float = math.inf
    ) -> Iterator[harness.Example]:
        """First appearances of the problems of ``split``; stops after ``patience`` draws without one.

        A problem without a solution (a data row) gets one from ``solve``, or is skipped when none uses every
        number; how many were skipped is a warning once the caller has read what it wanted.
        """
        seen: set[str] = set()
        misses = unsolvable = 0
        try:
            for problem in problems:
                if problem is not None:
                    numbers, target, solution = problem
                    key = canonical(numbers, target)
                    if key not in seen and split_of(key) == split:
                        seen.add(key)
                        solution = solve(numbers, target) if solution is None else solution
                        unsolvable += solution is None
                        if solution is not None:
                            misses = 0
                            yield example(numbers, target, solution, self.shots)
                        continue
                misses += 1
                if misses >= patience:
                    return
        finally:
            if unsolvable and (self.data, split, unsolvable) not in _WARNED:
                _WARNED.add((self.data, split, unsolvable))
                warn(f"countdown data {self.data}: skipped {unsolvable} {split} problems that no equation using "
                     "every number exactly once solves")


@harness.hookimpl
def register_tasks() -> list:
    return [CountdownTask()]
