"""Inference-scaling plots: accuracy against samples per problem and against generated tokens.

Two panels because they answer different questions: N shows how a sampler uses more
samples; tokens show what that costs, so policies with different answer lengths compare
fairly. Drawn on a bare ``Figure`` (Agg), never through pyplot's global state.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter, NullLocator

from harness.errors import HarnessError, describe
from harness.record import Curves, atomic_file, check_output, read_summary

SIZE = (12.0, 4.8)  # inches
DPI = 100


def _curves(run_dir: Path) -> tuple[str, str, Curves]:
    """(policy label, task, curves) of one run; a run without usable curves is an error."""
    summary = read_summary(run_dir)
    curves = summary.curves
    if not curves:
        raise HarnessError(f"{run_dir} has no scaling curves in its summary.json (a run with --n > 1 records them)")
    try:
        length = len(curves.n)
        lines = [curves.tokens, curves.pass_at_k, *(curves.accuracy[s] for s in curves.samplers)]
        if any(len(line) != length for line in lines):
            raise ValueError("curves of different lengths")
    except (KeyError, TypeError, ValueError) as exc:
        raise HarnessError(f"{run_dir} has unreadable scaling curves ({describe(exc)})") from None
    return summary.policy_name, summary.task, curves


def plot(run_dirs: list[Path], out: Path) -> Path:
    """Write a PNG of every run's curves: one colour per run, one marker per sampler, pass@k dashed. Written
    atomically, and never into a run record (refused, in one line, before anything is read)."""
    check_output(out, "--out", kind="file")
    fig = figure(run_dirs)
    with atomic_file(out) as tmp:
        fig.savefig(tmp, format="png")
    return out


def figure(run_dirs: list[Path]) -> Figure:
    """The two panels, accuracy against N and against tokens, on a y-axis from 0 to 1 whatever the runs scored."""
    if not run_dirs:
        raise HarnessError("no runs to plot")
    runs = [_curves(d) for d in run_dirs]
    fig = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    by_n, by_tokens = fig.subplots(1, 2, sharey=True)
    markers = "osD^vP*X"
    for colour, (policy, _, curves) in enumerate(runs):
        for axis, x in ((by_n, curves.n), (by_tokens, curves.tokens)):
            for m, sampler in enumerate(curves.samplers):
                axis.plot(x, curves.accuracy[sampler], color=f"C{colour}", marker=markers[m % len(markers)],
                          label=f"{policy} · {sampler}", clip_on=False)  # a point at 0 or 1 drawn whole
            axis.plot(x, curves.pass_at_k, color=f"C{colour}", linestyle="--", label=f"{policy} · pass@k",
                      clip_on=False)
    by_n.set_xscale("log", base=2)
    by_n.xaxis.set_minor_locator(NullLocator())
    ticks = sorted({k for _, _, curves in runs for k in curves.n})
    by_n.set_xticks(ticks, labels=[str(k) for k in ticks])
    by_n.set_xlabel("samples per problem N")
    by_n.set_ylabel("fraction of problems solved")
    by_tokens.set_xscale("log")
    by_tokens.xaxis.set_major_formatter(LogFormatter())  # plain numbers, not powers of ten
    by_tokens.xaxis.set_minor_formatter(LogFormatter(minor_thresholds=(2, 0.5)))
    by_tokens.set_xlabel("generated tokens per problem")
    for axis in (by_n, by_tokens):
        axis.grid(True, which="both", alpha=0.3)
        axis.set_ylim(0, 1)  # fractions: runs compare on the same scale, and a flat curve at 0.02 looks flat
    fig.legend(*by_n.get_legend_handles_labels(), loc="outside right center", fontsize="small")
    fig.suptitle(f"inference scaling on {', '.join(sorted({task for _, task, _ in runs}))}")
    return fig
