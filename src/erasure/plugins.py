"""The plugin host: a typed wrapper over pluggy's PluginManager.

Connectors, built in or third party, are loaded from the ``erasure.connectors`` entry-point
group; the core never imports a connector module by name. A plugin that fails to load is
recorded (not raised), so the systems that needed it can be reported as not covered.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .connector import Connector
from .errors import PluginError

__all__ = ["BLOCK_ENV", "ENTRY_POINT_GROUP", "RETENTION_GROUP", "ConnectorRegistry", "PluginHost",
           "PluginFailure", "declared_retention"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "erasure.connectors"
#: Comma-separated plugin (entry-point) names that must not be loaded.
BLOCK_ENV = "ERASURE_BLOCK_PLUGINS"
#: Entry points naming the connectors that sweep retention (``Capability.RETENTION``): a
#: declaration in the distribution's metadata, read without importing the connector.
RETENTION_GROUP = "erasure.retention"


def declared_retention() -> frozenset[str]:
    """The connectors whose distributions declare retention sweeps (``erasure.retention``
    entry points, never loaded): what ``erasure status`` lists without importing any
    connector or its client library."""
    return frozenset(ep.name for ep in metadata.entry_points(group=RETENTION_GROUP))


class ConnectorRegistry:
    """Connector classes by name, filled by ``erasure_register_connectors`` hooks."""

    def __init__(self) -> None:
        self._connectors: dict[str, type[Connector]] = {}
        self._origin: dict[str, str] = {}
        self.current_plugin = "<direct>"

    def add(self, connector: type[Connector]) -> None:
        """Register a connector class under its ``name``."""
        if not (isinstance(connector, type) and issubclass(connector, Connector)):
            raise PluginError(f"plugin {self.current_plugin!r} registered a non-Connector")
        name = getattr(connector, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {self.current_plugin!r}: connector class has no name")
        if name in self._connectors and self._connectors[name] is not connector:
            raise PluginError(
                f"connector {name!r} registered twice (by {self._origin[name]!r} and "
                f"{self.current_plugin!r})"
            )
        self._connectors[name] = connector
        self._origin[name] = self.current_plugin

    def get(self, name: str) -> type[Connector] | None:
        """The connector class named ``name``, or None."""
        return self._connectors.get(name)

    def origin(self, name: str) -> str:
        """Which plugin registered ``name``."""
        return self._origin.get(name, "")

    def names(self) -> list[str]:
        return sorted(self._connectors)

    def classes(self) -> dict[str, type[Connector]]:
        """Every registered connector class by name (what config validation needs)."""
        return dict(self._connectors)

    def __contains__(self, name: object) -> bool:
        return name in self._connectors


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded or registered, and why (one line)."""

    plugin: str
    error: str


@dataclass
class PluginHost:
    """The loaded plugins and the connectors they registered.

    Build it with :meth:`load`; tests may pass extra plugin objects.
    """

    pm: pluggy.PluginManager
    registry: ConnectorRegistry
    failures: list[PluginFailure] = field(default_factory=list)
    blocked: frozenset[str] = frozenset()

    @classmethod
    def load(cls, *, extra_plugins: tuple[Any, ...] = (), entry_points: bool = True) -> PluginHost:
        """Load the entry-point plugins (minus the block list) and ``extra_plugins``."""
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        blocked = frozenset(
            n.strip() for n in os.environ.get(BLOCK_ENV, "").split(",") if n.strip()
        )
        for name in blocked:
            pm.set_blocked(name)
        failures: list[PluginFailure] = []
        if entry_points:
            for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
                if ep.name in blocked or pm.is_registered(ep.name) or pm.has_plugin(ep.name):
                    continue
                try:
                    plugin = ep.load()
                    pm.register(plugin, name=ep.name)
                except Exception as exc:  # a broken plugin must not take the host down
                    failures.append(PluginFailure(ep.name, _one_line(exc)))
                    # info, not warning: the commands report ``failures`` themselves, once
                    log.info("plugin %s failed to load: %s", ep.name, _one_line(exc))
        for plugin in extra_plugins:
            pm.register(plugin)
        try:
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin hook does not match any spec: {_one_line(exc)}") from None
        registry = ConnectorRegistry()
        for impl in reversed(pm.hook.erasure_register_connectors.get_hookimpls()):
            registry.current_plugin = impl.plugin_name
            try:
                impl.function(registry=registry)
            except Exception as exc:
                failures.append(PluginFailure(impl.plugin_name, _one_line(exc)))
                log.info("plugin %s failed to register: %s", impl.plugin_name, _one_line(exc))
        registry.current_plugin = "<direct>"
        return cls(pm=pm, registry=registry, failures=failures, blocked=blocked)

    @property
    def hook(self) -> Any:
        """The pluggy hook relay, for calling notification hooks."""
        return self.pm.hook

    def failure_for(self, connector: str) -> str:
        """Why ``connector`` is missing: a load failure, the block list, or no plugin has it."""
        for f in self.failures:
            if f.plugin == connector:
                return f"plugin {f.plugin!r} failed to load: {f.error}"
        if connector in self.blocked:
            return f"plugin {connector!r} is blocked by {BLOCK_ENV}"
        return f"no installed plugin provides connector {connector!r}"

    def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call a notification hook; a failing hook is logged, never raised."""
        try:
            getattr(self.pm.hook, hook_name)(**kwargs)
        except Exception as exc:
            log.warning("hook %s failed: %s", hook_name, _one_line(exc))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
