"""Plugin discovery and components: every plugin, built-in or third-party, comes from the ``harness`` entry-point group.

A component is named by a spec, ``NAME`` or ``NAME:ARG`` plus ``KEY=VALUE`` options
(``rm:path/to/model``, ``winrate:rm:PATH``); a registered object that has a
``configure(*args, **options)`` method is a factory, called with them to build the component.
A factory is checked by its ``configure`` and its kind's data members when registered, and what
it builds against the full contract when built.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pluggy

from harness import hookspecs
from harness.errors import HarnessError, choices, describe
from harness.types import (
    OptionalMembers,
    Sampler,
    SamplerOptional,
    Task,
    TaskOptional,
    Verifier,
    VerifierOptional,
    data_members,
)

hookimpl = pluggy.HookimplMarker("harness")


@dataclass(frozen=True)
class Kind:
    """One kind of component: the hook that registers it, its contract and the optional members it may define."""

    hook: str
    contract: type
    optional: type[OptionalMembers]


KINDS: dict[str, Kind] = {
    "task": Kind("register_tasks", Task, TaskOptional),
    "verifier": Kind("register_verifiers", Verifier, VerifierOptional),
    "sampler": Kind("register_samplers", Sampler, SamplerOptional),
}


@dataclass(frozen=True)
class Spec:
    """A component as the user named it: ``name``, positional ``args`` (from ``name:ARG``) and keyword ``options``."""

    kind: str
    name: str
    args: tuple[str, ...] = ()
    options: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, kind: str, text: str, options: dict[str, str] | None = None) -> Spec:
        name, sep, arg = text.partition(":")
        if not name or (sep and not arg):
            raise HarnessError(f"{kind} {text!r} is not NAME or NAME:ARG")
        return cls(kind, name, (arg,) if sep else (), tuple(sorted((options or {}).items())))

    def __str__(self) -> str:
        return ":".join((self.name, *self.args))


def parse_options(flag: str, pairs: list[str] | None) -> dict[str, str]:
    """``KEY=VALUE`` strings (``--task-arg``, ``--verifier-arg``, ...) as a dict; anything else is a one-line error."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise HarnessError(f"{flag} takes KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


T = TypeVar("T")


def with_options(component: T, name: str, options: dict[str, Any],
                 parse: Callable[[str, Any], Any] | None = None) -> T:
    """A copy of a dataclass component with ``options`` applied, each value through ``parse(key, value)``: the
    ``configure`` of a task or verifier whose options are its fields. An unknown key is a one-line error."""
    fields = [f.name for f in dataclasses.fields(component)]
    changes = {}
    for key, value in options.items():
        if key not in fields:
            raise choices(f"{name} option", key, fields)
        changes[key] = parse(key, value) if parse else value
    return dataclasses.replace(component, **changes)


def as_text(key: str, value: Any) -> str | None:
    """An option kept as text (a path, a name), for ``with_options``."""
    return None if value is None else str(value)


def int_option(component: str, key: str, value: Any, low: int | None = None) -> int:
    """A component's integer option (``--task-arg shots=1``), at least ``low``; anything else is a one-line error."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, float) and value != number or low is not None and number < low:
        bound = f" >= {low}" if low is not None else ""
        raise HarnessError(f"{component} option {key}={value!r} must be an integer{bound}")
    return number


@dataclass
class Registry:
    """What the installed plugins registered, with where each came from and what failed."""

    components: dict[str, dict[str, Any]] = field(default_factory=lambda: {k: {} for k in KINDS})
    sources: dict[tuple[str, str], str] = field(default_factory=dict)
    versions: dict[str, str | None] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    manager: pluggy.PluginManager | None = field(default=None, repr=False)

    def get(self, kind: str, name: str) -> Any:
        found = self.components[kind]
        if name not in found:
            raise choices(kind, name, list(found))
        return found[name]

    def add(self, kind: str, obj: Any, source: str) -> None:
        """Register ``obj`` if it keeps the contract: a factory its kind's data members and a callable ``configure``,
        anything else the whole Protocol."""
        name = getattr(obj, "name", None)
        if not isinstance(name, str) or not _keeps_contract(KINDS[kind], obj):
            self.problems.append(f"plugin {source}: {kind} {name or obj!r} breaks the {kind} contract; skipped")
            return
        if name in self.components[kind]:
            raise HarnessError(
                f"{kind} {name!r} is registered twice: by {self.sources[kind, name]} and by {source}"
            )
        self.components[kind][name] = obj
        self.sources[kind, name] = source

    def build(self, spec: Spec) -> Any:
        """The component a spec names, configured with its arguments; a bad argument is the user's one-line error."""
        obj = self.get(spec.kind, spec.name)
        kind = KINDS[spec.kind]
        configure = kind.optional.of(obj).configure
        if configure is None:
            if spec.args or spec.options:
                raise HarnessError(f"{spec.kind} {spec.name!r} takes no arguments; got {spec}")
            return obj
        source = self.sources[spec.kind, spec.name]
        try:
            built = configure(*spec.args, **dict(spec.options))
        except HarnessError:
            raise
        except TypeError as exc:
            raise HarnessError(f"{spec.kind} {spec.name!r} does not take these arguments ({exc})") from None
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # plugin code, SystemExit included: report it as that plugin's
            raise HarnessError(f"{spec.kind} {spec} from plugin {source} failed to "
                               f"configure: {describe(exc)}") from None
        if not isinstance(built, kind.contract):
            raise HarnessError(f"{spec.kind} {spec} from plugin {source}: configure() returned "
                               f"{type(built).__name__}, which breaks the {spec.kind} contract (needs "
                               f"{', '.join(data_members(kind.contract))} and its methods)")
        return built

    def describe(self, spec: Spec) -> dict[str, Any]:
        """What a record keeps of a component so that a run can be reproduced from it alone."""
        source = self.sources[spec.kind, spec.name]
        dist = source.split(":", 1)[0]
        return {"name": spec.name, "args": list(spec.args), "options": dict(spec.options), "spec": str(spec),
                "plugin": source, "distribution": dist, "version": self.versions.get(dist)}


def _keeps_contract(kind: Kind, obj: Any) -> bool:
    try:
        configure = kind.optional.of(obj).configure
        if configure is not None:  # a factory: described now, checked in full once built
            return callable(configure) and all(hasattr(obj, member) for member in data_members(kind.contract))
        return isinstance(obj, kind.contract)
    except Exception:  # a plugin's property that raises
        return False


def _source(ep: importlib.metadata.EntryPoint) -> tuple[str, str | None]:
    dist = getattr(ep, "dist", None)
    return f"{dist.name if dist else '?'}:{ep.name}", dist.version if dist else None


@functools.cache
def registry() -> Registry:
    """Load every entry point of group ``harness`` once; a broken plugin is reported, not fatal."""
    pm = pluggy.PluginManager("harness")
    pm.add_hookspecs(hookspecs)
    reg = Registry(manager=pm)
    for ep in sorted(importlib.metadata.entry_points(group="harness"), key=lambda e: e.name):
        source, version = _source(ep)
        reg.versions[source.split(":", 1)[0]] = version
        try:
            plugin = ep.load()
            pm.register(plugin, name=source)
            pm.check_pending()  # a hook that matches no spec (a misspelt name) breaks the contract
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a third-party plugin may fail in any way, sys.exit() included
            if pm.get_plugin(source) is not None:
                pm.unregister(name=source)
            reg.problems.append(f"plugin {source} failed to load: {describe(exc)}")
    for kind, spec in KINDS.items():
        for impl in getattr(pm.hook, spec.hook).get_hookimpls():
            try:
                objs = list(impl.function())
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                reg.problems.append(f"plugin {impl.plugin_name}: {spec.hook}() raised {describe(exc)}")
                continue
            for obj in objs:
                reg.add(kind, obj, impl.plugin_name)
    return reg


def add_commands(app: Any) -> list[str]:
    """Let every plugin add its commands to the ``harness`` Typer app; one that fails is reported and left out."""
    reg = registry()
    failed = []
    for impl in reg.manager.hook.register_commands.get_hookimpls() if reg.manager else []:
        try:
            impl.function(app=app)
        except Exception as exc:  # a third-party plugin may fail in any way
            failed.append(f"plugin {impl.plugin_name}: register_commands() raised {describe(exc)}")
    return failed


def get_task(spec: str) -> Task:
    """The task a spec names (``countdown``), configured."""
    return registry().build(Spec.parse("task", spec))


def get_verifier(spec: str) -> Verifier:
    """The verifier a spec names (``countdown``, ``rm:path/to/model``), configured."""
    return registry().build(Spec.parse("verifier", spec))


def get_sampler(spec: str) -> Sampler:
    """The sampler a spec names (``bon``), configured."""
    return registry().build(Spec.parse("sampler", spec))
