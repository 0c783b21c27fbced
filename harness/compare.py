"""Whether one policy beats another: the difference of their headline metric on the examples every run answered, for
one run a side (with a paired 95% interval) or one run per training seed (each seed's pair, and the claim pooled).

Each run's own interval answers "how sure is this number"; whether one policy beats another is a
different question. Resampling the shared examples with both runs' credits together cancels what
makes an example hard for both, so the paired interval is the one a reviewer asks for.

Examples pair by content (``ExampleRecord.digest``: prompt, reference, meta and shots), never by id,
which a task may number by row: two runs on different data files share no "example 3". Runs of
different task data (another task, split or task arguments) are refused in one line naming the
difference.

Several runs a side (one per training seed) are compared pair by pair and pooled, and must differ only in policy
and seed (sampler, N and grader too are checked). The pooled difference gets two intervals: a hierarchical
bootstrap over seeds and examples (``metrics.hierarchical_ci``, which a few seeds make too narrow about the seeds)
and a t interval over the seeds' differences (``metrics.t_interval``, which ignores which problems were drawn). A
claim holds only when every seed agrees in sign and both intervals exclude 0.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.metrics import bootstrap_ci, hierarchical_ci, mean, t_interval
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
    """``policy/sampler``, and the options that set the run apart (``rloo/bon temperature=1.3``)."""
    return " ".join([f"{summary.policy_name}/{summary.config.sampler}", *summary.config.options()])


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


@dataclass(frozen=True)
class PooledComparison:
    """Runs of ``first`` against runs of ``second``, pair by pair (a pair is typically one training seed) and pooled,
    on the examples every run answered.

    ``difference`` is both the mean of the pairs' differences and the difference of the pooled means; ``ci95``
    resamples pairs and examples (the same example draw for every run); ``t95`` is the t interval over the pairs'
    differences (None for one pair). ``holds``: every pair's difference has the pooled difference's sign and both
    intervals exclude 0.
    """

    metric: str
    names: tuple[str, str]
    pairing: str
    pairs: tuple[Comparison, ...]
    shared: int
    means: tuple[float, float]
    difference: float
    ci95: tuple[float, float]
    t95: tuple[float, float] | None
    spread: float | None  # standard deviation of the pairs' differences (None for one pair)
    seeds_better: tuple[int, int]  # pairs whose difference favours the first (second)
    better: tuple[int, int]  # examples, summed over the pairs, where the first (second) earned more credit
    unpaired: int  # examples some run answered but not every run
    holds: bool

    def verdict(self) -> str:
        """Whether "the better side beats the other" holds across the pairs, in plain words."""
        n, (a, b) = len(self.pairs), self.names
        if self.difference == 0:
            return f"does not hold: {a} and {b} do not differ pooled"
        winner, loser, won = (a, b, self.seeds_better[0]) if self.difference > 0 else (b, a, self.seeds_better[1])
        claim = f"{winner} > {loser} holds on {won} of {n} seeds"
        if self.holds:
            both = " and the t interval over seeds" if self.t95 is not None else ""
            return f"holds: {claim} and the pooled interval{both} exclude{'' if both else 's'} 0"
        reasons = [f"the seeds disagree ({n - won} not in favour)"] if won < n else []
        if _straddles(self.ci95):
            reasons.append("the pooled interval includes 0")
        if self.t95 is not None and _straddles(self.t95):
            reasons.append("the t interval over seeds includes 0")
        return f"does not hold across seeds: {claim}; " + "; ".join(reasons)

    def line(self) -> str:
        low, high = self.ci95
        each = ", ".join(f"{p.difference:+.3f}" for p in self.pairs)
        spread = f", sd {self.spread:.3f}" if self.spread is not None else ""
        t = (f", [{self.t95[0]:+.3f}, {self.t95[1]:+.3f}] (95% t over the {len(self.pairs)} seeds' differences, "
             f"{len(self.pairs) - 1} df)" if self.t95 is not None else "")
        return (f"{self.metric}: {self.names[0]} {self.means[0]:.3f} vs {self.names[1]} {self.means[1]:.3f} pooled "
                f"over {len(self.pairs)} seeds ({self.pairing}) on the {self.shared} examples every run answered "
                f"({self.unpaired} not answered by all); difference {self.difference:+.3f} [{low:+.3f}, {high:+.3f}] "
                f"(95% hierarchical bootstrap over seeds and examples){t}; per seed {each} (mean "
                f"{self.difference:+.3f}{spread}); examples {self.names[0]} better on {self.better[0]}, "
                f"{self.names[1]} better on {self.better[1]} (all seeds); {self.verdict()}")

    def lines(self) -> list[str]:
        """Each pair's line, then the pooled one; a single pair is the one line ``harness compare A B`` prints."""
        if len(self.pairs) == 1:
            return [self.pairs[0].line()]
        return [*(f"pair {i}: {p.line()}" for i, p in enumerate(self.pairs, 1)), f"pooled: {self.line()}"]

    def to_json(self) -> dict[str, Any]:
        """Every field and the verdict in words, so a reader (``harness report``) shows it without rebuilding it."""
        return {**dataclasses.asdict(self), "verdict": self.verdict()}


def _straddles(interval: tuple[float, float]) -> bool:
    return interval[0] <= 0 <= interval[1]


def _side_label(summaries: Sequence[RunSummary]) -> str:
    policies = dict.fromkeys(s.policy_name for s in summaries)
    samplers = dict.fromkeys(s.config.sampler for s in summaries)
    return f"{','.join(policies)}/{','.join(samplers)}"


def _pairing(first: Sequence[Path], second: Sequence[Path]) -> tuple[list[tuple[Path, Path]], str]:
    """Equal counts pair in the order given; one run on a side (an untrained policy, say) pairs with each other."""
    for side in (first, second):
        if len(side) > 1 and len({p.resolve() for p in side}) < len(side):
            twice = next(p for i, p in enumerate(side) if p.resolve() in {q.resolve() for q in side[:i]})
            raise HarnessError(f"{twice} is given twice on one side; each run there is one seed")
    if len(first) == len(second):
        return list(zip(first, second, strict=True)), "the i-th run of each side together"
    if len(second) == 1:
        return [(a, second[0]) for a in first], "the one run of the second side with each of the first"
    if len(first) == 1:
        return [(first[0], b) for b in second], "the one run of the first side with each of the second"
    raise HarnessError(f"{len(first)} runs against {len(second)}: give both sides the same number of runs (the i-th "
                       f"pairs with the i-th, one per seed) or one side a single run")


def compare_pooled(first: Sequence[Path], second: Sequence[Path], seed: int = 0,
                   names: tuple[str, str] | None = None) -> PooledComparison:
    """Every run must be of the same task data and report the same headline metric, and, pooled over several pairs,
    share the sampler, N and grader; the runs pair as ``_pairing`` says, and are compared on the examples all of
    them answered."""
    if not first or not second:
        raise HarnessError("compare needs at least one run on each side")
    pairs, pairing = _pairing(first, second)
    read = {path: read_record(path) for path in dict.fromkeys([*first, *second])}
    reference, (_, ref_summary) = next(iter(read.items()))
    for path, (_, summary) in read.items():
        _check_same_data(reference, ref_summary, path, summary)
        if summary.metric.name != ref_summary.metric.name:
            raise HarnessError(f"{reference} reports {ref_summary.metric.name} and {path} reports "
                               f"{summary.metric.name}: nothing to compare")
        if len(pairs) > 1:
            _check_one_claim(reference, ref_summary, path, summary)
    credits = {path: _by_content(records) for path, (records, _) in read.items()}
    keys = [k for k in credits[reference] if all(k in c for c in credits.values())]
    if not keys:
        which = " and ".join(str(p) for p in read) if len(read) == 2 else f"the {len(read)} runs"
        raise HarnessError(f"{which} share no examples by content (prompt, reference, meta and shots): their task "
                           f"data differ")
    metric = ref_summary.metric.name
    diffs = [[credits[a][k] - credits[b][k] for k in keys] for a, b in pairs]
    compared = [_pair(metric, (read[a][1], credits[a]), (read[b][1], credits[b]), keys, d, seed)
                for (a, b), d in zip(pairs, diffs, strict=True)]
    per_pair = [c.difference for c in compared]
    ci95 = hierarchical_ci(np.array(diffs), seed)
    t95 = t_interval(per_pair) if len(pairs) > 1 else None
    sides = names or (_side_label([read[p][1] for p in first]), _side_label([read[p][1] for p in second]))
    return PooledComparison(
        metric, sides, pairing, tuple(compared), len(keys),
        (mean([c.means[0] for c in compared]), mean([c.means[1] for c in compared])), mean(per_pair), ci95, t95,
        float(np.std(per_pair, ddof=1)) if len(pairs) > 1 else None,
        (sum(d > 0 for d in per_pair), sum(d < 0 for d in per_pair)),
        (sum(c.better[0] for c in compared), sum(c.better[1] for c in compared)),
        len(set().union(*credits.values())) - len(keys), _holds(per_pair, [ci95, *([t95] if t95 else [])]))


def _claim(summary: RunSummary) -> dict[str, object]:
    """What must not change between the runs of one pooled claim besides policy and seed (the task data aside)."""
    specs = {role: summary.components[role].spec if role in summary.components else name
             for role, name in (("sampler", summary.sampler), ("grader", summary.grader))}
    grader_args = summary.config.grader_args
    return {"sampler": specs["sampler"], "n": summary.config.n,
            "grader": f"{specs['grader']} {grader_args}" if grader_args else specs["grader"]}


def _check_one_claim(first: Path, a: RunSummary, second: Path, b: RunSummary) -> None:
    x, y = _claim(a), _claim(b)
    for field in x:
        if x[field] != y[field]:
            raise HarnessError(f"{first} and {second} differ in {field} ({x[field]!r} against {y[field]!r}): the "
                               f"runs pooled into one claim may differ only in policy and seed")


def _holds(per_pair: list[float], intervals: list[tuple[float, float]]) -> bool:
    if all(d > 0 for d in per_pair):
        return all(low > 0 for low, _ in intervals)
    if all(d < 0 for d in per_pair):
        return all(high < 0 for _, high in intervals)
    return False


def _pair(metric: str, first: tuple[RunSummary, dict[tuple[str, int], float]],
          second: tuple[RunSummary, dict[tuple[str, int], float]], keys: list[tuple[str, int]], diffs: list[float],
          seed: int) -> Comparison:
    """One pair of runs on the shared ``keys``; ``diffs`` the per-example differences, first minus second."""
    a, b = first[1], second[1]
    return Comparison(metric, (_label(first[0]), _label(second[0])), len(keys),
                      (mean([a[k] for k in keys]), mean([b[k] for k in keys])), mean(diffs), bootstrap_ci(diffs, seed),
                      (sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)), (len(a) - len(keys), len(b) - len(keys)))


def compare_runs(first: Path, second: Path, seed: int = 0) -> Comparison:
    """Pair examples by content; the runs must be of the same task data, report the same headline metric and share
    examples."""
    return compare_pooled([first], [second], seed).pairs[0]
