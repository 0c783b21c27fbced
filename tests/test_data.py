"""Every shipped recipe's every data source, built offline from tiny local files of the hub's schema; halves that
split a source's prompts into two disjoint parts; a hub id without a local copy stops in one line. No training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import harness
from harness.splits import fraction
from policies import data, recipe
from policies.data import Pair
from tasks.alpaca import instruction_split

RECIPES = ("quick", "quick-instruct", "paper", "paper-instruct")
HUB_IDS = ("HuggingFaceTB/smol-smoltalk", "HuggingFaceH4/ultrafeedback_binarized", "Jiayi-Pan/Countdown-Tasks-3to4")


def sections() -> list[tuple[str, str, str]]:
    """(recipe, --recipe value, method) for every section of every shipped recipe."""
    out = []
    for name in RECIPES:
        for section, method in recipe.sections_of(recipe.read(name)).items():
            out.append((name, name if section == method else f"{name}:{section}", method))
    return out


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n", encoding="utf-8")


INSTRUCTIONS = [f"Explain topic number {i} in two sentences." for i in range(80)]


def _chat(prompt: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


@pytest.fixture
def mirror(tmp_path, monkeypatch) -> Path:
    """A data root holding every file the recipes read, hub datasets as OWNER/NAME/SPLIT.jsonl, each a few rows of
    the original's schema plus one line that is not JSON."""
    root = tmp_path / "data"
    _jsonl(root / "lima/train.jsonl", [{"conversations": [q, "An answer."]} for q in INSTRUCTIONS[:5]])
    _jsonl(root / "alpaca_eval/eval.jsonl", [{"instruction": q, "output": f"Reference {i}.", "generator": "gpt4_turbo",
                                              "dataset": "x"} for i, q in enumerate(INSTRUCTIONS)])
    _jsonl(root / "alpaca_eval/judge_annotations.jsonl", [
        {"instruction": q, "dataset": "x", "output_1": "Reference.", "generator_1": "gpt4_1106_preview",
         "output_2": "Other.", "generator_2": "m", "annotator": "a", "preference": 1.2} for q in INSTRUCTIONS])
    _jsonl(root / "preferences/hh_rlhf_harmless_base_test.jsonl", [
        {"prompt": f"\n\nHuman: {q}\n\nAssistant:", "chosen": " Kind.", "rejected": " Rude."} for q in INSTRUCTIONS])
    _jsonl(root / "HuggingFaceTB/smol-smoltalk/train.jsonl", [{"messages": _chat(q, "Sure."), "source": "x"}
                                                              for q in INSTRUCTIONS[:5]])
    _jsonl(root / "HuggingFaceH4/ultrafeedback_binarized/train_prefs.jsonl", [
        {"prompt": q, "prompt_id": str(i), "chosen": _chat(q, "Clear."), "rejected": _chat(q, "Vague."),
         "messages": _chat(q, "Clear."), "score_chosen": 8.0, "score_rejected": 3.0}
        for i, q in enumerate(INSTRUCTIONS)])
    _jsonl(root / "Jiayi-Pan/Countdown-Tasks-3to4/train.jsonl", [
        {"nums": [n, n + 1, n + 2], "target": 3 * n + 3} for n in range(1, 60)])
    _jsonl(root / "paper-countdown-rft.jsonl", [{"prompt": _chat("Reach 6 with 1 2 3.", "")[:1],
                                                 "completion": [{"role": "assistant", "content": "1 + 2 + 3"}]}])
    monkeypatch.setenv("HARNESS_DATA", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return root


def _never_the_hub(monkeypatch) -> None:
    import datasets

    def refuse(*args, **kwargs):
        pytest.fail(f"the hub was asked for {args[:1]}")

    monkeypatch.setattr(datasets, "load_dataset", refuse)


def _not_cached(monkeypatch) -> None:
    import datasets

    def missing(*args, **kwargs):
        raise ConnectionError(f"no cached copy of {args[:1]} and the hub is offline")

    monkeypatch.setattr(datasets, "load_dataset", missing)


@pytest.mark.parametrize("name, spec, method", sections())
def test_every_recipe_source_builds_from_local_files_of_the_hub_schema(mirror, monkeypatch, name, spec, method):
    _never_the_hub(monkeypatch)
    config = recipe.load(spec, method)
    kind = data.KIND_OF_METHOD[method]
    sources = [{**d, "rows": min(d.get("rows", 50), 50)} if d["source"] == "task" else d for d in config.data]
    rows, counts = data.load(sources, kind, seed=config.seed)  # generated problems: a few suffice
    assert len(counts) == len(config.data) and rows
    for count, source in zip(counts, config.data, strict=True):
        assert count.kept > 0, count
        if source["source"] != "task":  # generated problems are no file
            assert Path(count.path).is_relative_to(mirror), count.path
            assert count.reasons.get("not valid JSON") == 1, count  # every line of the file was read
    wanted = {"sft": dict, "pref": Pair, "prompt": harness.Example}[kind]
    assert all(isinstance(r, wanted) for r in rows)


def _where(source: dict) -> str | None:
    return source.get("path") or data.SOURCES[source["source"]].default


def hub_sections() -> list[tuple[str, str]]:
    """(--recipe value, method) of every section that reads a hub dataset."""
    return [(spec, method) for _, spec, method in sections()
            if any(_where(d) in HUB_IDS for d in recipe.load(spec, method).data)]


@pytest.mark.parametrize("spec, method", hub_sections())
def test_without_a_local_copy_the_first_hub_access_is_one_line_naming_the_hub_id(tmp_path, monkeypatch, spec, method):
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _not_cached(monkeypatch)  # offline, the datasets client reads only its cache: empty here
    config = recipe.load(spec, method)
    first = next(_where(d) for d in config.data if _where(d) in HUB_IDS)
    with pytest.raises(harness.HarnessError) as error:
        data.load(config.data, data.KIND_OF_METHOD[method])
    message = str(error.value)
    assert "\n" not in message and f"cannot load data {first!r}" in message and "HF_HUB_OFFLINE" in message


def test_the_paper_recipes_ask_the_hub_for_splits_it_has_and_names_apart_from_quick():
    splits_of = {"HuggingFaceH4/ultrafeedback_binarized": {"train_prefs", "test_prefs", "train_sft", "test_sft",
                                                           "train_gen", "test_gen"}}
    quick_names = {"sft", "dpo", "rm", "rloo"}
    for name, spec, method in sections():
        config = recipe.load(spec, method)
        for source in config.data:
            where = _where(source)
            if where in splits_of:
                split = source.get("split", "train_prefs" if source["source"] == "ultrafeedback" else "train")
                assert split in splits_of[where], (spec, method, source)
        if name != "quick":
            assert config.base not in quick_names, (spec, method, config.base)
            reward = getattr(config, "reward", None) or ""
            assert reward.removeprefix("rm:") not in quick_names, (spec, method, reward)


def test_paper_micro_batches_hold_at_most_8_sequences():
    for name, spec, method in sections():
        if not name.startswith("paper"):
            continue
        config = recipe.load(spec, method)
        per_step = config.prompts_per_step * config.k if method == "rloo" else config.batch_size * config.grad_accum
        micro = per_step // config.grad_accum if method == "rloo" else config.batch_size
        sequences = micro * (2 if method in ("dpo", "rm") else 1)  # a preference pair is two sequences
        assert sequences <= 8 and config.gradient_checkpointing, (spec, method, sequences)


def test_halves_split_a_sources_prompts_into_two_disjoint_parts(mirror):
    kept = {}
    for half in ("A", "B"):
        rows, (count,) = data.load([{"source": "instructions", "half": half}], "sft")
        kept[half] = {r["prompt"][0]["content"] for r in rows}
        assert count.other_half + count.kept + count.eval_split == len(INSTRUCTIONS)
    train = {q for q in INSTRUCTIONS if instruction_split(q) == "train"}
    assert kept["A"] and kept["B"] and not kept["A"] & kept["B"] and kept["A"] | kept["B"] == train
    # the halves are apart from a reward model's held-out share (the unsalted hash below eval_fraction)
    assert any(fraction(q) < 0.5 for q in kept["B"]) and any(fraction(q) >= 0.5 for q in kept["A"])
    # preference pairs of the same instructions fall in the same halves (one hash of the normalised user turns)
    pairs, _ = data.load([{"source": "alpaca-judge", "half": "A"}], "pref")
    assert {p.prompt[0]["content"] for p in pairs} == kept["A"]
    hh, _ = data.load([{"source": "hh-harmless", "half": "B"}], "pref")
    assert {p.prompt[0]["content"] for p in hh} == kept["B"]


def test_a_question_spelled_with_other_case_or_spacing_lands_in_the_same_half_with_the_same_digest():
    from policies.lineage import row_digest

    halves = set()
    for question in INSTRUCTIONS[:20]:
        spellings = [question, f"  {question.upper()}\n", question.replace(" ", "   \t").casefold()]
        rows = [data.sft_row([{"role": "user", "content": q}], "An answer.") for q in spellings]
        rows += [Pair([{"role": "system", "content": "Be brief."}, {"role": "user", "content": q}], "Yes.", "No.")
                 for q in spellings] + [harness.Example(q) for q in spellings]
        assert len({data.half_of(r) for r in rows}) == 1 and len({row_digest(r) for r in rows}) == 1, question
        halves.add(data.half_of(rows[0]))
    assert halves == {"A", "B"}
    one, two = (data.sft_row([{"role": "user", "content": q}], "An answer.") for q in ("Name a river.", "Name a sea."))
    assert row_digest(one) != row_digest(two)


def test_an_evaluation_half_instruction_without_an_output_is_excluded_not_malformed(tmp_path):
    path = tmp_path / "instructions.jsonl"
    _jsonl(path, [{"instruction": q} for q in INSTRUCTIONS] + [{"instruction": q, "output": "An answer."}
                                                                for q in INSTRUCTIONS])
    evaluation = sum(instruction_split(q) != "train" for q in INSTRUCTIONS)
    rows, (count,) = data.load([{"source": "instructions", "path": str(path)}], "sft")
    assert count.eval_split == 2 * evaluation and count.kept == len(INSTRUCTIONS) - evaluation
    assert count.reasons == {"not valid JSON": 1, "missing or empty 'output'": len(INSTRUCTIONS) - evaluation}


def test_instructions_as_sft_are_the_reference_answers_of_the_train_half(mirror):
    rows, (count,) = data.load([{"source": "instructions"}], "sft")
    by_prompt = {r["prompt"][0]["content"]: r["completion"][0]["content"] for r in rows}
    train = [i for i, q in enumerate(INSTRUCTIONS) if instruction_split(q) == "train"]
    assert by_prompt == {INSTRUCTIONS[i]: f"Reference {i}." for i in train}
    assert count.eval_split == len(INSTRUCTIONS) - len(train)


@pytest.mark.parametrize("spec, message", [
    ({"source": "task", "task": "countdown", "half": "A"}, "half= splits a file's prompts; task names no file"),
    ({"source": "lima", "half": "C"}, "data source lima: half='C' must be A or B"),
])
def test_bad_halves_are_one_line(spec, message):
    with pytest.raises(harness.HarnessError, match=message):
        data.check([spec], "sft")


def test_countdown_rows_no_expression_with_every_number_solves_are_skipped_and_counted(tmp_path):
    """20 * 30 reaches 600 but leaves 10 unused, and nothing reaches 97 from three ones: both are left out."""
    path = tmp_path / "countdown.jsonl"
    _jsonl(path, [{"nums": [1, 2, 3], "target": 6}, {"nums": [4, 9, 2], "target": 17},
                  {"nums": [10, 20, 30], "target": 600}, {"nums": [1, 1, 1], "target": 97}])
    rows, (count,) = data.load([{"source": "countdown-data", "path": str(path)}], "prompt")
    assert [r.meta["numbers"] for r in rows] == [[1, 2, 3], [4, 9, 2]]
    assert count.unsolvable == 2 and count.kept == 2 and count.skipped == 1 and count.eval_split == 0


def test_countdown_data_solves_only_the_rows_it_meets_before_it_has_kept_enough(tmp_path, monkeypatch):
    """Every other row is unsolvable: a sample of 5 solves the 5 it keeps and the unsolvable ones met on the way."""
    import tasks.countdown

    path = tmp_path / "countdown.jsonl"
    _jsonl(path, [{"nums": [n, n + 1, n + 2], "target": 3 * n + 3 if n % 2 else 10_000 + n} for n in range(1, 201)])
    calls = []
    monkeypatch.setattr(tasks.countdown, "solve", lambda numbers, target: calls.append(target) or
                        (None if target > 9_999 else "expression"))
    rows, (count,) = data.load([{"source": "countdown-data", "path": str(path), "rows": 5}], "prompt")
    assert count.kept == len(rows) == 5 and all(r.meta["target"] < 10_000 for r in rows)
    assert len(calls) == count.kept + count.unsolvable and count.unsolvable > 0
    assert count.read - count.skipped - count.eval_split > 2 * len(calls)  # most train-split rows never solved
    again, _ = data.load([{"source": "countdown-data", "path": str(path), "rows": 5}], "prompt")
    assert [r.id for r in again] == [r.id for r in rows]  # the same sample for the same seed


def test_a_missing_local_file_is_no_hub_dataset_even_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(harness.HarnessError) as error:
        data.load([{"source": "jsonl", "path": "paper-countdown-rft.jsonl"}], "sft")
    assert "paper-countdown-rft.jsonl" in str(error.value) and "hub" not in str(error.value)
