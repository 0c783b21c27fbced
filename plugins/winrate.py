"""The ``winrate:JUDGE`` grader: is the policy's response better than the reference response, by a judge?

``--grader winrate:rm:PATH`` builds the judge from the spec after ``winrate:`` (any reference-free
verifier; a reward model in practice) and has it score, for the same prompt, the policy's response
and the example's reference response (a data column, or an earlier run's chosen completion; see
``tasks.alpaca``). A response wins (1) when the judge's raw reward (``Score.raw``, else its value)
beats the reference's by more than ``tolerance`` (default 1e-3, ``--grader-arg tolerance=X``),
ties (0.5) within it, and loses (0) otherwise. Every other ``--grader-arg`` goes to the judge
(``index=K`` for a multi-label reward model). All pairs of a call go to the judge in one
``harness.verify`` call, each distinct reference once, so a reward model scores them in a few
batches.

Each grade carries ``tie`` (0/1), ``policy_length`` and ``reference_length`` in characters (as
AlpacaEval's ``avg_length``), ``length_diff`` (policy minus reference) and ``margin`` (the judge's
reward difference, also ``Score.raw``). The run reports ``win_rate`` (ties count half),
``length_adjusted_win_rate``, ``tie_rate`` and both mean lengths, each with a 95% bootstrap interval.

The length-adjusted win-rate is the harness's own estimator, not AlpacaEval 2's length-controlled
win-rate (Dubois et al. 2024), and is named so that it does not claim to be. It keeps that method's
length term but has no per-instruction difficulty term and no regularisation towards AlpacaEval's
length-gamed baselines: both are tables fitted on GPT-4 Turbo's verdicts against GPT-4 Turbo's own
reference, fetched from the Hugging Face hub at run time, and meaningless for another judge or
another reference. It is a logistic regression of the outcome (1, 0.5, 0 as a fractional target) on
``tanh(length_diff / sd(length_diff))``, with an intercept,

    P(win) = sigmoid(a + b * tanh(length_diff / sd)),

read at zero length difference, ``sigmoid(a)``. The slope ``b`` has a weak L2 penalty (``b**2 / 2``,
scikit-learn's default ``C = 1``) so a small or perfectly separated sample still gives a finite
estimate; the intercept is free. When all outcomes are equal, or the length difference never
varies, it is the plain win-rate. On AlpacaEval's own GPT-4 Turbo verdicts it reads several points
above AlpacaEval 2's leaderboard LC for models that answer shorter than the reference
(``bench/lc_check.py``; docs/instruction-following.md).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

import harness
from harness.metrics import Metric, mean_score
from harness.plugins import Spec, registry

TOLERANCE = 1e-3
RIDGE = 1.0
LENGTH_ADJUSTED = "length_adjusted_win_rate"  # called lc_win_rate in older records
JUDGE_USAGE = "--grader winrate:rm:PATH_OR_HUB_ID (a reward model other than the one the policy was trained against)"


def outcome(margin: float, tolerance: float = TOLERANCE) -> float:
    """1 for a win, 0.5 for a tie (|margin| <= tolerance), 0 for a loss."""
    if abs(margin) <= tolerance:
        return 0.5
    return 1.0 if margin > 0 else 0.0


def length_adjusted(preferences: Sequence[float], length_diffs: Sequence[float], ridge: float = RIDGE) -> float:
    """The length-adjusted win-rate: ``sigmoid(a)`` of the penalised logistic fit in the module docstring.

    Not AlpacaEval 2's length-controlled win-rate, which also needs its per-instruction difficulty table.
    """
    y = np.asarray(preferences, dtype=float)
    if not len(y):
        return float("nan")
    rate = float(y.mean())
    diffs = np.asarray(length_diffs, dtype=float)
    sd = float(diffs.std())
    if rate <= 0.0 or rate >= 1.0 or sd == 0.0:
        return rate
    x = np.tanh(diffs / sd)

    def loss(a: float, b: float) -> float:
        z = a + b * x
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + ridge * b * b / 2)

    a, b = math.log(rate / (1 - rate)), 0.0
    current = loss(a, b)
    for _ in range(100):  # damped Newton: the loss is convex, a few steps converge
        p = 1.0 / (1.0 + np.exp(-(a + b * x)))
        w = p * (1 - p)
        gradient = np.array([np.sum(p - y), np.sum((p - y) * x) + ridge * b])
        hessian = np.array([[w.sum(), (w * x).sum()], [(w * x).sum(), (w * x * x).sum() + ridge]])
        step = np.linalg.lstsq(hessian, gradient, rcond=None)[0]
        scale = 1.0
        while scale > 1e-6 and loss(a - scale * step[0], b - scale * step[1]) > current:
            scale /= 2
        a, b = a - scale * step[0], b - scale * step[1]
        previous, current = current, loss(a, b)
        if abs(previous - current) < 1e-12 * max(1.0, abs(current)):
            break
    return 1.0 / (1.0 + math.exp(-a))


def _length_adjusted(grades: Sequence[harness.Score]) -> float:
    return length_adjusted([g.value for g in grades], [g.metrics.get("length_diff", 0.0) for g in grades])


METRICS = [
    mean_score("win_rate"),
    Metric(LENGTH_ADJUSTED, lambda g: float(g.value), reduce=_length_adjusted),
    Metric("tie_rate", lambda g: float(g.metrics.get("tie", 0.0))),
    Metric("policy_length", lambda g: float(g.metrics.get("policy_length", 0.0))),
    Metric("reference_length", lambda g: float(g.metrics.get("reference_length", 0.0))),
]


def _judged(score: harness.Score) -> float:
    return score.raw if score.raw is not None else score.value


class WinRate:
    """A configured win-rate grader; ``judge`` is the judge's spec, as the user named it (``rm:PATH``)."""

    name = "winrate"
    reference_free = False
    extracts_answers = False  # a verdict, not an answer: samples are never "extraction failures"
    metrics = METRICS

    def __init__(self, judge: str, tolerance: float, judge_options: dict[str, str]) -> None:
        self.judge = judge
        self.tolerance = tolerance
        self.judge_verifier = registry().build(Spec.parse("verifier", judge, judge_options))
        if not self.judge_verifier.reference_free:
            raise harness.HarnessError(f"judge {judge!r} reads the reference itself; a win-rate judge must score "
                                       f"each response alone (a reward model: {JUDGE_USAGE})")

    @property
    def judge_model(self) -> str | None:
        """Where the judge's weights come from (a resolved directory, or a hub id) when it is a reward model.

        What a run compares with the reward model named in the policy's manifest: a policy judged by
        the reward model it was trained against scores well by construction.
        """
        verifier = self.judge_verifier
        path = getattr(verifier, "path", None)
        return getattr(verifier, "hub_id", None) or (str(path) if path is not None else None)

    def score_batch(self, pairs: Sequence[tuple[harness.Example, str]]) -> list[harness.Score]:
        """Judge every policy response and each distinct reference in one ``harness.verify`` call."""
        judged: list[tuple[harness.Example, str]] = []
        seen: set[tuple[str, str]] = set()
        for example, text in pairs:
            if example.reference is None:
                continue
            bare = dataclasses.replace(example, reference=None)  # the judge never sees which side is the reference
            judged.append((bare, text))
            if (example.prompt, example.reference) not in seen:
                seen.add((example.prompt, example.reference))
                judged.append((bare, example.reference))
        scores = iter(harness.verify(self.judge_verifier, judged))
        reference_scores: dict[tuple[str, str], harness.Score] = {}
        results = []
        for example, text in pairs:
            if example.reference is None:
                results.append(harness.Score(0.0, error="example has no reference response to compare with"))
                continue
            mine = next(scores)
            key = (example.prompt, example.reference)
            if key not in reference_scores:
                reference_scores[key] = next(scores)
            results.append(self._compare(mine, reference_scores[key], text, example.reference))
        return results

    def _compare(self, mine: harness.Score, theirs: harness.Score, text: str, reference: str) -> harness.Score:
        error = mine.error or theirs.error
        if error:
            return harness.Score(0.0, error=f"judge {self.judge}: {error}")
        margin = _judged(mine) - _judged(theirs)
        value = outcome(margin, self.tolerance)
        return harness.Score(value, metrics={"tie": float(value == 0.5), "policy_length": float(len(text)),
                                             "reference_length": float(len(reference)),
                                             "length_diff": float(len(text) - len(reference)), "margin": margin},
                             raw=margin)

    def score(self, example: harness.Example, completion: str) -> harness.Score:
        return self.score_batch([(example, completion)])[0]


class WinRateFactory:
    """``winrate`` before it has a judge: ``configure("rm:PATH", tolerance=..., **judge_options)``."""

    name = "winrate"
    reference_free = False

    def configure(self, judge: str | None = None, tolerance: Any = TOLERANCE, **judge_options: str) -> WinRate:
        if not judge:
            raise harness.HarnessError(f"winrate needs a judge: {JUDGE_USAGE}; to choose among samples with a reward "
                                       "model, --sampler bon --verifier rm:PATH")
        try:
            value = float(tolerance)
        except (TypeError, ValueError):
            value = -1.0
        if not value >= 0:  # also rejects NaN
            raise harness.HarnessError(f"winrate option tolerance={tolerance!r} must be a number >= 0")
        return WinRate(judge, value, judge_options)


@harness.hookimpl
def register_verifiers() -> list:
    return [WinRateFactory()]
