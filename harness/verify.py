"""The one verification API: the run, ``harness score`` and training rewards all score completions through it."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from harness.types import Example, Score, Verifier


def verify(verifier: Verifier, pairs: Sequence[tuple[Example, str]]) -> list[Score]:
    """Score (example, completion) pairs, one ``Score`` each, in order; never raises.

    A verifier's ``score_batch(pairs)`` is used when it has one (a reward model scores many
    examples in one forward pass), else ``score`` per pair. A crash is that plugin's failure:
    every pair of the call gets a ``Score(0, error=...)`` naming the verifier, counted in the
    run summary apart from wrong answers. Values follow one rule: a verifier that declares
    ``scale = "logit"`` returns raw rewards, mapped through the logistic function (the raw
    number is kept in ``Score.raw``); any other value must lie in [0, 1] and is otherwise an
    error, never silently clipped.
    """
    pairs = list(pairs)
    if not pairs:
        return []
    try:
        batch = getattr(verifier, "score_batch", None)
        raw = list(batch(pairs)) if batch else [verifier.score(example, text) for example, text in pairs]
        if len(raw) != len(pairs):
            raise ValueError(f"returned {len(raw)} scores for {len(pairs)} completions")
    except Exception as exc:  # plugin code: contain it, count it, keep going
        error = f"verifier {getattr(verifier, 'name', verifier)!r} failed: {type(exc).__name__}: {exc}"
        return [Score(0.0, error=error)] * len(pairs)
    logits = getattr(verifier, "scale", None) == "logit"
    return [_as_score(r, logits) for r in raw]


def _as_score(raw: Any, logits: bool) -> Score:
    try:
        score = raw if isinstance(raw, Score) else Score(float(raw))
        value = float(score.value)
    except (TypeError, ValueError):
        return Score(0.0, error=f"not a score: {raw!r}"[:200])
    if math.isnan(value):
        return Score(0.0, score.answer, "score is NaN", score.metrics, score.raw)
    if logits:
        return Score(_sigmoid(value), score.answer, score.error, score.metrics, value)
    if not 0.0 <= value <= 1.0:
        return Score(0.0, score.answer, f"score {value} outside [0, 1]", score.metrics, score.raw)
    return dataclasses.replace(score, value=value)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))
