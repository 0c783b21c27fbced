"""Two runs on the same examples: the difference of their headline metric, with a paired 95% interval.

Each run's own interval answers "how sure is this number"; whether one policy beats another is a
different question. Resampling the shared examples with both runs' credits together cancels what
makes an example hard for both, so the paired interval is the one a reviewer asks for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.metrics import bootstrap_ci, mean
from harness.record import RunSummary, read_record


@dataclass(frozen=True)
class Comparison:
    """``first`` minus ``second`` on the examples both answered (credit: the chosen sample's value)."""

    metric: str
    names: tuple[str, str]
    shared: int
    means: tuple[float, float]
    difference: float
    ci95: tuple[float, float]
    better: tuple[int, int]  # examples where the first (second) earned more credit than the other

    def line(self) -> str:
        low, high = self.ci95
        return (f"{self.metric}: {self.names[0]} {self.means[0]:.3f} vs {self.names[1]} {self.means[1]:.3f} on "
                f"{self.shared} shared examples; difference {self.difference:+.3f} [{low:+.3f}, {high:+.3f}] "
                f"(paired 95% bootstrap); {self.names[0]} better on {self.better[0]}, {self.names[1]} better on "
                f"{self.better[1]}")


def _label(summary: RunSummary) -> str:
    return f"{summary.policy_name}/{summary.config.sampler}"


def compare_runs(first: Path, second: Path, seed: int = 0) -> Comparison:
    """Match examples by id (else prompt); the runs must report the same headline metric and share examples."""
    (a_records, a_summary), (b_records, b_summary) = read_record(first), read_record(second)
    metric_a, metric_b = a_summary.metric.name, b_summary.metric.name
    if metric_a != metric_b:
        raise HarnessError(f"{first} reports {metric_a} and {second} reports {metric_b}: nothing to compare")
    a = {r.example.id or r.example.prompt: r.credit or 0.0 for r in a_records}
    b = {r.example.id or r.example.prompt: r.credit or 0.0 for r in b_records}
    shared = [key for key in a if key in b]
    if not shared:
        raise HarnessError(f"{first} and {second} share no examples (compare runs of one task and split)")
    diffs = [a[key] - b[key] for key in shared]
    return Comparison(metric_a, (_label(a_summary), _label(b_summary)), len(shared),
                      (mean([a[k] for k in shared]), mean([b[k] for k in shared])), mean(diffs),
                      bootstrap_ci(diffs, seed), (sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)))
