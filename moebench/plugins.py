"""Entry-point loading for third-party families and methods.

A plugin package declares, in its ``pyproject.toml``::

    [project.entry-points."moebench.methods"]
    my-method = "my_pkg.methods"          # a module that registers on import, or
    other = "my_pkg.methods:register"     # a callable called once

    [project.entry-points."moebench.families"]
    my-family = "my_pkg.families"

A plugin that fails to load is reported on stderr and skipped: one broken plugin must not
take the whole benchmark down.
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib.metadata import entry_points

_loaded_groups: set[str] = set()
#: (group, entry point name, error text) of plugins that failed to load
FAILED: list[tuple[str, str, str]] = []


def load_entry_points(group: str) -> None:
    """Import every entry point of ``group`` once (calling it when it is a callable)."""
    if group in _loaded_groups:
        return
    _loaded_groups.add(group)
    for ep in entry_points(group=group):
        try:
            obj = ep.load()
            if callable(obj):
                obj()
        except Exception as exc:
            FAILED.append((group, ep.name, f"{type(exc).__name__}: {exc}"))
            print(f"moebench: plugin {ep.name!r} ({group}) failed to load: {exc}", file=sys.stderr)


def load_registry(builtin_modules: tuple[str, ...], group: str) -> None:
    """Fill a registry: import moebench's own modules that register into it, then the plugins of ``group``."""
    for mod in builtin_modules:
        importlib.import_module(mod)
    load_entry_points(group)


def plugin_modules(modules: tuple[str, ...] | list[str] = ()) -> list[str]:
    """``modules`` followed by those named in ``MOEBENCH_PLUGINS`` (comma-separated), deduplicated.

    Plugin modules register methods or families on import; besides entry points, this is how a
    suite (or a test) makes its own methods visible in every child process that runs a task.
    """
    env = [m.strip() for m in os.environ.get("MOEBENCH_PLUGINS", "").split(",") if m.strip()]
    return list(dict.fromkeys([*modules, *env]))


def import_plugins(modules: tuple[str, ...] | list[str] = ()) -> None:
    """Import every module of :func:`plugin_modules` (exceptions propagate to the caller)."""
    for mod in plugin_modules(modules):
        importlib.import_module(mod)
