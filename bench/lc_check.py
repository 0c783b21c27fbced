"""The harness's win-rate metrics on AlpacaEval's GPT-4 Turbo verdicts, beside AlpacaEval 2's leaderboard (not a test).

For each of the 8 models in ``judge_annotations.jsonl`` (GPT-4 Turbo's ``weighted_alpaca_eval_gpt4_turbo``
verdicts on all 805 instructions, the model against the GPT-4 Turbo reference), the verdicts go through the
harness's own ``winrate`` metrics as grades: the value is ``preference - 1`` (the model's share of the
verdict, as AlpacaEval scores it) and ``length_diff`` the model's output length minus the reference's in
characters, as the grader records them. Prints a Markdown table of the harness's ``win_rate`` and
``length_adjusted_win_rate`` next to the leaderboard's ``win_rate`` and ``length_controlled_winrate``, and
the differences, with the leaderboard's mean output length (the reference's, ``gpt4_1106_preview``, below it).

The win-rate is the same number computed twice, so it must agree to rounding: the script exits non-zero
when any model's differs by more than ``--tolerance`` points. The length-adjusted win-rate is not
AlpacaEval's LC (``plugins.winrate``): the difference column is what AlpacaEval's instruction-difficulty
term and its regularisation towards length-gamed baselines add, which the harness does not have offline.

    python bench/lc_check.py [--data ../shared/data/alpaca_eval] [--tolerance 0.1]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import harness  # noqa: E402
from harness.rows import shared_data  # noqa: E402
from plugins.winrate import LENGTH_ADJUSTED, METRICS  # noqa: E402

ANNOTATIONS, LEADERBOARD = "judge_annotations.jsonl", "leaderboard_alpaca_eval_2.csv"
REFERENCE = "gpt4_1106_preview"


def grades(path: Path) -> dict[str, list[harness.Score]]:
    """Each model's verdicts as the harness's win-rate grades, in file order."""
    out: dict[str, list[harness.Score]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            value = float(row["preference"]) - 1
            diff = float(len(row["output_2"]) - len(row["output_1"]))
            model = str(row["generator_2"])
        except (ValueError, KeyError, TypeError) as e:
            raise harness.HarnessError(f"{path} line {number}: not an AlpacaEval annotation ({e})") from e
        out.setdefault(model, []).append(harness.Score(value, metrics={"length_diff": diff}))
    return out


def leaderboard(path: Path) -> dict[str, dict[str, str]]:
    """The leaderboard's rows by model name (its first, unnamed column)."""
    with path.open(encoding="utf-8", newline="") as f:
        return {row[""]: row for row in csv.DictReader(f)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=shared_data() / "alpaca_eval",
                        help="the folder with judge_annotations.jsonl and leaderboard_alpaca_eval_2.csv")
    parser.add_argument("--tolerance", type=float, default=0.1, help="largest win-rate difference allowed, points")
    args = parser.parse_args()
    for name in (ANNOTATIONS, LEADERBOARD):
        if not (args.data / name).is_file():
            raise harness.HarnessError(f"{args.data / name} is not a file (--data: AlpacaEval's folder)")
    metric = {m.name: m for m in METRICS}
    board = leaderboard(args.data / LEADERBOARD)
    print("| model | n | mean length (leaderboard, chars) | win-rate (harness) | win-rate (leaderboard) | Δ "
          "| length-adjusted (harness) | LC (AlpacaEval 2 leaderboard) | Δ |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    worst = 0.0
    for model, graded in grades(args.data / ANNOTATIONS).items():
        if model not in board:
            raise harness.HarnessError(f"model {model!r} is not on the leaderboard {args.data / LEADERBOARD}")
        win = 100 * metric["win_rate"].compute(graded)
        adjusted = 100 * metric[LENGTH_ADJUSTED].compute(graded)
        board_win, board_lc = float(board[model]["win_rate"]), float(board[model]["length_controlled_winrate"])
        worst = max(worst, abs(win - board_win))
        print(f"| {model} | {len(graded)} | {board[model]['avg_length']} | {win:.2f} | {board_win:.2f} "
              f"| {win - board_win:+.2f} | {adjusted:.1f} | {board_lc:.1f} | {adjusted - board_lc:+.1f} |")
    if REFERENCE in board:
        print(f"\nthe reference ({REFERENCE}): mean length {board[REFERENCE]['avg_length']} chars")
    print(f"largest win-rate difference: {worst:.4f} points (allowed {args.tolerance})")
    if worst > args.tolerance:
        sys.exit(1)


if __name__ == "__main__":
    try:
        main()
    except harness.HarnessError as e:
        sys.exit(f"error: {e}")
