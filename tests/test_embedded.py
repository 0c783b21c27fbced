"""The embedded default policy is converted once, on first use, with the harness's console only."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.slow
def test_first_use_converts_with_one_console(tmp_path):
    convert = "from harness.policy import embedded_model; print(embedded_model())"
    env = {**os.environ, "HARNESS_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", convert], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=env)
    assert done.returncode == 0, done.stderr
    model = tmp_path / "models" / "smollm2-135m-instruct"
    assert done.stdout.strip().endswith(str(model))
    assert (model / "config.json").is_file()
    assert "GGUF tensors" not in done.stderr  # the GGUF reader's own tqdm bar stays in the conversion log
    assert "converting SmolLM2" in done.stderr and "converted the embedded policy" in done.stderr
    assert "GGUF tensors" in (model.parent / f"{model.name}.convert.log").read_text()
