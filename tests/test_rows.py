"""The one row reader every built-in task uses: local JSONL or JSON list, else a dataset; one-line errors."""

from pathlib import Path

import pytest

from harness import HarnessError
from harness.rows import read_file, read_rows


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
    with pytest.raises(HarnessError, match=r"cannot load demo data 'owner/absent' \(.*\); pass data=PATH$") as hub:
        read_rows("owner/absent", "demo", "pass data=PATH")  # offline in tests (conftest)
    assert "\n" not in str(hub.value)
