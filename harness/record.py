"""Run records on disk: ``samples.jsonl`` (every example, sample, verdict and choice) and ``summary.json``.

``summary.json`` is a ``RunSummary``: what the leaderboard, ``harness compare``, ``harness plot`` and
the command line read, always through ``read_summary`` / ``read_record``, never as a bare dict. Both
files carry ``types.SCHEMA_VERSION``; a reader reads every earlier version (version 1 carried no
number) and refuses a newer one in one line, and one whose fields lack their declared types
(``types.mistyped``) in one line too. Both are written atomically (temp file, then rename), so a
reader never sees half a record; the samples first, so a ``summary.json`` always describes a
complete ``samples.jsonl``. A record is immutable: ``write_record`` never replaces a
``summary.json`` (a second writer of the same run finds the first one's and leaves it), and
``check_output`` refuses any output path inside a record before a command does any work.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

from harness.console import warn
from harness.errors import HarnessError, describe
from harness.types import SCHEMA_VERSION, ExampleRecord, RunConfig, mistyped

SAMPLES = "samples.jsonl"
SUMMARY = "summary.json"

# Side metrics recorded under an older name, read under today's so one metric is one name (plugins/winrate.py).
RENAMED_METRICS = {"lc_win_rate": "length_adjusted_win_rate"}


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``data`` that name fields of the dataclass ``cls``."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass(frozen=True)
class Measure:
    """One metric over the run's examples: its value and seeded 95% bootstrap interval (None in version 1's side
    metrics, which kept the value alone)."""

    value: float
    ci95: tuple[float, float] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "ci95": None if self.ci95 is None else list(self.ci95)}

    @classmethod
    def from_json(cls, data: Any) -> Self:
        if not isinstance(data, dict):  # version 1: a side metric was its bare value
            return cls(data)
        ci95 = data.get("ci95")
        return cls(data["value"], None if ci95 is None else (ci95[0], ci95[1]))


@dataclass(frozen=True)
class Headline(Measure):
    """The run's headline metric: the first the grader (or task) declares, or ``pass@N`` for an oracle run."""

    name: str = "accuracy"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **super().to_json()}

    @classmethod
    def from_json(cls, data: Any) -> Self:
        return cls(**dataclasses.asdict(Measure.from_json(data)), name=data["name"])


@dataclass(frozen=True)
class Counts:
    """How many of each thing the run saw. ``credited``: the chosen samples' credit summed (version 1 counted the
    correct ones); ``extraction_failures`` is None for a grader that extracts no answers."""

    examples: int
    samples: int = 0
    credited: float = 0.0
    extraction_failures: int | None = None
    grader_errors: int = 0
    verifier_errors: int = 0
    selection_errors: int = 0
    truncated: int = 0


@dataclass(frozen=True)
class Tokens:
    generated: int
    per_example: float
    per_sample: float


@dataclass(frozen=True)
class Timings:
    """Seconds spent per stage (generation ones carried over from the source when rescoring)."""

    load_s: float = 0.0
    generation_s: float = 0.0
    verification_s: float | None = None
    tokens_per_s: float | None = None
    wall_s: float | None = None


@dataclass(frozen=True)
class PolicyFacts:
    """Which weights generated the samples (version 1 recorded the name alone)."""

    name: str
    model: str | None = None
    adapter: str | None = None
    fingerprint: str | None = None
    trained_against: str | None = None  # the reward spec its manifest names


TRAINED_AGAINST = "the policy was trained against this judge"


@dataclass(frozen=True)
class JudgeFacts:
    """The model a grader consulted (a win-rate judge) and whether it is independent of the policy
    (``harness.provenance.judge_facts``): ``independent`` True, False or ``"unknown"`` (a lineage that was never
    recorded), ``why`` in words, and how many of the policy's training prompts (``shared_training``, its bases'
    included) and of the run's own prompts (``shared_evaluation``) the judge trained on.

    A record from before lineage holds ``trained_against`` alone: read back, one whose judge is the policy's
    reward is dependent, any other has ``independent`` None (never checked)."""

    spec: str
    model: str | None = None
    trained_against: bool = False
    independent: bool | Literal["unknown"] | None = None
    why: str | None = None
    shared_training: int | None = None
    shared_evaluation: int | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        judge = cls(**_known(cls, data))
        if not (judge.independent is None or isinstance(judge.independent, bool) or judge.independent == "unknown"):
            raise ValueError(f"judge.independent is {judge.independent!r}, not true, false or 'unknown'")
        if judge.independent is None and judge.trained_against:
            return dataclasses.replace(judge, independent=False, why=TRAINED_AGAINST)
        return judge


@dataclass(frozen=True)
class Component:
    """A configured component as the user named it and where it came from: enough to build it again."""

    name: str
    spec: str
    args: list[str] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)
    plugin: str | None = None
    distribution: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class Curves:
    """Inference-scaling curves from one generation (``harness.curves.scaling_curves``); lists run along ``n``."""

    n: list[int]
    tokens: list[float]
    pass_at_k: list[float]  # "pass@k" on disk
    accuracy: dict[str, list[float]]  # the headline credit per sampler
    samplers: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    method: list[str] = field(default_factory=list)
    problems: int | None = None
    samples: int | None = None
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {"n": data.pop("n"), "tokens": data.pop("tokens"), "pass@k": data.pop("pass_at_k"), **data}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(**_known(cls, data), pass_at_k=data["pass@k"])


@dataclass(frozen=True)
class RunSummary:
    """What a run measured and how to reproduce it: ``summary.json``.

    ``task``, ``sampler``, ``grader`` and ``verifier`` are the components' names (``verifier``: the one
    that scored samples for the sampler, None when it reads no scores); ``components`` their specs and
    origins; ``metric`` the headline and ``metrics`` every other declared metric; ``engine`` the engine's
    own description (None when every sample came from the cache); ``numerics`` the engine facts that
    keyed its samples in the generation cache (``harness.pipeline.sample_identity``: backend, device,
    dtype, compile, LoRA serving, ...; None in records written before it was kept); ``rescored_from``
    the source run's directory of a rescoring.
    """

    run_id: str
    config: RunConfig
    metric: Headline
    counts: Counts
    task: str
    sampler: str
    grader: str | None = None
    verifier: str | None = None
    oracle: bool = False
    metrics: dict[str, Measure] = field(default_factory=dict)
    components: dict[str, Component] = field(default_factory=dict)
    tokens: Tokens | None = None
    timings: Timings = field(default_factory=Timings)
    curves: Curves | None = None
    engine: dict[str, Any] | None = None
    engine_options: dict[str, Any] | None = None
    numerics: dict[str, Any] | None = None
    cached_samples: int = 0
    policy: PolicyFacts | None = None
    judge: JudgeFacts | None = None
    rescored_from: str | None = None
    created: str | None = None
    versions: dict[str, str | None] = field(default_factory=dict)
    git: str | None = None
    schema_version: int = SCHEMA_VERSION  # the shape of this object: a record read from an earlier version is upgraded

    @property
    def policy_name(self) -> str:
        return self.policy.name if self.policy else self.config.policy

    def to_json(self) -> dict[str, Any]:
        asdict = dataclasses.asdict
        return {
            "schema_version": self.schema_version, "run_id": self.run_id, "created": self.created,
            "config": asdict(self.config), "components": {k: asdict(c) for k, c in self.components.items()},
            "engine": self.engine, "engine_options": self.engine_options, "numerics": self.numerics,
            "cached_samples": self.cached_samples,
            "policy": asdict(self.policy) if self.policy else None, "timings": asdict(self.timings),
            "judge": asdict(self.judge) if self.judge else None, "rescored_from": self.rescored_from,
            "task": self.task, "sampler": self.sampler, "grader": self.grader, "verifier": self.verifier,
            "oracle": self.oracle, "metric": self.metric.to_json(),
            "metrics": {k: m.to_json() for k, m in self.metrics.items()}, "counts": asdict(self.counts),
            "tokens": asdict(self.tokens) if self.tokens else None,
            "curves": self.curves.to_json() if self.curves else None, "versions": self.versions, "git": self.git,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], run_id: str = "") -> Self:
        """A summary of any version up to ``SCHEMA_VERSION``; ``run_id`` names one that lacks its own."""
        config = RunConfig(**data["config"])
        counts = dict(data.get("counts") or {"examples": 0})
        if "credited" not in counts and counts.get("correct") is not None:  # version 1
            counts["credited"] = counts["correct"]
        engine = data.get("engine")
        policy, judge, tokens, curves = (data.get(k) for k in ("policy", "judge", "tokens", "curves"))
        return cls(
            run_id=data.get("run_id") or run_id, config=config, metric=Headline.from_json(data["metric"]),
            counts=Counts(**_known(Counts, counts)), task=data.get("task") or config.task,
            sampler=data.get("sampler") or config.sampler, grader=data.get("grader"), verifier=data.get("verifier"),
            oracle=bool(data.get("oracle", config.oracle)),
            metrics={RENAMED_METRICS.get(k, k): Measure.from_json(v) for k, v in (data.get("metrics") or {}).items()},
            components={k: Component(**_known(Component, c)) for k, c in (data.get("components") or {}).items()},
            tokens=Tokens(**_known(Tokens, tokens)) if tokens else None,
            timings=Timings(**_known(Timings, data.get("timings") or {})),
            curves=Curves.from_json(curves) if curves else None,
            engine={"name": engine} if isinstance(engine, str) else engine,  # version 1: the engine's name
            engine_options=data.get("engine_options"), numerics=data.get("numerics"),
            cached_samples=data.get("cached_samples", 0),
            policy=PolicyFacts(**_known(PolicyFacts, policy)) if policy else None,
            judge=JudgeFacts.from_json(judge) if judge else None,
            rescored_from=data.get("rescored_from"), created=data.get("created"),
            versions=dict(data.get("versions") or {}), git=data.get("git"), schema_version=SCHEMA_VERSION,
        )


@contextlib.contextmanager
def atomic_file(path: Path, exclusive: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` to write; on success it becomes ``path`` in one step (a reader sees the old
    file or the new one, never half of one), on failure it is removed. ``exclusive``: never replace an existing
    ``path`` (``FileExistsError``, the temporary file removed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # the mode a plain open() gives, not mkstemp's private 0600
        yield tmp
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        if exclusive:
            _link(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _link(tmp: Path, path: Path) -> None:
    """``tmp`` becomes ``path`` only if ``path`` does not exist (``FileExistsError`` otherwise): a hard link, atomic
    where the filesystem has them, else a check and a rename."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # a filesystem without hard links
        if path.exists():
            raise FileExistsError(path) from None
        os.replace(tmp, path)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """A JSON file that holds one object (a manifest, a state file); anything else is one line naming ``what``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise HarnessError(f"{what} is unreadable: {describe(exc)}") from None
    if not isinstance(data, dict):
        raise HarnessError(f"{what} is unreadable: a JSON {type(data).__name__}, not an object")
    return data


def write_atomic(path: Path, text: str, exclusive: bool = False) -> None:
    with atomic_file(path, exclusive) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_record(run_dir: Path, records: list[ExampleRecord], summary: RunSummary) -> bool:
    """Write a run's record; False, writing nothing, when the run already has a ``summary.json`` (a finished record
    is never rewritten: two processes that finish the same run keep the first one's)."""
    if (run_dir / SUMMARY).exists():
        return False
    write_atomic(run_dir / SAMPLES, "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in records))
    try:
        write_atomic(run_dir / SUMMARY, json.dumps(summary.to_json(), indent=2, ensure_ascii=False) + "\n",
                     exclusive=True)
    except FileExistsError:
        return False
    return True


def record_containing(path: Path) -> Path | None:
    """The run directory that ``path`` is or lies inside (one holding a ``summary.json`` or ``samples.jsonl``)."""
    path = Path(os.path.abspath(path.expanduser()))
    for folder in (path, *path.parents):
        if (folder / SUMMARY).is_file() or (folder / SAMPLES).is_file():
            return folder
    return None


def check_output(path: Path, flag: str, kind: str = "directory") -> None:
    """Refuse, in one line and before any work, an output path that exists as something other than ``kind``
    (``directory`` or ``file``) or that is or lies inside a run record (records are immutable)."""
    record = record_containing(path)
    if record is not None:
        where = ("is a run record" if Path(os.path.abspath(path.expanduser())) == record else
                 f"lies inside the run record {record}")
        raise HarnessError(f"{flag} {path} {where}, and records are never written into; choose a path outside it")
    if kind == "directory" and path.exists() and not path.is_dir():
        raise HarnessError(f"{flag} {path} exists and is not a directory; choose a directory for run records")
    if kind == "file" and path.is_dir():
        raise HarnessError(f"{flag} {path} is a directory; name the file to write")
    for parent in path.expanduser().absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise HarnessError(f"{flag} {path}: {parent} is not a directory")
            break


def _version(run_dir: Path, data: Any) -> int:
    """The record version of a summary or samples line; a newer one than this harness reads is a one-line error."""
    version = data.get("schema_version", 1) if isinstance(data, dict) else 1
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"schema_version {version!r} is not a record version")
    if version > SCHEMA_VERSION:
        raise HarnessError(f"{run_dir} is a version {version} record, newer than this harness reads (up to "
                           f"{SCHEMA_VERSION}); upgrade harness to read it")
    return version


def read_summary(run_dir: Path) -> RunSummary:
    path = run_dir / SUMMARY
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        _version(run_dir, data)
        summary = RunSummary.from_json(data, run_dir.name)
        problem = mistyped(summary)
        if problem:
            raise TypeError(problem)
        return summary
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise HarnessError(f"{run_dir} is not a readable run directory ({path.name}: {describe(exc)})") from None


def read_record(run_dir: Path) -> tuple[list[ExampleRecord], RunSummary]:
    """A run's examples and summary; a record that is torn, corrupt or of another shape is a one-line error."""
    summary = read_summary(run_dir)
    path = run_dir / SAMPLES
    try:
        with path.open(encoding="utf-8") as fh:
            lines = [json.loads(line) for line in fh if line.strip()]
        for line in lines:
            _version(run_dir, line)
        records = [ExampleRecord.from_json(line) for line in lines]
        problem = next((f"line {i + 1}: {p}" for i, r in enumerate(records) if (p := mistyped(r))), None)
        if problem:
            raise TypeError(problem)
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise HarnessError(f"{run_dir} is not a readable run directory ({path.name}: {describe(exc)})") from None
    if len(records) != summary.counts.examples:
        raise HarnessError(f"{run_dir} is corrupt: {SAMPLES} has {len(records)} examples, {SUMMARY} says "
                           f"{summary.counts.examples}")
    return records, summary


def iter_summaries(output: Path) -> Iterator[tuple[Path, RunSummary]]:
    """Every readable run under ``output``; unreadable ones are reported in one line and skipped."""
    for path in sorted(output.glob("*/summary.json")):
        try:
            yield path.parent, read_summary(path.parent)
        except HarnessError as exc:
            warn(f"skipping {exc}")

