"""``harness study FILE``: the dry run (every cell, done or pending, with what it will cost here), the run of the
pending cells on an executor, and the study's table: its cells' leaderboard and its declared comparisons.

The study's own folder ``OUTPUT/studies/NAME/`` holds its ``study.json`` and a link to each of its records, so
``harness leaderboard -o`` and ``harness report`` show the study alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.errors import HarnessError, RunFailed
from harness.estimate import DEFAULTS, Estimate, Rates, duration, minutes, tokens_text
from harness.record import SUMMARY, check_output, read_summary
from harness.study import (
    STUDY,
    Compared,
    Comparison,
    RunCell,
    Study,
    TrainCell,
    claims,
    home,
    load,
    settle,
    write_study,
)

if TYPE_CHECKING:
    from harness.compare import Comparison as PairResult
    from harness.compare import PooledComparison


def run_study(path: Path, output: Path, dry_run: bool = False, executor: str = "local", address: str | None = None,
              out: Console | None = None) -> Study:
    """Check the file, settle every cell, then print the dry run or run what is pending and print the table."""
    from harness.executors import Scheduler, check_executor
    from harness.executors import executor as make_executor

    out = out or _stdout()
    if dry_run:
        check_executor(executor, address)
    runner = None if dry_run else make_executor(executor, address)  # `--executor ray` without Ray: one line, now
    check_output(output, "--output")
    study = load(path)
    study.output = output
    settle(study, fetch=not dry_run)
    if dry_run:
        show_plan(study, out, executor)
        return study
    assert runner is not None
    output.mkdir(parents=True, exist_ok=True)
    _drop_old_copy(study)
    scheduler = Scheduler(study, lambda: write_study(study, runner.name))
    write_study(study, runner.name)
    runner.run(scheduler)
    compared = compare(study)
    write_study(study, runner.name, compared)
    view = write_view(study)
    show_table(study, view, compared, out)
    failed = [c for c in study.cells if c.status in ("failed", "blocked")]
    if failed:
        first = next((c for c in failed if c.error), failed[0])
        raise RunFailed(f"{len(failed)} of {len(study.cells)} cells did not finish ({first.title}: "
                        f"{first.error or first.note}); fix it and rerun: finished cells are kept")
    return study


def _drop_old_copy(study: Study) -> None:
    """Remove ``OUTPUT/study.json`` where it is this study's, written where earlier versions kept it: left there it
    would pass for the output directory's study in ``harness report``."""
    old = study.output / STUDY
    try:
        if json.loads(old.read_text(encoding="utf-8")).get("name") == study.name:
            old.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def _stdout() -> Console:
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 200)  # piped output: never squeeze the columns
    return console


# -- the dry run -------------------------------------------------------------------------------------------------


def chains(study: Study, cell: TrainCell | RunCell) -> list[list[str]]:
    """The training cells not yet done that ``cell`` needs: one chain per need, each base before what it trains."""

    def chain(name: str) -> list[str]:
        trained = study.trained(name)
        return [*(chain(trained.needs) if trained.needs else []), *([name] if trained.status != "done" else [])]

    needs = ([cell.needs] if cell.needs else []) if isinstance(cell, TrainCell) else cell.needs
    return [c for c in (chain(n) for n in needs) if c]


def _refs(study: Study, cell: TrainCell | RunCell) -> list[RunCell]:
    return [study.runs[j] for _, _, j in cell.refs] if isinstance(cell, RunCell) else []


def estimates(study: Study, executor: str = "local") -> tuple[Rates, dict[int, Estimate]]:
    """Each pending cell's estimate (keyed by the cell's id), and the rates they came from. A run whose samples a
    finished cell generated, or (one cell at a time, the local executor) a cell before it, is priced as grading
    only: Ray may start two such cells at once."""
    from harness.engines import resolve_backend

    rates = Rates(study.output)
    out = {}
    generated = {_samples(c) for c in study.runs if c.status == "done"}
    for cell in study.cells:
        if cell.status == "done":
            continue
        if isinstance(cell, TrainCell):
            out[id(cell)] = _left(rates.train(cell.config), cell)
        else:
            try:
                backend = resolve_backend(cell.config.backend)
            except HarnessError:
                backend = None
            same = _samples(cell)
            out[id(cell)] = rates.run(cell.config, cell.examples, cell.fingerprint, backend, same in generated)
            if executor == "local":
                generated.add(same)
    return rates, out


def _left(whole: Estimate, cell: TrainCell) -> Estimate:
    """A resumed training cell's estimate for the steps after its checkpoint."""
    steps = int(cell.config.get("steps") or 0)
    if not (cell.resume_step and steps):
        return whole
    left = max(0, steps - cell.resume_step)
    return Estimate(None if whole.tokens is None else whole.tokens * left / steps,
                    None if whole.seconds is None else whole.seconds * left / steps, whole.basis,
                    f"{left} of its {steps} steps left")


def _samples(cell: RunCell) -> str:
    """What decides a run's samples as far as a plan can tell: its policy and seed (the same weights within a study),
    engine options and every option but the grader's and the runs it refers to, which grade them."""
    refs = {key for field, key, _ in cell.refs if field == "task_args"}
    config = dataclasses.replace(cell.config, grader=None, grader_args={}, task_args={
        k: v for k, v in cell.config.task_args.items() if k not in refs})
    return json.dumps([cell.name, cell.seed, repr(cell.options), dataclasses.asdict(config)], sort_keys=True,
                      default=str)


def show_plan(study: Study, out: Console, executor: str = "local") -> None:
    rates, found = estimates(study, executor)
    table = Table(title=f"study {study.name} ({study.path}): dry run, nothing runs", title_justify="left")
    for column, right in (("status", False), ("cell", False), ("needs / note", False), ("est. tokens", True),
                          ("est. min", True), ("basis", False)):
        table.add_column(column, justify="right" if right else "left")
    for cell in study.cells:
        needs = ", ".join([*(" -> ".join(f"train {n}" for n in c) for c in chains(study, cell)), *(
            f"run {r.name} {r.config.task}" for r in _refs(study, cell) if r.status != "done")])
        e = found.get(id(cell))
        note = "; ".join(p for p in (needs and f"needs {needs}", "" if cell.note.startswith("after ") else cell.note,
                                     f"record {cell.record}" if isinstance(cell, RunCell) and cell.status == "done"
                                     else "", e.note if e else "") if p)
        table.add_row(*(Text(t) for t in (cell.status, cell.title, note, tokens_text(e.tokens) if e else "-",
                                          minutes(e.seconds) if e else "-", e.basis if e else "")))
    out.print(table)
    pending = [c for c in study.cells if c.status != "done"]
    train = [c for c in pending if isinstance(c, TrainCell)]
    runs = [c for c in pending if isinstance(c, RunCell)]
    total = sum(found[id(c)].seconds or 0 for c in pending)
    unknown = any(found[id(c)].seconds is None for c in pending)
    out.print(f"{len(study.cells) - len(pending)} of {len(study.cells)} cells done; pending: {len(train)} training "
              f"({duration(sum(found[id(c)].seconds or 0 for c in train))}), {len(runs)} runs "
              f"({tokens_text(sum(found[id(c)].tokens or 0 for c in runs))} tokens, "
              f"{duration(sum(found[id(c)].seconds or 0 for c in runs))}); about {'at least ' if unknown else ''}"
              f"{duration(total)} on this machine", highlight=False, soft_wrap=True, markup=False)
    out.print(f"rates: {rates.describe()}", highlight=False, soft_wrap=True, markup=False)
    if any(found[id(c)].basis != "measured" for c in pending):
        out.print(f"{DEFAULTS}; a run's tokens per sample with no record of its task: its whole --max-tokens",
                  highlight=False, soft_wrap=True, markup=False)
    if pending:
        out.print(f"run it: harness study {study.path}" + (f" -o {study.output}" if str(study.output) != "runs"
                                                            else ""), highlight=False, soft_wrap=True, markup=False)


# -- after the run -----------------------------------------------------------------------------------------------


def compare(study: Study) -> Compared:
    """Each declared comparison through ``harness.compare``, claim by claim: every seed's pair of runs and, where the
    claim has several seeds, the claim pooled over them (``compare_pooled``). A pooled claim's seeds are its pairs,
    on the examples every run of the claim answered, so a seed shows one difference wherever it is shown; a claim
    that could not be pooled compares each pair on the examples both of its runs answered."""
    compared = Compared()
    for comparison in study.compare:
        for group in claims(study, comparison):
            pooled, result = _pooled_entry(study, comparison, group) if len(group) > 1 else (None, None)
            compared.seeds.extend(_seed_entry(study, comparison, a, b, result.pairs[i] if result else None)
                                  for i, (a, b) in enumerate(group))
            if pooled is not None:
                compared.pooled.append(pooled)
    return compared


def _facts(comparison: Comparison, a: RunCell) -> dict[str, Any]:
    return {"compare": comparison.index, "task": a.config.task, "sampler": a.config.sampler, "n": a.config.n}


def _seed_entry(study: Study, comparison: Comparison, a: RunCell, b: RunCell,
                pooled: PairResult | None) -> dict[str, Any]:
    """One seed's pair: its pair in the claim pooled over seeds where there is one, else ``compare_runs`` of its two
    runs; ``basis`` names the examples it is computed on."""
    from harness.compare import compare_runs

    entry: dict[str, Any] = {"a": a.config.policy, "b": b.config.policy, **_facts(comparison, a),
                             "seed": a.seed if a.seed is not None else b.seed, "runs": [a.record, b.record]}
    if a.status != "done" or b.status != "done" or not a.record or not b.record:
        return {**entry, "note": "not run"}
    try:
        entry["a"] = read_summary(study.output / a.record).policy_name
        entry["b"] = read_summary(study.output / b.record).policy_name
        result = pooled or compare_runs(study.output / a.record, study.output / b.record)
    except HarnessError as exc:
        return {**entry, "note": str(exc)}
    basis = "the examples every run of the claim answered" if pooled else "the examples both runs answered"
    return {**entry, **dataclasses.asdict(result), "basis": basis, "line": result.line()}


def _pooled_entry(study: Study, comparison: Comparison,
                  group: list[tuple[RunCell, RunCell]]) -> tuple[dict[str, Any], PooledComparison | None]:
    """The claim pooled over its seeds as ``study.json`` keeps it, and the comparison itself where every seed ran."""
    from harness.compare import compare_pooled

    entry: dict[str, Any] = {"a": comparison.a, "b": comparison.b, **_facts(comparison, group[0][0]),
                             "seeds": [a.seed if a.seed is not None else b.seed for a, b in group],
                             "runs": [[a.record, b.record] for a, b in group]}
    missing = sum(not (a.status == b.status == "done" and a.record and b.record) for a, b in group)
    if missing:
        return {**entry, "note": f"not pooled: {missing} of {len(group)} seeds not run"}, None

    def side(records: list[str]) -> list[Path]:  # an untrained policy's one run stands against every seed
        return [study.output / r for r in (records[:1] if len(set(records)) == 1 else records)]

    try:
        result = compare_pooled(side([str(a.record) for a, _ in group]), side([str(b.record) for _, b in group]),
                                names=(comparison.a, comparison.b))
    except HarnessError as exc:
        return {**entry, "note": str(exc)}, None
    return {**entry, **result.to_json(), "line": result.line()}, result


def write_view(study: Study) -> Path:
    """A link to each of the study's records in its own folder (``study.json`` is already there); the output
    directory itself where links cannot be made."""
    view = home(study)
    try:
        view.mkdir(parents=True, exist_ok=True)
        wanted = {c.record for c in study.runs if c.status == "done" and c.record}
        for entry in view.iterdir():
            if entry.is_symlink() and entry.name not in wanted:
                entry.unlink()
        for record in wanted:
            link = view / record
            if not link.is_symlink():
                link.symlink_to(os.path.relpath(study.output / record, view), target_is_directory=True)
    except OSError:  # no partial view: the links made so far go, and the table shows the output directory
        with contextlib.suppress(OSError):
            for entry in view.iterdir():
                if entry.is_symlink():
                    entry.unlink()
        return study.output
    return view


def show_table(study: Study, view: Path, compared: Compared, out: Console) -> None:
    from harness import leaderboard

    if any((view / c.record / SUMMARY).exists() for c in study.runs if c.record):
        leaderboard.render(view, "table", out)
    if compared.seeds:
        out.print(f"comparisons ({len(compared.seeds)} pairs of runs, {len(compared.pooled)} pooled over seeds):",
                  highlight=False, markup=False)
        for c in compared.seeds:
            seed = f" seed {c['seed']}" if c.get("seed") is not None else ""
            out.print(f"  compare[{c['compare']}]{seed} {c['task']} {c['sampler']} n={c['n']}: "
                      f"{c.get('line') or c.get('note')}", highlight=False, soft_wrap=True, markup=False)
        for c in compared.pooled:
            seeds = ", ".join(str(s) for s in c["seeds"])
            out.print(f"  compare[{c['compare']}] pooled over seeds {seeds} {c['task']} {c['sampler']} n={c['n']}: "
                      f"{c.get('line') or c.get('note')}", highlight=False, soft_wrap=True, markup=False)
    ran = [c for c in study.cells if c.ran_s is not None]
    status = {s: sum(c.status == s for c in study.cells) for s in ("done", "failed", "blocked", "pending")}
    out.print(f"study {study.name}: " + ", ".join(f"{n} {s}" for s, n in status.items() if n)
              + f"; {len(ran)} cells ran now ({sum(c.ran_s or 0 for c in ran):,.1f} s), all cells "
              f"{sum(c.wall_s or 0 for c in study.cells):,.1f} s; {home(study) / STUDY}", highlight=False,
              soft_wrap=True, markup=False)
