"""Scaling curves, voting samplers and the plot, each checked against an independent brute force."""

from __future__ import annotations

import itertools
import json
import random
from collections import defaultdict
from pathlib import Path

import matplotlib.image
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import Candidate, Completion, HarnessError, Score
from harness.curves import pass_at_k, row_candidates, scaling_curves, subset_sizes
from harness.plot import DPI, SIZE, figure, plot
from harness.types import ExampleRecord
from plugins.samplers import BestOfN
from plugins.voting import Majority, Weighted

# -- independent reference rules on plain tuples: (answer, score, logprob, tokens) ----------


def bon_pick(samples: list[tuple]) -> int:
    best = sorted(range(len(samples)), key=lambda i: (-samples[i][1], -samples[i][2] / samples[i][3]))
    return best[0]


def majority_pick(samples: list[tuple]) -> int:
    votes: dict[str, list[int]] = defaultdict(list)
    for i, (answer, *_) in enumerate(samples):
        if answer is not None:
            votes[answer.strip()].append(i)
    if not votes:
        return sorted(range(len(samples)), key=lambda i: -samples[i][2] / samples[i][3])[0]
    group = sorted(votes.values(), key=lambda g: (-len(g), -sum(samples[i][2] for i in g)))[0]
    return sorted(group, key=lambda i: -samples[i][2] / samples[i][3])[0]


def brute_force(samples: list[tuple], correct: list[bool], size: int, pick) -> float:
    subsets = list(itertools.combinations(range(len(samples)), size))
    return sum(correct[s[pick([samples[i] for i in s])]] for s in subsets) / len(subsets)


def candidate(answer: str | None, score: float | None = None, logprob: float = -1.0, tokens: int = 1) -> Candidate:
    return Candidate(Completion(f"... {answer}", tokens, logprob, "stop"), answer,
                     None if score is None else Score(score, answer))


def candidates(samples: list[tuple]) -> list[Candidate]:
    return [candidate(*s) for s in samples]


# Small problems with ties: equal scores (bon falls back to mean logprob), equal vote counts
# (majority falls back to total logprob), None answers and padded answers (" 7" is "7").
PROBLEMS = [
    ([("7", 0.9, -2.0, 4), ("7", 0.9, -1.0, 4), ("8", 0.5, -0.5, 2), (" 8", 0.2, -6.0, 3), (None, 0.9, -0.1, 1),
      ("9", 0.1, -3.0, 5)], [True, True, False, False, False, False]),
    ([("a", 0.5, -1.0, 2), ("b", 0.5, -0.9, 2), ("a", 0.5, -4.0, 2), ("b", 0.5, -3.0, 2), ("c", 0.7, -9.0, 9),
      (None, 0.6, -0.2, 2), ("b", 0.1, -2.5, 1)], [True, False, True, False, False, False, False]),
    ([(None, 0.3, -1.0, 1), (None, 0.3, -0.5, 1), ("x", 0.2, -0.8, 2), ("y", 0.2, -0.7, 1), ("x", 0.9, -5.0, 5)],
     [False, False, True, False, True]),
]


# -- pass@k ---------------------------------------------------------------------------------


@pytest.mark.parametrize("n", range(1, 8))
def test_pass_at_k_matches_enumerating_every_k_subset(n):
    for c in range(n + 1):
        flags = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(flags, k))
            assert pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets), abs=1e-12)


@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_matches_the_exact_binomial_ratio(nck):
    from fractions import Fraction
    from math import comb

    n, c, k = nck
    assert pass_at_k(n, c, k) == pytest.approx(float(1 - Fraction(comb(n - c, k), comb(n, k))), abs=1e-9)


def test_pass_at_k_rejects_impossible_counts():
    for n, c, k in [(3, 4, 1), (3, -1, 1), (3, 1, 0), (3, 1, 4)]:
        with pytest.raises(ValueError):
            pass_at_k(n, c, k)


# -- the voting samplers ----------------------------------------------------------------------


def test_the_voting_samplers_declare_what_they_need():
    from plugins.voting import register_samplers

    assert [(s.name, s.greedy, s.uses_scores) for s in register_samplers()] == [
        ("majority", False, False), ("weighted", False, True)]


def test_majority_takes_the_most_frequent_answer_represented_by_its_best_mean_logprob():
    pool = candidates([("4", None, -0.1), ("3", None, -5.0), ("3 ", None, -6.0), (" 3", None, -8.0, 4)])
    assert Majority().select(pool) == 3  # "3" wins 3 to 1 despite "4"'s confidence; -8/4 is the best mean


def test_majority_breaks_a_vote_tie_by_total_logprob_and_ignores_unanswered_samples():
    pool = candidates([("3", None, -1.0), ("4", None, -0.6), ("3", None, -1.5), ("4", None, -1.8),
                       (None, None, -0.01), (None, None, -0.02), (None, None, -0.03)])
    assert Majority().select(pool) == 1  # 2-2: "4" totals -2.4 against "3"'s -2.5; the three None never vote


def test_majority_exact_tie_goes_to_the_answer_seen_first():
    # 2-2 votes and -2.0 total logprob each: the group that appeared first, represented by its best mean
    assert Majority().select(candidates([("4", None, -1.0), ("3", None, -0.5), ("3", None, -1.5), ("4", None, -1.0)])) \
        == 0
    assert Majority().select(candidates([("3", None, -1.5), ("4", None, -1.0), ("4", None, -1.0), ("3", None, -0.5)])) \
        == 3


def test_majority_without_any_answer_takes_the_best_mean_logprob():
    assert Majority().select(candidates([(None, None, -2.0, 1), (None, None, -3.0, 6), (None, None, -1.0, 1)])) == 1


def test_weighted_lets_a_trusted_answer_outvote_many_weak_ones():
    pool = candidates([("a", 0.1, -0.1), ("a", 0.1, -0.1), ("a", 0.1, -0.1), ("b", 0.9, -5.0)])
    assert Weighted().select(pool) == 3
    assert Majority().select(pool) == 0


def test_weighted_breaks_a_weight_tie_by_total_logprob_then_takes_the_best_score():
    pool = candidates([("a", 0.5, -1.0), ("a", 0.25, -0.5), ("b", 0.75, -3.0), ("c", 0.6, -0.1)])
    assert Weighted().select(pool) == 0  # a and b both weigh 0.75; a's logprob is higher; 0.5 beats 0.25


def test_weighted_within_a_group_ties_on_score_go_to_the_best_mean_logprob():
    assert Weighted().select(candidates([("a", 0.5, -2.0, 1), ("a", 0.5, -3.0, 6), ("b", 0.9, -0.1)])) == 1


def test_weighted_ignores_unanswered_samples_unless_no_sample_answered():
    assert Weighted().select(candidates([(None, 1.0, -0.1), ("a", 0.2, -1.0)])) == 1
    assert Weighted().select(candidates([(None, 0.4, -0.1), (None, 0.8, -5.0, 1), (None, 0.8, -6.0, 4)])) == 2


# -- expected selection accuracy of one problem ------------------------------------------------------


def expected(samples: list[tuple], correct: list[bool], sampler, size: int, **options) -> tuple[float, str]:
    """One problem's expected accuracy at ``size`` samples, and how it was computed, through ``scaling_curves``."""
    curves = scaling_curves([make_row(samples, correct)], {"s": sampler}, ks=[size], **options)
    return curves["accuracy"]["s"][0], curves["method"][0]


@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize(("sampler", "pick"), [(BestOfN(), bon_pick), (Majority(), majority_pick)])
def test_exact_expected_accuracy_matches_brute_force(problem, sampler, pick):
    samples, correct = problem
    for size in range(1, len(samples) + 1):
        accuracy, method = expected(samples, correct, sampler, size)
        assert method == "exact"
        assert accuracy == pytest.approx(brute_force(samples, correct, size, pick), abs=1e-12)


def random_problem(rng: random.Random, n: int) -> tuple[list[tuple], list[bool]]:
    samples = [(rng.choice(["1", "2", "3", None]), rng.random(), -rng.uniform(1, 30), rng.randint(5, 50))
               for _ in range(n)]
    return samples, [s[0] == "1" for s in samples]


@pytest.mark.parametrize(("sampler", "pick"), [(BestOfN(), bon_pick), (Majority(), majority_pick)])
def test_monte_carlo_estimate_is_close_to_exact_and_seeded(sampler, pick):
    samples, correct = random_problem(random.Random(3), 10)
    exact, exact_method = expected(samples, correct, sampler, 4)
    estimate, method = expected(samples, correct, sampler, 4, cap=1, draws=3000, seed=7)
    assert exact_method == "exact" and method == "monte-carlo(3000)"
    assert exact == pytest.approx(brute_force(samples, correct, 4, pick), abs=1e-12)
    assert 0.1 < exact < 0.9  # a case where the estimate has something to get wrong
    assert estimate == pytest.approx(exact, abs=0.04)  # ~5 standard errors
    assert expected(samples, correct, sampler, 4, cap=1, draws=3000, seed=7) == (estimate, method)


def test_expected_accuracy_rejects_bad_sizes():
    samples, correct = PROBLEMS[0]
    for size in (0, len(samples) + 1):
        with pytest.raises(HarnessError, match="curve sizes"):
            expected(samples, correct, Majority(), size)


# -- scaling curves over record rows ----------------------------------------------------------


def make_row(samples: list[tuple], correct: list[bool], scored: bool = True) -> ExampleRecord:
    """A record as the pipeline writes it; wrong answers sometimes get partial credit (0.1)."""
    return ExampleRecord.from_json({"id": "x", "prompt": "p", "rendered_prompt": "p", "samples": [
        {"text": f"... {a}", "tokens": t, "logprob": lp, "finish_reason": "stop", "seconds": 0.0,
         "grade": {"value": 1.0 if ok else 0.1 * (a is not None), "answer": a, "error": None, "metrics": {}},
         "score": {"value": sc, "answer": a, "error": None, "metrics": {}} if scored else None}
        for (a, sc, lp, t), ok in zip(samples, correct, strict=True)]})


@pytest.fixture(scope="module")
def problems() -> list[tuple[list[tuple], list[bool]]]:
    rng = random.Random(0)
    return [random_problem(rng, 5) for _ in range(40)]


def test_scaling_curves_end_at_the_samplers_own_accuracy_and_start_at_sample_accuracy(problems):
    rows = [make_row(s, c) for s, c in problems]
    curves = scaling_curves(rows, {"bon": BestOfN(), "majority": Majority(), "weighted": Weighted()})
    assert curves["n"] == [1, 2, 4, 5] and curves["method"] == ["exact"] * 4
    assert curves["samplers"] == ["bon", "majority", "weighted"] and curves["skipped"] == {}
    sample_accuracy = sum(sum(c) for _, c in problems) / (5 * len(problems))
    for name, pick in [("bon", bon_pick), ("majority", majority_pick),
                       ("weighted", lambda s: Weighted().select(candidates(s)))]:
        line = curves["accuracy"][name]
        assert line[0] == pytest.approx(sample_accuracy)
        assert line[-1] == pytest.approx(sum(c[pick(s)] for s, c in problems) / len(problems))
        assert line[1] == pytest.approx(sum(brute_force(s, c, 2, pick) for s, c in problems) / len(problems))
    assert curves["pass@k"][0] == pytest.approx(sample_accuracy)
    assert curves["pass@k"][-1] == pytest.approx(sum(any(c) for _, c in problems) / len(problems))
    assert curves["pass@k"] == sorted(curves["pass@k"])
    mean_tokens = sum(t for s, _ in problems for *_, t in s) / (5 * len(problems))
    assert curves["tokens"] == pytest.approx([k * mean_tokens for k in (1, 2, 4, 5)])
    assert json.loads(json.dumps(curves)) == curves


def test_scaling_curves_monte_carlo_mode_stays_close_to_exact(problems):
    rows = [make_row(s, c) for s, c in problems]
    exact = scaling_curves(rows, {"bon": BestOfN()})
    sampled = scaling_curves(rows, {"bon": BestOfN()}, cap=3, draws=500, seed=1)
    assert sampled["method"] == ["monte-carlo(500)"] * 3 + ["exact"]
    assert sampled["accuracy"]["bon"] == pytest.approx(exact["accuracy"]["bon"], abs=0.03)
    assert sampled["accuracy"]["bon"][-1] == exact["accuracy"]["bon"][-1]


def test_every_sampler_meets_the_same_seeded_subsets_as_it_would_alone(problems):
    rows = [make_row(s, c) for s, c in problems]
    together = scaling_curves(rows, {"bon": BestOfN(), "majority": Majority()}, cap=3, draws=200, seed=1)
    for name, sampler in [("bon", BestOfN()), ("majority", Majority())]:
        alone = scaling_curves(rows, {name: sampler}, cap=3, draws=200, seed=1)
        assert together["accuracy"][name] == alone["accuracy"][name]


class FailsOnFour:
    """A plugin sampler that works on subsets of 1 and 2 samples and breaks on 4 (after the others ran on them)."""

    name, greedy, uses_scores = "fragile", False, False

    def select(self, candidates) -> int:
        if len(candidates) == 4:
            raise ZeroDivisionError("four candidates")
        return 0


def test_a_sampler_failing_midway_is_skipped_with_its_error_and_the_others_are_untouched(problems):
    rows = [make_row(s, c) for s, c in problems]
    curves = scaling_curves(rows, {"fragile": FailsOnFour(), "bon": BestOfN(), "majority": Majority()})
    assert curves["samplers"] == ["bon", "majority"] and list(curves["accuracy"]) == ["bon", "majority"]
    assert curves["skipped"] == {"fragile": "sampler 'fragile' failed: ZeroDivisionError: four candidates"}
    assert curves["accuracy"] == scaling_curves(rows, {"bon": BestOfN(), "majority": Majority()})["accuracy"]


def test_scaling_curves_skip_samplers_that_need_scores_the_rows_lack(problems):
    rows = [make_row(s, c, scored=False) for s, c in problems]
    curves = scaling_curves(rows, {"bon": BestOfN(), "majority": Majority(), "weighted": Weighted()}, ks=[1, 3])
    assert curves["n"] == [1, 3] and curves["samplers"] == ["majority"] and list(curves["accuracy"]) == ["majority"]
    assert set(curves["skipped"]) == {"bon", "weighted"}
    assert curves["accuracy"]["majority"][1] == pytest.approx(
        sum(brute_force(s, c, 3, majority_pick) for s, c in problems) / len(problems))


def test_scaling_curves_reject_what_they_cannot_measure(problems):
    rows = [make_row(s, c) for s, c in problems[:3]]
    with pytest.raises(HarnessError):
        scaling_curves([], {"majority": Majority()})
    with pytest.raises(HarnessError):
        scaling_curves(rows, {"majority": Majority()}, ks=[6])
    rows[1].samples.pop()
    with pytest.raises(HarnessError, match="same number of samples"):
        scaling_curves(rows, {"majority": Majority()})


def test_row_candidates_rebuild_what_the_sampler_saw():
    samples, correct = PROBLEMS[0]
    got, flags = row_candidates(make_row(samples, correct))
    assert got == candidates(samples) and flags == correct


@pytest.mark.parametrize(("n", "sizes"), [(1, [1]), (2, [1, 2]), (5, [1, 2, 4, 5]), (8, [1, 2, 4, 8]),
                                          (12, [1, 2, 4, 8, 12])])
def test_subset_sizes_double_up_to_n(n, sizes):
    assert subset_sizes(n) == sizes


# -- the plot -------------------------------------------------------------------------------------


def write_run(run_dir: Path, policy: str, curves: dict | None) -> Path:
    summary = {"config": {"policy": policy, "task": "countdown"}, "metric": {"name": "accuracy", "value": 0.5},
               "task": "countdown", "policy": {"name": policy}}
    if curves is not None:
        summary["curves"] = curves
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def test_plot_writes_a_png_of_the_expected_size(tmp_path, problems):
    rows = [make_row(s, c) for s, c in problems]
    curves = scaling_curves(rows, {"bon": BestOfN(), "majority": Majority()})
    runs = [write_run(tmp_path / "a", "smollm2", curves), write_run(tmp_path / "b", "smollm2-grpo", curves)]
    out = plot(runs, tmp_path / "plots" / "scaling.png")
    assert out == tmp_path / "plots" / "scaling.png" and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(out)
    assert image.shape == (round(SIZE[1] * DPI), round(SIZE[0] * DPI), 4)
    assert image[..., :3].std() > 0.05  # lines and text, not a blank canvas


def test_plot_y_axis_runs_from_0_to_1_whatever_the_runs_scored(tmp_path):
    low = {"n": [1, 2, 4], "tokens": [10.0, 20.0, 40.0], "pass@k": [0.02, 0.03, 0.04],
           "accuracy": {"bon": [0.01, 0.02, 0.03]}, "samplers": ["bon"]}
    high = {**low, "pass@k": [0.97, 0.99, 1.0], "accuracy": {"bon": [0.95, 0.98, 1.0]}}
    for curves in ([low], [low, high], [high]):
        runs = [write_run(tmp_path / f"{len(curves)}-{i}-{c['pass@k'][0]}", f"p{i}", c) for i, c in enumerate(curves)]
        by_n, by_tokens = figure(runs).axes
        for axis in (by_n, by_tokens):
            assert axis.get_ylim() == (0.0, 1.0)
            ticks = [t for t in axis.get_yticks() if 0 <= t <= 1]
            assert ticks[0] == 0.0 and ticks[-1] == 1.0


def test_plot_errors_in_one_line_on_runs_without_usable_curves(tmp_path, problems):
    out = tmp_path / "scaling.png"
    with pytest.raises(HarnessError, match="no scaling curves") as info:
        plot([write_run(tmp_path / "none", "p", None)], out)
    assert "\n" not in str(info.value)
    broken = scaling_curves([make_row(s, c) for s, c in problems], {"majority": Majority()})
    broken["accuracy"]["majority"].pop()
    with pytest.raises(HarnessError, match="unreadable scaling curves"):
        plot([write_run(tmp_path / "short", "p", broken)], out)
    (tmp_path / "garbled").mkdir()
    (tmp_path / "garbled" / "summary.json").write_text("{not json")
    with pytest.raises(HarnessError, match="not a readable run directory"):
        plot([tmp_path / "garbled"], out)
    with pytest.raises(HarnessError):
        plot([], out)
    assert not out.exists()
