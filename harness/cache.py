"""Content-addressed generation cache: a killed run loses at most the batch in flight.

One JSON line per sample, appended and flushed as each batch completes. The key is
(model identity, rendered prompt, sampling parameters, seed, sample index), so rerunning a
command, raising ``--n``, or re-scoring never generates the same sample twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from harness.types import Completion


def sample_key(model: str, prompt: str, sampling: dict, index: int) -> str:
    blob = json.dumps([model, prompt, sampling, index], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


class GenerationCache:
    """An append-only JSONL file of completions by key; a torn last line (``kill -9``) is ignored."""

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, tuple[Completion, float]] = {}
        if path.exists():
            with path.open(encoding="utf-8") as fh:
                for line in fh:
                    try:
                        row = json.loads(line)
                        c = Completion(row["text"], row["tokens"], row["logprob"], row["finish_reason"])
                        self.entries[row["key"]] = (c, row["seconds"])
                    except (ValueError, KeyError, TypeError):
                        continue  # the line a killed run was writing

    def get(self, key: str) -> tuple[Completion, float] | None:
        """A cached completion and the generation seconds attributed to it when it was made."""
        return self.entries.get(key)

    def put(self, items: list[tuple[str, Completion, float]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(
            json.dumps({"key": k, "text": c.text, "tokens": c.tokens, "logprob": c.logprob,
                        "finish_reason": c.finish_reason, "seconds": s}, ensure_ascii=False) + "\n"
            for k, c, s in items
        )
        with self.path.open("a", encoding="utf-8") as fh:
            if fh.tell() and not self._ends_with_newline():
                fh.write("\n")  # close a torn line so the new ones parse
            fh.write(lines)
            fh.flush()
            os.fsync(fh.fileno())
        for k, c, s in items:
            self.entries[k] = (c, s)

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"
