"""Study files: the whole table — training included — from one YAML file, as cells keyed by their content.

A study file names its policies (any ``--policy`` spec, or a training block that ``harness train`` runs), the
runs (every key a ``harness run`` option under its flag's name with underscores; a list expands to every
combination) and the comparisons. ``load`` reads and checks all of it before anything runs: an unknown key,
policy, task, sampler or verifier, a cycle of training bases or malformed YAML is one line naming the entry.

Each training job and each run is a cell keyed by its content. A training cell's key is its resolved training
configuration (what ``policies.recipe.load`` makes of method, recipe, base, overrides and seed, read through a
subprocess: the core imports nothing from the training package), its policy's name and its base cell's key; a
run cell's key is its resolved ``RunConfig``, engine options and the policy's weights fingerprint (while the
policy is not trained yet: its training cell's key). A run cell is done when its record exists (the run id
that ``harness run`` would write, predicted with the pipeline's own functions); a training cell when its
policy's manifest holds the same configuration and the study ledger (``$HARNESS_HOME/study-cells``) names no
other key for it (a base that changed retrains what was trained from it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import itertools
import json
import os
import re
import subprocess
import sys
import typing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.engines import EngineOptions
from harness.errors import HarnessError, choices, describe
from harness.policy import HUB_ID, NAME, harness_home, resolve_policy
from harness.provenance import MANIFEST, checkpoints
from harness.record import SUMMARY, write_atomic
from harness.types import RunConfig

STUDY = "study.json"
TOP_KEYS = ("name", "seeds", "policies", "defaults", "runs", "compare")
TRAIN_KEYS = ("train", "recipe", "base", "reward", "name", "seeds", "overrides", "launcher", "num_gpus", "num_cpus")
RESOURCES = ("num_gpus", "num_cpus")  # what a cell asks of a Ray cluster; no part of its content
ARGS = {"task_arg": "task_args", "verifier_arg": "verifier_args", "grader_arg": "grader_args"}
RUN_REF = "run:"  # an option value ``run:LABEL``: the record directory of that policy's run cell (alpaca reference)
DATA_VAR = re.compile(r"\$\{HARNESS_DATA\}|\$HARNESS_DATA\b")


# -- the options a run entry may set: the `harness run` command's own parameters -------------------------------


@dataclass(frozen=True)
class Option:
    name: str
    kind: Any  # the parameter's type (typing.get_type_hints of the command)
    default: Any
    target: str  # "config" (a RunConfig field) or "engine" (an EngineOptions field)
    field: str  # the field it sets

    @property
    def is_args(self) -> bool:  # KEY=VALUE options: a mapping (or a list of KEY=VALUE strings) in a study
        return self.name in ARGS


def run_options() -> dict[str, Option]:
    """Every ``harness run`` option (minus ``--output``: the study's own), from the command's signature: one source
    of truth, so anything a run can do a study can do. Each maps to a ``RunConfig`` or ``EngineOptions`` field."""
    from harness import cli

    command = inspect.unwrap(cli.run)
    hints = typing.get_type_hints(command)
    config = {f.name for f in dataclasses.fields(RunConfig)}
    engine = {f.name for f in dataclasses.fields(EngineOptions)}
    out = {}
    for name, param in inspect.signature(command).parameters.items():
        if name == "output":
            continue
        target = ARGS.get(name, name)
        if target in config:
            out[name] = Option(name, hints[name], param.default, "config", target)
        elif target in engine:
            out[name] = Option(name, hints[name], param.default, "engine", target)
        else:  # a new `harness run` option that sets neither: the study must learn it
            raise TypeError(f"harness run --{name.replace('_', '-')} sets no RunConfig or EngineOptions field")
    return out


def accepted_keys(options: dict[str, Option]) -> list[str]:
    """The keys of a run entry: the options, ``task_args`` and the other plural forms, and the resources."""
    return [*options, *ARGS.values(), *RESOURCES]


# -- the parsed file -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainBlock:
    """A ``policies`` entry that trains: ``{train: METHOD, recipe, base, reward, name, seeds, overrides, launcher}``;
    its ``seeds`` replace the study's for this policy (None: the study's)."""

    label: str
    method: str
    recipe: str = "quick"
    base: str | None = None
    reward: str | None = None
    name: str | None = None
    seeds: tuple[int, ...] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    launcher: tuple[str, ...] = ()
    num_gpus: float = 0
    num_cpus: float = 1

    @property
    def judge(self) -> bool:
        """A reward model: named in specs (``rm:NAME``, ``winrate:rm:NAME``), never a ``--policy``."""
        return self.method == "rm"


@dataclass(eq=False)
class TrainCell:
    """One training job: ``harness train METHOD --recipe R --name NAME [--base B] KEY=VALUE ...``."""

    block: TrainBlock
    name: str
    seed: int | None
    base: str | None = None  # what --base receives (None: the recipe's)
    needs: str | None = None  # the name of the training cell it starts from
    config: dict[str, Any] = field(default_factory=dict)  # the resolved training configuration
    output: Path = Path()
    base_output: Path | None = None  # where its base cell trains
    key: str = ""
    status: str = "pending"
    note: str = ""
    overwrite: bool = False
    resume_step: int = 0  # the step of the checkpoint it resumes from (0: it starts afresh)
    wall_s: float | None = None  # its training's, every invocation that resumed it included (the manifest's)
    error: str | None = None
    ran_s: float | None = None  # seconds it ran in this invocation (None: it did not run)
    kind = "train"

    @property
    def label(self) -> str:
        return self.block.label

    @property
    def title(self) -> str:
        return f"train {self.name}"

    @property
    def resources(self) -> tuple[float, float]:
        return self.block.num_gpus, self.block.num_cpus

    def overrides(self) -> list[str]:
        pairs = [f"{k}={json.dumps(v)}" for k, v in self.block.overrides.items()]
        return pairs + ([f"seed={self.seed}"] if self.seed is not None else [])

    def argv(self) -> list[str]:
        """The training plugin's command: ``harness train``, or ``python -m policies train`` under a launcher."""
        b = self.block
        head = [*b.launcher, "-m", "policies"] if b.launcher else [sys.executable, "-m", "harness.cli"]
        return [*head, "train", b.method, "--recipe", b.recipe, "--name", self.name,
                *(["--base", self.base] if self.base else []), *(["--reward", b.reward] if b.reward else []),
                *(["--overwrite"] if self.overwrite else []), *self.overrides()]


TITLED = ("policy", "task", "sampler", "n", "limit", "grader", "task_args", "rescored_from")  # a run cell's title


@dataclass(eq=False)
class RunCell:
    """One ``harness run``: its config and engine options, what it waits for, and its record once it has one."""

    entry: int
    label: str
    name: str  # the policy as the study shows it: its trained name, or its label
    seed: int | None  # the training seed of its policy (None: an untrained policy)
    config: RunConfig  # as written: option values ``run:LABEL`` not yet replaced by a record directory
    options: EngineOptions
    num_gpus: float = 0
    num_cpus: float = 1
    needs: list[str] = field(default_factory=list)  # training cells: its policy's, and judges it names
    refs: list[tuple[str, str, int]] = field(default_factory=list)  # (args field, key, index of the run cell)
    key: str = ""
    record: str | None = None  # the run id, once its policy and references exist
    examples: int | None = None
    fingerprint: str | None = None
    status: str = "pending"
    note: str = ""
    wall_s: float | None = None
    error: str | None = None
    ran_s: float | None = None  # seconds it ran in this invocation (None: it did not run)
    kind = "run"

    @property
    def title(self) -> str:
        c = self.config
        args = " ".join(f"{k}={Path(v).name if os.sep in v and not v.startswith(RUN_REF) else v}"
                        for k, v in c.task_args.items())
        parts = [self.name or c.policy, c.task + (f"[{args}]" if args else ""), c.sampler, f"n={c.n}",
                 f"limit={c.limit}" if c.limit else "", f"grader {c.grader}" if c.grader else ""]
        return "run " + " ".join([*(p for p in parts if p), *c.options(TITLED)])

    @property
    def resources(self) -> tuple[float, float]:
        return self.num_gpus, self.num_cpus


@dataclass(frozen=True)
class Comparison:
    """A declared comparison: policy labels ``a`` and ``b``, and the run options both runs must have."""

    index: int
    a: str
    b: str
    where: dict[str, Any]


@dataclass
class Study:
    name: str
    path: Path
    seeds: list[int] | None
    policies: dict[str, str | TrainBlock]
    train: list[TrainCell]
    runs: list[RunCell]
    compare: list[Comparison]
    output: Path = Path("runs")

    @property
    def cells(self) -> list[TrainCell | RunCell]:
        return [*self.train, *self.runs]

    def trained(self, name: str) -> TrainCell:
        return next(c for c in self.train if c.name == name)


# -- reading and checking the file -----------------------------------------------------------------------------


def load(path: Path) -> Study:
    """Read, check and expand a study file; every problem is one line naming the entry, before anything runs."""
    import yaml

    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HarnessError(f"cannot read the study file {path}: {describe(exc)}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or describe(exc)
        raise HarnessError(f"{where}: malformed YAML{at}: {problem}") from None
    if not isinstance(doc, dict):
        raise HarnessError(f"{where}: a study is a mapping of {', '.join(TOP_KEYS)}; got {_kind(doc)}")
    for key in doc:
        if key not in TOP_KEYS:
            raise HarnessError(f"{where}: {_unknown('top-level key', key, TOP_KEYS)}")
    name = doc.get("name", path.stem)
    if not isinstance(name, str) or not NAME.match(name):
        raise HarnessError(f"{where}: name {name!r} must be letters, digits, '.', '_' or '-'")
    seeds = _seeds(where, doc.get("seeds"))
    policies = _policies(where, doc.get("policies"), seeds)
    options = run_options()
    entries = doc.get("runs")
    if not isinstance(entries, list):
        raise HarnessError(f"{where}: runs must be a list of run entries (mappings of `harness run` options); got "
                           f"{_kind(entries)}")
    if not entries:
        raise HarnessError(f"{where}: runs is empty; a study needs at least one run entry (its table is made of runs)")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise HarnessError(f"{where}: defaults must be a mapping of `harness run` options; got {_kind(defaults)}")
    _check_keys(f"{where}: defaults", defaults, options, policy_allowed=False)
    study = Study(name, path, seeds, policies, [], [], [])
    study.train = _train_cells(where, policies, seeds)
    for i, entry in enumerate(entries, 1):
        label = f"{where}: runs[{i}]"
        if not isinstance(entry, dict):
            raise HarnessError(f"{label} must be a mapping of `harness run` options; got {_kind(entry)}")
        study.runs += _run_cells(label, i, {**defaults, **entry}, options, study)
    _link_references(where, study)
    study.compare = _comparisons(where, doc.get("compare"), study, options)
    return study


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {str(value)[:40]!r}"


def _unknown(what: str, key: Any, valid: typing.Iterable[str]) -> str:
    return str(choices(what, str(key), list(valid)))


def _seeds(where: str, value: Any) -> list[int] | None:
    if value is None:
        return None
    seeds = value if isinstance(value, list) else [value]
    if not seeds or not all(type(s) is int and 0 <= s < 2**32 for s in seeds) or len(set(seeds)) != len(seeds):
        raise HarnessError(f"{where}: seeds {value!r} must be distinct integers in [0, 2**32)")
    return seeds


def _policies(where: str, value: Any, seeds: list[int] | None) -> dict[str, str | TrainBlock]:
    if not isinstance(value, dict) or not value:
        raise HarnessError(f"{where}: policies must map names to a --policy spec or a training block; got "
                           f"{_kind(value)}")
    out: dict[str, str | TrainBlock] = {}
    for label, spec in value.items():
        at = f"{where}: policies.{label}"
        if not isinstance(label, str) or not NAME.match(label):
            raise HarnessError(f"{at}: a policy's name must be letters, digits, '.', '_' or '-'")
        if isinstance(spec, str):
            if not spec.strip() or spec != spec.strip():
                raise HarnessError(f"{at}: {spec!r} is not a --policy spec (empty, or whitespace around it)")
            out[label] = spec
            continue
        if not isinstance(spec, dict):
            raise HarnessError(f"{at} must be a --policy spec or a training block {{train: METHOD, ...}}; got "
                               f"{_kind(spec)}")
        for key in spec:
            if key not in TRAIN_KEYS:
                raise HarnessError(f"{at}: {_unknown('training block key', key, TRAIN_KEYS)}")
        if "train" not in spec:
            raise HarnessError(f"{at}: a training block names its method: train: sft|dpo|rloo|rft|rm")
        for key in ("train", "recipe", "base", "reward", "name"):
            if key in spec and (not isinstance(spec[key], str) or not spec[key].strip()):
                raise HarnessError(f"{at}: {key} {spec[key]!r} must be a non-empty string")
        if "name" in spec and not NAME.match(spec["name"]):
            raise HarnessError(f"{at}: name {spec['name']!r} must be letters, digits, '.', '_' or '-'")
        overrides = spec.get("overrides") or {}
        if not isinstance(overrides, dict) or not all(isinstance(k, str) and k.isidentifier() for k in overrides):
            raise HarnessError(f"{at}: overrides must map recipe settings to values; got {_kind(overrides)}")
        own = tuple(_seeds(at, spec["seeds"]) or [None]) if "seeds" in spec else None  # [None]: refused below
        if own == (None,):
            raise HarnessError(f"{at}: seeds must be a list of distinct integers in [0, 2**32), or left out")
        if own is not None and spec["train"] == "rm":
            raise HarnessError(f"{at}: seeds do not apply to a reward model (train: rm), which trains once")
        if "seed" in overrides and (seeds is not None or own is not None):
            raise HarnessError(f"{at}: overrides.seed and the {'block' if own else 'study'}'s seeds both set the "
                               f"seed; keep one")
        launcher = spec.get("launcher") or ()
        launcher = launcher.split() if isinstance(launcher, str) else launcher
        if not isinstance(launcher, list | tuple) or not all(isinstance(a, str) for a in launcher):
            raise HarnessError(f"{at}: launcher must be a command (e.g. accelerate launch --config_file F); got "
                               f"{_kind(launcher)}")
        resources = {k: _resource(at, k, spec[k]) for k in RESOURCES if k in spec}
        out[label] = TrainBlock(label, spec["train"], spec.get("recipe", "quick"), spec.get("base"),
                                spec.get("reward"), spec.get("name"), own, dict(overrides), tuple(launcher),
                                **resources)
    return out


def _resource(at: str, key: str, value: Any) -> float:
    if type(value) not in (int, float) or not value >= 0:
        raise HarnessError(f"{at}: {key}={value!r} must be a number >= 0")
    return value


def _train_cells(where: str, policies: dict[str, str | TrainBlock], seeds: list[int] | None) -> list[TrainCell]:
    """One cell per training block and seed (a reward model once), ordered so that every base trains first; the
    recipes resolved through the training package, so a bad recipe, method or override fails here."""
    blocks = [b for b in policies.values() if isinstance(b, TrainBlock)]
    if not blocks:
        return []
    _check_cycles(where, {b.label: b.base for b in blocks if b.base in policies})
    first = _resolve_recipes(where, [(b, b.base, None) for b in blocks])
    bases = {b.label: b.base or first[i]["config"].get("base") for i, b in enumerate(blocks)}
    _check_cycles(where, {k: v for k, v in bases.items() if v in policies})
    cells: list[TrainCell] = []
    names: dict[str, str] = {}
    for b in blocks:
        own = list(b.seeds) if b.seeds is not None else seeds
        for seed in [None] if b.judge or own is None else own:
            name = b.name or b.label
            name = f"{name}-s{seed}" if seed is not None and len(own or []) > 1 else name
            if name in names or (name in policies and name != b.label):
                raise HarnessError(f"{where}: policies.{b.label}: the trained name {name!r} is also "
                                   f"{'the name of ' + names[name] if name in names else 'a policy of the study'}")
            names[name] = b.label
            cells.append(TrainCell(b, name, seed))
    by = {(c.label, c.seed): c for c in cells}
    for c in cells:
        base = bases[c.label]
        target = policies.get(base) if base else None
        if isinstance(target, TrainBlock):
            if target.judge:
                raise HarnessError(f"{where}: policies.{c.label}: base {base!r} is a reward model (train: rm)")
            if (base, c.seed) not in by:
                trained = ", ".join(str(s) for label, s in by if label == base)
                seed = "without a seed" if c.seed is None else f"on seed {c.seed}"
                raise HarnessError(f"{where}: policies.{c.label}: its base {base!r} is not trained {seed} (its "
                                   f"seeds: {trained}); train the base on each of the policy's seeds")
            c.needs = by[(base, c.seed)].name
            c.base = c.needs
        elif isinstance(target, str):
            c.base = target  # a study label for a --policy spec
        else:
            c.base = c.block.base
    resolved = _resolve_recipes(where, [(c.block, c.base, c) for c in cells])
    for c, r in zip(cells, resolved, strict=True):
        c.config, c.output = r["config"], Path(r["output"])
    for c in cells:
        c.base_output = next(b.output for b in cells if b.name == c.needs) if c.needs else None
    ordered, done = [], set()
    while len(ordered) < len(cells):  # bases first (acyclic, checked above)
        for c in cells:
            if c.name not in done and (c.needs is None or c.needs in done):
                ordered.append(c)
                done.add(c.name)
    for c in ordered:
        base_key = next(b.key for b in ordered if b.name == c.needs) if c.needs else None
        c.key = _digest([c.config, c.name, base_key])
    return ordered


def _check_cycles(where: str, bases: dict[str, str]) -> None:
    for start in bases:
        chain, at = [start], bases[start]
        while at in bases:
            chain.append(at)
            if at == start or chain.count(at) > 1:
                raise HarnessError(f"{where}: a cycle of training bases: {' -> '.join(chain)}; one of them must "
                                   f"start from a model")
            at = bases[at]


# Resolves training configurations with the training package, in a subprocess (the core never imports it).
RESOLVE = """
import importlib.util, json, sys
from harness.errors import HarnessError
missing = [m for m in ("trl", "yaml", "policies") if importlib.util.find_spec(m) is None]
if missing:
    print(json.dumps({"missing": missing[0]}))
    sys.exit(0)
from policies import recipe
from policies.manifest import default_output
out = []
for r in json.loads(sys.stdin.read()):
    try:
        c = recipe.load(r["recipe"], r["method"], base=r["base"], reward=r["reward"], overrides=r["overrides"])
        out.append({"config": c.to_json(), "output": str(default_output(r["method"], r["name"]))})
    except HarnessError as exc:
        out.append({"error": str(exc)})
print(json.dumps(out, default=str))
"""


def _resolve_recipes(where: str, jobs: list[tuple[TrainBlock, str | None, TrainCell | None]]) -> list[dict]:
    payload = [{"recipe": b.recipe, "method": b.method, "base": base, "reward": b.reward,
                "name": cell.name if cell else b.label,
                "overrides": cell.overrides() if cell else [f"{k}={json.dumps(v)}" for k, v in b.overrides.items()]}
               for b, base, cell in jobs]
    env = {**os.environ, "HARNESS_NO_PRELOAD": "1"}
    done = subprocess.run([sys.executable, "-c", RESOLVE], input=json.dumps(payload), capture_output=True,
                          text=True, env=env, timeout=600)
    try:
        answer = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise HarnessError(f"{where}: the training package could not read the training blocks: {tail}") from None
    if isinstance(answer, dict):
        raise HarnessError(f"{where}: the training blocks need the training extra ({answer['missing']} is not "
                           f"installed): pip install 'harness[train]'")
    for (b, _, cell), r in zip(jobs, answer, strict=True):
        if "error" in r:
            raise HarnessError(f"{where}: policies.{b.label}" + (f" ({cell.name})" if cell and cell.name != b.label
                                                                 else "") + f": {r['error']}")
    return answer


def _check_keys(label: str, entry: dict, options: dict[str, Option], policy_allowed: bool = True) -> None:
    valid = [k for k in accepted_keys(options) if policy_allowed or k != "policy"]
    for key in entry:
        if key not in valid:
            raise HarnessError(f"{label}: {_unknown('key', key, valid)}")
    for plural, singular in ((v, k) for k, v in ARGS.items()):
        if plural in entry and singular in entry:
            raise HarnessError(f"{label}: {singular} and {plural} both set the same options; keep one")


def _alternatives(option: Option | None, value: Any) -> list[Any]:
    """A list expands to every one of its values, except where the option's own value is a list: KEY=VALUE
    options expand only a list of mappings (or of lists)."""
    if not isinstance(value, list):
        return [value]
    if option is not None and option.is_args and not all(isinstance(v, dict | list) for v in value):
        return [value]
    if not value:
        raise HarnessError("an empty list expands to nothing")
    return value


def _run_cells(label: str, index: int, entry: dict, options: dict[str, Option], study: Study) -> list[RunCell]:
    _check_keys(label, entry, options)
    if "policy" not in entry:
        raise HarnessError(f"{label}: names no policy; policy: one of {', '.join(study.policies)}")
    keys = list(entry)
    spaces = []
    for key in keys:
        option = options.get(key) or options.get(next((k for k, v in ARGS.items() if v == key), ""))
        try:
            spaces.append(_alternatives(option, entry[key]))
        except HarnessError as exc:
            raise HarnessError(f"{label}: {key}: {exc}") from None
    cells = []
    for combo in itertools.product(*spaces):
        values = dict(zip(keys, combo, strict=True))
        cells += _cells_of(label, index, values, options, study)
    return cells


def _cells_of(label: str, index: int, values: dict[str, Any], options: dict[str, Option],
              study: Study) -> list[RunCell]:
    from harness.plugins import Spec, registry

    reg = registry()
    policy = values["policy"]
    if not isinstance(policy, str) or policy not in study.policies:
        raise HarnessError(f"{label}: {_unknown('policy', policy, study.policies)} (the study's policies)")
    target = study.policies[policy]
    if isinstance(target, TrainBlock) and target.judge:
        raise HarnessError(f"{label}: policy {policy!r} is a reward model (train: rm); name it in a grader or "
                           f"verifier (rm:{target.name or target.label}), not as a policy")
    config: dict[str, Any] = {}
    engine: dict[str, Any] = {}
    resources = {"num_gpus": 0, "num_cpus": 1}
    for key, value in values.items():
        if key in RESOURCES:
            resources[key] = _resource(label, key, value)
            continue
        option = options.get(key) or options[next(k for k, v in ARGS.items() if v == key)]
        typed = _coerce(f"{label}: {key}", option, value)
        (config if option.target == "config" else engine)[option.field] = typed
    for name, option in options.items():  # `harness run`'s own defaults for what the entry leaves out
        bucket = config if option.target == "config" else engine
        if option.field not in bucket and name != "policy":
            bucket[option.field] = {} if option.is_args else option.default
    for kind, key in (("task", "task"), ("sampler", "sampler"), ("verifier", "verifier"), ("verifier", "grader")):
        spec = config.get(key)
        if spec is None:
            continue
        try:
            name = Spec.parse(kind, spec).name
        except HarnessError as exc:
            raise HarnessError(f"{label}: {key}: {exc}") from None
        if name not in reg.components[kind]:
            raise HarnessError(f"{label}: {key}: {_unknown(kind, name, reg.components[kind])}")
    try:
        engine_options = EngineOptions(**engine)
    except HarnessError as exc:
        raise HarnessError(f"{label}: {exc}") from None
    judges = [c.name for c in study.train if c.block.judge and _names_judge(config, c.name)]
    cells = []
    trained = [c for c in study.train if c.label == policy] if isinstance(target, TrainBlock) else []
    for cell in trained or [None]:
        spec = cell.name if cell else target
        run = RunCell(index, policy, cell.name if cell else policy, cell.seed if cell else None,
                      RunConfig(**{**config, "policy": spec}),
                      engine_options, needs=[*([cell.name] if cell else []), *judges], **resources)
        cells.append(run)
    return cells


def _names_judge(config: dict[str, Any], name: str) -> bool:
    """Whether a run's verifier or grader (or their options) names a reward model the study trains (rm:NAME)."""
    texts = [config.get("verifier"), config.get("grader"), *config.get("verifier_args", {}).values(),
             *config.get("grader_args", {}).values()]
    return any(name in str(t).split(":")[1:] for t in texts if t)


def _coerce(label: str, option: Option, value: Any) -> Any:
    """``value`` as the type of the ``harness run`` option; anything else is one line naming the key."""
    kind = option.kind
    if option.is_args:
        if isinstance(value, dict):
            return {str(k): _text(f"{label}.{k}", v) for k, v in value.items()}
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            from harness.plugins import parse_options

            return {k: _expand(v) for k, v in parse_options(f"{label}:", value).items()}
        raise HarnessError(f"{label}: {value!r} must be a mapping of options (or a list of KEY=VALUE strings)")
    optional = type(None) in typing.get_args(kind)
    if optional:
        if value is None:
            return None
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    ok = {bool: type(value) is bool, int: type(value) is int, float: type(value) in (int, float),
          str: isinstance(value, str)}.get(kind)
    if ok is None:
        raise TypeError(f"{label}: no study loader for a `harness run` option of type {kind!r}")
    if not ok:
        what = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[kind]
        raise HarnessError(f"{label}: {value!r} must be {what}")
    return float(value) if kind is float else _expand(value) if kind is str else value


def _text(label: str, value: Any) -> str:
    """An option value as ``--task-arg KEY=VALUE`` would give it: text (YAML's true/false as written)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, dict | list):
        raise HarnessError(f"{label}: {value!r} must be text or a number")
    return _expand(str(value))


def _expand(text: str) -> str:
    """``${HARNESS_DATA}`` stands for the shared data directory (``harness.rows.shared_data``)."""
    if not DATA_VAR.search(text):
        return text
    from harness.rows import shared_data

    return DATA_VAR.sub(lambda _: str(shared_data()), text)


def _link_references(where: str, study: Study) -> None:
    """Option values ``run:LABEL``: that policy's run cell on the same task, split and limit (of the same seed)."""
    for i, cell in enumerate(study.runs):
        for field_name in ARGS.values():
            for key, value in getattr(cell.config, field_name).items():
                if not value.startswith(RUN_REF):
                    continue
                wanted = value.removeprefix(RUN_REF)
                c = cell.config
                found = [j for j, o in enumerate(study.runs) if j != i and o.label == wanted and not _refers(o)
                         and (o.config.task, o.config.split, o.config.limit) == (c.task, c.split, c.limit)
                         and (o.seed is None or cell.seed is None or o.seed == cell.seed)]
                at = f"{where}: runs[{cell.entry}]: {field_name}.{key}={value}"
                if wanted not in study.policies:
                    raise HarnessError(f"{at}: {_unknown('policy', wanted, study.policies)}")
                if len(found) != 1:
                    many = "several runs" if found else "no run"
                    raise HarnessError(f"{at}: {many} of policy {wanted!r} on task {c.task!r}, split {c.split!r}, "
                                       f"limit {c.limit} in this study; a reference names exactly one")
                cell.refs.append((field_name, key, found[0]))
                cell.needs = [*cell.needs, *(n for n in study.runs[found[0]].needs if n not in cell.needs)]


def _refers(cell: RunCell) -> bool:
    return any(v.startswith(RUN_REF) for f in ARGS.values() for v in getattr(cell.config, f).values())


def _comparisons(where: str, value: Any, study: Study, options: dict[str, Option]) -> list[Comparison]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise HarnessError(f"{where}: compare must be a list of {{a, b, ...}} entries; got {_kind(value)}")
    out = []
    for i, entry in enumerate(value, 1):
        at = f"{where}: compare[{i}]"
        if not isinstance(entry, dict) or "a" not in entry or "b" not in entry:
            raise HarnessError(f"{at}: a comparison is {{a: POLICY, b: POLICY, task: ..., sampler: ...}}")
        valid = ["a", "b", *(k for k in options if k != "policy")]
        for key in entry:
            if key not in valid:
                raise HarnessError(f"{at}: {_unknown('key', key, valid)}")
        for side in ("a", "b"):
            if entry[side] not in study.policies:
                raise HarnessError(f"{at}: {side}: {_unknown('policy', entry[side], study.policies)}")
        if entry["a"] == entry["b"]:
            raise HarnessError(f"{at}: a and b both name {entry['a']!r}; compare two policies")
        seeds = {side: sorted({c.seed for c in study.train if c.label == entry[side]}, key=str)
                 for side in ("a", "b") if any(c.label == entry[side] for c in study.train)}
        if len(seeds) == 2 and seeds["a"] != seeds["b"]:
            shown = {side: ", ".join(str(s) for s in v) for side, v in seeds.items()}
            raise HarnessError(f"{at}: {entry['a']} is trained on seeds {shown['a']} and {entry['b']} on seeds "
                               f"{shown['b']}; a comparison pairs each seed with its own, so give the two the same "
                               f"seeds")
        where_ = {k: v for k, v in entry.items() if k not in ("a", "b")}
        comparison = Comparison(i, entry["a"], entry["b"], where_)
        if not pairs(study, comparison):
            filters = ", ".join(f"{k} {v}" for k, v in where_.items())
            raise HarnessError(f"{at}: no run of {entry['a']} pairs with a run of {entry['b']}" +
                               (f" ({filters})" if filters else "") + " in this study (a pair differs only in policy)")
        out.append(comparison)
    return out


def pairs(study: Study, comparison: Comparison) -> list[tuple[RunCell, RunCell]]:
    """The run cells a comparison compares: same options but the policy, each seed with its own seed."""

    def matches(cell: RunCell, label: str) -> bool:
        c = dataclasses.asdict(cell.config)
        return cell.label == label and all(c.get(k, _MISSING) == v for k, v in comparison.where.items())

    return [(a, b) for a in study.runs if matches(a, comparison.a) for b in study.runs if matches(b, comparison.b)
            and _rest(a) == _rest(b) and (a.seed is None or b.seed is None or a.seed == b.seed)]


def claims(study: Study, comparison: Comparison) -> list[list[tuple[RunCell, RunCell]]]:
    """A comparison's pairs grouped by every option but the policy: each group is one claim (on one task, sampler,
    N, ...), made once per training seed and pooled over them."""
    groups: dict[str, list[tuple[RunCell, RunCell]]] = {}
    for a, b in pairs(study, comparison):
        groups.setdefault(_rest(a), []).append((a, b))
    return list(groups.values())


def _rest(cell: RunCell) -> str:
    return json.dumps([{k: v for k, v in dataclasses.asdict(cell.config).items() if k != "policy"},
                       dataclasses.asdict(cell.options)], sort_keys=True)


_MISSING = object()


# -- keys and status ---------------------------------------------------------------------------------------------


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def ledger_path(cell: TrainCell) -> Path:
    """Which content key the study last trained under a name (``$HARNESS_HOME/study-cells``)."""
    return harness_home() / "study-cells" / f"{'rm' if cell.block.judge else 'policy'}-{cell.name}.json"


def read_ledger(cell: TrainCell) -> dict[str, Any] | None:
    return _read_json(ledger_path(cell)) or None


def write_ledger(cell: TrainCell, status: str, study: str) -> None:
    write_atomic(ledger_path(cell), json.dumps({"key": cell.key, "status": status, "study": study,
                                                "updated": _now()}) + "\n")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _stored_config(path: Path) -> dict[str, Any] | None:
    config = _read_json(path).get("config")
    return config if isinstance(config, dict) else None


def settle_train(cell: TrainCell) -> None:
    """Done when its policy's manifest holds this configuration (and no other key trained it); otherwise pending:
    resuming a partial run of the same cell, or retraining (``--overwrite``) what another configuration left."""
    known = read_ledger(cell)
    ours = known is None or known.get("key") == cell.key
    manifest, state = _stored_config(cell.output / MANIFEST), _stored_config(cell.output / "train.json")
    cell.overwrite, cell.resume_step = False, 0
    stale = manifest is not None and _mtime(cell.base_output, MANIFEST) > _mtime(cell.output, MANIFEST)
    if manifest is not None and manifest == cell.config and ours and not stale:
        cell.status, cell.note = "done", ""
        cell.wall_s = _read_json(cell.output / MANIFEST).get("wall_seconds", cell.wall_s)  # every invocation's
        return
    cell.status = "pending"
    if state is None and manifest is None:
        cell.note = ""
        return
    stored = state if state is not None else manifest
    if stored == cell.config and ours and not stale:
        cell.resume_step = max((step for step, _, complete in checkpoints(cell.output) if complete), default=0)
        cell.note = "resumes from its last checkpoint" + (f", step {cell.resume_step}" if cell.resume_step else "")
        return
    cell.overwrite = True
    changed = sorted(k for k in {*stored, *cell.config} if stored.get(k) != cell.config.get(k))
    cell.note = (f"retrains (was trained with other {', '.join(changed)})" if changed
                 else "retrains (its base was trained after it)" if stale else "retrains (its base changed)")


def _mtime(folder: Path | None, name: str) -> int:
    try:
        return (folder / name).stat().st_mtime_ns if folder else 0
    except OSError:
        return 0


def reference_dir(output: Path, run_id: str) -> str:
    return str(output / run_id)


def settle_run(study: Study, cell: RunCell, fetch: bool = True) -> None:
    """The run cell's key, record and status. While a training cell or a referenced run it needs is not done, it
    is pending under its training cells' keys; otherwise its run id is predicted as the pipeline computes it."""
    waiting = [n for n in cell.needs if study.trained(n).status != "done"]
    refs = [study.runs[j] for _, _, j in cell.refs]
    waiting += [r.title for r in refs if r.status != "done"]
    config = resolved_config(study, cell)
    base = [dataclasses.asdict(config), dataclasses.asdict(cell.options)]
    if waiting:
        cell.key = _digest([*base, [study.trained(n).key for n in cell.needs], [r.key for r in refs]])
        cell.record, cell.status, cell.note = None, "pending", "after " + ", ".join(
            f"train {n}" if not n.startswith("run ") else n for n in waiting)
        _check_early(study, cell, config)
        return
    if not fetch and _remote(config.policy):
        cell.key = _digest([*base, config.policy])
        cell.record, cell.status, cell.note = None, "pending", "hub model: resolved when it runs"
        _check_early(study, cell, config)
        return
    record, fingerprint, examples = predict(config, cell.options)
    cell.key = _digest([*base, fingerprint, [study.trained(n).key for n in cell.needs if
                                             study.trained(n).block.judge]])
    cell.record, cell.fingerprint, cell.examples = record, fingerprint, examples
    done = (study.output / record / SUMMARY).exists()
    cell.status, cell.note = ("done", "") if done else ("pending", "")
    if done and cell.wall_s is None:
        cell.wall_s = _read_json(study.output / record / SUMMARY).get("timings", {}).get("wall_s")


def _check_early(study: Study, cell: RunCell, config: RunConfig) -> None:
    """A run that cannot start yet is still planned as `harness run` plans it (names, numbers, the task's data), its
    references left out and, while a reward model it names is not trained, its judge too; and its examples counted."""
    from harness.pipeline import examples_of, plan

    unready = [n for n in cell.needs if study.trained(n).block.judge and study.trained(n).status != "done"]
    refs = {(f, k) for f, k, _ in cell.refs}  # as written, or already the directory a run not yet done will write
    config = dataclasses.replace(config, **{f: {k: v for k, v in getattr(config, f).items() if (f, k) not in refs}
                                            for f in ARGS.values()})
    if unready:
        config = dataclasses.replace(config, grader=None, grader_args={}, verifier=None, verifier_args={},
                                     oracle=False)
        if not cell.examples:
            cell.examples = _count_examples(config)
        return
    the_plan = plan(config)
    if not cell.examples:
        cell.examples = len(examples_of(the_plan.task, config))


def _remote(spec: str) -> bool:
    """A hub id that is neither a local path nor a trained policy's name: a dry run does not download it."""
    return bool(HUB_ID.match(spec)) and not Path(spec).expanduser().exists()


def resolved_config(study: Study, cell: RunCell) -> RunConfig:
    """The cell's config with each ``run:LABEL`` replaced by that run's record directory (once it has one)."""
    config = cell.config
    for field_name, key, j in cell.refs:
        target = study.runs[j]
        if target.record is None:
            continue
        args = {**getattr(config, field_name), key: reference_dir(study.output, target.record)}
        config = dataclasses.replace(config, **{field_name: args})
    return config


def predict(config: RunConfig, options: EngineOptions) -> tuple[str, str, int]:
    """The run id ``harness.pipeline.execute`` will write for ``config`` (the same functions in the same order), the
    policy's weights fingerprint and the number of examples; checks the run as ``harness run`` checks it."""
    from harness.engines import numerics, resolve_backend
    from harness.pipeline import contents, examples_of, plan, sample_identity, sampling_of

    the_plan = plan(config)
    policy = resolve_policy(config.policy)
    engine_numerics = numerics(resolve_backend(config.backend), options, policy)
    examples = examples_of(the_plan.task, config)
    identity = sample_identity(sampling_of(config, the_plan), engine_numerics)
    return config.run_id(identity, policy.fingerprint, contents(examples)), policy.fingerprint, len(examples)


def _count_examples(config: RunConfig) -> int:
    """How many examples a run will have, from its task alone (its judge may not exist yet)."""
    from harness.pipeline import examples_of
    from harness.plugins import Spec, registry

    task = registry().build(Spec.parse("task", config.task, config.task_args))
    return len(examples_of(task, config))


def settle(study: Study, fetch: bool = True) -> None:
    """Every cell's key and status, training cells first; a run that cannot be planned is one line naming it."""
    for cell in study.train:
        settle_train(cell)
    for cell in study.runs:
        try:
            settle_run(study, cell, fetch)
        except HarnessError as exc:
            raise HarnessError(f"{study.path}: runs[{cell.entry}] ({cell.title}): {exc}") from None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- study.json --------------------------------------------------------------------------------------------------


@dataclass
class Compared:
    """The declared comparisons' results as ``study.json`` keeps them: one entry per seed's pair of runs
    (``comparisons``), and one per claim pooled over its seeds where it has several (``pooled``)."""

    seeds: list[dict[str, Any]] = field(default_factory=list)
    pooled: list[dict[str, Any]] = field(default_factory=list)


def to_json(study: Study, executor: str, compared: Compared | None = None) -> dict[str, Any]:
    compared = compared or Compared()
    cells: list[dict[str, Any]] = []
    for c in study.train:
        command = c.argv() if c.block.launcher else ["harness", *c.argv()[3:]]
        cells.append({"kind": "train", "key": c.key, "label": c.label, "seed": c.seed, "policy": c.name,
                      "method": c.block.method, "recipe": c.block.recipe, "base": c.config.get("base"),
                      "output": str(c.output), "status": c.status, "note": c.note or None, "wall_s": c.wall_s,
                      "error": c.error, "command": command})
    for c in study.runs:
        cells.append({"kind": "run", "key": c.key, "label": c.label, "seed": c.seed, "policy": c.config.policy,
                      "entry": c.entry, "task": c.config.task, "sampler": c.config.sampler, "n": c.config.n,
                      "limit": c.config.limit, "record": c.record, "needs": c.needs, "status": c.status,
                      "note": c.note or None, "wall_s": c.wall_s, "error": c.error, "examples": c.examples})
    return {"name": study.name, "file": str(study.path), "output": str(study.output), "updated": _now(),
            "executor": executor, "seeds": study.seeds, "cells": cells, "comparisons": compared.seeds,
            "pooled": compared.pooled}


def home(study: Study) -> Path:
    """``OUTPUT/studies/NAME/``: the study's own folder, so two studies sharing an output directory never overwrite
    each other's ``study.json``."""
    return study.output / "studies" / study.name


def write_study(study: Study, executor: str, compared: Compared | None = None) -> Path:
    """``study.json`` in the study's own folder, atomically."""
    path = home(study) / STUDY
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(to_json(study, executor, compared), indent=2, default=str) + "\n")
    return path
