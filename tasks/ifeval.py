"""IFEval (Zhou et al. 2023): 541 prompts with verifiable instructions ("answer in under 100 words, no commas").

Prompts come from a local JSONL file in the layout of ``google/IFEval`` (``key``, ``prompt``,
``instruction_id_list``, ``kwargs``), or from the hub for online users. There is no gold answer:
the ``ifeval`` verifier checks the constraints that each example carries in ``meta``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import harness
from harness.errors import choices
from harness.plugins import as_text, with_options
from harness.rows import checked, locate, read_rows

HUB_ID = "google/IFEval"
SPLITS = ("test",)  # IFEval is an evaluation set only; the hub calls its one split "train"
HELP = "pass --task-arg data=PATH to a JSONL of IFEval prompts (e.g. ../shared/data/ifeval/input_data.jsonl)"


NEEDS = "int key, str prompt, a non-empty instruction_id_list and one kwargs dict per instruction"


def _valid(row: Any) -> bool:
    ok = isinstance(row, dict) and type(row.get("key")) is int and isinstance(row.get("prompt"), str)
    ids, kwargs = (row.get("instruction_id_list"), row.get("kwargs")) if ok else (None, None)
    ok = ok and isinstance(ids, list) and all(isinstance(i, str) for i in ids) and bool(ids)
    return ok and isinstance(kwargs, list) and len(kwargs) == len(ids) and all(isinstance(k, dict) for k in kwargs)


def _example(row: dict[str, Any]) -> harness.Example:
    """One validated row; ``None`` kwargs (the hub's padding of every checker's arguments) are dropped."""
    ids = row["instruction_id_list"]
    kwargs = [{k: v for k, v in kw.items() if v is not None} for kw in row["kwargs"]]
    meta = {"key": row["key"], "instruction_id_list": list(ids), "kwargs": kwargs}
    return harness.Example(prompt=row["prompt"], reference=None, meta=meta, id=f"ifeval-{row['key']}")


@dataclass(frozen=True)
class IFEvalTask:
    """IFEval's prompts in the data's order; graded by the reference-free ``ifeval`` verifier."""

    name: ClassVar[str] = "ifeval"
    verifier: ClassVar[str] = "ifeval"

    data: str | None = None  # a JSONL path, a hub id or a local dataset folder; None is the hub's google/IFEval

    def configure(self, **options: Any) -> IFEvalTask:
        """A copy with ``options`` applied; a missing local file is reported now, before any model loads."""
        task = with_options(self, "ifeval", options, as_text)
        if task.data is not None and Path(task.data).suffix in (".jsonl", ".json") and locate(task.data) is None:
            raise harness.HarnessError(f"ifeval data {task.data} is not a file; {HELP}")
        return task

    def examples(self, split: str = "test", limit: int | None = None, seed: int = 0) -> Iterator[harness.Example]:
        """The prompts in the data's order (``seed`` is unused: nothing is random); duplicate keys are an error."""
        if split not in SPLITS:
            raise choices("split", split, list(SPLITS))
        data = self.data or HUB_ID
        examples = [_example(row) for row in checked(read_rows(data, "ifeval", HELP), "ifeval", data, _valid, NEEDS)]
        seen: set[str] = set()
        for example in examples:
            if example.id in seen:
                raise harness.HarnessError(f"ifeval data {data}: key {example.meta['key']} appears twice")
            seen.add(example.id)
        return itertools.islice(examples, limit)


@harness.hookimpl
def register_tasks() -> list:
    return [IFEvalTask()]
