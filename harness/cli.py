"""The ``harness`` command line: run, score, compare, leaderboard, plot, report, study, plugins."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from harness.console import guard, warn
from harness.errors import HarnessError
from harness.hardware import reexec_with_preload
from harness.plugins import add_commands, parse_options
from harness.types import DEFAULT_TEMPERATURE

app = typer.Typer(help="Evaluate small language models with samplers, verifiers and tasks from plugins.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)

RESUME = "finished samples are cached; rerun the same command to resume"
Output = Annotated[Path, typer.Option("--output", "-o", help="Directory holding run records and the cache.")]


VerifierArg = Annotated[list[str] | None, typer.Option(help="Verifier option KEY=VALUE (repeatable).")]
GraderArg = Annotated[list[str] | None, typer.Option(help="Grader option KEY=VALUE (repeatable).")]


@app.command()
@guard(RESUME)
def run(
    policy: Annotated[str, typer.Option(help="smollm2, sft, dpo, rloo, model or adapter dir, hub id.")] = "smollm2",
    task: Annotated[str, typer.Option(help="Task name (see `harness plugins`).")] = "countdown",
    sampler: Annotated[str, typer.Option(help="Sampler name: greedy, bon, ...")] = "greedy",
    n: Annotated[int, typer.Option("--n", help="Samples per problem.")] = 1,
    verifier: Annotated[str | None, typer.Option(help="Verifier that scores samples for the sampler: NAME or "
                                                      "NAME:ARG (rm:PATH).")] = None,
    grader: Annotated[str | None, typer.Option(help="Verifier that grades the run (default: the task's): NAME or "
                                                    "NAME:ARG (winrate:rm:PATH).")] = None,
    verifier_arg: VerifierArg = None,
    grader_arg: GraderArg = None,
    oracle: Annotated[bool, typer.Option(help="Allow selecting with a verifier that reads the gold answer.")] = False,
    split: Annotated[str, typer.Option(help="Task split.")] = "test",
    limit: Annotated[int | None, typer.Option(help="Number of problems.")] = None,
    seed: Annotated[int, typer.Option(help="Seeds problem order, the engine and sampling.")] = 0,
    temperature: Annotated[float | None, typer.Option(
        help=f"Sampling temperature (default {DEFAULT_TEMPERATURE}; greedy: 0).")] = None,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass.")] = 1.0,
    max_tokens: Annotated[int, typer.Option(help="Generation budget per sample.")] = 256,
    backend: Annotated[str, typer.Option(help="auto (vLLM if it starts, else transformers), vllm or hf.")] = "auto",
    chat_template: Annotated[bool, typer.Option(help="Apply the tokenizer's chat template when it has one.")] = True,
    system_prompt: Annotated[str | None, typer.Option(help="System message for chat templates.")] = None,
    task_arg: Annotated[list[str] | None, typer.Option(help="Task option KEY=VALUE (repeatable).")] = None,
    batch_size: Annotated[int, typer.Option(help="transformers: sequences per generate call; vLLM keeps its engine "
                                                  "full (see --max-num-seqs).")] = 32,
    max_model_len: Annotated[int, typer.Option(help="vLLM context length.")] = 4096,
    tensor_parallel_size: Annotated[int, typer.Option(help="vLLM tensor parallelism.")] = 1,
    data_parallel_size: Annotated[int, typer.Option(help="vLLM data parallelism.")] = 1,
    dtype: Annotated[str, typer.Option(help="auto (bf16 only where the hardware has it natively), float32, "
                                            "bfloat16 or float16.")] = "auto",
    batch_invariant: Annotated[bool, typer.Option(help="Greedy output independent of batch composition "
                                                       "(slower; see README).")] = False,
    max_num_seqs: Annotated[int | None, typer.Option(help="vLLM: sequences decoded at once.")] = None,
    max_num_batched_tokens: Annotated[int | None, typer.Option(help="vLLM: tokens per engine step.")] = None,
    kv_cache_gib: Annotated[float | None, typer.Option(help="vLLM CPU KV cache (default: from free memory).")] = None,
    compile: Annotated[bool | None, typer.Option("--compile/--eager", help="vLLM: compile the model (default: "
                                                                             "eager on CPU).")] = None,
    output: Output = Path("runs"),
) -> None:
    """Generate, verify, select and record one run; rerunning the same command resumes it."""
    from harness.engines import EngineOptions
    from harness.pipeline import RunConfig, execute

    config = RunConfig(policy=policy, task=task, sampler=sampler, n=n, verifier=verifier, grader=grader,
                       oracle=oracle, split=split, limit=limit, seed=seed, temperature=temperature, top_p=top_p,
                       max_tokens=max_tokens, backend=backend, chat_template=chat_template,
                       system_prompt=system_prompt, task_args=parse_options("--task-arg", task_arg),
                       verifier_args=parse_options("--verifier-arg", verifier_arg),
                       grader_args=parse_options("--grader-arg", grader_arg))
    options = EngineOptions(batch_size=batch_size, max_model_len=max_model_len,
                            tensor_parallel_size=tensor_parallel_size, data_parallel_size=data_parallel_size,
                            dtype=dtype, batch_invariant=batch_invariant, max_num_seqs=max_num_seqs,
                            max_num_batched_tokens=max_num_batched_tokens, kv_cache_gib=kv_cache_gib,
                            compile=compile)
    run_dir = execute(config, output, options)
    _report(run_dir)


def _report(run_dir: Path) -> None:
    from harness.record import read_summary

    s = read_summary(run_dir)
    low, high = s.metric.ci95 or (float("nan"), float("nan"))
    side = "  ".join(f"{k} {v.value:.3f}" for k, v in s.metrics.items())
    Console().print(f"{s.run_id}: {s.metric.name} {s.metric.value:.3f} [{low:.3f}, {high:.3f}]  {side}",
                    highlight=False, soft_wrap=True)


@app.command()
@guard(RESUME)
def score(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `harness run`.")],
    verifier: Annotated[str | None, typer.Option(help="Verifier that scores samples for the sampler.")] = None,
    grader: Annotated[str | None, typer.Option(help="Verifier that grades the run (default: the task's).")] = None,
    verifier_arg: VerifierArg = None,
    grader_arg: GraderArg = None,
    oracle: Annotated[bool, typer.Option(help="Allow selecting with a verifier that reads the gold answer.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Default: the run's parent.")] = None,
) -> None:
    """Re-score a run's samples with other verifiers, without generating, into a new record (the source stays)."""
    from harness.pipeline import rescore

    if not run_dir.is_dir():
        raise HarnessError(f"{run_dir} is not a directory")
    new = rescore(run_dir, output or run_dir.parent, verifier, grader, oracle,
                  parse_options("--verifier-arg", verifier_arg), parse_options("--grader-arg", grader_arg))
    _report(new)


VS = "--vs"


@app.command(context_settings={"ignore_unknown_options": True})  # keeps ``--vs`` where it stands among the runs
@guard(RESUME)
def compare(
    runs: Annotated[list[str], typer.Argument(
        metavar="RUN", help="Two run directories (A B), or several a side, one per training seed: A1 A2 A3 --vs "
                            "B1 B2 B3 (the i-th pairs with the i-th; a side of one run pairs with each run of the "
                            "other).")],
    format: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
) -> None:
    """Whether one policy beats another: the difference of their headline metric with a paired 95% interval; with
    several runs a side, each pair's and the pooled one (a bootstrap over seeds and examples, a t interval over the
    seeds), and whether it holds."""
    import json

    from harness.compare import compare_pooled

    if format not in ("text", "json"):
        raise HarnessError(f"--format {format!r} is not one of text, json")
    first, second = _sides(runs)
    result = compare_pooled(first, second)
    if format == "json":
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    for line in result.lines():
        Console().print(line, highlight=False, soft_wrap=True, markup=False)


def _sides(runs: list[str]) -> tuple[list[Path], list[Path]]:
    """``A B``, or ``A1 A2 ... --vs B1 B2 ...``."""
    unknown = next((r for r in runs if r.startswith("-") and r != VS), None)
    if unknown is not None:
        raise HarnessError(f"compare: no such option {unknown!r} (options: {VS}, --format)")
    if runs.count(VS) > 1:
        raise HarnessError(f"compare: {VS} separates the two sides, so it is given once")
    if VS in runs:
        at = runs.index(VS)
        first, second = runs[:at], runs[at + 1:]
        if not first or not second:
            raise HarnessError(f"compare: a side has no run: give runs before and after {VS}")
    elif len(runs) == 2:
        first, second = runs[:1], runs[1:]
    else:
        raise HarnessError(f"compare takes two runs (A B), or each side's runs (A1 A2 ... {VS} B1 B2 ...); got "
                           f"{len(runs)} runs and no {VS}")
    return [Path(r) for r in first], [Path(r) for r in second]


@app.command("leaderboard")
@guard(RESUME)
def show_leaderboard(
    output: Output = Path("runs"),
    format: Annotated[str, typer.Option("--format", help="table, md, csv or json.")] = "table",
) -> None:
    """Every run in the output directory: metric with 95% interval, tokens, speed, wall time."""
    from harness import leaderboard

    text = leaderboard.render(output, format)
    if text is not None:
        typer.echo(text, nl=False)


@app.command()
@guard(RESUME)
def plot(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories of runs with --n > 1.")],
    out: Annotated[Path, typer.Option("--out", help="PNG file to write.")] = Path("scaling.png"),
) -> None:
    """Plot accuracy against N and against generated tokens, per sampler and policy."""
    from harness.plot import plot as draw

    typer.echo(f"wrote {draw(run_dirs, out)}")


@app.command()
@guard(RESUME)
def report(
    source: Annotated[Path, typer.Argument(help="A runs directory (e.g. runs/) or a study's directory.")],
    out: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path("report.html"),
    max_chars: Annotated[int | None, typer.Option(help="Cut each sample text and prompt to this many characters "
                                                       "(the page says so; default: keep them whole).")] = None,
) -> None:
    """One self-contained HTML report (opens from disk, makes no request): leaderboard, comparisons, curves, samples."""
    from harness.record import check_output
    from harness.report import studies_in, write_report

    check_output(out, "--out", kind="file")  # never into a run record, refused before anything is read
    typer.echo(f"wrote {write_report(source, out, max_chars)}")
    for folder in studies_in(source):
        typer.echo(f"study {folder.name}: `harness report {folder}` reports its runs alone, with its comparisons")


@app.command()
@guard("finished cells are kept; rerun the same command to continue where it stopped")
def study(
    file: Annotated[Path, typer.Argument(help="A study file (YAML): policies, runs, comparisons; see docs/study.md.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print every cell, done or pending, with its estimated "
                                                            "tokens and minutes here; run nothing.")] = False,
    executor: Annotated[str, typer.Option(help="local (one cell at a time) or ray (each cell a Ray task; the "
                                               "`ray` extra).")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster address (default: start a local one).")] = None,
    output: Output = Path("runs"),
) -> None:
    """Train and evaluate everything a study file names, each cell once: resumable, priced by --dry-run."""
    from harness.study_run import run_study

    run_study(file, output, dry_run=dry_run, executor=executor, address=address)


@app.command()
@guard(RESUME)
def plugins() -> None:
    """List every task, verifier and sampler, with the distribution it came from."""
    from harness.plugins import registry

    reg = registry()
    table = Table(title="harness plugins")
    for col in ("kind", "name", "from", "notes"):
        table.add_column(col)
    for kind, found in reg.components.items():
        for name, obj in sorted(found.items()):
            notes = {"task": lambda o: f"graded by {o.verifier}",
                     "verifier": lambda o: "reference-free" if o.reference_free else "reads gold answer",
                     "sampler": lambda o: "greedy" if o.greedy else ("uses scores" if o.uses_scores else "")}[kind](obj)
            table.add_row(kind, name, reg.sources[kind, name], notes)
    Console().print(table)
    for problem in reg.problems:
        typer.echo(f"warning: {problem}", err=True)


for _problem in add_commands(app):  # plugins' commands (``harness train`` from the training package)
    warn(_problem)


def main() -> None:
    """The ``harness`` console script. It first restarts itself once with tcmalloc and Intel OpenMP preloaded, as
    vLLM's CPU guide asks, since generation and training both ran faster with them (docs/performance.md);
    ``HARNESS_NO_PRELOAD=1`` starts as is."""
    reexec_with_preload()
    app()


if __name__ == "__main__":
    main()
