"""AlpacaEval instructions (Li, Dubois et al. 2023): answer open-ended requests, judged against a reference response.

Rows come from ``data=PATH``, any JSONL (or JSON list) with an ``instruction`` field, such as
``../shared/data/alpaca_eval/eval.jsonl`` (805 instructions with GPT-4 Turbo's ``output``), or,
without ``data``, from the hub dataset ``tatsu-lab/alpaca_eval`` (its AlpacaEval 2.0 baseline
file, ``alpaca_eval_gpt4_baseline.json``).

**Split.** ``instruction_split(text)`` puts every instruction in ``"eval"`` or ``"train"`` by a
hash of its text (about half each, whatever the file or its order), so reward models and
preference data built from the train half never see an evaluation instruction. The training
package imports it. The task's ``split`` option (``eval``, ``train`` or ``all``) wins over the
run's ``--split``, in which ``test`` means ``eval``.

**Reference.** ``reference=output`` (the default) takes the reference response from that column
of the data; ``reference=RUN_DIR`` takes the chosen completion of an earlier run on the same
instructions (the base policy's, say), so comparing two policies reloads neither. The task's
grader is ``winrate``, which needs a judge: ``--grader winrate:rm:PATH_OR_HUB_ID``.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import harness
from harness.errors import choices
from harness.plugins import as_text, with_options
from harness.rows import checked, locate, read_file
from harness.splits import in_bucket

HUB_DATASET = "tatsu-lab/alpaca_eval"
HUB_FILE = "alpaca_eval_gpt4_baseline.json"  # the AlpacaEval 2.0 instructions with GPT-4 Turbo's outputs
SPLITS = ("eval", "train", "all")
RUN_SPLITS = {"test": "eval", "eval": "eval", "train": "train", "all": "all"}


def instruction_split(text: str) -> str:
    """``"eval"`` or ``"train"`` for an instruction: the parity of the SHA-256 of its stripped UTF-8 text.

    Stable across machines, files and orderings, and about half each (402 eval and 403 train of
    AlpacaEval's 805). Train reward models and preference data only on ``"train"`` instructions.
    """
    return "eval" if in_bucket(text.strip(), 2) else "train"


def _has_instruction(row: Any) -> bool:
    return isinstance(row, dict) and isinstance(row.get("instruction"), str) and bool(row["instruction"].strip())


def _hub_rows() -> list[Any]:
    """The hub copy, or its local mirror (``HUB_DATASET/HUB_FILE`` under the shared data directory); offline
    without either, one line saying how to use a local file instead."""
    mirror = locate(f"{HUB_DATASET}/{HUB_FILE}")
    if mirror is not None:
        return read_file(mirror, "alpaca")
    try:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(HUB_DATASET, HUB_FILE, repo_type="dataset")
    except Exception as exc:  # offline, hub errors: the remedy is the same
        raise harness.HarnessError(f"cannot load {HUB_DATASET} from the Hugging Face hub ({type(exc).__name__}); "
                                   f"mirror {HUB_FILE} as {HUB_DATASET}/{HUB_FILE} under the shared data directory "
                                   "or pass data=PATH with a local JSONL of instructions") from None
    return read_file(Path(path), "alpaca")


def _run_references(run_dir: Path) -> dict[str, str | None]:
    """Instruction -> the chosen completion of an earlier run (None where its sampler chose none)."""
    from harness.record import read_record

    records, _ = read_record(run_dir)
    return {r.example.prompt: (r.chosen.completion.text if r.chosen else None) for r in records}


@dataclass(frozen=True)
class AlpacaTask:
    """AlpacaEval instructions, graded by ``winrate:JUDGE`` against a reference response."""

    name: ClassVar[str] = "alpaca"
    verifier: ClassVar[str] = "winrate"

    data: str | None = None
    reference: str = "output"
    split: str | None = None

    def configure(self, **options: Any) -> AlpacaTask:
        """A copy with ``options`` applied; a missing file or unreadable reference run fails here, before any model."""
        task = with_options(self, "alpaca", options, as_text)
        if task.split is not None and task.split not in SPLITS:
            raise choices("alpaca split", task.split, list(SPLITS))
        found = task._data_file()
        if task.data is not None and (found is None or not found.is_file()):
            raise harness.HarnessError(f"alpaca data {task.data} is not a file (a JSONL with an 'instruction' field)")
        if task._run_dir() is not None:
            _run_references(task._run_dir())  # readable now, so a bad run fails at planning
        elif "/" in task.reference or task.reference.startswith((".", "~")):
            raise harness.HarnessError(f"alpaca reference={task.reference}: no such run directory")
        return task

    def _data_file(self) -> Path | None:
        """``data`` as given, else under the shared data directory (``harness.rows.locate``)."""
        return locate(self.data) if self.data else None

    def _run_dir(self) -> Path | None:
        path = Path(self.reference).expanduser()
        return path if path.is_dir() else None

    def rows(self) -> list[dict[str, Any]]:
        """Every row of the data, checked to have a string ``instruction``."""
        source = str(self.data) if self.data else HUB_DATASET
        rows = read_file(self._data_file() or Path(self.data), "alpaca") if self.data else _hub_rows()
        return list(checked(rows, "alpaca", source, _has_instruction, "a non-empty string 'instruction'"))

    def examples(self, split: str = "test", limit: int | None = None, seed: int = 0) -> Iterator[harness.Example]:
        """The instructions of the split, in file order for seed 0 (a seeded shuffle otherwise), with references."""
        wanted = self.split or RUN_SPLITS.get(split)
        if wanted is None:
            raise choices("alpaca split", split, list(RUN_SPLITS))
        rows = [r for r in self.rows() if wanted == "all" or instruction_split(r["instruction"]) == wanted]
        if seed:
            random.Random(seed).shuffle(rows)
        rows = rows[:limit]
        references = self._references(rows)
        return iter([
            harness.Example(
                prompt=row["instruction"],
                reference=ref,
                meta={"dataset": row.get("dataset"), "reference_from": origin},
                id=f"alpaca-{hashlib.sha256(row['instruction'].encode('utf-8')).hexdigest()[:12]}",
            )
            for row, (ref, origin) in zip(rows, references, strict=True)
        ])

    def _references(self, rows: list[dict[str, Any]]) -> list[tuple[str | None, str]]:
        """Each row's reference response and where it came from (a generator name, or the run directory)."""
        run_dir = self._run_dir()
        if run_dir is None:
            column = self.reference
            for row in rows:
                if not isinstance(row.get(column), str):
                    raise harness.HarnessError(
                        f"alpaca data has no string column {column!r} (row {row['instruction'][:50]!r}) and "
                        f"reference={column} is not a run directory")
            return [(row[column], str(row.get("generator") or column)) for row in rows]
        chosen = _run_references(run_dir)
        missing = [row["instruction"] for row in rows if row["instruction"] not in chosen]
        if missing:
            raise harness.HarnessError(
                f"reference run {run_dir} did not answer {len(missing)} of the {len(rows)} instructions asked for "
                f"(e.g. {missing[0][:60]!r}); run the reference policy on the same task, split and limit first")
        return [(chosen[row["instruction"]], str(run_dir)) for row in rows]


@harness.hookimpl
def register_tasks() -> list:
    return [AlpacaTask()]
