"""RLOO rewards (and what RFT accepts) are the harness's verifiers: one code path for "reward" and "verifier".

A TRL reward function receives the completions of a generation batch with the dataset's extra
columns; the ``example`` column indexes the harness ``Example`` each prompt came from, and the
rewards are ``harness.verify(verifier, pairs)`` — the same call the evaluation pipeline makes, so a
Countdown rule check, a sympy check against gold, a reward model (``rm:PATH``) or any third-party
verifier reward training exactly as they grade evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import harness


class VerifierReward:
    """A TRL reward function backed by a harness verifier; counts the verifier's own errors (scored 0)."""

    def __init__(self, spec: str, examples: Sequence[harness.Example], verifier: Any | None = None):
        self.spec = spec
        self.verifier = verifier if verifier is not None else harness.get_verifier(spec)
        self.examples = list(examples)
        self.__name__ = f"verifier:{spec}"  # TRL names the reward column after it
        self.errors = 0

    def __call__(self, prompts: list, completions: list, example: list[int], log_metric=None,
                 **_: Any) -> list[float]:
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        scores = harness.verify(self.verifier, [(self.examples[i], t) for i, t in zip(example, texts, strict=True)])
        errors = sum(s.error is not None for s in scores)
        self.errors += errors
        if log_metric is not None:
            log_metric("reward_errors", float(errors))
        return [s.value for s in scores]


def absolute_spec(spec: str) -> str:
    """A verifier spec whose argument is written as a local path names it absolutely, so the manifest means one model;
    a bare word (``countdown:subset``, a trained reward model's name) is an option, even where a file has that name."""
    name, sep, arg = spec.partition(":")
    looks_like_path = arg.startswith((".", "~")) or "/" in arg
    if sep and looks_like_path and Path(arg).expanduser().exists():
        return f"{name}:{Path(arg).expanduser().resolve()}"
    return spec


def resolve_reward(config: Any) -> tuple[str, Any]:
    """A method's ``reward`` (rloo's reward, rft's acceptance test) as recorded (a local path made absolute, also in
    ``config``) and its verifier, resolved before the data and the model load."""
    config.reward = absolute_spec(config.reward or "")
    return config.reward, harness.get_verifier(config.reward)
