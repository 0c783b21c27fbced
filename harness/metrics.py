"""Metrics a reviewer accepts: means with a seeded 95% bootstrap interval."""

from __future__ import annotations

import numpy as np


def bootstrap_ci(values: list[float], resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile 95% interval of the mean, resampling examples with replacement."""
    if not values:
        return (float("nan"), float("nan"))
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(resamples, len(data)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return (float(low), float(high))


def mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")
