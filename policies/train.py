"""Training runs: the output directory, resume and the manifest around one method's TRL trainer.

One run writes into its output directory: ``train.json`` (its configuration, first), ``checkpoints/``
(TRL's, every ``save_steps``; the newest complete one is resumed after any interruption, kill -9
included), ``train.log`` (the libraries' chatter) and at the end the weights — ``adapter/`` (LoRA) or
``model/`` (full fine-tuning), each with the tokenizer, or the reward model's files at the top
level so that ``rm:DIR`` loads it — and ``policy.json``, written last and atomically. The method
itself (``policies/sft.py``, ``dpo.py``, ``rm.py``, ``rloo.py``, ``rft.py``) builds and runs the trainer. Just before
the manifest, ``lineage.json``: a digest of every row's prompt per data source and the chain of bases
(``policies/lineage.py``), what a judge's independence is checked against.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.console import console, quiet
from harness.errors import HarnessError
from harness.hardware import cpu_share
from harness.policy import NAME, policies_dir
from harness.provenance import CHECKPOINTS, LINEAGE, MANIFEST, checkpoints, git_revision, write_lineage
from harness.record import check_output
from policies import data
from policies.common import WALL, Run, detect_hardware
from policies.config import TrainConfig
from policies.lineage import lineage
from policies.manifest import STATE, default_output, read_json, versions, write_json
from policies.recipe import METHODS

TRAINER_LOGGERS = ("trl", "accelerate")  # captured in train.log beside the libraries the core captures


# ---------------------------------------------------------------- the output directory

def prepare_output(out: Path, config: TrainConfig, overwrite: bool) -> str:
    """``fresh``, ``resume`` or ``done`` for this configuration; a directory holding anything else is an error."""
    state = out / STATE
    if out.exists() and not out.is_dir():
        raise HarnessError(f"output {out} is a file, not a directory")
    if _is_pointer(out):  # only a manifest naming a policy trained elsewhere: this run takes the name over
        (out / MANIFEST).unlink()
    if out.is_dir() and any(out.iterdir()):
        if not state.exists():
            raise HarnessError(f"output directory {out} holds something else (no {STATE}); choose another "
                               f"--output or --name")
        stored = read_json(state).get("config")
        same = stored == config.to_json()
        if overwrite:
            shutil.rmtree(out)
        elif not same:
            changed = sorted(k for k in {*(stored or {}), *config.to_json()}
                             if (stored or {}).get(k) != config.to_json().get(k))
            raise HarnessError(f"output directory {out} holds a different training run (it differs in: "
                               f"{', '.join(changed)}); pass --overwrite to replace it, or another --name/--output")
        elif (out / MANIFEST).exists():
            return "done"
        else:
            return "resume"
    out.mkdir(parents=True, exist_ok=True)
    write_json(state, {"config": config.to_json()})
    return "fresh"


def _expand(path: Path) -> Path:
    try:
        return path.expanduser()
    except RuntimeError:  # ~user of no known user: a directory of that name
        return path


def _is_pointer(out: Path) -> bool:
    if not out.is_dir() or [p.name for p in out.iterdir()] != [MANIFEST]:
        return False
    try:
        return "output" in read_json(out / MANIFEST)
    except HarnessError:
        return False


def last_checkpoint(out: Path) -> Path | None:
    """The newest checkpoint under ``out`` that was saved completely; partial ones (killed while saving) go."""
    found = []
    for step, path, complete in checkpoints(out):
        if complete:
            found.append((step, path))
        else:
            shutil.rmtree(path, ignore_errors=True)  # never resume from half a checkpoint
    return max(found)[1] if found else None


# ---------------------------------------------------------------- the run

def train(config: TrainConfig, name: str | None = None, output: Path | None = None, overwrite: bool = False,
          callbacks: Sequence[Any] = ()) -> Path:
    """Train ``config`` into ``output`` (default: the named policies directory) and write its manifest.

    ``callbacks`` are more ``TrainerCallback``s for the trainer (benches measure with them)."""
    method = METHODS[config.method]
    name = default_name(config) if name is None else name
    if not NAME.match(name):
        raise HarnessError(f"--name {name!r} must be letters, digits, '.', '_' or '-', starting with a letter or digit")
    out = (_expand(Path(output)) if output else default_output(config.method, name)).resolve()
    if out.exists() and not out.is_dir():
        raise HarnessError(f"output {out} is a file, not a directory; choose another --output or --name")
    check_output(out, "--output")  # never into a run record, never under a file
    named = (policies_dir() / name).resolve()
    if config.method != "rm" and out != named and (named / STATE).exists():
        raise HarnessError(f"the name {name!r} belongs to the policy trained in {named}; choose another --name")
    if config.method != "rm" and config.base == name and out == named:
        raise HarnessError(f"--base {config.base!r} is the policy this run writes (--name {name!r}); choose another "
                           f"--name")
    data.check(config.data, data.KIND_OF_METHOD[config.method])
    reward_spec, reward = method.resolve_reward(config) if method.resolve_reward else (None, None)
    base = method.resolve_base(config)
    for part in (base.model, base.adapter):
        if part and Path(part).resolve().is_relative_to(out):
            raise HarnessError(f"the base {config.base!r} lies in this run's output directory {out} (at {part}); "
                               f"training would replace what it starts from: choose another --output or --name")
    hw = detect_hardware(config.dtype)
    rows, counts = data.load(config.data, data.KIND_OF_METHOD[config.method], seed=config.seed)
    seen = lineage(name, config.method, config.base, base, rows, counts)  # before training: the base may be retrained
    from accelerate import PartialState

    ranks = PartialState()  # one process, or one of several under `accelerate launch`: the main one writes
    if ranks.is_main_process:
        status = prepare_output(out, config, overwrite)
        last_checkpoint(out)  # drops half-saved checkpoints before any rank looks
    ranks.wait_for_everyone()
    if not ranks.is_main_process:
        status = "done" if (out / MANIFEST).exists() else "resume"
    if status == "done":
        console.print(f"{name}: already trained with this configuration in {out} (pass --overwrite to retrain)")
        return out
    resume = last_checkpoint(out)
    wall_before = read_json(resume / WALL)["seconds"] if resume and (resume / WALL).exists() else 0.0
    if ranks.is_main_process:
        console.print(f"{config.method} {name}: {config.recipe} recipe, base {config.base}, {config.finetune} on "
                      f"{hw.device} in {hw.dtype}" + (f" ({cpu_share()})" if hw.device == "cpu" else "")
                      + f", {len(rows)} rows"
                      + (f"; resuming from {resume.name}" if resume else ""), highlight=False, soft_wrap=True)
    run = Run(base, rows, hw, out, resume, wall_before, reward, list(callbacks))
    with quiet(out / "train.log", loggers=TRAINER_LOGGERS):
        result = method.train(config, run)
    if not ranks.is_main_process:
        return out
    history = result.facts.pop("history", [])
    manifest = {
        "name": name, "method": config.method, "recipe": config.recipe, "base": config.base,
        "base_model": base.model, "base_adapter": base.adapter, "finetune": config.finetune,
        **result.paths, "data": [c.to_json() for c in counts], "rows": len(rows), "lineage": LINEAGE,
        "bases": [a.name for a in seen.bases],
        "steps": result.steps, "reward": reward_spec,
        "reward_component": _describe_reward(reward_spec) if reward is not None else None,
        **result.facts, "metrics": result.metrics, "tokens": result.tokens, "wall_seconds": round(result.wall, 1),
        "dtype": hw.dtype, "device": hw.device, "config": config.to_json(), "versions": versions(),
        "git": git_revision(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "history": history,
    }
    write_lineage(out, seen)
    write_json(out / MANIFEST, manifest)
    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    _register(out, name, manifest)
    console.print(f"{config.method} {name}: {result.steps} steps in {result.wall:.0f} s; wrote {out / MANIFEST}",
                  highlight=False)
    return out


def default_name(config: TrainConfig) -> str:
    """The name a run is trained under when ``--name`` gives none: the recipe section it came from (``judge`` of
    ``quick-instruct:judge``), which is the method's own name for a plain ``--recipe NAME``."""
    return config.recipe.partition(":")[2] or config.method


def _describe_reward(spec: str | None) -> dict[str, Any] | None:
    from harness.plugins import Spec, registry

    parsed = Spec.parse("verifier", spec or "")
    return registry().describe(parsed)


def _register(out: Path, name: str, manifest: dict[str, Any]) -> None:
    """A policy trained outside the policies directory still resolves as ``--policy NAME``: a manifest there
    points at its files by absolute path."""
    if manifest["method"] == "rm" or out == (policies_dir() / name).resolve():
        return
    pointer = dict(manifest)
    for key in ("adapter", "model"):
        if pointer.get(key):
            pointer[key] = str(out / pointer[key])
    pointer["output"] = str(out)
    (policies_dir() / name).mkdir(parents=True, exist_ok=True)
    write_json(policies_dir() / name / MANIFEST, pointer)
