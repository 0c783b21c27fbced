"""Voting samplers: self-consistency (majority) and a verifier-weighted vote over extracted answers.

Both group candidates by the grader's extracted answer (compared after ``.strip()``), so the
vote rewards answers that many samples reach by different paths; candidates without an
answer never vote. Every tie is broken by the model's own log-probabilities, so a choice
never depends on an arbitrary order unless the numbers are exactly equal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import harness
from harness import Candidate


def _vote(candidates: Sequence[Candidate], weight: Callable[[Candidate], float],
          rank: Callable[[Candidate], tuple[float, ...]]) -> int:
    """The best-ranked member of the heaviest answer group (ties: higher total logprob, then the group seen first);
    all-None: the best-ranked candidate. One pass tallies every group (scaling curves call this ~10^6 times)."""
    tally: dict[str, list] = {}  # answer -> [total weight, total logprob, member indices], in order of appearance
    for i, candidate in enumerate(candidates):
        if candidate.answer is not None:
            group = tally.setdefault(candidate.answer.strip(), [0, 0, []])
            group[0] += weight(candidate)
            group[1] += candidate.completion.logprob
            group[2].append(i)
    members = max(tally.values(), key=lambda g: (g[0], g[1]))[2] if tally else range(len(candidates))
    return max(members, key=lambda i: rank(candidates[i]))


class Majority:
    """Self-consistency: the most frequent answer wins, represented by its most confident sample."""

    name = "majority"
    greedy = False
    uses_scores = False

    def select(self, candidates: Sequence[Candidate]) -> int:
        return _vote(candidates, lambda c: 1.0, lambda c: (c.completion.mean_logprob,))


class Weighted:
    """Each sample votes with its reference-free verifier score, so a few trusted samples can outvote many weak ones."""

    name = "weighted"
    greedy = False
    uses_scores = True

    def select(self, candidates: Sequence[Candidate]) -> int:
        return _vote(candidates, lambda c: c.score.value, lambda c: (c.score.value, c.completion.mean_logprob))


@harness.hookimpl
def register_samplers() -> list:
    return [Majority(), Weighted()]
