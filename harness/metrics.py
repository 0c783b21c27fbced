"""Metrics a reviewer accepts: numbers over a run's examples, each with a seeded 95% bootstrap interval.

A grader (or task) declares the metrics its run reports, as inspect_ai's scorers do; the first
one is the run's headline. Each is computed from the chosen sample's grade on every example.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from harness.types import Score, Task, TaskOptional, Verifier, VerifierOptional

RESAMPLES = 2000


@dataclass(frozen=True)
class Metric:
    """One number over the examples: the (weighted) mean of ``credit``, or ``reduce`` when it is no mean.

    ``credit(grade)`` is one example's contribution (for the headline metric, also what scaling
    curves and pass@k count); ``weight(grade)`` turns the mean into a micro-average,
    ``sum(weight * credit) / sum(weight)`` (IFEval's instruction-level accuracy: a prompt with
    three instructions weighs three times one with one); ``reduce(grades)`` computes a number
    that is not a mean at all (a length-adjusted win-rate) and is bootstrapped the same way.
    """

    name: str
    credit: Callable[[Score], float]
    weight: Callable[[Score], float] | None = None
    reduce: Callable[[Sequence[Score]], float] | None = None

    def compute(self, grades: Sequence[Score]) -> float:
        return self._on(grades, np.arange(len(grades))[None, :])[0] if grades else float("nan")

    def interval(self, grades: Sequence[Score], seed: int = 0) -> tuple[float, float]:
        """Percentile 95% interval, resampling examples with replacement (seeded: the same run, the same CI)."""
        return _percentile_interval(len(grades), seed, lambda draws: self._on(grades, draws))

    def _on(self, grades: Sequence[Score], draws: np.ndarray) -> np.ndarray:
        """The metric on each row of example indices in ``draws``."""
        if self.reduce is not None:
            return np.array([self.reduce([grades[i] for i in row]) for row in draws], dtype=float)
        credit = np.array([self.credit(g) for g in grades], dtype=float)
        if self.weight is None:
            return credit[draws].mean(axis=1)
        weight = np.array([self.weight(g) for g in grades], dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (credit * weight)[draws].sum(axis=1) / weight[draws].sum(axis=1)


def accuracy(name: str = "accuracy") -> Metric:
    """The share of examples whose chosen sample scored 1 (value >= 1)."""
    return Metric(name, lambda g: float(g.value >= 1.0))


def mean_score(name: str = "mean_score") -> Metric:
    """The mean of the chosen samples' values: a win-rate where a tie scores 0.5 counts it as half."""
    return Metric(name, lambda g: float(g.value))


def side(key: str) -> Metric:
    """The mean of the side-score ``key`` (0 where a grade lacks it)."""
    return Metric(key, lambda g: float(g.metrics.get(key, 0.0)))


def micro(name: str, key: str, weight: str) -> Metric:
    """A micro-average: side-score ``key`` (a per-example rate) weighted by side-score ``weight`` (its count)."""
    return Metric(name, lambda g: float(g.metrics.get(key, 0.0)), weight=lambda g: float(g.metrics.get(weight, 0.0)))


def _percentile_interval(n: int, seed: int, on: Callable[[np.ndarray], np.ndarray]) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles of ``on(draws)``, ``draws`` being RESAMPLES seeded resamplings of n indices."""
    if not n:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    low, high = np.nanpercentile(on(rng.integers(0, n, size=(RESAMPLES, n))), [2.5, 97.5])
    return (float(low), float(high))


def declared(grades: Sequence[Score], grader: Verifier, task: Task) -> list[Metric]:
    """The metrics the grader declares, else the task's; else accuracy and the mean of every side-score."""
    for metrics in (VerifierOptional.of(grader).metrics, TaskOptional.of(task).metrics):
        if metrics:
            return list(metrics)
    keys = sorted({k for g in grades for k in g.metrics})
    return [accuracy(), *(side(k) for k in keys)]


def bootstrap_ci(values: Sequence[float], seed: int = 0) -> tuple[float, float]:
    """The 95% interval of a plain mean of any numbers (paired differences too), as ``Metric.interval`` computes it."""
    data = np.asarray(values, dtype=float)
    return _percentile_interval(len(data), seed, lambda draws: data[draws].mean(axis=1))


def hierarchical_ci(differences: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """The 95% percentile interval of the grand mean of a runs-by-examples matrix, resampling runs and examples.

    Each resample draws examples once and applies that draw to every run, so a problem stays paired across runs
    (and seeds), then draws runs. It is not conservative about the runs: with a handful of them the run draw takes
    few distinct values, shrinks their spread by the plug-in factor sqrt((n-1)/n), and its percentiles are
    normal-like where Student's t with n-1 degrees of freedom is far wider; ``t_interval`` over the runs' means is
    the check on that level. With one run it is ``bootstrap_ci`` of that run's row, draw for draw.
    """
    data = np.asarray(differences, dtype=float)
    runs, n = data.shape
    if not runs or not n:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    examples = rng.integers(0, n, size=(RESAMPLES, n))
    chosen = rng.integers(0, runs, size=(RESAMPLES, runs))
    per_run = np.stack([row[examples].mean(axis=1) for row in data])  # runs x resamples, a run at a time
    low, high = np.nanpercentile(per_run[chosen.T, np.arange(RESAMPLES)].mean(axis=0), [2.5, 97.5])
    return (float(low), float(high))


# Student's t 0.975 quantile by degrees of freedom from 1 (scipy.stats.t.ppf, rounded): the core does not depend on
# scipy for a table.
_T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281, 2.2010, 2.1788, 2.1604,
         2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860, 2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555,
         2.0518, 2.0484, 2.0452, 2.0423)
_Z975 = 1.959963984540054


def t_quantile(df: int) -> float:
    """Student's t 0.975 quantile: the table, then the Cornish-Fisher expansion around the normal quantile (the
    normal alone would make a few dozen seeds' interval too narrow; tests check both against scipy)."""
    if df < 1:
        raise ValueError(f"t_quantile needs at least 1 degree of freedom, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))


def t_interval(values: Sequence[float]) -> tuple[float, float]:
    """The 95% t interval of the mean of a few numbers (one per seed): mean ± t(0.975, n-1)·sd/√n, the interval
    that treats the seeds as a sample of training runs; NaN for fewer than two."""
    data = np.asarray(values, dtype=float)
    if len(data) < 2:
        return (float("nan"), float("nan"))
    half = t_quantile(len(data) - 1) * float(np.std(data, ddof=1)) / len(data) ** 0.5
    centre = float(data.mean())
    return (centre - half, centre + half)


def mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")
