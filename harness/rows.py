"""Rows of data: a local JSON Lines file (or JSON list), a Parquet file or dataset folder, or a hub dataset.

For task plugins and the training data sources, so each reads its data one way: every failure is one
``HarnessError`` line that names the file and line, or, when the hub cannot be reached, says how to use a
local file instead. A name that is no file here is looked for under the shared data directory too, where a hub
dataset's local mirror lives as ``OWNER/NAME/SPLIT.jsonl``; offline (``HF_HUB_OFFLINE``) a hub id neither
mirrored nor in the datasets cache is one line saying where to put the mirror. A reader that skips bad rows and
counts them (training data) passes ``bad_line``: a line that is not JSON then yields that value instead of
stopping the read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, describe


def shared_data() -> Path:
    """Where the offline copies of public data sets live: ``$HARNESS_DATA``, else ``shared/data`` beside the
    repository (the project's checkout layout); tests, benches and training sources read them from here."""
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    return Path(os.environ.get("HARNESS_DATA", default)).expanduser()


DATASET_FILES = {".parquet": "parquet", ".arrow": "arrow", ".csv": "csv"}  # files that datasets reads
OFFLINE = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
_RAISE = object()


def locate(data: str, split: str | None = None) -> Path | None:
    """The local file or folder ``data`` names: as given, else under the shared data directory; with ``split``, a
    folder holding ``SPLIT.jsonl`` (a hub dataset's mirror) is that file, and a hub id's folder under the data
    directory without it is no mirror of that split. None when it names neither (a hub id, a missing file)."""
    try:
        given = Path(data).expanduser()
    except RuntimeError:  # ~user of no known user: a name as written
        given = Path(data)
    for candidate in (given, shared_data() / data):
        if not candidate.exists():
            continue
        mirror = candidate / f"{split}.jsonl"
        if split and candidate.is_dir() and mirror.is_file():
            return mirror
        if candidate is given or not (split and hub_id(data)):
            return candidate
    return None


def hub_id(data: str) -> bool:
    """``OWNER/NAME`` with no JSON suffix: what the hub would be asked for."""
    from harness.policy import HUB_ID

    return bool(HUB_ID.match(data)) and Path(data).suffix not in (".jsonl", ".json")


def offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in OFFLINE)


def checked(rows: Iterable[Any], what: str, source: str, valid: Callable[[Any], bool], needs: str) -> Iterator[Any]:
    """Each row that ``valid`` accepts; the first it rejects is one line naming the data, the row and what it needs."""
    for number, row in enumerate(rows, 1):
        if not valid(row):
            raise HarnessError(f"{what} data {source} row {number}: needs {needs}")
        yield row


def read_file(path: Path, what: str, bad_line: Any = _RAISE) -> list[Any]:
    """The rows of a JSONL file, or of a file holding one JSON list (AlpacaEval's own files) or, named ``.json``,
    one JSON value (a row)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HarnessError(f"cannot read {_data(what)} {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if text.lstrip().startswith("["):
        try:
            return list(json.loads(text))
        except json.JSONDecodeError as exc:
            if bad_line is _RAISE:
                raise HarnessError(f"{_data(what)} {path} is not valid JSON ({exc})") from None
            # else JSON Lines whose first row is a list: read below, line by line
    if path.suffix == ".json":
        try:
            return [json.loads(text)]
        except json.JSONDecodeError:
            pass  # JSON Lines under a .json name: read below, line by line
    rows = []
    for number, line in enumerate(text.split("\n"), 1):  # "\n" only: a JSON string may hold U+2028 and friends
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                if bad_line is _RAISE:
                    raise HarnessError(f"{path}:{number}: not valid JSON") from None
                rows.append(bad_line)
    return rows


def read_rows(data: str, what: str, remedy: str, split: str = "train", config: str | None = None,
              bad_line: Any = _RAISE) -> list[Any] | Any:
    """``data`` as a local JSON file (one that exists, or any ``.jsonl``/``.json`` name), a local Parquet, Arrow or
    CSV file, a hub dataset's local mirror (``locate``), else split ``split`` (subset ``config``) of a hub dataset
    or local dataset folder; ``remedy`` ends the error when that cannot be loaded."""
    where = f" (split {split})" if split != "train" else ""
    local = locate(data, split)
    try:
        path = local or Path(data).expanduser()
    except RuntimeError:  # ~user of no such user
        raise HarnessError(f"cannot load {_data(what)} {data!r} (its home directory is unknown); {remedy}") from None
    if (path.is_file() and path.suffix not in DATASET_FILES) or path.suffix in (".jsonl", ".json"):
        return read_file(path, what, bad_line)
    try:
        import datasets

        if path.is_file():
            return datasets.load_dataset(DATASET_FILES[path.suffix], data_files=str(path), split="train")
        return datasets.load_dataset(str(local or data), config, split=split)
    except Exception as exc:  # the hub client fails in many ways: offline, no such dataset, bad files
        if local is None and hub_id(data) and offline():
            raise HarnessError(f"cannot load {_data(what)} {data!r}{where}: a hub dataset neither mirrored here nor in "
                               f"the datasets cache, and the hub is offline (HF_HUB_OFFLINE); mirror it as "
                               f"{shared_data() / data / (split + '.jsonl')} or {remedy}") from None
        raise HarnessError(f"cannot load {_data(what)} {data!r}{where} ({describe(exc)}); {remedy}") from None


def _data(what: str) -> str:
    return f"{what} data" if what else "data"
