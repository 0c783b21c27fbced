"""Content-addressed generation cache in SQLite: indexed look-ups, one transaction per write, safe to share.

The key is (model identity, rendered prompt, sampling parameters, seed, sample index), so
rerunning a command, raising ``--n``, or re-scoring never generates the same sample twice. WAL
mode lets several ``harness run`` processes read and write one cache at once; the first write
of a key wins and everyone reads that one, so concurrent records agree. A ``kill -9`` loses
only what was not yet committed.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from harness.types import Completion

SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    tokens INTEGER NOT NULL,
    logprob REAL NOT NULL,
    finish_reason TEXT NOT NULL,
    seconds REAL NOT NULL
) WITHOUT ROWID
"""
CHUNK = 30_000  # keys per look-up query, under SQLite's bound-parameter limit (32,766 since 3.32)


def sample_key(model: str, prompt: str, sampling: dict, index: int) -> str:
    blob = json.dumps([model, prompt, sampling, index], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


class GenerationCache:
    """Completions by key, with the generation seconds attributed to each when it was made."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, timeout=60, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a committed batch survives kill -9
        self.db.execute(SCHEMA)

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[Completion, float]]:
        found: dict[str, tuple[Completion, float]] = {}
        for start in range(0, len(keys), CHUNK):
            chunk = list(keys[start:start + CHUNK])
            rows = self.db.execute(
                f"SELECT key, text, tokens, logprob, finish_reason, seconds FROM samples "
                f"WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            for key, text, tokens, logprob, finish, seconds in rows:
                found[key] = (Completion(text, tokens, logprob, finish), seconds)
        return found

    def put(self, items: Iterable[tuple[str, Completion, float]]) -> None:
        """One transaction; a key already present keeps its first completion."""
        rows = [(k, c.text, c.tokens, c.logprob, c.finish_reason, s) for k, c, s in items]
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT OR IGNORE INTO samples VALUES (?, ?, ?, ?, ?, ?)", rows)

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]

    def close(self) -> None:
        self.db.close()
