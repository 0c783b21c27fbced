"""What a training run saw, for ``lineage.json``: one canonical prompt per row kind, and the chain of bases.

The file's format and the digest rule live in ``harness.provenance``, which the core reads to decide
whether a judge is independent of a policy; this module only says which text of each row is its
prompt and where a base's own lineage is.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import harness
from harness.errors import HarnessError
from harness.policy import NAME, policies_dir
from harness.provenance import (
    MANIFEST,
    Ancestor,
    Lineage,
    SourcePrompts,
    example_digest,
    prompt_digest,
    read_lineage,
    trained_directory,
)
from harness.record import read_json_object
from policies.data import Counts, Pair


def row_digest(row: Any) -> str:
    """A row's prompt digest: the user turns of an SFT conversation's prompt or a preference pair's prompt, and an
    RL example's prompt as the renderer builds it (worked examples' questions, then the prompt)."""
    if isinstance(row, harness.Example):
        return example_digest(row)
    messages = row.prompt if isinstance(row, Pair) else row["prompt"]
    return prompt_digest(m["content"] for m in messages if m.get("role") == "user")


def sources(rows: Sequence[Any], counts: Sequence[Counts]) -> list[SourcePrompts]:
    """Each source's rows (``data.load`` gives them in source order, ``kept`` of each) as sorted distinct digests."""
    out, start = [], 0
    for count in counts:
        part = rows[start:start + count.kept]
        start += count.kept
        out.append(SourcePrompts(count.source, len(part), sorted({row_digest(r) for r in part}), count.path))
    return out


def chain(base: str) -> list[Ancestor]:
    """The bases under a run that starts from ``base``: a trained one's own chain from its lineage; a hub id, the
    bundled model or a directory trained elsewhere ends it."""
    folder = _trained_folder(base)
    if folder is None:
        return [Ancestor(base, trained=False)]
    lineage = read_lineage(folder)
    if lineage is None:
        manifest = read_json_object(folder / MANIFEST, f"manifest of the base {base!r}")
        return [Ancestor(base, trained=True, method=manifest.get("method"))]
    return lineage.as_ancestor(base)


def lineage(name: str, method: str, base: str, rows: Sequence[Any], counts: Sequence[Counts]) -> Lineage:
    """A finished run's lineage."""
    return Lineage(name, method, sources(rows, counts), chain(base))


def _trained_folder(base: str) -> Path | None:
    """Where a base trained here keeps its manifest and lineage: a policy's name (a pointer manifest names its
    real output), its directory, or a folder inside it (``model/``, ``adapter/``)."""
    named = policies_dir() / base
    if NAME.match(base) and (named / MANIFEST).is_file():
        output = read_json_object(named / MANIFEST, f"manifest of the base {base!r}").get("output")
        if output is not None and not isinstance(output, str):
            raise HarnessError(f"manifest of the base {base!r}: output={output!r} is not a path")
        return Path(output) if output else named
    try:
        return trained_directory(base) if Path(base).expanduser().is_dir() else None
    except OSError:
        return None
