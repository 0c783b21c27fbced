"""Two runs on the same examples: the difference of their headline metric, with a paired 95% interval.

Each run's own interval answers "how sure is this number"; whether one policy beats another is a
different question. Resampling the shared examples with both runs' credits together cancels what
makes an example hard for both, so the paired interval is the one a reviewer asks for.

Examples pair by content (``ExampleRecord.digest``: prompt, reference, meta and shots), never by id,
which a task may number by row: two runs on different data files share no "example 3". Runs of
different task data (another task, split or task arguments) are refused in one line naming the
difference.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.metrics import bootstrap_ci, mean
from harness.record import RunSummary, read_record
from harness.types import ExampleRecord


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
    unpaired: tuple[int, int] = (0, 0)  # examples of the first (second) run the other lacks

    def line(self) -> str:
        low, high = self.ci95
        return (f"{self.metric}: {self.names[0]} {self.means[0]:.3f} vs {self.names[1]} {self.means[1]:.3f} on "
                f"{self.shared} examples paired by content ({self.unpaired[0]} and {self.unpaired[1]} unpaired); "
                f"difference {self.difference:+.3f} [{low:+.3f}, {high:+.3f}] "
                f"(paired 95% bootstrap); {self.names[0]} better on {self.better[0]}, {self.names[1]} better on "
                f"{self.better[1]}")


def _label(summary: RunSummary) -> str:
    return f"{summary.policy_name}/{summary.config.sampler}"


def _by_content(records: list[ExampleRecord]) -> dict[tuple[str, int], float]:
    """Credit by (content digest, occurrence): an example a task lists twice pairs twice."""
    seen: Counter[str] = Counter()
    out = {}
    for r in records:
        out[r.digest, seen[r.digest]] = r.credit or 0.0
        seen[r.digest] += 1
    return out


def _check_same_data(first: Path, a: RunSummary, second: Path, b: RunSummary) -> None:
    for field, flag in (("task", "task"), ("split", "split"), ("task_args", "task arguments")):
        x, y = getattr(a.config, field), getattr(b.config, field)
        if x != y:
            raise HarnessError(f"{first} and {second} are runs of different task data ({flag} {x!r} against {y!r}); "
                               f"compare runs of one task, split and task arguments")


def compare_runs(first: Path, second: Path, seed: int = 0) -> Comparison:
    """Pair examples by content; the runs must be of the same task data, report the same headline metric and share
    examples."""
    (a_records, a_summary), (b_records, b_summary) = read_record(first), read_record(second)
    _check_same_data(first, a_summary, second, b_summary)
    metric_a, metric_b = a_summary.metric.name, b_summary.metric.name
    if metric_a != metric_b:
        raise HarnessError(f"{first} reports {metric_a} and {second} reports {metric_b}: nothing to compare")
    a, b = _by_content(a_records), _by_content(b_records)
    shared = [key for key in a if key in b]
    if not shared:
        raise HarnessError(f"{first} and {second} share no examples by content (prompt, reference, meta and shots): "
                           f"their task data differ")
    diffs = [a[key] - b[key] for key in shared]
    return Comparison(metric_a, (_label(a_summary), _label(b_summary)), len(shared),
                      (mean([a[k] for k in shared]), mean([b[k] for k in shared])), mean(diffs),
                      bootstrap_ci(diffs, seed), (sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)),
                      (len(a) - len(shared), len(b) - len(shared)))
