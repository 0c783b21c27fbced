"""How far a local judge can be trusted: agreement with GPT-4 Turbo's AlpacaEval 2.0 verdicts (not a test).

For a judge (``rm:PATH`` or any reference-free verifier spec), on the evaluation half of the
AlpacaEval instructions (``tasks.alpaca.instruction_split``, so a reward model trained on the train
half is measured on instructions it never saw), using ``judge_annotations.jsonl``: GPT-4 Turbo's
(``weighted_alpaca_eval_gpt4_turbo``) verdicts on 8 models' outputs against the GPT-4 Turbo
reference. Prints a Markdown table:

- pairwise agreement with GPT-4 Turbo's preferred side (``preference`` > 1.5 means the model's
  output), a local tie counting half, with a 95% bootstrap interval that resamples instructions
  (the 8 pairs of one instruction share a reference). GPT-4 Turbo prefers its own reference in
  about 84% of these pairs, so plain agreement is read against two baselines, always the reference
  and always the longer output (the length bias any judge can ride on), and beside it the balanced
  agreement, the mean of the agreement on the verdicts for each side, which is 50% for a coin flip
  and for always-the-reference alike;
- the Spearman rank correlation between the 8 models' win-rates under the local judge and under
  GPT-4 Turbo, with the same bootstrap interval: whether the judge orders policies as GPT-4 Turbo does;
- each model's win-rate against the reference under the local judge (ties half) and its
  length-adjusted win-rate (``plugins.winrate.length_adjusted``), beside GPT-4 Turbo's win-rate
  on the same instructions and the leaderboard's numbers on all 805.

For scale (not a bound on these numbers, which are measured on other pairs): in AlpacaEval's
evaluator table (github.com/tatsu-lab/alpaca_eval, README, "Evaluators"; about 650 AlpacaFarm
instructions with 4 human annotations each), GPT-4 Turbo's ``weighted_alpaca_eval_gpt4_turbo``
agrees with the human majority 65.7% of the time, one human with the other humans' majority 65.7%,
and "always prefer the longer output" 62.2%: GPT-4 Turbo's verdicts are themselves about as noisy a
target as one human's.

    python bench/judge_agreement.py rm:runs/reward-model [--data ../shared/data/alpaca_eval]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import harness  # noqa: E402
from harness.rows import shared_data  # noqa: E402
from harness.types import Verifier  # noqa: E402
from plugins.winrate import TOLERANCE, length_adjusted, outcome  # noqa: E402
from tasks.alpaca import instruction_split  # noqa: E402

CHUNK = 256
HUMAN_CEILING = {"GPT-4 Turbo judge vs human majority": 65.7, "one human vs the other humans' majority": 65.7,
                 "'always prefer the longer output' vs human majority": 62.2}


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of average ranks."""
    def ranks(x: np.ndarray) -> np.ndarray:
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x), dtype=float)
        for value in np.unique(x):  # ties share their mean rank
            r[x == value] = r[x == value].mean()
        return r
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _judge(judge: Verifier, texts: list[tuple[str, str]]) -> dict[tuple[str, str], float]:
    """The judge's raw reward (else its value) for each distinct (instruction, output), in chunks with progress."""
    rewards: dict[tuple[str, str], float] = {}
    start = time.perf_counter()
    for i in range(0, len(texts), CHUNK):
        chunk = texts[i:i + CHUNK]
        scores = harness.verify(judge, [(harness.Example(p), t) for p, t in chunk])
        failed = [s.error for s in scores if s.error]
        if failed:
            raise SystemExit(f"the judge failed: {failed[0]}")
        rewards.update({k: (s.raw if s.raw is not None else s.value) for k, s in zip(chunk, scores, strict=True)})
        done = i + len(chunk)
        print(f"  judged {done}/{len(texts)} ({done / (time.perf_counter() - start):.1f}/s)", file=sys.stderr)
    return rewards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("judge", help="a reference-free verifier spec, e.g. rm:PATH_OR_HUB_ID")
    parser.add_argument("--data", type=Path, default=shared_data() / "alpaca_eval")
    parser.add_argument("--split", default="eval", choices=["eval", "train", "all"])
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--limit", type=int, help="only the first N instructions of the half (a quick check)")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE, help="judge reward difference that is a tie")
    args = parser.parse_args()

    judge = harness.get_verifier(args.judge)
    if not judge.reference_free:
        raise SystemExit(f"{args.judge} reads the reference; a judge must score each output alone")
    rows = [json.loads(line) for line in (args.data / "judge_annotations.jsonl").read_text().splitlines() if line]
    rows = [r for r in rows if args.split == "all" or instruction_split(r["instruction"]) == args.split]
    if args.limit:
        kept = set(list(dict.fromkeys(r["instruction"] for r in rows))[: args.limit])
        rows = [r for r in rows if r["instruction"] in kept]
    with (args.data / "leaderboard_alpaca_eval_2.csv").open() as fh:
        board = {r[""]: r for r in csv.DictReader(fh)}
    texts = sorted({(r["instruction"], r[k]) for r in rows for k in ("output_1", "output_2")})
    print(f"{args.judge}: {len(rows)} verdicts on {len({r['instruction'] for r in rows})} instructions "
          f"({args.split} half), {len(texts)} distinct outputs to judge", file=sys.stderr)
    start = time.perf_counter()
    reward = _judge(judge, texts)
    seconds = time.perf_counter() - start

    instructions = sorted({r["instruction"] for r in rows})
    cluster = {p: i for i, p in enumerate(instructions)}
    models = sorted({r["generator_2"] for r in rows}, key=lambda m: float(board[m]["win_rate"]))
    model_of = {m: i for i, m in enumerate(models)}
    gpt = np.array([r["preference"] - 1.0 for r in rows])  # GPT-4 Turbo's probability that the model's output wins
    local = np.array([outcome(reward[r["instruction"], r["output_2"]] - reward[r["instruction"], r["output_1"]],
                              args.tolerance) for r in rows])
    diffs = np.array([len(r["output_2"]) - len(r["output_1"]) for r in rows], dtype=float)
    longer = np.where(diffs > 0, 1.0, np.where(diffs < 0, 0.0, 0.5))
    decided = gpt != 0.5
    groups = np.array([cluster[r["instruction"]] for r in rows])
    model = np.array([model_of[r["generator_2"]] for r in rows])

    side = (gpt > 0.5).astype(float)

    def agreement(pref: np.ndarray, weights: np.ndarray, balanced: bool = False) -> float:
        """Share of decided verdicts on GPT-4 Turbo's side (a tie half); balanced: the mean over its two sides."""
        agree = np.where(pref == 0.5, 0.5, (pref == side).astype(float))
        if not balanced:
            return float((agree * weights * decided).sum() / (weights * decided).sum())
        parts = [(agree * weights * mask).sum() / (weights * mask).sum() for mask in (gpt > 0.5, gpt < 0.5)]
        return float(np.mean(parts))

    def win_rates(pref: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return np.array([(pref * weights)[model == k].sum() / weights[model == k].sum() for k in range(len(models))])

    ones = np.ones(len(rows))
    rng = np.random.default_rng(0)
    draws = [np.bincount(rng.integers(0, len(instructions), len(instructions)), minlength=len(instructions))[groups]
             for _ in range(args.resamples)]  # instruction resampling, as row weights

    def interval(stat) -> tuple[float, float]:
        values = np.array([stat(w) for w in draws], dtype=float)
        if np.isnan(values).all():  # a judge without any preference has no rank correlation
            return float("nan"), float("nan")
        low, high = np.nanpercentile(values, [2.5, 97.5])
        return float(low), float(high)

    rho = _spearman(win_rates(local, ones), win_rates(gpt, ones))
    print(f"\n### Judge `{args.judge}` vs GPT-4 Turbo (AlpacaEval 2.0), {args.split} half\n")
    print("| judge | agreement | 95% CI | balanced agreement | 95% CI |\n| --- | --- | --- | --- | --- |")
    for name, pref in ((f"`{args.judge}`", local), ("baseline: always the reference", np.zeros(len(rows))),
                       ("baseline: always the longer output", longer)):
        cells = []
        for balanced in (False, True):
            low, high = interval(lambda w, pref=pref, balanced=balanced: agreement(pref, w, balanced))
            cells.append(f"{100 * agreement(pref, ones, balanced):.1f}% | [{100 * low:.1f}, {100 * high:.1f}]")
        print(f"| {name} | {' | '.join(cells)} |")
    low, high = interval(lambda w: _spearman(win_rates(local, w), win_rates(gpt, w)))
    print(f"\nSpearman ρ between the 8 models' win-rates under `{args.judge}` and under GPT-4 Turbo: {rho:.2f} "
          f"(95% CI [{low:.2f}, {high:.2f}]).")
    print(f"\n{int(decided.sum())} of {len(rows)} verdicts are decided (preference != 1.5); GPT-4 Turbo gave "
          f"{100 * (1 - side[decided].mean()):.1f}% of them to its own reference, so plain agreement is read against "
          f"the baselines; balanced agreement (the mean of the agreement on each side's verdicts) is 50% for a coin "
          f"flip and for always-the-reference. Local ties: {int((local == 0.5).sum())}. For context, AlpacaEval's "
          "evaluator table (github.com/tatsu-lab/alpaca_eval README; agreement with the majority of 4 human "
          "annotators on AlpacaFarm's cross-annotated pairs, not these): "
          + "; ".join(f"{k} {v}%" for k, v in HUMAN_CEILING.items()) + ".")

    print("\n| model | leaderboard win-rate (805) | leaderboard LC (805) | GPT-4 Turbo win-rate (this half) "
          "| local win-rate | local length-adjusted win-rate |")
    print("| --- | --- | --- | --- | --- | --- |")
    local_wr, gpt_wr = win_rates(local, ones), win_rates(gpt, ones)
    for k, m in enumerate(models):
        lc = length_adjusted(local[model == k], diffs[model == k])
        print(f"| {m} | {float(board[m]['win_rate']):.1f} | {float(board[m]['length_controlled_winrate']):.1f} "
              f"| {100 * gpt_wr[k]:.1f} | {100 * local_wr[k]:.1f} | {100 * lc:.1f} |")
    print(f"\njudged {len(texts)} outputs in {seconds:.0f} s ({len(texts) / seconds:.1f}/s)")


if __name__ == "__main__":
    main()
