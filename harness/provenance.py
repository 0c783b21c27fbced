"""What a record or a manifest keeps so that a number can be traced to the code, packages and data that made it.

A trained model's ``lineage.json`` (written here for the training package, read here by the core) says
which prompts it and every base under it trained on, as digests; a run graded by a judge compares the
judge's lineage with the policy's and with the run's own prompts (``judge_facts``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import platform
import subprocess
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.errors import HarnessError, describe
from harness.record import TRAINED_AGAINST, JudgeFacts, PolicyFacts, read_json_object, write_atomic
from harness.types import Example, mistyped


def versions(packages: Iterable[str]) -> dict[str, str | None]:
    """Python's version and each distribution's (None where it is not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in packages:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def git_revision() -> str | None:
    """The code's commit, with ``-dirty`` when the working tree has uncommitted changes."""
    here = Path(__file__).parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode:
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


# ---------------------------------------------------------------- lineage: what a trained model saw

LINEAGE = "lineage.json"  # beside a trained policy's or reward model's policy.json
LINEAGE_FORMAT = 1
MANIFEST = "policy.json"
CHECKPOINTS = "checkpoints"  # beside policy.json: the trainer's checkpoint-N folders while a policy trains
DIGEST_CHARS = 16  # 64 bits of SHA-256: a collision among a few million prompts is out of reach


def normalise_prompt(user_turns: Iterable[str]) -> str:
    """One row's prompt by content: its user turns, each NFKC-normalised, case-folded and whitespace-collapsed.

    Training rows and evaluation examples are digested, and training halves hashed, from this one text, so the
    same question matches whichever dataset spelled it with other spacing or capitals."""
    return "\n".join(" ".join(unicodedata.normalize("NFKC", turn).casefold().split()) for turn in user_turns)


def prompt_digest(user_turns: Iterable[str]) -> str:
    """A short content digest of the normalised prompt."""
    return hashlib.sha256(normalise_prompt(user_turns).encode()).hexdigest()[:DIGEST_CHARS]


def example_turns(example: Example) -> list[str]:
    """An example's user turns as the chat the renderer builds it: the worked examples' questions, then the prompt."""
    return [*(question for question, _ in example.shots), example.prompt]


def example_digest(example: Example) -> str:
    return prompt_digest(example_turns(example))


@dataclass(frozen=True)
class SourcePrompts:
    """One data source of a training run: how many rows it gave and the sorted distinct digests of their prompts."""

    source: str
    rows: int
    prompts: list[str]
    path: str | None = None


@dataclass(frozen=True)
class Ancestor:
    """One model in a chain of bases. ``trained`` False ends the chain (a hub id, the bundled model, a plain model
    directory); a trained one whose ``sources`` are None was trained before lineage was recorded."""

    name: str
    trained: bool
    method: str | None = None
    sources: list[SourcePrompts] | None = None


@dataclass(frozen=True)
class Lineage:
    """What a trained model saw: its own data sources, and its bases (the base first, then the base's base...)."""

    name: str
    method: str
    sources: list[SourcePrompts]
    bases: list[Ancestor] = field(default_factory=list)

    def as_ancestor(self, name: str) -> list[Ancestor]:
        """This model as the first link of a chain that starts from it (``name``: how the child names its base)."""
        return [Ancestor(name, True, self.method, self.sources), *self.bases]

    def seen(self) -> tuple[dict[str, set[str]], list[str]]:
        """Every prompt digest this model or an ancestor trained on, by who saw it; and the trained ancestors whose
        data was never recorded (what is then unknown)."""
        seen = {f"{self.name} ({self.method})": {d for s in self.sources for d in s.prompts}}
        missing = []
        for base in self.bases:
            if base.trained and base.sources is None:
                missing.append(base.name)
            elif base.sources is not None:
                seen[f"{base.name} ({base.method})"] = {d for s in base.sources for d in s.prompts}
        return seen, missing

    def to_json(self) -> dict[str, Any]:
        return {"format": LINEAGE_FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Lineage:
        def sources(items: Any) -> list[SourcePrompts] | None:
            return None if items is None else [SourcePrompts(**item) for item in items]

        return cls(data["name"], data["method"], sources(data["sources"]) or [],
                   [Ancestor(a["name"], a["trained"], a.get("method"), sources(a.get("sources")))
                    for a in data.get("bases") or []])


def checkpoints(output: Path) -> list[tuple[int, Path, bool]]:
    """``(step, folder, complete)`` of each ``checkpoint-N`` a training run left under ``output``; complete once its
    ``trainer_state.json``, which the trainer writes last, exists."""
    folder = output / CHECKPOINTS
    found = [(path.name.removeprefix("checkpoint-"), path) for path in folder.glob("checkpoint-*")] \
        if folder.is_dir() else []
    return [(int(step), path, (path / "trainer_state.json").exists()) for step, path in found if step.isdigit()]


def write_lineage(directory: Path, lineage: Lineage) -> None:
    """``lineage.json`` in a trained model's directory, atomically (one line per digest list keeps it compact)."""
    write_atomic(directory / LINEAGE, json.dumps(lineage.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n")


def read_lineage(directory: Path) -> Lineage | None:
    """A trained model's lineage; None where its directory holds none; one of another shape is a one-line error."""
    path = directory / LINEAGE
    if not path.is_file():
        return None
    data = read_json_object(path, f"lineage {path}")
    if data.get("format") != LINEAGE_FORMAT:
        raise HarnessError(f"lineage {path} is format {data.get('format')!r}; this harness reads {LINEAGE_FORMAT}")
    try:
        lineage = Lineage.from_json(data)
    except (KeyError, TypeError, AttributeError) as exc:
        raise HarnessError(f"lineage {path} is unreadable: {describe(exc)}") from None
    problem = mistyped(lineage)
    if problem:
        raise HarnessError(f"lineage {path} is unreadable: {problem}")
    return lineage


def trained_directory(*paths: str | None) -> Path | None:
    """The training output a model or adapter folder belongs to (the folder holding its ``policy.json``), or None
    for weights that were not trained here. The first of ``paths`` that belongs to one wins: an adapter's
    directory holds the lineage of everything under it."""
    for path in paths:
        if not path:
            continue
        folder = Path(path).expanduser()
        for candidate in (folder, folder.parent):
            if (candidate / MANIFEST).is_file() or (candidate / LINEAGE).is_file():
                return candidate
    return None


# ---------------------------------------------------------------- judge independence

def judge_facts(spec: str, model: str | None, trained_against: bool, policy: PolicyFacts | None,
                examples: Iterable[Example]) -> JudgeFacts:
    """The judge as a run records it: whether it is independent of the policy and why.

    Dependent: the judge is the policy's reward, or it trained on prompts the policy (or any base under
    it) trained on, or on the run's own prompts. Unknown: a lineage that was never recorded."""
    dependent, unknown = [TRAINED_AGAINST] if trained_against else [], []
    judge, why = _judge_lineage(model)
    if judge is None:
        return _facts(spec, model, trained_against, dependent, [why], None, None, "")
    judge_seen, judge_missing = judge.seen()
    judged = set().union(*judge_seen.values())
    if judge_missing:
        unknown.append(f"the judge's base {', '.join(judge_missing)} was trained before lineage was recorded")
    seen, policy_unknown, policy_label = _policy_lineage(policy)
    unknown += policy_unknown
    shared_training = None
    if seen is not None:
        by_model = {who: len(judged & prompts) for who, prompts in seen.items() if judged & prompts}
        shared_training = len(judged & set().union(set(), *seen.values()))
        if shared_training:
            dependent.append(f"the judge saw {shared_training} training prompts of the policy or an ancestor ("
                             + ", ".join(f"{n} of {who}" for who, n in by_model.items()) + ")")
    evaluation = {example_digest(e) for e in examples}
    shared_evaluation = len(judged & evaluation)
    if shared_evaluation:
        dependent.append(f"the judge saw {shared_evaluation} of the {len(evaluation)} evaluation prompts")
    clean = (f"the judge's {len(judged)} training prompts include none of {policy_label} and none of the "
             f"{len(evaluation)} evaluation prompts")
    return _facts(spec, model, trained_against, dependent, unknown, shared_training, shared_evaluation, clean)


def _facts(spec: str, model: str | None, trained_against: bool, dependent: list[str], unknown: list[str],
           shared_training: int | None, shared_evaluation: int | None, clean: str) -> JudgeFacts:
    independent: bool | Literal["unknown"] = False if dependent else ("unknown" if unknown else True)
    return JudgeFacts(spec=spec, model=model, trained_against=trained_against, independent=independent,
                      why="; ".join(dependent or unknown) or clean, shared_training=shared_training,
                      shared_evaluation=shared_evaluation)


def _judge_lineage(model: str | None) -> tuple[Lineage | None, str]:
    if not model:
        return None, "the judge records no model directory to read its lineage from"
    folder = Path(model).expanduser()
    if not folder.is_dir():
        return None, f"the judge {model} is not a local directory (a hub model): its training data is not recorded"
    try:
        lineage = read_lineage(folder)
    except HarnessError as exc:
        return None, str(exc)
    if lineage is None:
        return None, f"the judge directory {folder} has no {LINEAGE} (trained before lineage was recorded, or not here)"
    return lineage, ""


def _policy_lineage(policy: PolicyFacts | None) -> tuple[dict[str, set[str]] | None, list[str], str]:
    """The prompts the policy and its bases trained on, by model; what is unknown about them; how to name them."""
    if policy is None:
        return None, ["the run records no policy weights to read a lineage from"], ""
    folder = trained_directory(policy.adapter, policy.model)
    if folder is None:
        return {}, [], f"the policy {policy.name} (not trained here: no training prompts recorded)"
    try:
        lineage = read_lineage(folder)
    except HarnessError as exc:
        return None, [str(exc)], ""
    if lineage is None:
        return None, [f"the policy directory {folder} has no {LINEAGE} (trained before lineage was recorded)"], ""
    seen, missing = lineage.seen()
    unknown = [f"the policy's base {', '.join(missing)} was trained before lineage was recorded"] if missing else []
    count = len(set().union(set(), *seen.values()))
    return seen, unknown, f"the {count} training prompts of the policy {policy.name} and its bases"
