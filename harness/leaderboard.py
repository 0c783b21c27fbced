"""One table of every run in an output directory, as a rich table, Markdown, CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from harness.errors import HarnessError
from harness.policy import list_policies
from harness.record import RunSummary, iter_summaries

FORMATS = ("table", "md", "csv", "json")
COLUMNS = ("policy", "task", "sampler", "n", "options", "verifier", "metric", "value", "ci95", "examples",
           "tokens", "tok/s", "wall_s", "run")


def rows(output: Path) -> list[dict]:
    """One flat row per run, best first within each task; a trained policy's row carries its training cost."""
    trained = dict(list_policies())
    out = []
    for run_dir, s in iter_summaries(output):
        out.append({
            "policy": s.policy_name,
            "task": s.task,
            "sampler": s.sampler,
            "n": s.config.n,
            "verifier": s.verifier or "-",
            "metric": s.metric.name,
            "value": s.metric.value,
            "ci95": s.metric.ci95,
            "examples": s.counts.examples,
            "tokens": s.tokens.generated if s.tokens else None,
            "tok/s": s.timings.tokens_per_s,
            "wall_s": s.timings.wall_s,
            "run": run_dir.name,
            "options": " ".join(s.config.options()) or None,
        } | {k: v.value for k, v in s.metrics.items()} | _curve_columns(s) | _judge_columns(s)
          | _training_cost(trained.get(s.policy.name) if s.policy else None))
    return sorted(out, key=lambda r: (r["task"], -r["value"]))


MARKS = {False: "†", "unknown": "?"}  # a judge that is not independent of the policy, or not known to be
FOOTNOTED = ("judge_independent", "judge_why")  # columns of csv and json; the table and md say them below


def _judge_columns(summary: RunSummary) -> dict:
    """The judge of a judged run, marked where it is not independent of the policy, with why."""
    judge = summary.judge
    if judge is None:
        return {}
    independent = "not checked" if judge.independent is None else judge.independent
    return {"judge": judge.spec + MARKS.get(independent, ""), "judge_independent": independent,
            "judge_why": judge.why}


def footnotes(data: list[dict]) -> list[str]:
    """One line per policy and judge whose independence fails or is unknown: the mark, the pair, and why."""
    lines = []
    for r in data:
        mark = MARKS.get(r.get("judge_independent"))
        line = f"{mark} {r['judge'].removesuffix(mark)} judging {r['policy']}: {r['judge_why']}" if mark else None
        if line and line not in lines:
            lines.append(line)
    return lines


def _training_cost(manifest: dict | None) -> dict:
    """What training the policy cost, from its manifest (absent for the base model)."""
    if not manifest or "error" in manifest:
        return {}
    return {"train_method": manifest.get("method"), "train_steps": manifest.get("steps"),
            "train_s": manifest.get("wall_seconds"), "train_tokens": manifest.get("tokens")}


def _curve_columns(summary: RunSummary) -> dict:
    """The run's own sampler at N' = 1, 2, 4, ... (from the same samples), as columns ``@1``, ``@2``, ..., and
    ``=pass@N``: whether the sampler at full N did as well as pass@N (any right sample), which best-of-N with an
    exact reference-free verifier does, so that such a number is read as the oracle bound it is."""
    if summary.curves is None:
        return {}
    values = summary.curves.accuracy.get(summary.sampler) or []
    columns = {f"@{n}": v for n, v in zip(summary.curves.n, values, strict=False)}
    if values and summary.curves.pass_at_k and len(values) == len(summary.curves.pass_at_k):
        columns["=pass@N"] = "yes" if math.isclose(values[-1], summary.curves.pass_at_k[-1]) else "no"
    return columns


def _cell(key: str, value) -> str:
    if value is None:
        return "-"
    if key == "ci95":
        return f"[{value[0]:.3f}, {value[1]:.3f}]"
    if key in ("tok/s", "wall_s", "train_s"):
        return f"{value:,.1f}"
    if key in ("tokens", "train_tokens") and isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def render(output: Path, fmt: str = "table", console: Console | None = None) -> str | None:
    """Print the rich table (``table``) or return the text of the other formats."""
    if fmt not in FORMATS:
        raise HarnessError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if not output.is_dir():
        raise HarnessError(f"output directory {output} does not exist; run `harness run` first")
    data = rows(output)
    extra = sorted({k for r in data for k in r} - set(COLUMNS), key=lambda k: (k.startswith("@"), len(k), k))
    columns = [*COLUMNS[:9], *extra, *COLUMNS[9:]]
    if not any(r["options"] for r in data):
        columns.remove("options")
    if fmt == "json":
        return json.dumps(data, indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: _cell(k, r.get(k)) for k in columns} for r in data)
        return buf.getvalue()
    notes = footnotes(data)
    columns = [k for k in columns if k not in FOOTNOTED]  # said in the footnotes below the table
    if fmt == "md":
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(_cell(k, r.get(k)) for k in columns) + " |" for r in data]
        return "\n".join(lines) + "".join(f"\n\n{note}" for note in notes) + "\n"
    columns.remove("run")  # the table is for reading; md, csv and json keep the run id
    table = Table(title=f"harness leaderboard ({output})", show_lines=False)
    for k in columns:
        table.add_column(k, justify="right" if k in ("n", "value", "examples", "tokens", "tok/s", "wall_s") else "left")
    for r in data:
        table.add_row(*(_cell(k, r.get(k)) for k in columns))
    console = console or Console()
    if not console.is_terminal:  # piped output: as wide as the table, never a squeezed column
        natural = Measurement.get(console, console.options.update_width(10_000), table).maximum
        console.width = max(console.width, natural)
    console.print(table)
    for note in notes:
        console.print(note, markup=False, highlight=False, soft_wrap=True)
    return None
