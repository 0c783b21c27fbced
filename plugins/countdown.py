"""The Countdown verifier: checks an arithmetic answer against the example's numbers and target.

By default it grades by TinyZero's rule, where the study's Countdown comes from: every given number
is used exactly once (``countdown``, or ``countdown:strict``). ``countdown:subset`` (or the option
``rule=subset``) accepts any subset of the numbers, each at most once, a looser rule under which
a target that is itself one of the numbers is an answer. Either way the side-score ``used_all``
says whether the answer used every number, so a record tells how many correct answers used a subset.

Completions are untrusted, so the answer is never evaluated as Python: it is parsed into an
AST and only integer constants joined by + - * / are accepted, then computed exactly with
``Fraction``. Every input, however hostile, is scored quickly and without raising.
"""

from __future__ import annotations

import ast
import dataclasses
import operator
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

import harness
from harness.errors import choices
from harness.metrics import accuracy, side

OPEN, CLOSE = "<answer>", "</answer>"
MAX_CHARS = 256  # longer answers are rejected before parsing, which bounds parse time and depth

RULES = ("strict", "subset")

Value = int | Fraction
OPS: dict[type, Callable[[Value, Value], Value]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: Fraction,  # exact division; Fraction(a, 0) raises ZeroDivisionError
}


def _constants(node: ast.expr) -> list[int] | None:
    """The integers an expression uses, or None when it strays outside the + - * / grammar."""
    used = []
    stack = [node]
    while stack:
        n = stack.pop()
        if type(n) is ast.BinOp and type(n.op) in OPS:
            stack += (n.left, n.right)
        elif type(n) is ast.Constant and type(n.value) is int:  # `type is` rejects bools
            used.append(n.value)
        else:
            return None
    return used


def _parse(text: str) -> tuple[ast.expr, list[int], int | None] | None:
    """The expression tree, the integers it uses and the claimed result of a trailing "= N".

    None when the answer is not well-formed: too long, not Python syntax, or outside the grammar.
    """
    if len(text) > MAX_CHARS:
        return None
    claim = None
    lhs, eq, rhs = text.rpartition("=")
    if eq:
        try:
            claim = int(rhs)
        except ValueError:
            return None
        text = lhs
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return None
    used = _constants(node)
    return None if used is None else (node, used, claim)


def _evaluate(node: ast.expr) -> Value:
    """Exact value of an expression already checked by ``_constants``."""
    if type(node) is ast.Constant:
        return node.value
    return OPS[type(node.op)](_evaluate(node.left), _evaluate(node.right))


def _at_most_once(used: list[int], numbers: list[int]) -> bool:
    """True when ``used`` takes each given number at most once."""
    pool = list(numbers)
    try:
        for n in used:
            pool.remove(n)
    except ValueError:
        return False
    return True


def _value_is(node: ast.expr, target: int) -> bool:
    try:
        return _evaluate(node) == target
    except ZeroDivisionError:
        return False


@dataclass(frozen=True)
class CountdownVerifier:
    """1.0 for a correct equation, 0.1 for a well-formed wrong one, 0.0 when there is none."""

    name: ClassVar[str] = "countdown"
    reference_free: ClassVar[bool] = True
    metrics: ClassVar[list[harness.Metric]] = [accuracy(), side("well_formed"), side("used_all")]

    rule: str = "strict"

    def configure(self, rule: str = "strict") -> CountdownVerifier:
        """The verifier grading by ``rule``: ``countdown:subset`` and ``--verifier-arg rule=subset`` both name it."""
        if rule not in RULES:
            raise choices("countdown rule", rule, list(RULES))
        return dataclasses.replace(self, rule=rule)

    def score(self, example: harness.Example, completion: str) -> harness.Score:
        end = completion.rfind(CLOSE)
        start = completion.rfind(OPEN, 0, end) if end >= 0 else -1
        if start < 0:
            return harness.Score(0.0, metrics={"well_formed": 0.0, "used_all": 0.0})
        answer = completion[start + len(OPEN) : end].strip()
        numbers, target = example.meta.get("numbers"), example.meta.get("target")
        if numbers is None or target is None:
            return harness.Score(0.0, answer, error="example.meta lacks numbers or target")
        parsed = _parse(answer)
        if parsed is None:
            return harness.Score(0.0, answer, metrics={"well_formed": 0.0, "used_all": 0.0})
        node, used, claim = parsed
        used_all = sorted(used) == sorted(numbers)
        allowed = used_all or self.rule == "subset" and _at_most_once(used, numbers)
        correct = allowed and claim in (None, target) and _value_is(node, target)
        return harness.Score(1.0 if correct else 0.1, answer,
                             metrics={"well_formed": 1.0, "used_all": float(used_all)})


@harness.hookimpl
def register_verifiers() -> list:
    return [CountdownVerifier()]
