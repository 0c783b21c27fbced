"""The training commands, attached to the ``harness`` command line as a plugin: ``train``, ``policies``, ``augment``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import harness
from harness.console import guard
from harness.plugins import parse_options
from harness.types import DEFAULT_TEMPERATURE


def train(
    method: Annotated[str, typer.Argument(help="sft, dpo, rm, rloo or rft.")],
    overrides: Annotated[list[str] | None, typer.Argument(help="Recipe settings KEY=VALUE (YAML values).")] = None,
    recipe: Annotated[str, typer.Option(help="Recipe shipped in policies/recipes: quick, paper, ...")] = "quick",
    base: Annotated[str | None, typer.Option(help="Policy to start from (default: the recipe's).")] = None,
    name: Annotated[str | None, typer.Option(help="What --policy NAME resolves to (default: the recipe's section: "
                                                  "the method, or judge of --recipe NAME:judge).")] = None,
    reward: Annotated[str | None, typer.Option(help="RLOO's reward, or what RFT accepts: any installed "
                                                                 "verifier spec.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output directory.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a different finished or partial run there.")] = False,
) -> None:
    """Train a policy (or reward model) with TRL; rerunning the same command resumes it."""
    _require_training_extra()
    from policies import recipe as recipes
    from policies.train import train as run

    config = recipes.load(recipe, method, base=base, reward=reward, overrides=overrides or [])
    run(config, name=name, output=output, overwrite=overwrite)


def policies(
    json_out: Annotated[bool, typer.Option("--json", help="Print the manifests as JSON.")] = False,
) -> None:
    """Every trained policy and reward model: base, method, recipe, data, steps, reward, metrics, cost."""
    import json

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from policies.manifest import trained

    found = trained()
    if json_out:
        typer.echo(json.dumps({str(path): data for path, data in found}, indent=2, default=str))
        return
    if not found:
        typer.echo("no trained policies yet: harness train sft --recipe quick")
        return
    table = Table(title="trained policies")
    for column in ("name", "method", "base", "recipe", "data (kept/skipped)", "steps", "reward", "final metrics",
                   "wall", "tokens", "dtype"):
        table.add_column(column)
    for path, m in found:
        if "error" in m:
            cells = [path.name, "?", "", "", m["error"], "", "", "", "", "", ""]
        else:
            sources = ", ".join(f"{d.get('source')} {d.get('kept')}/{d.get('skipped')}" for d in m.get("data") or [])
            cells = [str(m.get("name", path.name)), str(m.get("method")), str(m.get("base")), str(m.get("recipe")),
                     sources, str(m.get("steps")), str(m.get("reward") or "–"), _metrics(m.get("metrics") or {}),
                     f"{m.get('wall_seconds') or 0:.0f} s", f"{m['tokens']:,}" if m.get("tokens") else "–",
                     str(m.get("dtype"))]
        table.add_row(*(Text(cell) for cell in cells))  # as written: a manifest's "[x]" is no rich markup
    Console(width=200).print(table)


SHOWN = ("heldout_pair_accuracy", "loss", "reward", "rewards/accuracies", "accuracy", "kl")


def _metrics(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={metrics[k]:.3g}" for k in SHOWN if k in metrics) or "–"


def augment(
    policy: Annotated[str, typer.Option(help="Policy that samples (a name, directory or hub id).")] = "smollm2",
    task: Annotated[str, typer.Option(help="Task whose TRAIN problems are sampled.")] = "countdown",
    task_arg: Annotated[list[str] | None, typer.Option(help="Task option KEY=VALUE (repeatable).")] = None,
    verifier: Annotated[str | None, typer.Option(help="Verifier that accepts samples (default: the task's).")] = None,
    n: Annotated[int, typer.Option("--n", help="Samples per problem.")] = 8,
    rows: Annotated[int, typer.Option(help="Training problems to sample.")] = 500,
    keep: Annotated[int, typer.Option(help="Distinct accepted samples kept per problem.")] = 4,
    threshold: Annotated[float, typer.Option(help="Accept a sample whose score reaches this.")] = 1.0,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = DEFAULT_TEMPERATURE,
    max_tokens: Annotated[int, typer.Option(help="Generation budget per sample.")] = 256,
    seed: Annotated[int, typer.Option(help="Seeds problem order and sampling.")] = 0,
    backend: Annotated[str, typer.Option(help="auto, vllm or hf.")] = "auto",
    max_model_len: Annotated[int, typer.Option(help="Context length: a longer prompt is refused before "
                                                    "sampling.")] = 4096,
    output: Annotated[Path, typer.Option("--output", "-o", help="SFT rows (.jsonl); pairs and counts beside.")] = Path(
        "augmented.jsonl"),
    overwrite: Annotated[bool, typer.Option(help="Replace data that another configuration wrote there.")] = False,
) -> None:
    """Rejection-sampling fine-tuning data: sample N per training problem, keep the verifier-accepted ones."""
    from policies.augment import AugmentConfig
    from policies.augment import augment as run

    run(AugmentConfig(policy=policy, task=task, task_args=parse_options("--task-arg", task_arg), n=n, rows=rows,
                      keep=keep, verifier=verifier, threshold=threshold, temperature=temperature,
                      max_tokens=max_tokens, seed=seed, backend=backend, max_model_len=max_model_len), output,
        overwrite=overwrite)


def _require_training_extra() -> None:
    try:
        import trl  # noqa: F401
        import yaml  # noqa: F401
    except ImportError as exc:
        raise harness.HarnessError(f"harness train needs the training extra ({exc.name} is not installed): "
                                   f"pip install 'harness[train]'") from None


@harness.hookimpl
def register_commands(app: typer.Typer) -> None:
    """Add ``train``, ``policies`` and ``augment`` to the harness CLI."""
    resume = "rerun the same command to resume from the last checkpoint"
    app.command(name="train")(guard(resume)(train))
    app.command(name="policies")(guard(resume)(policies))
    app.command(name="augment")(guard("rerun the same command to start again")(augment))
