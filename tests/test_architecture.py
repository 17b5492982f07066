"""The import rules of docs/architecture.md, checked on the source (AST), function-local imports included.

- no import cycle between moebench's modules;
- a module imports only from its own layer or below (vocabulary < producers < benchmarking <
  reports < command line);
- no private name (``_name``) of another package is imported or used;
- ``report`` never imports ``bench.suite`` or ``families`` (a report is a function of files);
- no module over 800 lines.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "moebench"
MAX_LINES = 800


#: Layers, bottom to top, by module-name prefix (the longest matching prefix wins).
LAYERS = {
    "moebench": 1,  # the package itself and the vocabulary modules at its top level
    "moebench.schema": 1,
    "moebench.methods": 2,
    "moebench.harness": 2,
    "moebench.stress": 2,
    "moebench.testing": 2,
    "moebench.families": 2,
    "moebench.algorithms": 2,
    "moebench.exact": 2,
    "moebench.library": 3,
    "moebench.bench": 3,
    "moebench.report": 4,
    "moebench.cli": 5,
    "moebench.bench.cli": 5,
    "moebench.report.cli": 5,
}
NAMES = {1: "vocabulary", 2: "producers", 3: "benchmarking", 4: "reports", 5: "command line"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    base = node.module or ""
    if node.level:  # relative import
        pkg = importer.split(".")
        if not MODULES[importer].name == "__init__.py":
            pkg = pkg[:-1]
        pkg = pkg[: len(pkg) - node.level + 1]
        base = ".".join([*pkg, base] if base else pkg)
    return base


def imports(name: str) -> Iterator[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) of every moebench import in a module."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("moebench"):
                    yield a.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, node)
            if not base.startswith("moebench"):
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                if sub in MODULES:  # `from moebench import harness`: the module itself
                    yield sub, None, node.lineno
                else:
                    yield base, a.name, node.lineno


def graph() -> dict[str, set[str]]:
    """Module -> moebench modules it imports (anywhere in the file)."""
    return {m: {t for t, _, _ in imports(m) if t in MODULES and t != m} for m in MODULES}


def cycles(g: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[frozenset[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(frozenset(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def layer(name: str) -> int:
    best = max((p for p in LAYERS if name == p or name.startswith(p + ".")), key=len)
    return LAYERS[best]


def package(name: str) -> str:
    return name if MODULES[name].name == "__init__.py" else name.rsplit(".", 1)[0]


def test_no_import_cycles() -> None:
    found = cycles(graph())
    assert [sorted(c) for c in found] == []


def test_modules_import_only_from_their_layer_or_below() -> None:
    bad = []
    for m in MODULES:
        for t, _, line in imports(m):
            if t in MODULES and layer(t) > layer(m):
                bad.append(
                    f"{MODULES[m].relative_to(ROOT.parent)}:{line}: {NAMES[layer(m)]} imports {NAMES[layer(t)]} {t}"
                )
    assert bad == []


def test_no_private_names_across_packages() -> None:
    bad = []
    for m in MODULES:
        tree = ast.parse(MODULES[m].read_text(encoding="utf-8"))
        aliases: dict[str, str] = {}  # local name -> imported moebench module
        for t, obj, line in imports(m):
            if obj is not None and obj.startswith("_") and not obj.startswith("__") and package(t) != package(m):
                bad.append(f"{m}:{line}: from {t} import {obj}")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("moebench"):
                for a in node.names:
                    if f"{node.module}.{a.name}" in MODULES:
                        aliases[a.asname or a.name] = f"{node.module}.{a.name}"
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in MODULES and a.asname:
                        aliases[a.asname] = a.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and package(aliases[node.value.id]) != package(m)
            ):
                bad.append(f"{m}:{node.lineno}: {node.value.id}.{node.attr}")
    assert bad == []


def test_report_reads_files_not_suites_or_families() -> None:
    bad = [
        f"{m} imports {t}"
        for m in MODULES
        if m.startswith("moebench.report")
        for t, _, _ in imports(m)
        if t == "moebench.bench.suite" or t.startswith("moebench.families")
    ]
    assert bad == []


def test_the_runner_does_not_compose_the_report() -> None:
    assert not any(t.startswith("moebench.report") for t, _, _ in imports("moebench.bench.runner"))


@pytest.mark.parametrize("name", sorted(MODULES), ids=lambda n: n)
def test_no_module_over_800_lines(name: str) -> None:
    rel = MODULES[name].relative_to(ROOT.parent).as_posix()
    n = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"{rel} has {n} lines"
