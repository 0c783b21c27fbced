"""Content-addressed generation cache in SQLite: indexed look-ups, one transaction per write, safe to share.

The key is (model identity, rendered prompt, sampling parameters, the engine facts that change the
numbers, sample index; ``harness.pipeline.sample_identity`` says which), so rerunning a command,
raising ``--n``, or re-scoring never generates the same sample twice, and a sample is served only to
a run that would have made it. WAL mode lets several ``harness run`` processes read and write one
cache at once; the first write of a key wins and everyone reads that one, so concurrent records agree.
A ``kill -9`` loses only what was not yet committed.

A cache that is not one (garbage bytes, a damaged page, a database of another schema) is set aside as
``generations.sqlite.corrupt-<UTC time>`` with its WAL files, reported in one warning line, and a fresh
one takes its place: the run generates afresh and nothing is deleted. A directory at the cache's path,
or a database that is locked or unwritable, is a one-line error.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from harness.console import warn
from harness.errors import HarnessError, describe
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
# PRAGMA table_info(samples) of SCHEMA: (name, type, notnull, primary key)
COLUMNS = [("key", "TEXT", 1, 1), ("text", "TEXT", 1, 0), ("tokens", "INTEGER", 1, 0), ("logprob", "REAL", 1, 0),
           ("finish_reason", "TEXT", 1, 0), ("seconds", "REAL", 1, 0)]
CHUNK = 30_000  # keys per look-up query, under SQLite's bound-parameter limit (32,766 since 3.32)
CORRUPT_CODES = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB (primary result codes)


def sample_key(model: str, prompt: str, sampling: dict, index: int) -> str:
    blob = json.dumps([model, prompt, sampling, index], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


class NotACache(Exception):
    """The file at the cache's path is not a generation cache: corrupt, or a database of another schema."""


class GenerationCache:
    """Completions by key, with the generation seconds attributed to each when it was made."""

    def __init__(self, path: Path):
        self.path = path
        if path.is_dir():
            raise HarnessError(f"the generation cache {path} is a directory; move it aside (or choose another "
                               f"--output) and rerun")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HarnessError(f"cannot create the generation cache's folder {path.parent}: {describe(exc)}") from None
        try:
            self.db = self._connect()
        except NotACache as exc:
            self._set_aside(str(exc))
            self.db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:  # the schema is read before anything is written: a foreign database is set aside untouched
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables - {"samples"}:
                raise NotACache(f"a database of another schema (tables {', '.join(sorted(tables))})")
            columns = [(name, kind, notnull, pk) for _, name, kind, notnull, _, pk in
                       db.execute("PRAGMA table_info(samples)")]
            if tables and columns != COLUMNS:
                raise NotACache(f"a database of another schema (samples columns "
                                f"{', '.join(c[0] for c in columns)})")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a committed batch survives kill -9
            db.execute(SCHEMA)
        except NotACache:
            db.close()
            raise
        except sqlite3.DatabaseError as exc:
            db.close()
            self._raise(exc)
        return db

    def _raise(self, exc: sqlite3.DatabaseError) -> None:
        """A corrupt file becomes ``NotACache``; any other database failure (locked, read-only) a one-line error."""
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF in CORRUPT_CODES:
            raise NotACache(describe(exc)) from None
        raise HarnessError(f"cannot use the generation cache {self.path}: {describe(exc)}") from None

    def _set_aside(self, why: str) -> None:
        """Move the unreadable cache (and its WAL files) beside itself, timestamped, and say so in one line."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        if aside.exists():
            aside = aside.with_name(f"{aside.name}-{os.getpid()}")
        for suffix in ("", "-wal", "-shm"):
            try:
                os.replace(f"{self.path}{suffix}", f"{aside}{suffix}")
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise HarnessError(f"the generation cache {self.path} is unreadable ({why}) and could not be set "
                                   f"aside ({describe(exc)}); move it away and rerun") from None
        warn(f"the generation cache {self.path} is unreadable ({why}); set aside as {aside.name}; "
             f"generating afresh")

    def _recover(self, exc: sqlite3.DatabaseError) -> None:
        """A failure found while reading or writing: a corrupt cache is set aside and replaced by a fresh one."""
        try:
            self._raise(exc)
        except NotACache as why:
            self.db.close()
            self._set_aside(str(why))
            self.db = self._connect()

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[Completion, float]]:
        """The completions present among ``keys``; a cache found corrupt here is set aside and has none."""
        try:
            return self._get_many(keys)
        except sqlite3.DatabaseError as exc:
            self._recover(exc)
            return {}

    def _get_many(self, keys: Sequence[str]) -> dict[str, tuple[Completion, float]]:
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
        """One transaction; a key already present keeps its first completion. A cache found corrupt here is set
        aside and the items go into a fresh one."""
        rows = [(k, c.text, c.tokens, c.logprob, c.finish_reason, s) for k, c, s in items]
        try:
            self._put(rows)
        except sqlite3.DatabaseError as exc:
            self._recover(exc)
            self._put(rows)

    def _put(self, rows: list[tuple]) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT OR IGNORE INTO samples VALUES (?, ?, ?, ?, ?, ?)", rows)

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]

    def close(self) -> None:
        self.db.close()
