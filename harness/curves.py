"""Inference-scaling curves from ONE generation of N samples per problem.

Drawing N samples once and asking "what would a sampler have scored with only N' of
them?" for every N' <= N costs no extra generation, and averaging over all size-N'
subsets (instead of taking the first N') removes the luck of which samples came first.
Selection reuses the samplers' own ``select``, so a curve's last point is exactly the
accuracy the run reported with that sampler.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np

from harness.errors import HarnessError
from harness.metrics import accuracy, mean
from harness.selection import SamplerError, candidates_of, choose
from harness.types import Candidate, ExampleRecord, Sampler, Score

EXACT_CAP = 5000
NEEDS_SCORES = "needs verifier scores (--verifier); the samples have none"  # skipped, not failed
DRAWS = 2000


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chen et al. (2021)'s unbiased pass@k, ``1 - C(n-c, k) / C(n, k)``, as a product (no huge binomials)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def _subsets(n: int, size: int, cap: int, draws: int, seed: int | Sequence[int]) -> tuple[list[Sequence[int]], str]:
    """Every size-``size`` subset of ``range(n)``, or ``draws`` seeded random ones, each in ascending order."""
    method = _method(n, size, cap, draws)
    if method == "exact":
        return list(itertools.combinations(range(n), size)), method
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(n, size=size, replace=False)).tolist() for _ in range(draws)], method


View = tuple[Sequence[int], list[Candidate]]  # a subset's sample indices and the candidates a sampler sees


def _views(candidates: Sequence[Candidate], subsets: list[Sequence[int]]) -> list[View]:
    return [(subset, [candidates[i] for i in subset]) for subset in subsets]


def _mean_credit(credit: Sequence[float], sampler: Sampler, views: list[View]) -> float:
    return sum(credit[subset[choose(sampler, shown)]] for subset, shown in views) / len(views)


def _method(n: int, size: int, cap: int, draws: int) -> str:
    return "exact" if math.comb(n, size) <= cap else f"monte-carlo({draws})"


ACCURACY = accuracy().credit


def row_candidates(record: ExampleRecord, credit: Callable[[Score], float] = ACCURACY
                   ) -> tuple[list[Candidate], list[float]]:
    """A record's samples as the sampler saw them, and the credit each would earn if chosen."""
    return candidates_of(record), [credit(s.grade) for s in record.samples]


def subset_sizes(n: int) -> list[int]:
    """1, 2, 4, ... below ``n``, then ``n`` itself: a log2 axis that ends at the run's own N."""
    return [2 ** i for i in range(n.bit_length()) if 2 ** i < n] + [n]


def scaling_curves(rows: list[ExampleRecord], samplers: dict[str, Sampler], ks: list[int] | None = None,
                   seed: int = 0, *, credit: Callable[[Score], float] = ACCURACY, cap: int = EXACT_CAP,
                   draws: int = DRAWS) -> dict:
    """Accuracy (the headline metric's credit), pass@k and token cost against samples N', from one run's records.

    ``ks`` are the N' values (default ``subset_sizes(N)``). Returns a JSON-serialisable dict::

        {"n": [1, 2, 4, 5],                      # N' (samples per problem)
         "tokens": [...],                        # expected generated tokens per problem at N'
         "pass@k": [...],                        # mean unbiased pass@N' over problems
         "accuracy": {"majority": [...], ...},   # mean expected selection accuracy at N'
         "samplers": ["majority", ...],          # the keys of "accuracy", in the order given
         "skipped": {"bon": "..."},              # samplers that could not be evaluated (or failed), and why
         "method": ["exact", ..., "monte-carlo(2000)", "exact"],  # per N', for every problem
         "problems": 30, "samples": 5, "seed": 0}

    Samplers that read scores are skipped unless every sample carries the run's verifier
    score; a sampler that fails is skipped with its error. pass@k counts a sample as correct
    when its credit is 1. Monte-Carlo problems are seeded with ``[seed, problem index]``.
    """
    if not rows:
        raise HarnessError("no rows to compute scaling curves from")
    n = len(rows[0].samples)
    if any(len(r.samples) != n for r in rows):
        raise HarnessError("scaling curves need the same number of samples for every problem")
    sizes = subset_sizes(n) if ks is None else sorted(set(ks))
    if not sizes or not all(1 <= k <= n for k in sizes):
        raise HarnessError(f"curve sizes must be in [1, {n}], got {ks}")
    problems = [row_candidates(r, credit) for r in rows]
    scored = all(c.score is not None for cands, _ in problems for c in cands)
    skipped = {name: NEEDS_SCORES
               for name, s in samplers.items() if s.uses_scores and not scored}
    # Problem by problem, each subset drawn once for every sampler (drawing cost as much as a vote).
    live = {name: s for name, s in samplers.items() if name not in skipped}
    accuracies: dict[str, list[list[float]]] = {name: [[] for _ in sizes] for name in live}
    for i, (cands, credits) in enumerate(problems):
        for j, k in enumerate(sizes):
            views = _views(cands, _subsets(n, k, cap, draws, [seed, i])[0])
            for name, sampler in list(live.items()):
                try:
                    accuracies[name][j].append(_mean_credit(credits, sampler, views))
                except SamplerError as exc:
                    skipped[name] = str(exc)
                    del live[name]
    curve = {name: [mean(per_problem) for per_problem in accuracies[name]] for name in live}
    per_sample = mean([s.completion.tokens for r in rows for s in r.samples])
    return {
        "n": sizes,
        "tokens": [k * per_sample for k in sizes],
        "pass@k": [mean([pass_at_k(n, sum(c >= 1.0 for c in credits), k) for _, credits in problems])
                   for k in sizes],
        "accuracy": curve,
        "samplers": list(curve),
        "skipped": skipped,
        "method": [_method(n, k, cap, draws) for k in sizes],
        "problems": len(rows),
        "samples": n,
        "seed": seed,
    }
