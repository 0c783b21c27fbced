"""Rows of a task's data: a local JSON Lines file (or JSON list), or a dataset through ``datasets``.

For task plugins, so each reads its data one way: every failure is one ``HarnessError`` line that names
the file and line, or, when the hub cannot be reached, says how to use a local file instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import HarnessError


def read_file(path: Path, what: str) -> list[Any]:
    """The rows of a JSONL file, or of a file holding one JSON list (AlpacaEval's own files)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HarnessError(f"cannot read {what} data {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if text.lstrip().startswith("["):
        try:
            return list(json.loads(text))
        except json.JSONDecodeError as exc:
            raise HarnessError(f"{what} data {path} is not valid JSON ({exc})") from None
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise HarnessError(f"{path}:{number}: not valid JSON") from None
    return rows


def read_rows(data: str, what: str, remedy: str) -> list[Any] | Any:
    """``data`` as a local file (one that exists, or any ``.jsonl``/``.json`` name), else the ``train`` split
    of a hub dataset or local dataset folder; ``remedy`` ends the error when that cannot be loaded."""
    path = Path(data).expanduser()
    if path.is_file() or path.suffix in (".jsonl", ".json"):
        return read_file(path, what)
    try:
        import datasets

        return datasets.load_dataset(data, split="train")
    except Exception as exc:  # the hub client fails in many ways: offline, no such dataset, bad files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HarnessError(f"cannot load {what} data {data!r} ({reason}); {remedy}") from None
