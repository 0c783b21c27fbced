"""Choosing among a problem's samples: the one place a sampler plugin is called, and its failures contained."""

from __future__ import annotations

from collections.abc import Sequence

from harness.errors import describe
from harness.types import Candidate, ExampleRecord, Sampler


class SamplerError(Exception):
    """A sampler plugin failed: it raised, or chose something that is not one of the candidates."""


def choose(sampler: Sampler, candidates: Sequence[Candidate]) -> int:
    """The index the sampler picks; any failure of the plugin becomes a ``SamplerError`` naming it."""
    try:
        chosen = sampler.select(candidates)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # plugin code, SystemExit included
        raise SamplerError(f"sampler {sampler.name!r} failed: {describe(exc)}") from None
    if isinstance(chosen, bool) or not isinstance(chosen, int) or not 0 <= chosen < len(candidates):
        raise SamplerError(f"sampler {sampler.name!r} chose {chosen!r} among {len(candidates)} candidates")
    return chosen


def candidates_of(record: ExampleRecord) -> list[Candidate]:
    """A record's samples as a sampler sees them: completion, the grader's extracted answer, the verifier's score."""
    return [Candidate(s.completion, s.grade.answer if s.grade else None, s.score) for s in record.samples]
