"""End to end through the real CLI: records, resume after kill -9, re-scoring, leaderboard."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import HARNESS, ROOT, harness_cli

pytestmark = pytest.mark.slow  # every test here runs the real CLI in fresh processes


def record(run_dir: Path) -> tuple[list[dict], dict]:
    rows = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    return rows, json.loads((run_dir / "summary.json").read_text())


def cached(cache: Path) -> int:
    """Samples committed to the SQLite cache (0 before it exists); reading never blocks the writer (WAL)."""
    if not cache.exists():
        return 0
    with contextlib.closing(sqlite3.connect(cache, timeout=30)) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
        except sqlite3.OperationalError:  # the table is being created
            return 0


def only_run(output: Path) -> Path:
    runs = [p.parent for p in output.glob("*/summary.json")]
    assert len(runs) == 1, runs
    return runs[0]


def test_greedy_run_writes_a_consistent_record(tmp_path, tiny_llama):
    out = tmp_path / "runs"
    harness_cli("run", "--policy", str(tiny_llama), "--limit", "3", "--max-tokens", "16", "--backend", "hf",
                "-o", str(out), check=True)
    rows, summary = record(only_run(out))
    assert [len(r["samples"]) for r in rows] == [1, 1, 1]
    assert summary["counts"]["examples"] == 3 and summary["counts"]["samples"] == 3
    assert summary["engine"]["name"] == "hf" and summary["metric"]["name"] == "accuracy"
    assert summary["config"]["sampler"] == "greedy" and summary["config"]["temperature"] is None
    for row in rows:
        assert row["rendered_prompt"].startswith("<|im_start|>") and row["prompt"] in row["rendered_prompt"]
        sample = row["samples"][0]
        assert 0 < sample["tokens"] <= 16 and sample["logprob"] < 0
        assert sample["grade"]["value"] in (0.0, 0.1, 1.0) and row["selected"] == 0
        assert row["credit"] == (sample["grade"]["value"] == 1.0)
    assert summary["metric"]["value"] == sum(r["credit"] for r in rows) / 3
    assert summary["tokens"]["generated"] == sum(r["samples"][0]["tokens"] for r in rows)


def test_greedy_is_reproducible_and_rerun_generates_nothing(tmp_path, tiny_llama):
    args = ["run", "--policy", str(tiny_llama), "--limit", "2", "--max-tokens", "12", "--backend", "hf"]
    harness_cli(*args, "-o", str(tmp_path / "a"), check=True)
    harness_cli(*args, "-o", str(tmp_path / "b"), check=True)
    written = (only_run(tmp_path / "a") / "summary.json").read_bytes()
    again = harness_cli(*args, "-o", str(tmp_path / "a"), check=True)
    assert "read back, not rewritten" in again.stderr and "engine:" not in again.stderr
    assert (only_run(tmp_path / "a") / "summary.json").read_bytes() == written, "a finished record is never rewritten"
    rows_a, summary_a = record(only_run(tmp_path / "a"))
    rows_b, _ = record(only_run(tmp_path / "b"))
    assert [r["samples"][0]["text"] for r in rows_a] == [r["samples"][0]["text"] for r in rows_b]
    assert summary_a["engine"]["name"] == "hf" and summary_a["numerics"]["backend"] == "hf"


def test_kill_9_then_rerun_resumes_without_regenerating(tmp_path, tiny_llama):
    out = tmp_path / "runs"
    args = ["run", "--policy", str(tiny_llama), "--limit", "12", "--sampler", "bon", "--n", "2",
            "--max-tokens", "48", "--backend", "hf", "--batch-size", "1", "-o", str(out)]
    cache = out / "cache" / "generations.sqlite"
    proc = subprocess.Popen([*HARNESS, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and cached(cache) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = cached(cache)
    assert 2 <= before < 24, f"the run was not killed mid-way ({before} samples cached)"
    assert not list(out.glob("*/summary.json"))

    harness_cli(*args, check=True)
    rows, summary = record(only_run(out))
    assert cached(cache) == 24
    assert summary["cached_samples"] == before, "a finished sample was generated again"
    assert summary["counts"] == summary["counts"] | {"examples": 12, "samples": 24}
    assert sorted(r["id"] for r in rows) == sorted({r["id"] for r in rows})
    assert all(len(r["samples"]) == 2 and r["selected"] in (0, 1) for r in rows)
    best = [max(s["score"]["value"] for s in r["samples"]) for r in rows]  # bon picks a best-scoring sample
    assert all(r["samples"][r["selected"]]["score"]["value"] == b for r, b in zip(rows, best, strict=True))
    assert summary["metric"]["value"] == sum(r["credit"] for r in rows) / 12


def test_score_rescores_without_generating_and_leaderboard_lists_both(tmp_path, tiny_llama):
    out = tmp_path / "runs"
    harness_cli("run", "--policy", str(tiny_llama), "--limit", "3", "--sampler", "bon", "--n", "3",
                "--max-tokens", "16", "--backend", "hf", "-o", str(out), check=True)
    source = only_run(out)
    result = harness_cli("score", str(source), "--grader", "countdown", "--verifier", "countdown", check=True)
    assert "accuracy" in result.stdout
    (rescored,) = [p.parent for p in out.glob("*/summary.json") if p.parent != source]
    rows, summary = record(rescored)
    source_rows, source_summary = record(source)
    assert summary["rescored_from"] == str(source)
    assert [s["text"] for r in rows for s in r["samples"]] == [s["text"] for r in source_rows for s in r["samples"]]
    assert summary["metric"] == source_summary["metric"] and summary["counts"] == source_summary["counts"]
    lb = json.loads(harness_cli("leaderboard", "-o", str(out), "--format", "json", check=True).stdout)
    assert [(r["sampler"], r["n"], r["verifier"], r["options"]) for r in lb] == [("bon", 3, "countdown",
                                                                                   "max_tokens=16 backend=hf")] * 2
    low, high = lb[0]["ci95"]
    assert low <= lb[0]["value"] <= high and not math.isnan(low)
    md = harness_cli("leaderboard", "-o", str(out), "--format", "md", check=True).stdout
    assert md.splitlines()[0].startswith("| policy | task | sampler | n |") and "countdown" in md
    csv_text = harness_cli("leaderboard", "-o", str(out), "--format", "csv", check=True).stdout
    assert csv_text.splitlines()[0].startswith("policy,task,sampler,n,options,verifier,metric,value,ci95")
    table = harness_cli("leaderboard", "-o", str(out), check=True).stdout
    assert "harness leaderboard" in table and "bon" in table


@pytest.mark.parametrize("variant", ["chat", "plain"])
def test_prompt_rendering_is_recorded(tmp_path, tiny_llama, variant):
    extra = ["--system-prompt", "Be terse."] if variant == "chat" else ["--no-chat-template"]
    harness_cli("run", "--policy", str(tiny_llama), "--limit", "1", "--max-tokens", "4", "--backend", "hf",
                *extra, "-o", str(tmp_path), check=True)
    rows, _ = record(only_run(tmp_path))
    rendered = rows[0]["rendered_prompt"]
    if variant == "chat":
        assert "<|im_start|>system\nBe terse.<|im_end|>" in rendered and rendered.count("<|im_start|>user") == 2
    else:
        assert "<|im_start|>" not in rendered and rendered.endswith(rows[0]["prompt"])


@pytest.mark.skipif(os.environ.get("HARNESS_SKIP_VLLM") == "1", reason="HARNESS_SKIP_VLLM=1")
@pytest.mark.vllm
def test_the_screen_shows_the_harness_lines_and_the_run_keeps_the_library_chatter(tmp_path, smollm2):
    result = harness_cli("run", "--policy", "smollm2", "--backend", "vllm", "--limit", "2", "--max-tokens", "8",
                         "-o", str(tmp_path), check=True)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    own = ("engine: vllm", "generating", "grading", "record:")
    assert all(line.startswith(own) for line in lines), lines
    log = only_run(tmp_path) / "engine.log"
    assert "vllm" in log.read_text().lower() and len(log.read_text().splitlines()) > 5


def test_library_output_goes_to_the_log_and_its_tail_shows_on_failure(tmp_path):
    code = (
        "import os, sys, logging, warnings\n"
        "from pathlib import Path\n"
        "from harness.console import console, quiet\n"
        "try:\n"
        f"    with quiet(Path({str(tmp_path / 'engine.log')!r})):\n"
        "        os.write(2, b'C++ banner on fd 2\\n'); print('python print')\n"
        "        logging.getLogger('vllm.engine').warning('vllm warning')\n"
        "        warnings.warn('a FutureWarning', FutureWarning)\n"
        "        console.print('harness line')\n"
        "        raise RuntimeError('engine died')\n"
        "except RuntimeError:\n"
        "    sys.exit(3)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 3 and result.stdout == ""
    log = (tmp_path / "engine.log").read_text()
    for chatter in ("C++ banner on fd 2", "python print", "vllm warning", "a FutureWarning"):
        assert chatter in log
    assert "harness line" in result.stderr and "last lines of" in result.stderr and "C++ banner" in result.stderr
