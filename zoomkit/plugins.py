"""The plugin manager: built-in plugins, entry-point plugins, failure isolation and the component registry."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from zoomkit import hookspecs
from zoomkit.errors import DuplicateComponentError, ZoomkitError
from zoomkit.specs import COMPONENT_KINDS, Registered

ENTRY_POINT_GROUP = "zoomkit"

# Built-ins are ordinary plugins; the core never imports them by name anywhere else.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "zoomkit.builtin.timm_models",
    "zoomkit.builtin.efficientnet_lite",
    "zoomkit.builtin.local_datasets",
    "zoomkit.builtin.zoom_crops",
    "zoomkit.builtin.selection_rules",
    "zoomkit.builtin.imagenet_datasets",
    "zoomkit.builtin.clip_models",
    "zoomkit.builtin.analysis_commands",
    "zoomkit.builtin.imagenet_hard",
    "zoomkit.builtin.hard_commands",
    "zoomkit.builtin.tta_methods",
    "zoomkit.builtin.tta_command",
)


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded or whose hook raised."""

    name: str
    reason: str


@dataclass(frozen=True)
class PluginInfo:
    name: str
    version: str
    hooks: tuple[str, ...]
    builtin: bool


@dataclass
class PluginHost:
    """One pluggy manager plus what went wrong while filling it."""

    pm: pluggy.PluginManager
    failures: list[PluginFailure] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    _components: dict[str, dict[str, Registered]] = field(default_factory=dict)

    def components(self, kind: str) -> dict[str, Registered]:
        """All components of `kind` ("models", "datasets", "crops", "rules", "tta") by name."""
        if kind not in COMPONENT_KINDS:
            raise ZoomkitError(f"unknown component kind {kind!r}; choose from {', '.join(COMPONENT_KINDS)}")
        if kind not in self._components:
            self._components[kind] = self._collect(kind)
        return self._components[kind]

    def _collect(self, kind: str) -> dict[str, Registered]:
        hook = getattr(self.pm.hook, COMPONENT_KINDS[kind])
        found: dict[str, Registered] = {}
        # Call each implementation on its own (in registration order, built-ins first), so one broken
        # plugin cannot take the others down.
        for impl in hook.get_hookimpls():
            try:
                specs = list(impl.function() or ())
            except Exception as exc:  # a third-party hook failed: report it and go on
                self._fail(impl.plugin_name, f"{COMPONENT_KINDS[kind]} raised {_describe(exc)}")
                continue
            for spec in specs:
                if spec.name in found:
                    raise DuplicateComponentError(
                        f"{_singular(kind)} name {spec.name!r} is registered by "
                        f"both plugin {found[spec.name].plugin!r} and plugin {impl.plugin_name!r}; "
                        "uninstall or rename one of them"
                    )
                found[spec.name] = Registered(spec, impl.plugin_name)
        return found

    def get(self, kind: str, name: str) -> Any:
        """The spec called `name`; a family spec whose `matches` accepts it; or a one-line error."""
        components = self.components(kind)
        if name in components:
            return components[name].spec
        if kind in ("models", "datasets"):
            for registered in components.values():
                matches = getattr(registered.spec, "matches", None)
                if matches is not None and matches(name):
                    return registered.spec
        raise ZoomkitError(
            f"unknown {_singular(kind)} {name!r}; `zoomkit list {kind}` shows the available ones"
        )

    def register_commands(self, cli: Any) -> None:
        for impl in self.pm.hook.zoomkit_register_commands.get_hookimpls():
            try:
                impl.function(cli=cli)
            except Exception as exc:
                self._fail(impl.plugin_name, f"zoomkit_register_commands raised {_describe(exc)}")

    def plugins(self) -> list[PluginInfo]:
        infos = []
        for name, plugin in self.pm.list_name_plugin():
            hooks = tuple(sorted(h.name for h in self.pm.get_hookcallers(plugin) or ()))
            infos.append(PluginInfo(name, self.versions.get(name, ""), hooks, name in BUILTIN_PLUGINS))
        return sorted(infos, key=lambda p: (not p.builtin, p.name))

    def _fail(self, name: str, reason: str) -> None:
        failure = PluginFailure(name, reason)
        if failure not in self.failures:
            self.failures.append(failure)


def _describe(exc: BaseException) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    place = f" at {where.filename}:{where.lineno}" if where else ""
    return f"{type(exc).__name__}: {exc}{place}"


def _singular(kind: str) -> str:
    return {"crops": "crop strategy", "rules": "selection rule", "tta": "TTA method"}.get(kind, kind[:-1])


def build_host(builtins: Iterable[str] = BUILTIN_PLUGINS, entry_points: bool = True) -> PluginHost:
    """A fresh plugin host with the built-ins and (optionally) every `zoomkit` entry point."""
    pm = pluggy.PluginManager("zoomkit")
    pm.add_hookspecs(hookspecs)
    host = PluginHost(pm)
    from zoomkit import __version__

    for module_name in builtins:
        try:
            pm.register(importlib.import_module(module_name), name=module_name)
        except Exception as exc:  # even a broken built-in must not take the CLI down
            host._fail(module_name, f"failed to load: {_describe(exc)}")
            continue
        host.versions[module_name] = __version__
    if entry_points:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                plugin = ep.load()
                pm.register(plugin, name=ep.name)
            except Exception as exc:  # a broken third-party plugin is named and skipped
                host._fail(ep.name, f"failed to load {ep.value}: {_describe(exc)}")
                continue
            host.versions[ep.name] = ep.dist.version if ep.dist else ""
        for spec in env_plugin_specs():
            try:
                pm.register(load_env_plugin(spec), name=spec)
            except Exception as exc:
                host._fail(spec, f"failed to load {spec} from ${PLUGINS_ENV}: {_describe(exc)}")
                continue
            host.versions[spec] = ""
    return host


PLUGINS_ENV = "ZOOMKIT_PLUGINS"
"""Plugins to load without installing them: `module` or `module:attr`, comma-separated (plugin
development, subprocesses in tests: `ZOOMKIT_PLUGINS=zoomkit.testing:TinyModelPlugin zoomkit list models`).
A class named by `attr` is instantiated."""


def env_plugin_specs() -> list[str]:
    return [s.strip() for s in os.environ.get(PLUGINS_ENV, "").split(",") if s.strip()]


def load_env_plugin(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    plugin: Any = importlib.import_module(module_name)
    for part in filter(None, attr.split(".")):
        plugin = getattr(plugin, part)
    return plugin() if isinstance(plugin, type) else plugin


_HOST: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide plugin host, built on first use."""
    global _HOST
    if _HOST is None:
        _HOST = build_host()
    return _HOST


def set_host(host: PluginHost | None) -> None:
    """Replace the process-wide host (tests use this through :mod:`zoomkit.testing`)."""
    global _HOST
    _HOST = host
