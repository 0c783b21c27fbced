"""Verifier throughput: sympy's common path on the GSM8K test golds, its worst hostile case, and Countdown.

Usage: python bench/verifier_speed.py [path/to/gsm8k/test.jsonl]

Prints a table and asserts nothing. Targets: sympy common path >= 5,000 checks/s and
countdown >= 50,000 checks/s, both on one core; a hostile check within its time limit.
"""

from __future__ import annotations

import json
import operator
import os
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import harness  # noqa: E402
from harness.rows import shared_data  # noqa: E402
from plugins.countdown import CountdownVerifier  # noqa: E402
from plugins.math_verifier import SympyVerifier  # noqa: E402

DEFAULT_DATA = shared_data() / "gsm8k" / "test.jsonl"
MIN_SECONDS = 1.0  # repeat each workload at least this long
OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul}


@contextmanager
def one_core() -> Iterator[None]:
    """Pin this process to one CPU, so checks/s is a per-core figure."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def rate(
    check: Callable[[harness.Example, str], object], work: Sequence[tuple[harness.Example, str]]
) -> float:
    """Checks per second over repeated passes through ``work``."""
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < MIN_SECONDS:
        for example, completion in work:
            check(example, completion)
        done += len(work)
    return done / elapsed


def gsm8k_work(path: Path) -> dict[str, list[tuple[harness.Example, str]]]:
    """Per gold: a short CoT ending in the right ``Final answer:``, one in a wrong one, one unmarked."""
    with path.open() as f:
        golds = [json.loads(line)["answer"].split("####")[-1].strip() for line in f]
    work: dict[str, list[tuple[harness.Example, str]]] = {"correct": [], "wrong": [], "no marker": []}
    for i, gold in enumerate(golds):
        value = int(gold.replace(",", ""))
        example = harness.Example("q", reference=gold, id=str(i))
        steps = f"She starts with {i % 40 + 3} items and buys {i % 7 + 2} packs of 12, so 12 * {i % 7 + 2} = "
        steps += f"{12 * (i % 7 + 2)} more. After paying ${i % 9 + 1}.50 for each, the total works out to "
        work["correct"].append((example, f"{steps}{gold}.\nFinal answer: {gold}"))
        work["wrong"].append((example, f"{steps}{value + 7}.\nFinal answer: {value + 7}"))
        work["no marker"].append((example, f"{steps}{gold} dollars in the end."))
    return work


def countdown_work(n: int = 2000) -> dict[str, list[tuple[harness.Example, str]]]:
    """Countdown problems with a correct, a wrong and an untagged answer each, R1-style."""
    rng = random.Random(0)
    work: dict[str, list[tuple[harness.Example, str]]] = {"correct": [], "wrong": [], "no tags": []}
    for _ in range(n):
        numbers = [rng.randint(1, 99) for _ in range(rng.choice((3, 4)))]
        expr, target = str(numbers[0]), numbers[0]
        for number in numbers[1:]:
            op = rng.choice("+-*")
            expr, target = f"({expr} {op} {number})", OPS[op](target, number)
        example = harness.Example("q", meta={"numbers": numbers, "target": target})
        think = f"<think>Try combining {', '.join(map(str, numbers))} to reach {target}.</think>\n"
        work["correct"].append((example, f"{think}<answer>{expr}</answer>"))
        work["wrong"].append((example, f"{think}<answer>{expr} + 1</answer>"))
        work["no tags"].append((example, f"{think}The answer is {expr}."))
    return work


def hostile_cases() -> dict[str, str]:
    return {
        "9**9**9**9": "Final answer: 9**9**9**9",
        "\\boxed{9^{9^{9^{9}}}}": "\\boxed{9^{9^{9^{9}}}}",
        "100k-digit number": "Final answer: " + "9" * 100_000,
        "10k nested brackets": "(" * 10_000 + "1" + ")" * 10_000,
        "140 nested brackets": "Final answer: " + "(" * 140 + "1" + ")" * 140,
        "1 MB of text": "The answer is 7. " * 60_000,
        "__import__ code": "Final answer: __import__('os').system('true') x1",
    }


def main(argv: list[str]) -> None:
    path = Path(argv[1]) if len(argv) > 1 else DEFAULT_DATA
    verifier = SympyVerifier()
    rows: list[tuple[str, str, str]] = []

    work = gsm8k_work(path)
    with one_core():
        for kind, items in work.items():
            scores = [verifier.score(e, c) for e, c in items]
            value = sum(s.value for s in scores) / len(scores)
            strict = sum(s.metrics["strict"] for s in scores) / len(scores)
            note = f"value {value:.3f}, strict {strict:.3f}"
            rows.append((f"sympy: {kind}", f"{rate(verifier.score, items):,.0f} checks/s", note))
        everything = [item for items in work.values() for item in items]
        rows.append(
            ("sympy: common path, all", f"{rate(verifier.score, everything):,.0f} checks/s", "target 5,000")
        )

    seven = harness.Example("q", reference="7")
    waits: list[float] = []  # the slow check before each hostile one absorbs worker (re)starts
    worst, worst_name = 0.0, ""
    for name, completion in hostile_cases().items():
        start = time.perf_counter()
        verifier.score(seven, "Final answer: 2*3+1")
        waits.append(time.perf_counter() - start)
        start = time.perf_counter()
        score = verifier.score(seven, completion)
        elapsed = time.perf_counter() - start
        rows.append((f"  hostile: {name}", f"{elapsed:.3f} s", f"error={score.error}"))
        if elapsed > worst:
            worst, worst_name = elapsed, name
    rows.append(
        ("sympy: worst hostile case", f"{worst:.3f} s", f"{worst_name}; limit {verifier.timeout:.1f} s")
    )
    rows.append(("sympy: worker start-up", f"{waits[0]:.2f} s", "first slow check in a process"))
    rows.append(("sympy: worker restart", f"{max(waits[1:]):.2f} s", "worst wait after a kill"))

    countdown = CountdownVerifier()
    cd_work = countdown_work()
    with one_core():
        for kind, items in cd_work.items():
            rows.append((f"countdown: {kind}", f"{rate(countdown.score, items):,.0f} checks/s", ""))
        everything = [item for items in cd_work.values() for item in items]
        rows.append(("countdown: all", f"{rate(countdown.score, everything):,.0f} checks/s", "target 50,000"))

    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    print(f"{len(work['correct'])} GSM8K golds from {path}")
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


if __name__ == "__main__":  # the verifier's worker is spawned, which re-imports this module
    main(sys.argv)
