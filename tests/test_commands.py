"""Training attaches to the command line as a plugin: the core imports nothing from it and works without it."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

CORE = ROOT / "harness"
RECORDS = ROOT / "tests" / "fixtures" / "records-v1"

# Runs the command line with ``trl`` made unimportable, as on an install without the training extra.
WITHOUT_TRL = """
import sys
sys.modules["trl"] = None
sys.argv = ["harness", *sys.argv[1:]]
from harness.cli import app
try:
    app()
finally:
    assert "trl" not in [m for m in sys.modules if sys.modules[m] is not None], "the core imported trl"
"""


def without_trl(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HARNESS_NO_PRELOAD": "1"}
    return subprocess.run([sys.executable, "-c", WITHOUT_TRL, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=env)


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_core_imports_nothing_from_the_training_package():
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p)
                                                  if m.split(".")[0] in ("policies", "trl"))
                 for p in CORE.rglob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}


def test_without_trl_the_core_commands_work_and_train_names_the_extra(tmp_path):
    helped = without_trl("--help")
    assert helped.returncode == 0, helped.stderr
    for command in ("run", "score", "leaderboard", "train", "policies"):
        assert command in helped.stdout

    source = RECORDS / "canned-countdown-greedy-n1-1403cc8b"
    rescored = without_trl("score", str(source), "-o", str(tmp_path))
    assert rescored.returncode == 0, rescored.stderr
    (record,) = tmp_path.glob("*/summary.json")

    board = without_trl("leaderboard", "-o", str(tmp_path), "--format", "csv")
    assert board.returncode == 0, board.stderr
    assert record.parent.name in board.stdout

    train = without_trl("train", "sft", "--recipe", "quick")
    assert train.returncode == 2
    lines = [line for line in train.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "harness[train]" in lines[0] and "trl" in lines[0], train.stderr
    assert "Traceback" not in train.stderr
