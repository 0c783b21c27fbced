"""The small typed objects that flow through a run: examples in, completions and scores out."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Example:
    """One problem of a task.

    ``prompt`` is the user message (a chat template is applied later, by the engine's
    tokenizer); ``reference`` is the gold answer, or None when the task has none;
    ``meta`` holds task facts a verifier may read (Countdown's numbers and target);
    ``shots`` are worked examples as (user, assistant) pairs, rendered as prior chat turns
    under a chat template and as plain text before the prompt without one.
    """

    prompt: str
    reference: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    id: str = ""
    shots: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Score:
    """A verifier's verdict on one completion.

    ``value`` is in [0, 1]; ``answer`` is what the verifier extracted (None when it
    found nothing to grade); ``error`` says why the check itself failed (a timeout, an
    exception), which is counted apart from wrong answers; ``metrics`` holds named
    side-scores in [0, 1] (``well_formed``, ``strict``) that the run summary averages
    over the chosen samples and reports beside accuracy.
    """

    value: float
    answer: str | None = None
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Completion:
    """One generated sample: what every engine returns."""

    text: str
    tokens: int
    logprob: float
    finish_reason: str

    @property
    def mean_logprob(self) -> float:
        return self.logprob / max(self.tokens, 1)


@dataclass(frozen=True)
class Candidate:
    """One of the N samples a sampler chooses among.

    ``answer`` is the final answer the task's grader extracted (never whether it is right);
    ``score`` is the selection verifier's verdict, present only for samplers that use scores.
    """

    completion: Completion
    answer: str | None = None
    score: Score | None = None


@runtime_checkable
class Verifier(Protocol):
    """Scores completions. See ``harness.hookspecs.register_verifiers``."""

    name: str
    reference_free: bool

    def score(self, example: Example, completion: str) -> float | Score: ...


@runtime_checkable
class Task(Protocol):
    """A dataset plus its grader. See ``harness.hookspecs.register_tasks``."""

    name: str
    verifier: str

    def examples(self, split: str = "test", limit: int | None = None, seed: int = 0) -> Iterator[Example]: ...


@runtime_checkable
class Sampler(Protocol):
    """Chooses one of N candidates. See ``harness.hookspecs.register_samplers``."""

    name: str
    greedy: bool
    uses_scores: bool

    def select(self, candidates: Sequence[Candidate]) -> int: ...
