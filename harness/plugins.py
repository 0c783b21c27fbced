"""Plugin discovery: every plugin, built-in or third-party, comes from the ``harness`` entry-point group."""

from __future__ import annotations

import functools
import importlib.metadata
from dataclasses import dataclass, field
from typing import Any

import pluggy

from harness import hookspecs
from harness.errors import HarnessError, choices
from harness.types import Sampler, Task, Verifier

hookimpl = pluggy.HookimplMarker("harness")

KINDS: dict[str, tuple[str, type]] = {
    "task": ("register_tasks", Task),
    "verifier": ("register_verifiers", Verifier),
    "sampler": ("register_samplers", Sampler),
}


@dataclass
class Registry:
    """What the installed plugins registered, with where each came from and what failed."""

    components: dict[str, dict[str, Any]] = field(default_factory=lambda: {k: {} for k in KINDS})
    sources: dict[tuple[str, str], str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def get(self, kind: str, name: str) -> Any:
        found = self.components[kind]
        if name not in found:
            raise choices(kind, name, list(found))
        return found[name]

    def add(self, kind: str, obj: Any, source: str) -> None:
        name = getattr(obj, "name", None)
        if not isinstance(name, str) or not isinstance(obj, KINDS[kind][1]):
            self.problems.append(f"plugin {source}: {kind} {name or obj!r} breaks the {kind} contract; skipped")
            return
        if name in self.components[kind]:
            raise HarnessError(
                f"{kind} {name!r} is registered twice: by {self.sources[kind, name]} and by {source}"
            )
        self.components[kind][name] = obj
        self.sources[kind, name] = source


def _source(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name if dist else '?'}:{ep.name}"


@functools.cache
def registry() -> Registry:
    """Load every entry point of group ``harness`` once; a broken plugin is reported, not fatal."""
    pm = pluggy.PluginManager("harness")
    pm.add_hookspecs(hookspecs)
    reg = Registry()
    for ep in sorted(importlib.metadata.entry_points(group="harness"), key=lambda e: e.name):
        source = _source(ep)
        try:
            pm.register(ep.load(), name=source)
        except Exception as exc:  # a third-party plugin may fail in any way
            reg.problems.append(f"plugin {source} failed to load: {type(exc).__name__}: {exc}")
    for kind, (hook, _) in KINDS.items():
        for impl in getattr(pm.hook, hook).get_hookimpls():
            try:
                objs = list(impl.function())
            except Exception as exc:
                reg.problems.append(f"plugin {impl.plugin_name}: {hook}() raised {type(exc).__name__}: {exc}")
                continue
            for obj in objs:
                reg.add(kind, obj, impl.plugin_name)
    return reg


def get_task(name: str) -> Task:
    """The registered task called ``name``."""
    return registry().get("task", name)


def get_verifier(name: str) -> Verifier:
    """The registered verifier called ``name``."""
    return registry().get("verifier", name)


def get_sampler(name: str) -> Sampler:
    """The registered sampler called ``name``."""
    return registry().get("sampler", name)
