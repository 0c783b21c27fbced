"""GSM8K (Cobbe et al. 2021): grade-school math word problems with a numeric answer.

Rows come from the Hugging Face dataset ``openai/gsm8k`` (config ``main``; its local mirror
``openai/gsm8k/SPLIT.jsonl`` under the shared data directory where there is one), or from a
local copy: a directory holding ``train.jsonl`` and ``test.jsonl``, or one JSONL file in
GSM8K's layout (``question``, and an ``answer`` whose last line is ``#### N``).
Two prompt formats: zero-shot chain of thought for chat models, and the 8-shot chain of
thought of Wei et al. (2022) for base models, worded exactly as lm-evaluation-harness's
``gsm8k_cot`` task so that scores compare.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import harness
from harness.errors import choices
from harness.plugins import as_text, with_options
from harness.rows import checked, locate, read_file, read_rows

SPLITS = ("train", "test")
HUB_DATASET = ("openai/gsm8k", "main")

CHAT_TEMPLATE = (
    "{question}\n\n"
    "Reason step by step. Then finish with a final line of exactly this form, with just the number "
    "and no units:\nFinal answer: <number>"
)

# Wei et al. (2022) exemplars, verbatim from lm-evaluation-harness 0.4 (tasks/gsm8k/gsm8k-cot.yaml).
EXEMPLARS = (
    (
        "There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they "
        "are done, there will be 21 trees. How many trees did the grove workers plant today?",
        "There are 15 trees originally. Then there were 21 trees after some more were planted. So there "
        "must have been 21 - 15 = 6. The answer is 6.",
    ),
    (
        "If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?",
        "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The answer is 5.",
    ),
    (
        "Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have left "
        "in total?",
        "Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. After "
        "eating 35, they had 74 - 35 = 39. The answer is 39.",
    ),
    (
        "Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many "
        "lollipops did Jason give to Denny?",
        "Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny "
        "20 - 12 = 8. The answer is 8.",
    ),
    (
        "Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many toys does "
        "he have now?",
        "Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more toys. "
        "5 + 4 = 9. The answer is 9.",
    ),
    (
        "There were nine computers in the server room. Five more computers were installed each day, from "
        "monday to thursday. How many computers are now in the server room?",
        "There were originally 9 computers. For each of 4 days, 5 more computers were added. So 5 * 4 = 20 "
        "computers were added. 9 + 20 is 29. The answer is 29.",
    ),
    (
        "Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. How "
        "many golf balls did he have at the end of wednesday?",
        "Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After losing "
        "2 more, he had 35 - 2 = 33 golf balls. The answer is 33.",
    ),
    (
        "Olivia has $23. She bought five bagels for $3 each. How much money does she have left?",
        "Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 - 15 "
        "dollars left. 23 - 15 is 8. The answer is 8.",
    ),
)
FEWSHOT_CONTEXT = "".join(f"Q: {q}\nA: {a}\n\n" for q, a in EXEMPLARS)


def chat_prompt(question: str) -> str:
    """Zero-shot chain of thought that asks for the ``Final answer:`` line the sympy verifier reads first."""
    return CHAT_TEMPLATE.format(question=question)


def fewshot_prompt(question: str) -> str:
    """lm-eval's ``gsm8k_cot`` context: base models continue after ``A:`` and say ``The answer is N.``"""
    return f"{FEWSHOT_CONTEXT}Q: {question}\nA:"


PROMPTS: dict[str, Callable[[str], str]] = {"chat": chat_prompt, "8shot": fewshot_prompt}


def reference_of(answer: str) -> str:
    """The number after ``####``, without thousands separators ("1,000" -> "1000")."""
    return answer.rsplit("####", 1)[-1].strip().replace(",", "")


def _valid(row: Any) -> bool:
    return (isinstance(row, dict) and isinstance(row.get("question"), str) and isinstance(row.get("answer"), str)
            and "####" in row["answer"] and bool(reference_of(row["answer"])))


def _checked(rows: Iterable[Any], source: str) -> list[dict[str, str]]:
    needs = "string fields 'question' and 'answer' ending in '#### <number>'"
    return [{"question": r["question"], "answer": r["answer"]} for r in checked(rows, "GSM8K", source, _valid, needs)]


def _hub_rows(split: str) -> list[dict[str, str]]:
    """The hub copy (or its local mirror); offline without one, the fix is a local copy, so say that."""
    remedy = "pass data=PATH with a local GSM8K directory (train.jsonl, test.jsonl) or JSONL file"
    rows = read_rows(HUB_DATASET[0], "GSM8K", remedy, split=split, config=HUB_DATASET[1])
    return _checked(rows, f"{HUB_DATASET[0]} ({split})")


def load_rows(data: str | None, split: str) -> list[dict[str, str]]:
    """The ``question``/``answer`` rows of ``split``; a single JSONL file serves whichever split is asked."""
    if split not in SPLITS:
        raise choices("split", split, list(SPLITS))
    if data is None:
        return _hub_rows(split)
    path = locate(data) or Path(data).expanduser()
    path = path / f"{split}.jsonl" if path.is_dir() else path
    return _checked(read_file(path, "GSM8K"), str(path))


def _option(key: str, value: Any) -> Any:
    if key == "prompt" and value not in PROMPTS:
        raise choices("gsm8k prompt", str(value), list(PROMPTS))
    return value if key == "prompt" else as_text(key, value)


@dataclass(frozen=True)
class Gsm8kTask:
    """GSM8K graded by the ``sympy`` verifier against the ``####`` number."""

    name: ClassVar[str] = "gsm8k"
    verifier: ClassVar[str] = "sympy"

    data: str | None = None
    prompt: str = "chat"

    @property
    def stop(self) -> tuple[str, ...]:
        """The 8-shot prompt invites the model to write the next "Q:"; stop there, as lm-eval's gsm8k_cot does."""
        return ("Q:",) if self.prompt == "8shot" else ()

    def configure(self, **options: Any) -> Gsm8kTask:
        """A copy with ``options`` applied (``data``: a local path; ``prompt``: chat or 8shot)."""
        return with_options(self, "gsm8k", options, _option)

    def examples(
        self, split: str = "test", limit: int | None = None, seed: int = 0
    ) -> Iterator[harness.Example]:
        """File order for seed 0 (so a limit takes the first rows, as lm-eval does); a seeded shuffle otherwise."""
        rows = load_rows(self.data, split)  # read now, so a bad path fails at the call
        order = list(range(len(rows)))
        if seed:
            random.Random(seed).shuffle(order)
        build = PROMPTS[self.prompt]
        return iter(
            [
                harness.Example(
                    prompt=build(rows[i]["question"]),
                    reference=reference_of(rows[i]["answer"]),
                    meta={"solution": rows[i]["answer"]},
                    id=f"gsm8k-{split}-{i}",
                )
                for i in order[:limit]
            ]
        )


@harness.hookimpl
def register_tasks() -> list:
    return [Gsm8kTask()]
