"""How much the Countdown rule matters: held-out problems that a strict subset of the numbers solves, and the
answers in run records that are correct under the any-subset rule but not under TinyZero's (every number once).

Usage:
    python bench/countdown_rule.py shortcuts [--numbers 3] [--split test]
    python bench/countdown_rule.py records RUN_DIR [RUN_DIR ...]

Prints counts and asserts nothing. ``records`` grades every sample of each record under both rules, so it counts
what ``harness score --grader countdown`` and ``--grader countdown:subset`` would credit, and more: all samples,
not only the chosen ones.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import harness  # noqa: E402
from harness.record import read_record  # noqa: E402
from tasks.countdown import CountdownTask, solve  # noqa: E402


def subset_solvable(numbers: list[int], target: int) -> bool:
    """True when some proper, non-empty part of the numbers reaches the target using each of its numbers once."""
    return any(solve(list(part), target) is not None
               for size in range(1, len(numbers)) for part in itertools.combinations(numbers, size))


def shortcuts(numbers: str, split: str) -> None:
    examples = list(CountdownTask().configure(numbers=numbers, shots=0).examples(split))
    counts: Counter[str] = Counter()
    for example in examples:
        given, target = example.meta["numbers"], example.meta["target"]
        counts["solvable with every number"] += solve(given, target) is not None
        counts["solvable with a strict subset"] += subset_solvable(given, target)
        counts["target among the numbers"] += target in given
    print(f"{len(examples)} {split} problems (numbers={numbers})")
    for what, n in counts.items():
        print(f"  {what}: {n}")


def records(run_dirs: list[Path]) -> None:
    strict, subset = harness.get_verifier("countdown"), harness.get_verifier("countdown:subset")
    for run_dir in run_dirs:
        rows, summary = read_record(run_dir)
        counts: Counter[str] = Counter()
        for row in rows:
            for j, sample in enumerate(row.samples):
                pair = [(row.example, sample.completion.text)]
                (a,), (b,) = harness.verify(strict, pair), harness.verify(subset, pair)
                for scope in ("samples", "chosen") if j == row.selected else ("samples",):
                    counts[f"{scope}"] += 1
                    counts[f"{scope} correct, strict"] += a.value == 1.0
                    counts[f"{scope} correct, subset"] += b.value == 1.0
                    counts[f"{scope} correct under subset only"] += b.value == 1.0 and a.value < 1.0
        print(f"{run_dir.name} ({summary.config.sampler}, n={summary.config.n}, {len(rows)} problems, "
              f"task args {summary.config.task_args})")
        for what, n in counts.items():
            print(f"  {what}: {n}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    short = commands.add_parser("shortcuts", help="held-out problems a strict subset of the numbers solves")
    short.add_argument("--numbers", default="3")
    short.add_argument("--split", default="test")
    recs = commands.add_parser("records", help="answers correct under the subset rule only, per record")
    recs.add_argument("run_dirs", nargs="+", type=Path)
    args = parser.parse_args()
    try:
        shortcuts(args.numbers, args.split) if args.command == "shortcuts" else records(args.run_dirs)
    except harness.HarnessError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
