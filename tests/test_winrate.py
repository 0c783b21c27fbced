"""Win-rate grading against a reference (accounting, length control, judges) and the ``alpaca`` task."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import random
from pathlib import Path

import pytest
from conftest import harness_cli
from test_reward_model import _bert_rm

import harness
from harness.record import Counts, Headline, RunSummary, write_record
from harness.types import Completion, ExampleRecord, RunConfig, SampleRecord
from plugins.winrate import LENGTH_ADJUSTED, METRICS, TOLERANCE, length_adjusted, outcome
from tasks.alpaca import instruction_split

CORRECT, WRONG, NONE = "<answer>3 * 7 + 25</answer>", "<answer>3 + 7 + 25</answer>", "no answer at all"


def _countdown(prompt: str = "reach 46 with 25 3 7", reference: str | None = NONE) -> harness.Example:
    return harness.Example(prompt, reference=reference, meta={"numbers": [25, 3, 7], "target": 46})


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _metric(name: str) -> harness.Metric:
    (metric,) = [m for m in METRICS if m.name == name]
    return metric


# -- outcomes and accounting -----------------------------------------------------------------------


def test_outcome_of_a_margin():
    assert [outcome(m) for m in (0.3, -0.3, 0.0, TOLERANCE, -TOLERANCE, 2 * TOLERANCE)] == [1, 0, 0.5, 0.5, 0.5, 1]
    assert outcome(0.3, tolerance=0.5) == 0.5


def test_wins_ties_and_losses_under_a_known_judge():
    """The countdown verifier as judge: 1 for a correct equation, 0.1 for a wrong one, 0 for none."""
    grader = harness.get_verifier("winrate:countdown")
    assert grader.judge == "countdown" and grader.judge_model is None and not grader.reference_free
    cases = [(CORRECT, NONE, 1.0), (NONE, CORRECT, 0.0), (WRONG, WRONG + " ", 0.5), (WRONG, NONE, 1.0),
             (WRONG, CORRECT, 0.0), (CORRECT, CORRECT, 0.5)]
    pairs = [(_countdown(f"problem {i}", ref), text) for i, (text, ref, _) in enumerate(cases)]
    grades = harness.verify(grader, pairs)
    assert [g.value for g in grades] == [want for *_, want in cases]
    assert [g.metrics["tie"] for g in grades] == [0, 0, 1, 0, 0, 1]
    assert [g.answer for g in grades] == [None] * 6  # nothing a sampler could read the reference through
    for g, (text, ref, _) in zip(grades, cases, strict=True):
        assert (g.metrics["policy_length"], g.metrics["reference_length"]) == (len(text), len(ref))
        assert g.metrics["length_diff"] == len(text) - len(ref)
    assert _metric("win_rate").compute(grades) == pytest.approx(3 / 6)  # 2 wins + 2 ties at a half
    assert _metric("tie_rate").compute(grades) == pytest.approx(2 / 6)
    assert _metric("policy_length").compute(grades) == pytest.approx(sum(len(c[0]) for c in cases) / 6)
    assert _metric("reference_length").compute(grades) == pytest.approx(sum(len(c[1]) for c in cases) / 6)
    assert METRICS[0].name == "win_rate" and [m.name for m in grader.metrics] == [m.name for m in METRICS]


def test_the_judge_scores_each_distinct_reference_once(monkeypatch):
    grader = harness.get_verifier("winrate:countdown")
    seen: list[str] = []
    judge = type(grader.judge_verifier)  # patched on the class: a verifier may be a frozen dataclass
    judge_score = judge.score

    def counted(self, example: harness.Example, text: str) -> harness.Score:
        seen.append(text)
        return judge_score(self, example, text)

    monkeypatch.setattr(judge, "score", counted)
    example = _countdown(reference=WRONG)
    grades = harness.verify(grader, [(example, CORRECT), (example, NONE), (example, WRONG)])
    assert [g.value for g in grades] == [1.0, 0.0, 0.5]
    assert sorted(seen) == sorted([CORRECT, NONE, WRONG, WRONG])  # three responses, one reference


def test_judge_failures_and_missing_references_are_grader_errors():
    grader = harness.get_verifier("winrate:countdown")
    no_meta = harness.Example("p", reference=NONE)  # countdown cannot judge without numbers and target
    grades = harness.verify(grader, [(no_meta, CORRECT), (_countdown(reference=None), CORRECT)])
    assert [g.value for g in grades] == [0.0, 0.0]
    assert "judge countdown" in grades[0].error and "no reference" in grades[1].error


def test_a_tolerance_option_turns_close_calls_into_ties():
    from harness.plugins import Spec, registry

    grader = registry().build(Spec.parse("verifier", "winrate:countdown", {"tolerance": "0.2"}))
    grades = harness.verify(grader, [(_countdown(reference=NONE), WRONG), (_countdown(reference=NONE), CORRECT)])
    assert [g.value for g in grades] == [0.5, 1.0]  # 0.1 - 0 is within 0.2; 1 - 0 is not


def test_reward_model_judge_compares_raw_rewards(tmp_path):
    judge = _bert_rm(tmp_path / "rm")
    grader = harness.get_verifier(f"winrate:rm:{judge}")
    rm = grader.judge_verifier
    assert grader.judge == f"rm:{judge}" and grader.judge_model == str(judge.resolve())
    prompt, reference = "Name a colour.", "Blue is a colour."
    responses = ["Red.", "Green is a colour of leaves.", "I like trains", reference]
    grades = harness.verify(grader, [(harness.Example(prompt, reference=reference), r) for r in responses])
    rewards = rm.score_texts([(prompt, r) for r in responses])
    margins = [r - rewards[-1] for r in rewards]
    assert [g.raw for g in grades] == pytest.approx(margins)
    assert [g.value for g in grades] == [outcome(m) for m in margins]
    assert grades[-1].value == 0.5 and {g.value for g in grades[:-1]} - {0.5}  # identical text ties; others decide


# -- length adjustment -----------------------------------------------------------------------------


def _two_groups(n: int, longer_rate: float, shorter_rate: float) -> tuple[list[float], list[float]]:
    """n responses 100 characters longer than the reference, winning at one rate; n 100 shorter, at another."""
    ys = [1.0] * round(longer_rate * n) + [0.0] * round((1 - longer_rate) * n)
    ys += [1.0] * round(shorter_rate * n) + [0.0] * round((1 - shorter_rate) * n)
    return ys, [100.0] * n + [-100.0] * n


def test_length_adjusted_win_rate_matches_a_hand_computed_fit():
    """Two groups at length differences +d and -d: the fit is saturated, so at x = +-tanh(1) it reproduces each
    group's rate, a + b tanh(1) = logit(0.8) and a - b tanh(1) = logit(0.4), and at zero difference
    sigmoid(a) = sigmoid((logit(0.8) + logit(0.4)) / 2) = 0.6202, not the raw 0.6 (nor OLS's 0.6)."""
    hand = _sigmoid((_logit(0.8) + _logit(0.4)) / 2)
    ys, diffs = _two_groups(10, 0.8, 0.4)
    assert sum(ys) / len(ys) == pytest.approx(0.6)
    assert length_adjusted(ys, diffs, ridge=0.0) == pytest.approx(hand, abs=1e-9)
    big_ys, big_diffs = _two_groups(1000, 0.8, 0.4)  # the default weak penalty on the slope vanishes with data
    grades = [harness.Score(y, metrics={"length_diff": d}) for y, d in zip(big_ys, big_diffs, strict=True)]
    assert _metric(LENGTH_ADJUSTED).compute(grades) == pytest.approx(hand, abs=1e-3)
    assert abs(_metric("win_rate").compute(grades) - hand) > 0.015


def test_length_adjustment_leaves_a_length_independent_rate_alone():
    ys, diffs = _two_groups(10, 0.7, 0.7)
    assert length_adjusted(ys, diffs) == pytest.approx(0.7, abs=1e-9)
    ties = [0.5] * 6 + [1.0, 0.0]
    assert length_adjusted(ties, [40, -40, 10, -10, 0, 0, 5, -5]) == pytest.approx(0.5, abs=1e-9)
    assert length_adjusted([1.0, 0.5, 0.0], [0, 0, 0]) == pytest.approx(0.5)  # no length variation: plain rate


def test_length_adjustment_stays_finite_on_small_separable_samples():
    lc = length_adjusted([1.0, 1.0, 0.0], [300, 120, -50])  # every longer answer wins: the MLE slope is infinite
    assert 0.0 < lc < 1.0 and math.isfinite(lc)
    assert length_adjusted([1.0, 1.0], [10, -10]) == 1.0 and math.isnan(length_adjusted([], []))
    grades = [harness.Score(y, metrics={"length_diff": d}) for y, d in [(1.0, 300), (1.0, 120), (0.0, -50)]]
    low, high = _metric(LENGTH_ADJUSTED).interval(grades)
    assert 0.0 <= low <= high <= 1.0


# -- the harness's numbers on AlpacaEval's own verdicts --------------------------------------------


def _verdicts(alpaca: Path) -> dict[str, list[harness.Score]]:
    """GPT-4 Turbo's verdicts per model as the harness's grades: the model's share of the verdict, the length gap."""
    verdicts: dict[str, list[harness.Score]] = {}
    for row in _rows(alpaca / "judge_annotations.jsonl"):
        diff = len(row["output_2"]) - len(row["output_1"])
        verdicts.setdefault(row["generator_2"], []).append(harness.Score(row["preference"] - 1,
                                                                         metrics={"length_diff": diff}))
    return verdicts


def test_win_rate_on_alpaca_evals_own_verdicts_is_the_leaderboards(shared_data):
    """The same verdicts through the harness's metrics: the win-rate is AlpacaEval 2's to 0.1 point for each of the
    8 models; the length-adjusted win-rate (not AlpacaEval's LC) moves off the raw rate the way the LC does."""
    alpaca = shared_data / "alpaca_eval"
    with (alpaca / "leaderboard_alpaca_eval_2.csv").open(encoding="utf-8", newline="") as f:
        board = {row[""]: row for row in csv.DictReader(f)}
    verdicts = _verdicts(alpaca)
    assert len(verdicts) == 8 and {len(v) for v in verdicts.values()} == {805}
    for model, grades in verdicts.items():
        win = 100 * _metric("win_rate").compute(grades)
        assert win == pytest.approx(float(board[model]["win_rate"]), abs=0.1), model
        lc, adjusted = float(board[model]["length_controlled_winrate"]), 100 * _metric(LENGTH_ADJUSTED).compute(grades)
        assert (adjusted > win) == (lc > win), model


class _Shouts:
    """A reference-free judge with known verdicts: a response that starts with WIN beats one that does not."""

    name = "shouts"
    reference_free = True

    def score(self, example: harness.Example, completion: str) -> harness.Score:
        return harness.Score(float(completion.startswith("WIN")))


def test_a_win_rate_run_reports_the_length_adjusted_win_rate(tmp_path, tiny_llama, eval_jsonl):
    """The run path (fake engine, real task and grader) records ``length_adjusted_win_rate``, never the old name."""
    from fakes import FakeEngine
    from test_pipeline import registered
    from transformers import AutoTokenizer

    from harness.pipeline import RunConfig, examples_of, execute, plan
    from harness.record import read_record

    answers = ["WIN " + "long " * 400, "WIN " + "long " * 300, "short", "WIN " + "long " * 500, "short too"]
    config = RunConfig(policy=str(tiny_llama), task="alpaca", task_args={"data": str(eval_jsonl)},
                       grader="winrate:shouts", limit=len(answers))
    with registered("verifier", _Shouts()):
        prompts = [e.prompt for e in examples_of(plan(config).task, config)]
        engine = FakeEngine(AutoTokenizer.from_pretrained(tiny_llama),
                            lambda p, j: (answers[prompts.index(p)], -1.0), prompts)
        records, summary = read_record(execute(config, tmp_path, engine=engine))
    values = [1.0 if a.startswith("WIN") else 0.5 for a in answers]  # a reference never shouts: win or tie
    diffs = [len(a) - len(r.example.reference) for a, r in zip(answers, records, strict=True)]
    assert [r.credit for r in records] == values
    assert summary.metric.name == "win_rate" and summary.metric.value == pytest.approx(sum(values) / len(values))
    assert "lc_win_rate" not in summary.metrics
    assert summary.metrics[LENGTH_ADJUSTED].value == pytest.approx(length_adjusted(values, diffs))
    assert summary.metrics[LENGTH_ADJUSTED].value > summary.metric.value  # the long answers won


def test_a_record_written_under_the_old_name_still_reads(tmp_path):
    """A win-rate record from before the rename carries ``lc_win_rate``: it reads under the new name, and the
    leaderboard shows it there."""
    from harness import leaderboard
    from harness.record import Measure, read_summary

    run_dir = tmp_path / "old-winrate-run"
    summary = RunSummary(run_id=run_dir.name, config=RunConfig(task="alpaca"), metric=Headline(0.4, name="win_rate"),
                         metrics={"lc_win_rate": Measure(0.55, (0.45, 0.65))}, counts=Counts(examples=0),
                         task="alpaca", sampler="greedy")
    write_record(run_dir, [], summary)
    assert read_summary(run_dir).metrics == {"length_adjusted_win_rate": Measure(0.55, (0.45, 0.65))}
    (row,) = leaderboard.rows(tmp_path)
    assert (row["value"], row["length_adjusted_win_rate"]) == (0.4, 0.55) and "lc_win_rate" not in row


# -- bad graders -----------------------------------------------------------------------------------


@pytest.mark.parametrize("spec, message", [
    ("winrate", "needs a judge: --grader winrate:rm:"),
    ("winrate:no-such-judge", "unknown verifier 'no-such-judge'"),
    ("winrate:winrate:countdown", "must score each response alone"),
    ("winrate:rm:/no/such/reward-model", "no such directory"),
])
def test_bad_judges_are_one_line_errors(spec, message):
    with pytest.raises(harness.HarnessError, match=message) as err:
        harness.get_verifier(spec)
    assert "\n" not in str(err.value)


def test_a_judge_path_that_is_not_a_reward_model_is_one_line(smollm2):
    with pytest.raises(harness.HarnessError, match="not a reward model: its config.json names LlamaForCausalLM") as err:
        harness.get_verifier(f"winrate:rm:{smollm2}")
    assert "\n" not in str(err.value)


def test_a_bad_tolerance_is_one_line():
    from harness.plugins import Spec, registry

    for value in ("-1", "nan", "close"):
        with pytest.raises(harness.HarnessError, match="tolerance"):
            registry().build(Spec.parse("verifier", "winrate:countdown", {"tolerance": value}))


# -- the alpaca task -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def eval_jsonl(shared_data) -> Path:
    return shared_data / "alpaca_eval" / "eval.jsonl"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_instruction_split_is_disjoint_stable_and_about_half(eval_jsonl, tmp_path):
    task = harness.get_task("alpaca").configure(data=str(eval_jsonl))
    evals = [e.prompt for e in task.examples(split="eval")]
    trains = [e.prompt for e in task.examples(split="train")]
    rows = _rows(eval_jsonl)
    assert not set(evals) & set(trains) and len(evals) + len(trains) == len(rows) == 805
    assert 0.45 < len(evals) / len(rows) < 0.55
    # the split is the parity of the instruction's SHA-256, whatever the file order or surrounding whitespace: the
    # training package relies on it never changing (402/403 is what AlpacaEval's 805 have always been split into)
    assert (len(evals), len(trains)) == (402, 403)
    for text in evals[:20] + trains[:20]:
        parity = int.from_bytes(hashlib.sha256(text.strip().encode()).digest()[:8], "big") % 2
        assert instruction_split(text) == instruction_split(f"  {text}\n") == ("eval" if parity == 0 else "train")
    random.Random(0).shuffle(rows)
    shuffled = tmp_path / "shuffled.jsonl"
    shuffled.write_text("".join(json.dumps(r) + "\n" for r in rows))
    again = harness.get_task("alpaca").configure(data=str(shuffled))
    assert {e.prompt for e in again.examples(split="eval")} == set(evals)


def test_examples_take_the_split_in_file_order_with_the_data_reference(eval_jsonl):
    rows = [r for r in _rows(eval_jsonl) if instruction_split(r["instruction"]) == "eval"]
    task = harness.get_task("alpaca").configure(data=str(eval_jsonl))
    examples = list(task.examples(limit=3))  # the run's default split, "test", is the eval half
    assert [e.prompt for e in examples] == [r["instruction"] for r in rows[:3]]
    assert [e.reference for e in examples] == [r["output"] for r in rows[:3]]
    assert examples[0].meta == {"dataset": rows[0]["dataset"], "reference_from": "gpt4_turbo"}
    assert len({e.id for e in task.examples()}) == 402 and examples == list(task.examples(limit=3))
    assert len(list(task.configure(split="all").examples(split="train"))) == 805  # the task option wins
    shuffled = list(task.examples(limit=3, seed=1))
    assert shuffled != examples and {e.prompt for e in task.examples(seed=1)} == {e.prompt for e in task.examples()}


def _run_dir(tmp_path: Path, answers: dict[str, str]) -> Path:
    """A finished run's record: one greedy sample per instruction."""
    records = [ExampleRecord(harness.Example(p, reference="x", id=f"r{i}"), p,
                             [SampleRecord(Completion(text, 3, -1.0, "stop"))], selected=0, credit=1.0)
               for i, (p, text) in enumerate(answers.items())]
    run_dir = tmp_path / "reference-run"
    write_record(run_dir, records, RunSummary(run_id=run_dir.name, config=RunConfig(task="alpaca"),
                                              metric=Headline(1.0, name="win_rate"),
                                              counts=Counts(examples=len(records)), task="alpaca", sampler="greedy"))
    return run_dir


def test_reference_from_an_earlier_run(eval_jsonl, tmp_path):
    task = harness.get_task("alpaca").configure(data=str(eval_jsonl))
    prompts = [e.prompt for e in task.examples(limit=4)]
    run_dir = _run_dir(tmp_path, {p: f"base answer {i}" for i, p in enumerate(prompts)})
    against_run = task.configure(reference=str(run_dir))
    examples = list(against_run.examples(limit=3))
    assert [e.reference for e in examples] == ["base answer 0", "base answer 1", "base answer 2"]
    assert {e.meta["reference_from"] for e in examples} == {str(run_dir)}
    with pytest.raises(harness.HarnessError, match="did not answer 1 of the 5 instructions") as err:
        list(against_run.examples(limit=5))
    assert "\n" not in str(err.value)


def test_reference_from_a_run_on_other_instructions_is_one_line(eval_jsonl, tmp_path):
    task = harness.get_task("alpaca").configure(data=str(eval_jsonl))
    run_dir = _run_dir(tmp_path, {e.prompt: "a train answer" for e in task.examples(split="train", limit=3)})
    with pytest.raises(harness.HarnessError, match="did not answer 3 of the 3 instructions") as err:
        list(task.configure(reference=str(run_dir)).examples(limit=3))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("options, message", [
    ({"data": "no/such/file.jsonl"}, "is not a file"),
    ({"reference": "runs/no-such-run"}, "no such run directory"),
    ({"split": "dev"}, "unknown alpaca split 'dev'"),
    ({"colour": "red"}, "unknown alpaca option 'colour'"),
])
def test_bad_task_options_are_one_line_errors(options, message):
    with pytest.raises(harness.HarnessError, match=message) as err:
        harness.get_task("alpaca").configure(**options)
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_bad_data_is_one_line(tmp_path):
    no_output = tmp_path / "instructions.jsonl"
    no_output.write_text(json.dumps({"instruction": "Say hi."}) + "\n")
    task = harness.get_task("alpaca").configure(data=str(no_output), split="all")
    with pytest.raises(harness.HarnessError, match="no string column 'output'"):
        list(task.examples())
    assert [e.reference for e in task.configure(reference=str(_run_dir(tmp_path, {"Say hi.": "Hi!"}))).examples()] \
        == ["Hi!"]
    no_instruction = tmp_path / "bad.jsonl"
    no_instruction.write_text(json.dumps({"prompt": "Say hi."}) + "\n")
    with pytest.raises(harness.HarnessError, match="row 1: needs a non-empty string 'instruction'"):
        list(harness.get_task("alpaca").configure(data=str(no_instruction)).examples())
    with pytest.raises(harness.HarnessError, match="cannot load tatsu-lab/alpaca_eval from the Hugging Face hub"):
        list(harness.get_task("alpaca").examples())  # offline in tests


def test_a_json_list_file_reads_like_jsonl(tmp_path, eval_jsonl):
    listed = tmp_path / "alpaca_eval_gpt4_baseline.json"  # the layout of AlpacaEval's own files
    listed.write_text(json.dumps(_rows(eval_jsonl)[:10]))
    assert list(harness.get_task("alpaca").configure(data=str(listed)).examples(split="all")) == \
        list(harness.get_task("alpaca").configure(data=str(eval_jsonl)).examples(split="all", limit=10))


# -- end to end ------------------------------------------------------------------------------------


@pytest.mark.vllm
def test_win_rate_run_of_the_bundled_model_against_the_data_reference(tmp_path, eval_jsonl, smollm2):
    judge = _bert_rm(tmp_path / "judge")
    out = tmp_path / "runs"
    harness_cli("run", "--policy", "smollm2", "--task", "alpaca", "--task-arg", f"data={eval_jsonl}",
                "--grader", f"winrate:rm:{judge}", "--limit", "3", "--max-tokens", "32", "-o", str(out), check=True)
    (run_dir,) = [p.parent for p in out.glob("*/summary.json")]
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert summary["metric"]["name"] == "win_rate" and summary["counts"]["grader_errors"] == 0
    assert {LENGTH_ADJUSTED, "tie_rate", "policy_length", "reference_length"} <= set(summary["metrics"])
    assert summary["components"]["grader"]["spec"] == f"winrate:rm:{judge}"
    references = [r["output"] for r in _rows(eval_jsonl) if instruction_split(r["instruction"]) == "eval"][:3]
    assert [r["reference"] for r in rows] == references
    rm = harness.get_verifier(f"rm:{judge}")
    texts = [r["samples"][r["selected"]]["text"] for r in rows]
    margins = [a - b for a, b in zip(rm.score_texts([(r["prompt"], t) for r, t in zip(rows, texts, strict=True)]),
                                     rm.score_texts([(r["prompt"], r["reference"]) for r in rows]), strict=True)]
    values = [outcome(m) for m in margins]
    assert [r["samples"][r["selected"]]["grade"]["value"] for r in rows] == values
    assert summary["metric"]["value"] == pytest.approx(sum(values) / 3)
    assert summary["metrics"]["policy_length"]["value"] == pytest.approx(sum(map(len, texts)) / 3)
