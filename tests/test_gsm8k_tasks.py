"""GSM8K on the real local files, and gsm8k-synth with every worked solution checked independently."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import SHARED_DATA
from hypothesis import given, settings
from hypothesis import strategies as st

import harness
from harness.types import Task
from tasks import gsm8k, gsm8k_synth
from tasks.gsm8k import Gsm8kTask
from tasks.gsm8k_synth import Gsm8kSynthTask, generate

REPO = Path(__file__).resolve().parents[1]
DATA = SHARED_DATA / "gsm8k"
needs_data = pytest.mark.usefixtures("shared_data")  # fails, never skips, when the real data is missing
ANNOTATION = re.compile(r"<<([^=<>]*)=([^<>]*)>>")


def hash_numbers(path: Path) -> list[str]:
    """The ``####`` numbers of a GSM8K file, parsed here without the task's code."""
    numbers = []
    for line in path.read_text(encoding="utf-8").splitlines():
        last = json.loads(line)["answer"].splitlines()[-1]
        match = re.fullmatch(r"####\s*(-?[\d,]+)\s*", last)
        assert match, last
        numbers.append(match.group(1).replace(",", ""))
    return numbers


def one_line_error(excinfo: pytest.ExceptionInfo[harness.HarnessError]) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


# -- gsm8k ----------------------------------------------------------------------------


def test_registered_tasks_meet_the_contract():
    (task,) = gsm8k.register_tasks()
    (synth,) = gsm8k_synth.register_tasks()
    assert isinstance(task, Task) and isinstance(synth, Task)
    assert (task.name, task.verifier) == ("gsm8k", "sympy")
    assert (synth.name, synth.verifier) == ("gsm8k-synth", "sympy")


@needs_data
@pytest.mark.parametrize(("split", "rows"), [("test", 1319), ("train", 7473)])
def test_directory_and_file_give_every_row_with_its_hash_number(split, rows):
    from_dir = list(Gsm8kTask().configure(data=str(DATA)).examples(split))
    from_file = list(Gsm8kTask().configure(data=str(DATA / f"{split}.jsonl")).examples(split))
    assert len(from_dir) == rows
    assert from_file == from_dir
    assert [e.reference for e in from_dir] == hash_numbers(DATA / f"{split}.jsonl")
    assert [e.id for e in from_dir] == [f"gsm8k-{split}-{i}" for i in range(rows)]
    solutions = [json.loads(line)["answer"] for line in (DATA / f"{split}.jsonl").read_text().splitlines()]
    assert [e.meta["solution"] for e in from_dir] == solutions


@needs_data
def test_thousands_separators_are_stripped():
    by_id = {e.id: e for e in Gsm8kTask(data=str(DATA)).examples("train")}
    with_commas = [
        i
        for i, line in enumerate((DATA / "train.jsonl").read_text().splitlines())
        if "," in json.loads(line)["answer"].rsplit("####", 1)[1]
    ]
    assert with_commas  # GSM8K writes some answers as "1,000"
    for i in with_commas:
        reference = by_id[f"gsm8k-train-{i}"].reference
        assert "," not in reference and int(reference) >= 1000


@needs_data
def test_limit_takes_the_first_rows_and_seeds_shuffle_deterministically():
    task = Gsm8kTask(data=str(DATA))
    everything = [e.id for e in task.examples()]
    assert [e.id for e in task.examples(limit=50)] == everything[:50]
    shuffled = [e.id for e in task.examples(seed=3)]
    assert shuffled == [e.id for e in task.examples(seed=3)]
    assert shuffled != everything and sorted(shuffled) == sorted(everything)
    assert [e.id for e in task.examples(limit=10, seed=3)] == shuffled[:10]
    assert [e.id for e in task.examples(seed=4)] != shuffled


@needs_data
def test_chat_prompt_asks_for_the_final_answer_line():
    example = next(Gsm8kTask(data=str(DATA)).examples(limit=1))
    question = json.loads((DATA / "test.jsonl").read_text().splitlines()[0])["question"]
    assert example.prompt.startswith(question)
    assert example.prompt.endswith("Final answer: <number>")
    assert "step by step" in example.prompt
    assert example.prompt == gsm8k.chat_prompt(question)


@needs_data
def test_eightshot_prompt_has_eight_exemplars_then_the_question():
    example = next(Gsm8kTask(data=str(DATA), prompt="8shot").examples(limit=1))
    question = json.loads((DATA / "test.jsonl").read_text().splitlines()[0])["question"]
    assert example.prompt.startswith("Q: There are 15 trees in the grove.")
    assert example.prompt.endswith(f"\n\nQ: {question}\nA:")
    assert example.prompt.count("Q: ") == 9
    assert example.prompt.count("The answer is") == 8


def test_eightshot_exemplars_match_lm_eval_verbatim():
    yaml = pytest.importorskip("yaml")
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("lm-eval is not installed")
    config = Path(next(iter(spec.submodule_search_locations))) / "tasks" / "gsm8k" / "gsm8k-cot.yaml"
    samples = yaml.safe_load(config.read_text())["fewshot_config"]["samples"]
    # lm-eval joins "Q: {question}\nA:" + " " + target with "\n\n" between shots
    context = "\n\n".join(f"Q: {s['question']}\nA: {s['target']}" for s in samples)
    assert gsm8k.fewshot_prompt("What is 2 + 2?") == f"{context}\n\nQ: What is 2 + 2?\nA:"


def test_options_are_validated():
    task = Gsm8kTask()
    assert task.configure(prompt="8shot", data="/x").prompt == "8shot"
    with pytest.raises(harness.HarnessError) as excinfo:
        task.configure(shots="8")
    assert "data, prompt" in one_line_error(excinfo)
    with pytest.raises(harness.HarnessError) as excinfo:
        task.configure(prompt="5shot")
    assert "8shot, chat" in one_line_error(excinfo)


@needs_data
def test_unknown_split_lists_the_valid_ones():
    with pytest.raises(harness.HarnessError) as excinfo:
        Gsm8kTask(data=str(DATA)).examples("validation")
    assert "test, train" in one_line_error(excinfo)


def test_missing_path_is_named(tmp_path):
    missing = tmp_path / "nowhere.jsonl"
    with pytest.raises(harness.HarnessError) as excinfo:
        Gsm8kTask(data=str(missing)).examples()
    assert str(missing) in one_line_error(excinfo)
    with pytest.raises(harness.HarnessError) as excinfo:
        Gsm8kTask(data=str(tmp_path)).examples()  # a directory without test.jsonl
    assert str(tmp_path / "test.jsonl") in one_line_error(excinfo)


@pytest.mark.parametrize(
    "line",
    [
        '{"question": "How many?"}',
        '{"question": "How many?", "answer": "Three, no marker."}',
        '{"question": "How many?", "answer": 3}',
        '["How many?", "#### 3"]',
        '{"question": "How many?", "answer": "#### 3"',
    ],
)
def test_bad_rows_name_the_file(tmp_path, line):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "Fine?", "answer": "Yes.\\n#### 1"}\n' + line + "\n")
    with pytest.raises(harness.HarnessError) as excinfo:
        Gsm8kTask(data=str(path)).examples()
    error = one_line_error(excinfo)
    assert f"{path}:2: not valid JSON" in error or f"{path} row 2:" in error


def test_offline_hub_failure_says_to_pass_a_local_path(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path),
           "HARNESS_DATA": str(tmp_path)}  # no mirror of openai/gsm8k either
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    script = (
        "import harness\nfrom tasks.gsm8k import Gsm8kTask\n"
        "try:\n    Gsm8kTask().examples()\nexcept harness.HarnessError as exc:\n    print(repr(str(exc)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    message = ast.literal_eval(done.stdout.strip())
    assert "\n" not in message and "openai/gsm8k" in message and "data=PATH" in message


# -- gsm8k-synth ------------------------------------------------------------------------


def evaluate(expr: str) -> Fraction:
    """Exact value of a calculator annotation: numbers, + - * / and brackets only."""
    ops = {
        ast.Add: Fraction.__add__,
        ast.Sub: Fraction.__sub__,
        ast.Mult: Fraction.__mul__,
        ast.Div: Fraction.__truediv__,
    }

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return Fraction(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in ops:
            return ops[type(node.op)](walk(node.left), walk(node.right))
        raise ValueError(f"not plain arithmetic: {ast.dump(node)}")

    return walk(ast.parse(expr, mode="eval").body)


def check_solution(solution: str, reference: str) -> int:
    """Recompute every annotation; the ``####`` line must equal the last result and the reference.

    Returns the number of annotated steps.
    """
    lines = solution.splitlines()
    final = re.fullmatch(r"#### (\d+)", lines[-1])
    assert final, solution
    results = []
    for line in lines[:-1]:
        annotations = ANNOTATION.findall(line)
        assert len(annotations) == 1, line  # one calculation per sentence, as GSM8K writes them
        expr, claimed = annotations[0]
        value = evaluate(expr)
        assert value == Fraction(claimed), line
        assert value.denominator == 1 and value > 0, line
        assert re.search(rf">>{claimed}(\D|$)", line), line  # the result is also written out after >>
        results.append(int(claimed))
    assert int(final.group(1)) == results[-1] == int(reference)
    assert str(int(reference)) == reference
    return len(results)


def test_every_template_and_step_count_is_generated_and_correct():
    task = Gsm8kSynthTask()
    seen = set()
    for split in ("train", "test"):
        for example in task.examples(split, limit=400):
            steps = check_solution(example.meta["solution"], example.reference)
            assert steps == example.meta["steps"]
            seen.add((example.meta["template"], steps))
    templates = {t for t, _ in seen}
    assert len(templates) >= 6
    assert seen == {(t, k) for t in templates for k in range(2, 7)}


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    bounds=st.tuples(st.integers(2, 6), st.integers(2, 6)).map(sorted),
    scale=st.sampled_from([1, 2, 10, 50]),
)
def test_generated_rows_are_exact_and_honour_the_steps_knob(seed, bounds, scale):
    lo, hi = bounds
    for row in generate(15, seed=seed, steps=(lo, hi), scale=scale):
        assert row["question"].endswith("?")
        assert lo <= check_solution(row["answer"], row["answer"].rsplit("#### ", 1)[1]) <= hi


def test_examples_use_the_chat_prompt_and_stable_unique_ids():
    examples = list(Gsm8kSynthTask().examples(limit=200))
    rows = generate(200, split="test")  # the same stream as the task's defaults
    assert [e.prompt for e in examples] == [gsm8k.chat_prompt(r["question"]) for r in rows]
    assert [e.meta["solution"] for e in examples] == [r["answer"] for r in rows]
    ids = [f"gsm8k-synth-{hashlib.sha256(r['question'].encode()).hexdigest()[:12]}" for r in rows]
    assert [e.id for e in examples] == ids
    assert len(set(ids)) == 200


def test_same_seed_same_problems_and_limits_give_prefixes():
    task = Gsm8kSynthTask()
    assert generate(50, seed=1) == generate(50, seed=1)
    assert generate(50, seed=1) != generate(50, seed=2)
    first = list(task.examples(limit=30, seed=7))
    assert first == list(task.examples(limit=30, seed=7))
    assert list(task.examples(limit=10, seed=7)) == first[:10]
    assert len(list(task.examples())) == task.size


def test_train_and_test_are_disjoint_by_question_hash():
    def questions(split: str, seed: int) -> set[str]:
        return {r["question"] for r in generate(300, seed=seed, split=split)}

    test = questions("test", 0) | questions("test", 1)
    train = questions("train", 0) | questions("train", 1)
    assert len(test) > 300 and len(train) > 300
    assert not test & train
    def tenth(q: str) -> bool:  # the rule every task splits by: the first 8 bytes of SHA-256, modulo 10
        return int.from_bytes(hashlib.sha256(q.encode()).digest()[:8], "big") % 10 == 0

    assert all(tenth(q) for q in test)
    assert not any(tenth(q) for q in train)


@pytest.mark.parametrize(("option", "allowed"), [("3", {3}), ("2-4", {2, 3, 4}), ("5-6", {5, 6})])
def test_steps_option_is_honoured(option, allowed):
    task = Gsm8kSynthTask().configure(steps=option)
    steps = [e.meta["steps"] for e in task.examples(limit=150)]
    assert set(steps) == allowed
    assert all(len(ANNOTATION.findall(e.meta["solution"])) == e.meta["steps"] for e in task.examples(limit=50))


def test_scale_makes_prices_counts_and_rates_bigger():
    def typical_largest(scale: int) -> dict[str, float]:
        """Per template, the median of the largest number in a question."""
        largest: dict[str, list[int]] = {}
        for e in Gsm8kSynthTask(scale=scale).examples("train", limit=700):
            question = e.prompt.split("\n\n")[0]
            largest.setdefault(e.meta["template"], []).append(max(map(int, re.findall(r"\d+", question))))
        return {t: sorted(v)[len(v) // 2] for t, v in largest.items()}

    small, big = typical_largest(1), typical_largest(10)
    for template in ("shopping", "painting", "sharing", "discount", "factory"):
        assert big[template] > 3 * small[template], template
    assert big["ages"] <= 2 * small["ages"]  # ages stay realistic


def test_synth_options_are_coerced_and_validated():
    task = Gsm8kSynthTask().configure(steps="2-3", scale="4", size="25", prompt="8shot")
    assert (task.steps, task.scale, task.size, task.prompt) == ((2, 3), 4, 25, "8shot")
    examples = list(task.examples())
    assert len(examples) == 25 and all(e.prompt.endswith("\nA:") for e in examples)
    bad_options = [
        {"steps": "1-4"}, {"steps": "5-3"}, {"steps": "7"}, {"steps": "many"},
        {"scale": "0"}, {"size": "x"}, {"prompt": "fewshot"},
    ]
    for bad in bad_options:
        with pytest.raises(harness.HarnessError) as excinfo:
            Gsm8kSynthTask().configure(**bad)
        one_line_error(excinfo)
    with pytest.raises(harness.HarnessError) as excinfo:
        Gsm8kSynthTask().configure(difficulty="hard")
    assert "prompt, scale, size, steps" in one_line_error(excinfo)
    with pytest.raises(harness.HarnessError) as excinfo:
        Gsm8kSynthTask().examples("dev")
    assert "test, train" in one_line_error(excinfo)
