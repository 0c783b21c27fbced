"""The small typed objects that flow through a run: examples in, completions and scores out, records on disk."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

SCHEMA_VERSION = 2  # of ExampleRecord / SampleRecord as written to samples.jsonl


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
    side-scores (``well_formed``, ``strict``) that the grader's declared metrics aggregate;
    ``raw`` is the verifier's unsquashed number (a reward model's logit) when it has one.
    """

    value: float
    answer: str | None = None
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    raw: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Score:
        return cls(data["value"], data.get("answer"), data.get("error"), dict(data.get("metrics") or {}),
                   data.get("raw"))


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


@dataclass
class SampleRecord:
    """One generated sample in the record: the completion, what it cost, and its verdicts."""

    completion: Completion
    seconds: float = 0.0
    grade: Score | None = None
    score: Score | None = None

    def to_json(self) -> dict[str, Any]:
        c = self.completion
        return {"text": c.text, "tokens": c.tokens, "logprob": c.logprob, "finish_reason": c.finish_reason,
                "seconds": self.seconds, "grade": self.grade.to_json() if self.grade else None,
                "score": self.score.to_json() if self.score else None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SampleRecord:
        completion = Completion(data["text"], data["tokens"], data["logprob"], data["finish_reason"])
        return cls(completion, data.get("seconds", 0.0),
                   Score.from_json(data["grade"]) if data.get("grade") else None,
                   Score.from_json(data["score"]) if data.get("score") else None)


@dataclass
class ExampleRecord:
    """One example in the record: what was asked, every sample, which one was chosen and the credit it earned.

    ``credit`` is the chosen sample's value under the run's primary metric (1/0 for accuracy,
    the score itself for a mean such as a win-rate); ``selection_error`` names a sampler
    failure on this example (the example then earns no credit).
    """

    example: Example
    rendered_prompt: str
    samples: list[SampleRecord]
    selected: int | None = None
    credit: float | None = None
    selection_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        ex = self.example
        return {"schema_version": SCHEMA_VERSION, "id": ex.id, "prompt": ex.prompt, "shots": ex.shots,
                "rendered_prompt": self.rendered_prompt, "reference": ex.reference, "meta": ex.meta,
                "samples": [s.to_json() for s in self.samples], "selected": self.selected,
                "credit": self.credit, "selection_error": self.selection_error}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExampleRecord:
        example = Example(data["prompt"], data.get("reference"), data.get("meta") or {}, data["id"],
                          tuple(tuple(s) for s in data.get("shots") or ()))
        return cls(example, data["rendered_prompt"], [SampleRecord.from_json(s) for s in data["samples"]],
                   data.get("selected"), data.get("credit"), data.get("selection_error"))

    @property
    def chosen(self) -> SampleRecord | None:
        return None if self.selected is None else self.samples[self.selected]


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
