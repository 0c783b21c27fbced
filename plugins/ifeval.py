"""The IFEval verifier: lm-evaluation-harness's own instruction checkers, reported under lm-eval's four metric names.

The checkers are reused, not rewritten (``lm_eval.tasks.ifeval``), so a harness run and lm-eval
agree on every response. They need NLTK's ``punkt_tab`` sentence model, and lm-eval's module
downloads it at import when it is missing; this plugin looks for it first and, when it is not
there, stops with one line saying how to provide it, so nothing is ever downloaded or waited on.

Per response: ``value`` is prompt-level strict accuracy (1 when every instruction is followed);
``metrics`` hold the loose prompt-level result, the share of instructions followed (strict and
loose) and the instruction count, from which the declared metrics micro-average instruction-level
accuracy over all instructions, as lm-eval's ``agg_inst_level_acc`` does; ``answer`` records which
instructions were followed, in order (``strict=101 loose=111``).
"""

from __future__ import annotations

import functools
import os
from types import ModuleType

import harness
from harness.errors import describe
from harness.metrics import accuracy, micro, side
from harness.rows import shared_data

PUNKT = "tokenizers/punkt_tab/english/"
HELP = ("set NLTK_DATA to a folder containing tokenizers/punkt_tab (the shared data's nltk_data holds one), "
        "or run `python -m nltk.downloader punkt_tab` where online")


def _punkt_or_error() -> None:
    """Make sure ``punkt_tab`` is on NLTK's path, honouring NLTK_DATA even when set after nltk was imported, then the
    shared data's ``nltk_data`` (where the offline copies of public data live)."""
    import nltk

    folders = [*os.environ.get("NLTK_DATA", "").split(os.pathsep), str(shared_data() / "nltk_data")]
    for folder in reversed(folders):  # each goes to the front: NLTK_DATA ends first
        if folder and os.path.expanduser(folder) not in nltk.data.path:
            nltk.data.path.insert(0, os.path.expanduser(folder))
    try:
        nltk.data.find(PUNKT)
    except LookupError:
        raise harness.HarnessError(f"ifeval needs NLTK's punkt_tab, which is not installed: {HELP}") from None


@functools.cache
def _lm_eval() -> ModuleType:
    """lm-eval's IFEval module, imported only once punkt_tab is known to be present (else it would download)."""
    _punkt_or_error()
    import langdetect
    from lm_eval.tasks.ifeval import utils

    langdetect.DetectorFactory.seed = 0  # the language checks are otherwise random: the same response, the same grade
    return utils


def _bits(followed: list[bool]) -> str:
    return "".join("1" if f else "0" for f in followed)


class IFEvalVerifier:
    """1.0 when a response follows every instruction of its prompt (IFEval's prompt-level strict accuracy)."""

    name = "ifeval"
    reference_free = True  # the instructions are in the prompt; no gold response is read
    metrics = [
        accuracy("prompt_level_strict_acc"),
        side("prompt_level_loose_acc"),
        micro("inst_level_strict_acc", "inst_strict_rate", "instructions"),
        micro("inst_level_loose_acc", "inst_loose_rate", "instructions"),
    ]

    def configure(self) -> IFEvalVerifier:
        """Check for punkt_tab and load the checkers now, so a run stops before generation when they cannot work."""
        _lm_eval()
        return self

    def score(self, example: harness.Example, completion: str) -> harness.Score:
        meta = example.meta
        ids, kwargs = meta.get("instruction_id_list"), meta.get("kwargs")
        if not isinstance(ids, list) or not isinstance(kwargs, list) or not ids or len(ids) != len(kwargs):
            return harness.Score(0.0, error="example.meta lacks instruction_id_list and kwargs of equal length")
        utils = _lm_eval()
        inp = utils.InputExample(key=meta.get("key", 0), instruction_id_list=ids, prompt=example.prompt,
                                 kwargs=kwargs)
        try:
            strict = utils.test_instruction_following_strict(inp, completion).follow_instruction_list
            loose = utils.test_instruction_following_loose(inp, completion).follow_instruction_list
        except Exception as exc:  # an unknown instruction id or bad kwargs: this example's failure, not the batch's
            return harness.Score(0.0, error=f"ifeval check failed: {describe(exc)}"[:300])
        n = len(ids)
        return harness.Score(
            1.0 if all(strict) else 0.0,
            answer=f"strict={_bits(strict)} loose={_bits(loose)}",
            metrics={"prompt_level_loose_acc": 1.0 if all(loose) else 0.0, "inst_strict_rate": sum(strict) / n,
                     "inst_loose_rate": sum(loose) / n, "instructions": float(n)},
        )


@harness.hookimpl
def register_verifiers() -> list:
    return [IFEvalVerifier()]
