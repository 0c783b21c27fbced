"""IFEval: the task reads the 541 prompts, the verifier gives lm-eval's four numbers, punkt_tab is never downloaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, harness_cli

import harness
from harness.errors import HarnessError
from harness.plugins import Spec, get_verifier, registry
from harness.record import read_record

NAMES = ("prompt_level_strict_acc", "prompt_level_loose_acc", "inst_level_strict_acc", "inst_level_loose_acc")


@pytest.fixture(autouse=True)
def punkt(shared_data, monkeypatch) -> Path:
    """NLTK finds the bundled punkt_tab, as a user's NLTK_DATA would point it there."""
    import nltk

    folder = shared_data / "nltk_data"
    monkeypatch.setenv("NLTK_DATA", str(folder))
    monkeypatch.setattr(nltk.data, "path", [*nltk.data.path, str(folder)])
    return folder


@pytest.fixture
def data(shared_data) -> Path:
    return shared_data / "ifeval" / "input_data.jsonl"


def rows(data: Path) -> list[dict]:
    return [json.loads(line) for line in data.read_text().splitlines()]


def task(**options: str):
    return registry().build(Spec.parse("task", "ifeval", options))


def harness_numbers(examples: list[harness.Example], responses: list[str]) -> tuple[dict[str, float], list]:
    """The four numbers as a run reports them: one verify call, then the grader's declared metrics."""
    verifier = get_verifier("ifeval")
    grades = harness.verify(verifier, list(zip(examples, responses, strict=True)))
    assert not [g.error for g in grades if g.error]
    return {m.name: m.compute(grades) for m in verifier.metrics}, grades


def lm_eval_numbers(docs: list[dict], responses: list[str]) -> tuple[dict[str, float], list[dict]]:
    """lm-eval's own process_results per document, aggregated as its ifeval.yaml says (mean; agg_inst_level_acc)."""
    from lm_eval.api.metrics import mean
    from lm_eval.tasks.ifeval.utils import agg_inst_level_acc, process_results

    results = [process_results(doc, [response]) for doc, response in zip(docs, responses, strict=True)]
    numbers = {name: (agg_inst_level_acc if name.startswith("inst") else mean)([r[name] for r in results])
               for name in NAMES}
    return numbers, results


# -- task -------------------------------------------------------------------------------------------


def test_task_reads_all_541_prompts_with_their_instructions(data):
    examples = list(task(data=str(data)).examples())
    raw = rows(data)
    assert len(examples) == 541 == len({e.id for e in examples})
    for example, row in zip(examples, raw, strict=True):
        assert example.id == f"ifeval-{row['key']}" and example.prompt == row["prompt"] and example.reference is None
        assert example.meta == {"key": row["key"], "instruction_id_list": row["instruction_id_list"],
                                "kwargs": row["kwargs"]}
    assert [e.id for e in task(data=str(data)).examples(limit=5, seed=3)] == [e.id for e in examples[:5]]
    assert harness.get_task("ifeval").verifier == "ifeval"


def test_hub_shaped_rows_load_through_datasets(data, tmp_path, monkeypatch):
    """The hub path (``datasets.load_dataset``) on a local folder in google/IFEval's layout, where every kwargs
    dict carries every checker's argument names, None where unused: the examples equal the file's."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    raw = rows(data)[:30]
    names = sorted({k for row in rows(data) for kw in row["kwargs"] for k in kw})
    padded = [{**row, "kwargs": [{k: kw.get(k) for k in names} for kw in row["kwargs"]]} for row in raw]
    folder = tmp_path / "ifeval"
    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in padded))
    assert None in datasets.load_dataset(str(folder), split="train")[0]["kwargs"][0].values()
    assert list(task(data=str(folder)).examples()) == list(task(data=str(data)).examples(limit=30))


def one_line_error(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


def test_bad_task_inputs_are_one_line_errors(data, tmp_path):
    with pytest.raises(HarnessError) as excinfo:
        task(data=str(tmp_path / "missing.jsonl"))
    assert "data=" in one_line_error(excinfo)
    with pytest.raises(HarnessError) as excinfo:
        list(task(data=str(data)).examples(split="train"))
    assert "test" in one_line_error(excinfo)
    with pytest.raises(HarnessError) as excinfo:
        task(dataset=str(data))
    assert "data" in one_line_error(excinfo)
    broken = tmp_path / "broken.jsonl"
    broken.write_text(data.read_text().splitlines()[0] + "\n{not json\n")
    with pytest.raises(HarnessError) as excinfo:
        list(task(data=str(broken)).examples())
    assert str(broken) in one_line_error(excinfo)
    bad_row = tmp_path / "bad_row.jsonl"
    bad_row.write_text(json.dumps({"key": 1, "prompt": "Hi", "instruction_id_list": ["punctuation:no_comma"]}))
    with pytest.raises(HarnessError) as excinfo:
        list(task(data=str(bad_row)).examples())
    assert "row 1" in one_line_error(excinfo)
    twice = tmp_path / "twice.jsonl"
    twice.write_text("\n".join(data.read_text().splitlines()[:2] * 2))
    with pytest.raises(HarnessError) as excinfo:
        list(task(data=str(twice)).examples())
    assert "twice" in one_line_error(excinfo)


def test_hub_offline_says_to_pass_data(tmp_path, monkeypatch):
    """HF_DATASETS_OFFLINE=1 (conftest): the default hub data cannot load, and the error says what to do."""
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path))  # no mirror of google/IFEval
    with pytest.raises(HarnessError) as excinfo:
        list(harness.get_task("ifeval").examples(limit=1))
    assert "google/IFEval" in one_line_error(excinfo) and "data=PATH" in str(excinfo.value)


# -- verifier ---------------------------------------------------------------------------------------


def by_key(data: Path, *keys: int) -> list[harness.Example]:
    examples = {e.meta["key"]: e for e in task(data=str(data)).examples()}
    return [examples[k] for k in keys]


def long_text(shared_data: Path, words: int) -> str:
    """Real prose (AlpacaEval's GPT-4 Turbo references) without commas or asterisks, at least ``words`` long."""
    text = []
    for line in (shared_data / "alpaca_eval" / "eval.jsonl").read_text().splitlines():
        text.append(json.loads(line)["output"].replace(",", "").replace("*", ""))
        if len(" ".join(text).split()) >= words:
            return "\n\n".join(text)
    raise AssertionError("not enough text")


def test_verdicts_on_responses_that_follow_and_break_instructions(data):
    no_comma, bullets = by_key(data, 1001, 102)  # punctuation:no_comma; number_bullet_lists with num_bullets=3
    verifier = get_verifier("ifeval")
    assert verifier.reference_free
    pairs = [
        (no_comma, "Good morrow! Thou shalt first behold Kyoto and then sail to Nara."),
        (no_comma, "Good morrow, traveller! Thou shalt first behold Kyoto, then Nara."),
        (no_comma, "Here is thy itinerary, good traveller:\nThou shalt first behold Kyoto and then Nara."),
        (bullets, "* Ball gown: shall we go?\n* Sweats: in a minute.\n* Ball gown: you are wearing that?"),
        (bullets, "* One\n* Two\n* Three\n* Four\n* Five\n* Six"),  # loose drops 2 lines at most: 4
        (no_comma, "   "),
    ]
    grades = harness.verify(verifier, pairs)
    assert [g.value for g in grades] == [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    # the third breaks the rule only in its first line, which the loose variant drops, as lm-eval's does
    assert [g.metrics["prompt_level_loose_acc"] for g in grades] == [1.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    assert grades[2].answer == "strict=0 loose=1" and all(g.answer for g in grades)


def test_instruction_level_accuracy_is_micro_averaged(data, shared_data):
    """A 3-instruction prompt fully followed and a 1-instruction prompt broken: 3 of 4 instructions, not (1 + 0) / 2."""
    three, one = by_key(data, 1000, 1001)  # no_comma + 3 highlighted sections + at least 300 words; no_comma
    followed = "*Early life*\n*Count of Tripoli*\n*Legacy*\n\n" + long_text(shared_data, 320)
    responses = [followed, "Good morrow, traveller! Kyoto awaits thee."]
    numbers, grades = harness_numbers([three, one], responses)
    assert [g.answer for g in grades] == ["strict=111 loose=111", "strict=0 loose=0"]
    assert numbers["inst_level_strict_acc"] == pytest.approx(3 / 4) and numbers["prompt_level_strict_acc"] == 0.5
    expected, _ = lm_eval_numbers([rows(data)[0], rows(data)[1]], responses)
    assert numbers == pytest.approx(expected)


def corpus(data: Path, shared_data: Path) -> tuple[list[dict], list[str]]:
    """Every 9th IFEval prompt with real responses that follow some of its instructions and break others.

    The texts are AlpacaEval's GPT-4 Turbo outputs (real prose for other questions), variants of them that
    satisfy common instructions (lower case, upper case, no commas, a chatty first line), and the prompt itself.
    """
    outputs = [json.loads(line)["output"] for line in (shared_data / "alpaca_eval" / "eval.jsonl").read_text()
               .splitlines()]
    docs, responses = [], []
    for i, doc in enumerate(rows(data)[::9]):
        real = outputs[(i * 13) % len(outputs)]
        variants = [real, real.lower(), real.upper(), real.replace(",", ""),
                    "Sure, here is my answer:\n" + real.replace(",", "").lower(), doc["prompt"]]
        docs += [doc] * len(variants)
        responses += variants
    return docs, responses


@pytest.mark.slow
def test_four_numbers_equal_lm_eval_on_real_responses(data, shared_data):
    docs, responses = corpus(data, shared_data)
    examples = {e.meta["key"]: e for e in task(data=str(data)).examples()}
    numbers, grades = harness_numbers([examples[d["key"]] for d in docs], responses)
    expected, results = lm_eval_numbers(docs, responses)

    assert set(numbers) == set(NAMES) and list(numbers)[0] == "prompt_level_strict_acc"
    assert numbers == pytest.approx(expected, rel=1e-12)
    for grade, result in zip(grades, results, strict=True):  # and response by response
        assert grade.value == float(result["prompt_level_strict_acc"])
        assert grade.metrics["prompt_level_loose_acc"] == float(result["prompt_level_loose_acc"])
        assert grade.metrics["instructions"] == len(result["inst_level_strict_acc"])
    # the responses are discriminating: both outcomes occur, loose differs from strict, and a macro average
    # of the per-prompt rates (the wrong aggregation) would not pass
    assert all(0.05 < numbers[name] < 0.95 for name in NAMES)
    assert numbers["prompt_level_loose_acc"] > numbers["prompt_level_strict_acc"]
    macro = sum(g.metrics["inst_strict_rate"] for g in grades) / len(grades)
    assert abs(macro - expected["inst_level_strict_acc"]) > 1e-3


def test_bad_meta_fails_that_example_only(data):
    good = by_key(data, 1001)[0]
    unknown = harness.Example(good.prompt, meta={"instruction_id_list": ["no:such_check"], "kwargs": [{}]}, id="x")
    bare = harness.Example(good.prompt, id="y")
    grades = harness.verify(get_verifier("ifeval"), [(unknown, "text"), (bare, "text"), (good, "Kyoto awaits.")])
    assert "no:such_check" in grades[0].error and "instruction_id_list" in grades[1].error
    assert grades[2].value == 1.0 and grades[2].error is None


MISSING_PUNKT = """
import sys
import nltk
nltk.data.path.clear()
def refuse(*args, **kwargs):
    sys.exit("a download was attempted")
nltk.download = refuse
from harness.errors import HarnessError
from harness.plugins import get_verifier
try:
    get_verifier("ifeval")
except HarnessError as exc:
    print(exc)
    sys.exit(3 if "lm_eval.tasks.ifeval.instructions_util" in sys.modules else 0)
sys.exit("no error")
"""


def test_missing_punkt_is_a_one_line_error_without_download(tmp_path):
    empty = tmp_path / "nltk_data"
    empty.mkdir()
    env = {**os.environ, "NLTK_DATA": str(empty), "HARNESS_DATA": str(tmp_path), "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", MISSING_PUNKT], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    (line,) = result.stdout.splitlines()
    assert "punkt_tab" in line and "NLTK_DATA" in line and "nltk.downloader" in line


def test_punkt_is_found_in_the_shared_data_without_nltk_data(tmp_path, shared_data):
    env = {k: v for k, v in os.environ.items() if k != "NLTK_DATA"} | {"HARNESS_DATA": str(shared_data),
                                                                          "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", MISSING_PUNKT], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1 and result.stderr.strip().endswith("no error"), result.stderr[-2000:]


# -- end to end -------------------------------------------------------------------------------------

vllm = pytest.mark.vllm


@vllm
def test_ifeval_run_through_vllm_reports_lm_evals_numbers(tmp_path, data, smollm2):
    out = tmp_path / "runs"
    result = harness_cli("run", "--policy", "smollm2", "--task", "ifeval", "--task-arg", f"data={data}",
                         "--limit", "3", "--max-tokens", "64", "--backend", "vllm", "-o", str(out), check=True)
    assert "engine: vllm" in result.stderr
    (run_dir,) = [p.parent for p in out.glob("*/summary.json")]
    records, summary = read_record(run_dir)
    assert summary.grader == "ifeval" and summary.counts.extraction_failures == 0
    responses = [r.chosen.completion.text for r in records]
    assert [r.example.id for r in records] == [f"ifeval-{d['key']}" for d in rows(data)[:3]]
    expected, _ = lm_eval_numbers(rows(data)[:3], responses)
    reported = {summary.metric.name: summary.metric.value, **{k: v.value for k, v in summary.metrics.items()}}
    assert reported == pytest.approx(expected)


@pytest.mark.slow
def test_missing_punkt_stops_the_run_before_generation(tmp_path, data):
    empty = tmp_path / "nltk_data"
    empty.mkdir()
    result = harness_cli("run", "--task", "ifeval", "--task-arg", f"data={data}", "--limit", "1",
                         "-o", str(tmp_path / "runs"),
                         env={"NLTK_DATA": str(empty), "HARNESS_DATA": str(tmp_path), "HOME": str(tmp_path)})
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = [x for x in result.stderr.splitlines() if not x.startswith("warning:")]  # warnings: other plugins
    assert "punkt_tab" in line and "NLTK_DATA" in line
    assert not list((tmp_path / "runs").glob("*/samples.jsonl"))
