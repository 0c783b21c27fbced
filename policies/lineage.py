"""What a training run saw, for ``lineage.json``: one canonical prompt per row, and the chain of bases.

The file's format and the digest rule live in ``harness.provenance``, which the core reads to decide
whether a judge is independent of a policy; which text of a row is its prompt is ``policies.data.prompt_turns``
(the rule halves hash too), and a base's own lineage is found from its resolved weights as the core finds a
policy's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.policy import Policy
from harness.provenance import (
    MANIFEST,
    Ancestor,
    Lineage,
    SourcePrompts,
    prompt_digest,
    read_lineage,
    trained_directory,
)
from harness.record import read_json_object
from policies.data import Counts, prompt_turns


def row_digest(row: Any) -> str:
    """A row's prompt digest, by the rule evaluation examples are digested by."""
    return prompt_digest(prompt_turns(row))


def sources(rows: Sequence[Any], counts: Sequence[Counts]) -> list[SourcePrompts]:
    """Each source's rows (``data.load`` gives them in source order, ``kept`` of each) as sorted distinct digests."""
    out, start = [], 0
    for count in counts:
        part = rows[start:start + count.kept]
        start += count.kept
        out.append(SourcePrompts(count.source, len(part), sorted({row_digest(r) for r in part}), count.path))
    return out


def chain(base: str, weights: Policy) -> list[Ancestor]:
    """The bases under a run that starts from ``base`` (resolved to ``weights``): a trained one's own chain from its
    lineage; a hub id, the bundled model or a directory trained elsewhere ends it."""
    folder = trained_directory(weights.adapter, weights.model)
    if folder is None:
        return [Ancestor(base, trained=False)]
    lineage = read_lineage(folder)
    if lineage is None:
        manifest = read_json_object(folder / MANIFEST, f"manifest of the base {base!r}")
        return [Ancestor(base, trained=True, method=manifest.get("method"))]
    return lineage.as_ancestor(base)


def lineage(name: str, method: str, base: str, weights: Policy, rows: Sequence[Any],
            counts: Sequence[Counts]) -> Lineage:
    """A finished run's lineage."""
    return Lineage(name, method, sources(rows, counts), chain(base, weights))
