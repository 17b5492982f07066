"""One generic registry: named entries (methods, families, report sections) filled by plugins.

A :class:`Registry` is filled on first use: it imports moebench's own modules that register
into it, then the entry points of its group (third-party packages), exactly once per process.
Filling is thread-safe and *completed* before any lookup returns: a thread that asks while
another is still importing waits for it (a Dask worker runs its first tasks in several threads
at once; a flag set before the imports finished once made one of them see a half-filled
registry and report "unknown method").

Plugins declare entry points (``moebench.methods``, ``moebench.families``) naming a module
that registers on import or a callable called once (docs/plugins.md). A plugin that fails to load is reported on stderr and skipped: one broken plugin must not
take the whole benchmark down. Modules named in a suite's ``plugins`` or in the environment
variable ``MOEBENCH_PLUGINS`` are imported by :func:`import_plugins` (also in every child
process that runs a task, since children re-import modules).
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

T = TypeVar("T")

_groups_lock = threading.RLock()
_loaded_groups: set[str] = set()
#: (group, entry point name, error text) of plugins that failed to load
FAILED: list[tuple[str, str, str]] = []


def load_entry_points(group: str) -> None:
    """Import every entry point of ``group`` once per process (calling it when it is a callable)."""
    with _groups_lock:
        if group in _loaded_groups:
            return
        for ep in entry_points(group=group):
            try:
                obj = ep.load()
                if callable(obj):
                    obj()
            except Exception as exc:
                FAILED.append((group, ep.name, f"{type(exc).__name__}: {exc}"))
                print(f"moebench: plugin {ep.name!r} ({group}) failed to load: {exc}", file=sys.stderr)
        _loaded_groups.add(group)


class Registry(Generic[T]):
    """Named entries of one kind, filled from built-in modules and an entry-point group.

    Parameters
    ----------
    kind
        What the entries are (``"method"``), for error messages.
    builtin_modules
        moebench's own modules whose import registers entries.
    group
        Entry-point group of third-party plugins (None: none).
    """

    def __init__(self, kind: str, builtin_modules: tuple[str, ...] = (), group: str | None = None) -> None:
        self.kind = kind
        self.builtin_modules = builtin_modules
        self.group = group
        self._entries: dict[str, T] = {}
        # two locks: registration may happen inside an import that filling is waiting for
        self._entries_lock = threading.Lock()
        self._fill_lock = threading.RLock()
        self._filled = False
        self._filling: int | None = None  # the thread filling now

    def register(self, name: str, entry: T, *, same: Callable[[T, T], bool] | None = None) -> None:
        """Add ``entry`` under ``name``.

        ``same(old, new)`` tells whether a second registration under ``name`` is the same
        entry again (a module imported twice): then the newer one replaces the older. Without
        ``same`` a second registration always replaces the first.

        Raises
        ------
        ValueError
            When ``name`` is taken by a different entry.
        """
        with self._entries_lock:
            old = self._entries.get(name)
            if old is not None and same is not None and not same(old, entry):
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._entries[name] = entry

    def unregister(self, name: str) -> None:
        """Remove the entry ``name`` (absent names are ignored)."""
        with self._entries_lock:
            self._entries.pop(name, None)

    def fill(self) -> None:
        """Import the built-in modules and the plugins of the group, once; waits for another
        thread that is filling (lookups never see a half-filled registry)."""
        if self._filled or self._filling == threading.get_ident():  # a module being imported looks up
            return
        with self._fill_lock:
            if self._filled:
                return
            self._filling = threading.get_ident()
            try:
                for mod in self.builtin_modules:
                    importlib.import_module(mod)
                if self.group is not None:
                    load_entry_points(self.group)
                self._filled = True
            finally:
                self._filling = None

    def get(self, name: str) -> T | None:
        """The entry ``name`` (None when unknown)."""
        self.fill()
        return self._entries.get(name)

    def __contains__(self, name: object) -> bool:
        self.fill()
        return name in self._entries

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self.fill()
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """``(name, entry)`` pairs sorted by name."""
        self.fill()
        with self._entries_lock:
            return sorted(self._entries.items(), key=lambda kv: kv[0])

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


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
