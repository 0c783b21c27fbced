"""Run records on disk: ``samples.jsonl`` (every sample, score and choice) and ``summary.json``.

Both are written atomically (temp file, then rename), so a reader never sees half a record.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

SAMPLES = "samples.jsonl"
SUMMARY = "summary.json"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_record(run_dir: Path, rows: list[dict], summary: dict) -> None:
    """Samples first, summary last: a summary.json always describes a complete samples.jsonl."""
    write_atomic(run_dir / SAMPLES, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    write_atomic(run_dir / SUMMARY, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")


def read_summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / SUMMARY
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        summary["config"], summary["metric"]  # noqa: B018 - the fields every reader needs
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HarnessError(f"{run_dir} is not a readable run directory ({path.name}: {_why(exc)})") from None
    return summary


def read_record(run_dir: Path) -> tuple[list[dict], dict]:
    summary = read_summary(run_dir)
    path = run_dir / SAMPLES
    try:
        with path.open(encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
        for row in rows:
            row["samples"][0]["text"]  # noqa: B018 - validate the shape before any work
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise HarnessError(f"{run_dir} is not a readable run directory ({path.name}: {_why(exc)})") from None
    if len(rows) != summary.get("counts", {}).get("examples"):
        raise HarnessError(f"{run_dir} is corrupt: {SAMPLES} has {len(rows)} examples, {SUMMARY} says "
                           f"{summary.get('counts', {}).get('examples')}")
    return rows, summary


def _why(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
