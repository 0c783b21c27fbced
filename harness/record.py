"""Run records on disk: ``samples.jsonl`` (every example, sample, verdict and choice) and ``summary.json``.

Both are written atomically (temp file, then rename), so a reader never sees half a record;
the samples first, so a ``summary.json`` always describes a complete ``samples.jsonl``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.console import warn
from harness.types import ExampleRecord

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


def write_record(run_dir: Path, records: list[ExampleRecord], summary: dict) -> None:
    write_atomic(run_dir / SAMPLES, "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in records))
    write_atomic(run_dir / SUMMARY, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")


def read_summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / SUMMARY
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        summary["config"], summary["metric"]  # noqa: B018 - the fields every reader needs
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HarnessError(f"{run_dir} is not a readable run directory ({path.name}: {_why(exc)})") from None
    return summary


def read_record(run_dir: Path) -> tuple[list[ExampleRecord], dict[str, Any]]:
    """A run's examples and summary; a record that is torn, corrupt or of another shape is a one-line error."""
    summary = read_summary(run_dir)
    path = run_dir / SAMPLES
    try:
        with path.open(encoding="utf-8") as fh:
            records = [ExampleRecord.from_json(json.loads(line)) for line in fh if line.strip()]
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise HarnessError(f"{run_dir} is not a readable run directory ({path.name}: {_why(exc)})") from None
    if len(records) != summary.get("counts", {}).get("examples"):
        raise HarnessError(f"{run_dir} is corrupt: {SAMPLES} has {len(records)} examples, {SUMMARY} says "
                           f"{summary.get('counts', {}).get('examples')}")
    return records, summary


def iter_summaries(output: Path) -> Iterator[tuple[Path, dict]]:
    """Every readable run under ``output``; unreadable ones are reported in one line and skipped."""
    for path in sorted(output.glob("*/summary.json")):
        try:
            yield path.parent, read_summary(path.parent)
        except HarnessError as exc:
            warn(f"skipping {exc}")


def _why(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
