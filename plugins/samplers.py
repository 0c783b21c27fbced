"""Built-in samplers: greedy decoding and best-of-N with a reference-free verifier."""

from __future__ import annotations

from collections.abc import Sequence

import harness
from harness import Candidate


class Greedy:
    """Temperature 0, one sample: the baseline every other sampler is measured against."""

    name = "greedy"
    greedy = True
    uses_scores = False

    def select(self, candidates: Sequence[Candidate]) -> int:
        return 0


class BestOfN:
    """The highest-scoring sample; ties go to the higher mean token logprob (the model's own confidence)."""

    name = "bon"
    greedy = False
    uses_scores = True

    def select(self, candidates: Sequence[Candidate]) -> int:
        return max(range(len(candidates)),
                   key=lambda i: (candidates[i].score.value, candidates[i].completion.mean_logprob))


@harness.hookimpl
def register_samplers() -> list:
    return [Greedy(), BestOfN()]
