"""The small typed objects that flow through a run: examples in, completions and scores out, records on disk;
the run's config; and the plugin contract the core reads tasks, verifiers and samplers through."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import re
import types
import typing
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self, Union, get_args, get_origin, runtime_checkable

if TYPE_CHECKING:
    from harness.metrics import Metric

# The version of a run record, both files: every line of samples.jsonl and its summary.json. Records of version 1
# carry none. Readers read every version up to this one and refuse a newer one (harness.record).
SCHEMA_VERSION = 2
DEFAULT_TEMPERATURE = 0.7


def sigmoid(x: float) -> float:
    """The logistic function, computed without overflow for any finite or infinite ``x``."""
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) if get_origin(hint) is None else str(hint).replace("typing.", "")


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def mistyped(obj: Any, where: str = "") -> str | None:
    """The first field of a dataclass instance, nested ones included, whose value lacks its declared type, as
    ``"metric.value is 'high', not float"``; None when every field has its type. An ``int`` passes for a ``float``
    (JSON writes 1.0 as 1); ``Any`` and callables pass unchecked."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        problem = _conforms(getattr(obj, f.name), hints[f.name], f"{where}{f.name}")
        if problem:
            return problem
    return None


def _conforms(value: Any, hint: Any, where: str) -> str | None:
    origin, args = get_origin(hint), get_args(hint)
    wrong = f"{where} is {_short(value)}, not {_type_name(hint)}"
    if hint is Any or origin is Callable or hint is Callable:
        return None
    if origin in (Union, types.UnionType):
        if value is None:
            return None if type(None) in args else wrong
        options = [a for a in args if a is not type(None)]
        problems = [_conforms(value, a, where) for a in options]
        if any(p is None for p in problems):
            return None
        return problems[0] if len(options) == 1 else wrong
    if hint is float:
        return None if isinstance(value, int | float) and not isinstance(value, bool) else wrong
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else wrong
    if hint in (str, bool):
        return None if isinstance(value, hint) else wrong
    if dataclasses.is_dataclass(hint):
        return mistyped(value, f"{where}.") if isinstance(value, hint) else wrong
    if origin in (list, tuple, Sequence):
        if not isinstance(value, list | tuple) or (origin is not Sequence and not isinstance(value, origin)):
            return wrong
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                return wrong
            items = list(zip(value, args, strict=True))
        else:
            items = [(v, args[0]) for v in value] if args else []
        return next((p for i, (v, a) in enumerate(items) if (p := _conforms(v, a, f"{where}[{i}]"))), None)
    if origin is dict:
        if not isinstance(value, dict):
            return wrong
        key, item = args or (Any, Any)
        for k, v in value.items():
            problem = _conforms(k, key, f"{where} key") or _conforms(v, item, f"{where}[{k!r}]")
            if problem:
                return problem
        return None
    return None if not isinstance(hint, type) or isinstance(value, hint) else wrong


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

    @cached_property
    def digest(self) -> str:
        """The example's identity by content (prompt, reference, meta, shots), never by its ``id``, which a task may
        number by row: two runs share an example exactly when they share this digest. Computed over the JSON the
        record holds, so a record read back gives the digest its example had when it was written."""
        content = json.loads(json.dumps([self.prompt, self.reference, self.meta, self.shots], default=str))
        blob = json.dumps(content, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Score:
    """A verifier's verdict on one completion, valid wherever it is made.

    ``value`` is a number in [0, 1] (anything else, NaN included, raises when the ``Score`` is
    built); ``answer`` is what the verifier extracted (None when it found nothing to grade);
    ``error`` says why the check itself failed (a timeout, an exception), which is counted apart
    from wrong answers; ``metrics`` holds named side-scores (``well_formed``, ``strict``) that the
    grader's declared metrics aggregate; ``raw`` is the verifier's own number on its own scale (a
    reward model's logit) when it has one: ``Score.from_logit`` builds both.
    """

    value: float
    answer: str | None = None
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    raw: float | None = None

    def __post_init__(self) -> None:
        value = self.value
        if not isinstance(value, numbers.Real):
            raise TypeError(f"not a score: {value!r}"[:200])
        if value != value:
            raise ValueError("score is NaN")
        if not 0 <= value <= 1:
            raise ValueError(f"score {value} outside [0, 1]"[:200])
        object.__setattr__(self, "value", float(value))
        for name in ("answer", "error"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise TypeError(f"a score's {name} must be a string or None, not {getattr(self, name)!r}"[:200])
        if not isinstance(self.metrics, dict):
            raise TypeError(f"a score's metrics must be a dict of numbers, not {self.metrics!r}"[:200])
        for key, metric in self.metrics.items():
            if not isinstance(key, str) or not isinstance(metric, numbers.Real) or not math.isfinite(metric):
                raise TypeError(f"a score's metric {key!r} is {metric!r}, not a finite number"[:200])
        if self.raw is not None and not isinstance(self.raw, numbers.Real):
            raise TypeError(f"a score's raw value must be a number or None, not {self.raw!r}"[:200])

    @classmethod
    def from_logit(cls, logit: float) -> Score:
        """The verdict of a logit-scale verifier (a reward model): ``sigmoid(logit)`` as the value, the logit as
        ``raw``. A NaN logit is that completion's error."""
        logit = float(logit)
        if math.isnan(logit):
            return cls(0.0, error="score is NaN")
        return cls(sigmoid(logit), raw=logit)

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
    ``score`` is the run's verifier's verdict (``--verifier``), present only for samplers that use scores.
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
    failure on this example (the example then earns no credit). ``digest`` is the example's
    content identity (``Example.digest``), what ``harness compare`` pairs examples by; a
    record written before it existed gets it computed when read.
    """

    example: Example
    rendered_prompt: str
    samples: list[SampleRecord]
    selected: int | None = None
    credit: float | None = None
    selection_error: str | None = None
    digest: str = ""

    def __post_init__(self) -> None:
        if not self.digest:
            self.digest = self.example.digest

    def to_json(self) -> dict[str, Any]:
        ex = self.example
        return {"schema_version": SCHEMA_VERSION, "id": ex.id, "digest": self.digest, "prompt": ex.prompt,
                "shots": ex.shots, "rendered_prompt": self.rendered_prompt, "reference": ex.reference,
                "meta": ex.meta, "samples": [s.to_json() for s in self.samples], "selected": self.selected,
                "credit": self.credit, "selection_error": self.selection_error}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExampleRecord:
        example = Example(data["prompt"], data.get("reference"), data.get("meta") or {}, data["id"],
                          tuple(tuple(s) for s in data.get("shots") or ()))
        credit = data.get("credit")
        if credit is None and data.get("correct") is not None:  # version 1 recorded whether the choice was right
            credit = float(data["correct"])
        return cls(example, data["rendered_prompt"], [SampleRecord.from_json(s) for s in data["samples"]],
                   data.get("selected"), credit, data.get("selection_error"), data.get("digest") or "")

    @property
    def chosen(self) -> SampleRecord | None:
        return None if self.selected is None else self.samples[self.selected]


# The run options a leaderboard row or a comparison names in columns of their own, or that are the task's business:
# ``RunConfig.options`` says the rest where they are set away from their defaults.
TABLED = ("policy", "task", "sampler", "n", "verifier", "grader", "limit", "task_args", "verifier_args", "grader_args",
          "rescored_from")


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides a run's result; its hash names the run directory.

    ``verifier`` is the verifier that scores samples for a sampler that uses scores (``--verifier``);
    ``grader`` the one that grades the run (default: the task's).
    """

    policy: str = "smollm2"
    task: str = "countdown"
    sampler: str = "greedy"
    n: int = 1
    verifier: str | None = None
    grader: str | None = None
    oracle: bool = False
    split: str = "test"
    limit: int | None = None
    seed: int = 0
    temperature: float | None = None
    top_p: float = 1.0
    max_tokens: int = 256
    backend: str = "auto"
    chat_template: bool = True
    system_prompt: str | None = None
    task_args: dict[str, str] = field(default_factory=dict)
    verifier_args: dict[str, str] = field(default_factory=dict)
    grader_args: dict[str, str] = field(default_factory=dict)
    rescored_from: str | None = None  # a rescoring names its source, so it never takes the source's id

    def run_id(self, numerics: dict[str, Any], weights: str, examples: str = "") -> str:
        """Config, what keys the run's samples (``harness.pipeline.sample_identity``: sampling and the engine's
        resolved numerics), the policy's weights and the examples' content: a float32 run is another run than a bf16
        one, a policy retrained under the same name or a data file changed in place gets a new record beside the
        old one, which is never rewritten."""
        blob = json.dumps([dataclasses.asdict(self), numerics, weights, *([examples] if examples else [])],
                          sort_keys=True)
        digest = hashlib.sha256(blob.encode()).hexdigest()[:8]
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(self.policy).name or self.policy)
        task = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.task)
        return f"{slug}-{task}-{self.sampler}-n{self.n}-{digest}"

    @property
    def sampling_temperature(self) -> float:
        return DEFAULT_TEMPERATURE if self.temperature is None else self.temperature

    def options(self, shown: Collection[str] = TABLED) -> list[str]:
        """``key=value`` for each option set away from ``harness run``'s default, but those ``shown`` already: what
        tells apart two runs of one policy, task and sampler (``temperature=1.3``, ``split=validation``)."""
        default = RunConfig()
        return [f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self)
                if f.name not in shown and getattr(self, f.name) != getattr(default, f.name)]


# -- the plugin contract: what the core reads of a plugin's object ----------------------------------------------
#
# The Protocols name the members every task, verifier and sampler has. The members a plugin MAY define are
# declared once below, each with the default that applies when it is absent, and the core reads them only
# through ``OptionalMembers.of``: it never probes a plugin for anything else. ``harness.hookspecs`` documents both.


@runtime_checkable
class Task(Protocol):
    """A dataset plus its grader. See ``harness.hookspecs.register_tasks``."""

    name: str
    verifier: str

    def examples(self, split: str = "test", limit: int | None = None, seed: int = 0) -> Iterator[Example]: ...


@runtime_checkable
class Verifier(Protocol):
    """Scores completions. See ``harness.hookspecs.register_verifiers``."""

    name: str
    reference_free: bool

    def score(self, example: Example, completion: str) -> float | Score: ...


@runtime_checkable
class Sampler(Protocol):
    """Chooses one of N candidates. See ``harness.hookspecs.register_samplers``."""

    name: str
    greedy: bool
    uses_scores: bool

    def select(self, candidates: Sequence[Candidate]) -> int: ...


def data_members(protocol: type) -> tuple[str, ...]:
    """The data members a contract Protocol names (``name``, ``reference_free``, ...), without its methods."""
    return tuple(protocol.__annotations__)


@dataclass(frozen=True)
class OptionalMembers:
    """The members a plugin's object may define, each with its default; ``of`` is how the core reads them."""

    # present: the object is a factory, built with the user's arguments (``harness.plugins.Registry.build``)
    configure: Callable[..., Any] | None = None

    @classmethod
    def of(cls, component: object) -> Self:
        """The declared optional members of ``component``: its own where it defines them, else the defaults."""
        names = (f.name for f in dataclasses.fields(cls))
        return cls(**{name: getattr(component, name) for name in names if hasattr(component, name)})


@dataclass(frozen=True)
class TaskOptional(OptionalMembers):
    """What a task may define besides ``Task``'s members."""

    stop: Sequence[str] = ()  # strings that end a generation (not part of the completion)
    metrics: Sequence[Metric] = ()  # the run's metrics when its grader declares none; the first is the headline


@dataclass(frozen=True)
class VerifierOptional(OptionalMembers):
    """What a verifier may define besides ``Verifier``'s members."""

    # one verdict per (example, completion) pair, in order; preferred to ``score`` when present
    score_batch: Callable[[list[tuple[Example, str]]], Sequence[float | Score]] | None = None
    extracts_answers: bool = True  # False: a grader that never extracts an answer (a win-rate judge)
    metrics: Sequence[Metric] = ()  # as a grader: the run's metrics; the first is the headline
    judge: str | None = None  # as a grader: the spec of the model it consults, recorded with the run
    judge_model: str | None = None  # where that judge's weights come from (a directory or hub id)


@dataclass(frozen=True)
class SamplerOptional(OptionalMembers):
    """What a sampler may define besides ``Sampler``'s members."""
