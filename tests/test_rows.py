"""The one row reader every built-in task uses: local JSONL or JSON list, else a dataset; one-line errors."""

import json
from pathlib import Path

import pytest

from harness import HarnessError
from harness.plugins import Spec, registry
from harness.rows import read_file, read_rows
from tasks.countdown import NEEDS


def test_jsonl_skips_blank_lines_and_names_the_bad_line(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text('{"a": 1}\n\n{"a": 2}\n')
    assert read_rows(str(good), "demo", "pass data=PATH") == [{"a": 1}, {"a": 2}]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n\n{"a": \n')
    with pytest.raises(HarnessError, match=r"bad\.jsonl:3: not valid JSON"):
        read_file(bad, "demo")


def test_a_json_list_file_is_rows(tmp_path: Path) -> None:
    listed = tmp_path / "list.json"
    listed.write_text('[{"a": 1}, {"a": 2}, {"a": 3}]')
    assert [row["a"] for row in read_rows(str(listed), "demo", "")] == [1, 2, 3]


def test_missing_file_and_unreachable_hub_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="cannot read demo data .*nope.jsonl") as missing:
        read_rows(str(tmp_path / "nope.jsonl"), "demo", "")
    assert "\n" not in str(missing.value)
    with pytest.raises(HarnessError, match=r"cannot load demo data 'owner/absent': .* offline .*; mirror it as .* or "
                                           r"pass data=PATH$") as hub:
        read_rows("owner/absent", "demo", "pass data=PATH")  # offline in tests (conftest)
    assert "\n" not in str(hub.value)


def test_a_counting_reader_gets_a_marker_for_each_bad_line(tmp_path: Path) -> None:
    """The training data sources skip and count rows that do not parse instead of stopping."""
    bad = object()
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"a": 1}\n{broken\n\n["a list"]\n{"a": "line\u2028separator"}\n', encoding="utf-8")
    assert read_rows(str(rows), "demo", "", bad_line=bad) == [{"a": 1}, bad, ["a list"], {"a": "line\u2028separator"}]
    listed = tmp_path / "first-row-a-list.jsonl"
    listed.write_text('["a list"]\n{"a": 2}\n')
    assert read_rows(str(listed), "demo", "", bad_line=bad) == [["a list"], {"a": 2}]
    with pytest.raises(HarnessError, match="is not valid JSON"):
        read_rows(str(listed), "demo", "")


def test_a_json_file_may_hold_one_row_and_a_parquet_file_is_read_by_datasets(tmp_path: Path) -> None:
    single = tmp_path / "one.json"
    single.write_text('{\n  "a": 1\n}\n')
    assert read_rows(str(single), "demo", "") == [{"a": 1}]
    import datasets

    parquet = tmp_path / "rows.parquet"
    datasets.Dataset.from_list([{"a": 1}, {"a": 2}]).to_parquet(str(parquet))
    assert [row["a"] for row in read_rows(str(parquet), "demo", "")] == [1, 2]


def _refuse_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def refuse(*args, **kwargs):
        raise ConnectionError(f"the hub was asked for {args[:1]}")

    monkeypatch.setattr(datasets, "load_dataset", refuse)


def test_an_unreachable_split_is_named_and_the_data_word_stands_alone_without_a_kind(monkeypatch) -> None:
    for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)
    _refuse_the_hub(monkeypatch)
    with pytest.raises(HarnessError, match=r"^cannot load data 'owner/absent' \(split dev\) \(.*hub was asked.*\); "
                                           r"offline$"):
        read_rows("owner/absent", "", "offline", split="dev")


def test_a_task_reads_a_hub_dataset_from_its_mirror_and_a_name_from_the_data_directory(tmp_path, monkeypatch):
    """google/IFEval, IFEval's default data, as ``$HARNESS_DATA/google/IFEval/train.jsonl``: the hub is not asked."""
    _refuse_the_hub(monkeypatch)
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path))
    mirror = tmp_path / "google" / "IFEval" / "train.jsonl"
    mirror.parent.mkdir(parents=True)
    mirror.write_text(json.dumps({"key": 7, "prompt": "Say hi.", "instruction_id_list": ["a"], "kwargs": [{}]}))
    examples = list(registry().build(Spec.parse("task", "ifeval", {})).examples())
    assert [(e.id, e.prompt) for e in examples] == [("ifeval-7", "Say hi.")]
    by_name = registry().build(Spec.parse("task", "ifeval", {"data": "google/IFEval/train.jsonl"}))
    assert [e.id for e in by_name.examples()] == ["ifeval-7"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "test.jsonl").write_text(json.dumps({"question": "Two?", "answer": "so\n#### 2"}) + "\n")
    (tmp_path / "mine" / "asks.jsonl").write_text(json.dumps({"instruction": "Say hi.", "output": "Hi."}) + "\n")
    gsm8k = registry().build(Spec.parse("task", "gsm8k", {"data": "mine"}))
    assert [e.reference for e in gsm8k.examples()] == ["2"]
    alpaca = registry().build(Spec.parse("task", "alpaca", {"data": "mine/asks.jsonl"}))
    assert [e.prompt for e in alpaca.examples(split="all")] == ["Say hi."]
    from tasks.alpaca import HUB_DATASET, HUB_FILE

    (tmp_path / HUB_DATASET).mkdir(parents=True)
    (tmp_path / HUB_DATASET / HUB_FILE).write_text(json.dumps([{"instruction": "Count.", "output": "1 2 3."}]))
    hub = registry().build(Spec.parse("task", "alpaca", {}))  # AlpacaEval's own file, from its mirror
    assert [e.prompt for e in hub.examples(split="all")] == ["Count."]


def test_offline_a_hub_dataset_neither_mirrored_nor_cached_is_one_line_naming_the_mirror(tmp_path, monkeypatch):
    """The datasets client is asked (it reads its cache offline) and fails: the error says where a mirror goes; a
    folder of the mirror without the split asked for is no mirror of it."""
    _refuse_the_hub(monkeypatch)
    (tmp_path / "openai" / "gsm8k").mkdir(parents=True)
    (tmp_path / "openai" / "gsm8k" / "train.jsonl").write_text('{"question": "q", "answer": "#### 1"}\n')
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HarnessError) as err:
        registry().build(Spec.parse("task", "gsm8k", {})).examples()
    message = str(err.value)
    assert message.startswith("cannot load GSM8K data 'openai/gsm8k' (split test): a hub dataset neither mirrored here "
                              "nor in the datasets cache, and the hub is offline (HF_HUB_OFFLINE); mirror it as ")
    assert str(tmp_path / "openai" / "gsm8k" / "test.jsonl") in message and "data=PATH" in message


GOOD_AND_BAD = {
    "countdown": ({"nums": [1, 2], "target": 3}, {"nums": [], "target": 3}, NEEDS),
    "countdown-typed": ({"nums": [1, 2], "target": 3}, {"nums": [1, "2"], "target": 3}, NEEDS),
    "countdown-signed": ({"nums": [1, 2], "target": 3}, {"nums": [1, -2], "target": 3}, NEEDS),
    "gsm8k": ({"question": "q", "answer": "so #### 4"}, {"question": "q", "answer": "4"},
              "string fields 'question' and 'answer' ending in '#### <number>'"),
    "alpaca": ({"instruction": "Say hi."}, {"instruction": "  "}, "a non-empty string 'instruction'"),
    "ifeval": ({"key": 1, "prompt": "p", "instruction_id_list": ["a"], "kwargs": [{}]},
               {"key": 2, "prompt": "p", "instruction_id_list": ["a"], "kwargs": []},
               "int key, str prompt, a non-empty instruction_id_list and one kwargs dict per instruction"),
}


@pytest.mark.parametrize("task", sorted(GOOD_AND_BAD))
def test_a_task_names_the_first_bad_row_of_its_data(tmp_path: Path, task: str) -> None:
    good, bad, needs = GOOD_AND_BAD[task]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in (good, bad, good)))
    configured = registry().build(Spec.parse("task", task.split("-")[0], {"data": str(data)}))
    with pytest.raises(HarnessError) as err:
        list(configured.examples(split="test" if task != "alpaca" else "all"))
    assert str(err.value) == f"{'GSM8K' if task == 'gsm8k' else task.split('-')[0]} data {data} row 2: needs {needs}"


def test_a_path_in_the_home_of_no_such_user_is_one_line() -> None:
    with pytest.raises(HarnessError, match=r"^cannot load countdown data '~no-such-user-x/p.jsonl' \(its home "
                                           r"directory is unknown\); fix it$"):
        read_rows("~no-such-user-x/p.jsonl", "countdown", "fix it")
