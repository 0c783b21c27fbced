"""Running a study's cells: ``local`` (one cell at a time; runs in this process, an engine kept across a policy's
consecutive runs; training as a subprocess) and ``ray`` (each cell a Ray task in a worker process of its own, with
the resources its entry asks for; a worker serves one cell, so an engine's memory goes when the cell ends).

Both schedule the same way: a cell starts once the cells it needs are done (a run after its policy's and its
judges' training, and after a run it takes a reference from); a failed cell blocks what needs it and the others
go on. Every change of a cell's status rewrites ``study.json`` (atomically), so a study killed anywhere, ``kill
-9`` included, continues where it stopped: a finished cell is read back, training resumes from its checkpoint,
a run from the generation cache. A training subprocess dies with the study that started it (Linux).
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.markup import escape

from harness.console import console
from harness.engines import EngineOptions
from harness.errors import HarnessError, describe
from harness.study import RunCell, Study, TrainCell, resolved_config, settle_run, settle_train, write_ledger
from harness.types import RunConfig

EXECUTORS = ("local", "ray")
RAY_EXTRA = "--executor ray needs Ray, which is not installed: pip install 'harness[ray]'"
ENV_PREFIXES = ("HARNESS_", "HF_", "TRANSFORMERS_", "VLLM_")  # what a Ray worker must see as the driver does

Cell = TrainCell | RunCell


# -- one cell ------------------------------------------------------------------------------------------------------


def _child_setup(cpus: set[int]) -> Callable[[], None]:
    """What the child runs before exec: SIGKILL when the study's process dies (``kill -9`` included), so a rerun
    never finds a training run still writing its checkpoints; and this process's CPUs back. A ``preexec_fn`` makes
    Python fork, which runs Intel OpenMP's at-fork handler, and once torch is imported that pins the child to one
    CPU: a trainer started so computes on one core."""

    def setup() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, cpus)

    return setup


def train_process(argv: list[str], env: dict[str, str] | None = None) -> str | None:
    """Run one training command, its error output shown as it comes; None on success, else its last line."""
    tail: collections.deque[str] = collections.deque(maxlen=20)
    setup = _child_setup(os.sched_getaffinity(0)) if sys.platform == "linux" else None
    with subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, errors="replace", env=env,
                          preexec_fn=setup) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            sys.stderr.write(line)
            sys.stderr.flush()
            if line.strip():
                tail.append(line.strip())
        code = proc.wait()
    if code == 0:
        return None
    errors = [line for line in tail if line.startswith(("error:", "interrupted:"))]
    last = errors[-1] if errors else tail[-1] if tail else "no output"
    return f"`harness train` exited with code {code}: {last}"


class SharedEngine:
    """An engine that consecutive runs of one policy share (``execute(..., engine=)``): loaded when a run first
    needs to generate, closed by the executor when the next cell is another policy's (``shutdown``)."""

    def __init__(self, config: RunConfig, options: EngineOptions):
        from harness.policy import resolve_policy

        self.config, self.options = config, options
        self.policy = resolve_policy(config.policy)
        self.engine: Any = None
        self.loads = 0

    def _get(self) -> Any:
        if self.engine is None:
            from harness.engines import Renderer, load_engine

            renderer = Renderer(self.policy, self.config.chat_template, self.config.system_prompt)
            self.engine = load_engine(self.config.backend, self.policy, renderer, self.options, seed=self.config.seed)
            self.loads += 1
        return self.engine

    def describe(self) -> dict[str, Any]:
        return self._get().describe()

    def generate(self, requests, sampling):
        return self._get().generate(requests, sampling)

    def close(self) -> None:
        """The pipeline closes an engine it owns; this one the executor closes."""

    def shutdown(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


def share_key(config: RunConfig, options: EngineOptions) -> str:
    """Runs that can share an engine: one policy, backend, engine options, seed, chat template and system prompt."""
    import json

    return json.dumps([config.policy, config.backend, dataclasses.asdict(options), config.seed, config.chat_template,
                       config.system_prompt], sort_keys=True, default=str)


def run_in_process(config: RunConfig, options: EngineOptions, output: Path, engine: Any = None) -> str:
    from harness.pipeline import execute

    return execute(config, output, options, engine).name


def _ray_cell(payload: dict[str, Any]) -> dict[str, Any]:
    """One cell in a Ray worker (a process of its own: ``max_calls=1``)."""
    os.chdir(payload["cwd"])
    os.environ.update(payload["env"])
    started = time.perf_counter()
    try:
        if payload["kind"] == "train":
            error = train_process(payload["argv"])
            return {"error": error, "wall_s": time.perf_counter() - started}
        record = run_in_process(RunConfig(**payload["config"]), EngineOptions(**payload["options"]),
                                Path(payload["output"]))
        return {"record": record, "wall_s": time.perf_counter() - started}
    except HarnessError as exc:
        return {"error": str(exc), "wall_s": time.perf_counter() - started}


# -- scheduling ----------------------------------------------------------------------------------------------------


def _needs(study: Study, cell: Cell) -> list[Cell]:
    if isinstance(cell, TrainCell):
        return [study.trained(n) for n in ([cell.needs] if cell.needs else []) + judges_of(study, cell)]
    return [*(study.trained(n) for n in cell.needs), *(study.runs[j] for _, _, j in cell.refs)]


def judges_of(study: Study, cell: TrainCell) -> list[str]:
    """Reward models of the study that a training cell's reward names (``rm:NAME``)."""
    reward = str(cell.config.get("reward") or "")
    return [c.name for c in study.train if c.block.judge and c.name in reward.split(":")[1:]]


def ready(study: Study, running: set[int]) -> list[Cell]:
    """Pending cells whose needs are done; a cell whose need failed is blocked."""
    out = []
    for cell in study.cells:
        if cell.status != "pending" or id(cell) in running:
            continue
        needs = _needs(study, cell)
        if any(n.status in ("failed", "blocked") for n in needs):
            cell.status, cell.note = "blocked", "a cell it needs failed"
        elif all(n.status == "done" for n in needs):
            out.append(cell)
    return out


class Scheduler:
    """What both executors share: starting a cell (settled again first: a run's record is known once its policy
    is), recording its outcome, and writing ``study.json`` at every change."""

    def __init__(self, study: Study, save: Callable[[], None]):
        self.study, self.save = study, save
        self.total = sum(c.status == "pending" for c in study.cells)
        self.finished = 0

    def prepare(self, cell: Cell) -> bool:
        """Settle a cell about to start; False when it turned out done (its record exists) or cannot run."""
        try:
            if isinstance(cell, RunCell):
                settle_run(self.study, cell)
            else:
                settle_train(cell)
        except HarnessError as exc:
            self.fail(cell, str(exc))
            return False
        if cell.status == "done":
            self.finished += 1
            self.save()
            return False
        cell.status = "running"
        if isinstance(cell, TrainCell):
            write_ledger(cell, "training", self.study.name)
        self.save()
        console.print(f"[bold]study {escape(self.study.name)}[/] \\[{self.finished + 1}/{self.total}] "
                      f"{escape(cell.title)}" + (f" ({escape(cell.note)})" if cell.note else ""), highlight=False,
                      soft_wrap=True)
        return True

    def done(self, cell: Cell, wall_s: float, record: str | None = None) -> None:
        cell.wall_s = cell.ran_s = wall_s  # a training cell's becomes its manifest's as it settles
        if isinstance(cell, RunCell):
            if record is not None and record != cell.record:
                cell.record = record  # what the pipeline wrote is the record (the prediction is a check)
        else:
            settle_train(cell)
            if cell.status != "done":
                self.fail(cell, f"{cell.title} finished but its manifest in {cell.output} does not hold the "
                                "study's configuration")
                return
            write_ledger(cell, "done", self.study.name)
        cell.status, cell.note, cell.error = "done", "", None
        self.finished += 1
        self.save()
        console.print(f"[bold]study {escape(self.study.name)}[/] \\[{self.finished}/{self.total}] done: "
                      f"{escape(cell.title)} in "
                      f"{wall_s:,.1f} s" + (f" -> {cell.record}" if isinstance(cell, RunCell) else ""),
                      highlight=False, soft_wrap=True)

    def fail(self, cell: Cell, error: str) -> None:
        cell.status, cell.error = "failed", error
        cell.ran_s = cell.ran_s or 0.0
        self.finished += 1
        self.save()
        console.print(f"[red]study {escape(self.study.name)}: {escape(cell.title)} failed:[/] {escape(error)}",
                      highlight=False, soft_wrap=True)


class LocalExecutor:
    """One cell at a time: every run that can start goes before the next training cell (a stopped study holds whole
    rows, not only trained weights), a policy's runs one after another on one engine."""

    name = "local"

    def run(self, scheduler: Scheduler) -> None:
        study = scheduler.study
        shared: tuple[str, SharedEngine] | None = None
        last: str | None = None
        try:
            while True:
                cells = ready(study, set())
                if not cells:
                    break
                runs = [c for c in cells if isinstance(c, RunCell)]
                cell = next((c for c in runs if c.config.policy == last), runs[0] if runs else cells[0])
                if not scheduler.prepare(cell):
                    continue
                started = time.perf_counter()
                if isinstance(cell, TrainCell):
                    if shared:
                        shared[1].shutdown()  # its memory goes to the trainer
                        shared = None
                    error = train_process(cell.argv())
                    if error:
                        scheduler.fail(cell, error)
                    else:
                        scheduler.done(cell, time.perf_counter() - started)
                    continue
                config = resolved_config(study, cell)
                key = share_key(config, cell.options)
                if shared and shared[0] != key:
                    shared[1].shutdown()
                    shared = None
                if shared is None:
                    shared = (key, SharedEngine(config, cell.options))
                last = config.policy
                try:
                    record = run_in_process(config, cell.options, study.output, shared[1])
                except HarnessError as exc:
                    scheduler.fail(cell, str(exc))
                    continue
                scheduler.done(cell, time.perf_counter() - started, record)
        finally:
            if shared:
                shared[1].shutdown()


class RayExecutor:
    """Each cell a Ray task (``num_gpus``, ``num_cpus`` from its entry) in a worker process of its own; the cells
    share the output directory (and ``$HARNESS_HOME``), so on a real cluster both lie on a shared file system."""

    name = "ray"

    def __init__(self, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise HarnessError(RAY_EXTRA) from None
        self.ray, self.address = ray, address

    def run(self, scheduler: Scheduler) -> None:
        ray, study = self.ray, scheduler.study
        env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}
        started_here = not ray.is_initialized()
        if started_here:
            try:
                ray.init(address=self.address, runtime_env={"env_vars": env}, include_dashboard=False,
                         log_to_driver=True)
            except Exception as exc:  # no cluster at the address, a version mismatch, ...
                raise HarnessError(f"Ray could not start or connect (--address {self.address or 'local'}): "
                                   f"{describe(exc)}") from None
        remote = ray.remote(max_calls=1)(_ray_cell)
        running: dict[Any, tuple[Cell, float]] = {}
        try:
            while True:
                for cell in ready(study, {id(c) for c, _ in running.values()}):
                    if not scheduler.prepare(cell):
                        continue
                    gpus, cpus = cell.resources
                    running[remote.options(num_gpus=gpus, num_cpus=cpus).remote(
                        self._payload(study, cell, env))] = (cell, time.perf_counter())
                if not running:
                    if not ready(study, set()):
                        break
                    continue
                finished, _ = ray.wait(list(running), num_returns=1)
                cell, started = running.pop(finished[0])
                try:
                    result = ray.get(finished[0])
                except Exception as exc:  # the worker died (out of memory, killed)
                    result = {"error": f"the Ray task failed: {describe(exc)}"}
                if result.get("error"):
                    scheduler.fail(cell, result["error"])
                else:
                    scheduler.done(cell, result.get("wall_s") or time.perf_counter() - started, result.get("record"))
        finally:
            for ref in running:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            if started_here:
                ray.shutdown()

    @staticmethod
    def _payload(study: Study, cell: Cell, env: dict[str, str]) -> dict[str, Any]:
        base = {"cwd": os.getcwd(), "env": env, "kind": cell.kind}
        if isinstance(cell, TrainCell):
            return {**base, "argv": cell.argv()}
        return {**base, "config": dataclasses.asdict(resolved_config(study, cell)),
                "options": dataclasses.asdict(cell.options), "output": str(study.output.resolve())}


def check_executor(name: str, address: str | None = None) -> None:
    if name not in EXECUTORS:
        raise HarnessError(f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}")
    if address and name != "ray":
        raise HarnessError("--address names a Ray cluster; add --executor ray")


def executor(name: str, address: str | None = None) -> LocalExecutor | RayExecutor:
    check_executor(name, address)
    return RayExecutor(address) if name == "ray" else LocalExecutor()
