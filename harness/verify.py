"""The one verification API: the run, ``harness score`` and training rewards all score completions through it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.errors import describe
from harness.types import Example, Score, Verifier, VerifierOptional


def verify(verifier: Verifier, pairs: Sequence[tuple[Example, str]]) -> list[Score]:
    """Score (example, completion) pairs, one ``Score`` each, in order; never raises.

    A verifier's ``score_batch(pairs)`` is used when it has one (a reward model scores many
    examples in one forward pass), else ``score`` per pair. A crash is that plugin's failure:
    every pair of the call gets a ``Score(0, error=...)`` naming the verifier, counted in the
    run summary apart from wrong answers (a ``SystemExit`` or other ``BaseException`` too; only
    Ctrl-C goes through). A verifier may return a ``Score`` (valid by construction: a
    non-numeric metric raises where it is made, the plugin's failure) or a plain number, which
    must lie in [0, 1]: anything else is that pair's error, never silently clipped.
    """
    pairs = list(pairs)
    if not pairs:
        return []
    try:
        batch = VerifierOptional.of(verifier).score_batch
        verdicts = list(batch(pairs)) if batch else [verifier.score(example, text) for example, text in pairs]
        if len(verdicts) != len(pairs):
            raise ValueError(f"returned {len(verdicts)} scores for {len(pairs)} completions")
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # plugin code, SystemExit included: contain it, count it, keep going
        error = f"verifier {getattr(verifier, 'name', verifier)!r} failed: {describe(exc)}"
        return [Score(0.0, error=error)] * len(pairs)
    return [_as_score(v) for v in verdicts]


def _as_score(verdict: Any) -> Score:
    if isinstance(verdict, Score):
        return verdict
    try:
        value = float(verdict)
    except (TypeError, ValueError, OverflowError):
        return Score(0.0, error=f"not a score: {verdict!r}"[:200])
    try:
        return Score(value)
    except ValueError as exc:  # NaN, or outside [0, 1]
        return Score(0.0, error=str(exc))
