"""GSM8K end to end on the bundled model through vLLM: majority vote, curves, plot, leaderboard columns."""

from __future__ import annotations

import json

import pytest
from conftest import harness_cli

from harness.curves import pass_at_k

pytestmark = pytest.mark.vllm


def test_gsm8k_majority_vote_through_vllm(tmp_path, shared_data, smollm2):
    out = tmp_path / "runs"
    result = harness_cli("run", "--policy", "smollm2", "--task", "gsm8k", "--task-arg", f"data={shared_data / 'gsm8k'}",
                         "--sampler", "majority", "--n", "4", "--limit", "4", "--max-tokens", "160",
                         "--backend", "vllm", "-o", str(out), check=True)
    assert "engine: vllm" in result.stderr
    (run_dir,) = [p.parent for p in out.glob("*/summary.json")]
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    gold = [json.loads(line)["answer"].split("####")[-1].strip().replace(",", "")
            for line in (shared_data / "gsm8k" / "test.jsonl").read_text().splitlines()[:4]]
    assert [r["reference"] for r in rows] == gold
    assert summary["grader"] == "sympy" and summary["verifier"] is None and summary["metric"]["name"] == "accuracy"
    assert set(summary["metrics"]) == {"strict", "lenient"}
    for row in rows:
        answers = [s["grade"]["answer"] for s in row["samples"]]
        chosen = answers[row["selected"]]
        if chosen is not None:
            assert answers.count(chosen) == max(answers.count(a) for a in answers if a is not None)
        assert row["credit"] == (row["samples"][row["selected"]]["grade"]["value"] == 1.0)
    curves = summary["curves"]
    assert curves["n"] == [1, 2, 4] and curves["samplers"] == ["majority"] and "bon" in curves["skipped"]
    correct = [[s["grade"]["value"] == 1.0 for s in r["samples"]] for r in rows]
    assert curves["pass@k"][-1] == pytest.approx(sum(any(c) for c in correct) / 4)
    assert curves["pass@k"][0] == pytest.approx(sum(pass_at_k(4, sum(c), 1) for c in correct) / 4)
    assert curves["accuracy"]["majority"][-1] == pytest.approx(summary["metric"]["value"])

    board = json.loads(harness_cli("leaderboard", "-o", str(out), "--format", "json", check=True).stdout)
    assert board[0]["@4"] == pytest.approx(summary["metric"]["value"]) and "@1" in board[0]
    png = tmp_path / "curve.png"
    harness_cli("plot", str(run_dir), "--out", str(png), check=True)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
