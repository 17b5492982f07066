"""Extra report sections: a registry of providers that add tables (and figures) to a report.

The core report (summary, guarantee violations, failures, references) is fixed; experiment
reports add their own evidence through *section providers*: functions that look at the scored
runs (and the results folder, for side files such as stress results) and return zero or more
:class:`Section`. Every writer renders every section: Markdown and HTML inline, CSV as
``<slug>.csv``, LaTeX as a booktabs ``<slug>.tex``. A provider returns ``[]`` when its data is
absent, so a report only shows what its suite produced.

Register with::

    @register_section(order=50)
    def my_section(ctx: ReportContext) -> list[Section]:
        ...

Built-in providers live in the modules of :data:`BUILTIN_MODULES` (imported on first use).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from moebench.registry import Registry

#: Modules whose import registers the built-in section providers.
BUILTIN_MODULES: tuple[str, ...] = (
    "moebench.report.runtime",
    "moebench.report.sweeps",
    "moebench.report.guarantees",
    "moebench.report.shift",
)


@dataclass(frozen=True)
class ReportContext:
    """What a section provider may look at.

    Attributes
    ----------
    runs
        The scored per-run table (:func:`moebench.report.tables.score`): one row per run with
        references and ratios attached.
    summary
        The family × method summary table.
    stress
        The stress-search rows of the results table (kind ``stress``; empty without searches).
    artifacts
        The instance files the report may cite, (name, content hash) -> path relative to the
        results folder (:mod:`moebench.bench.artifacts`).
    results_dir
        Folder the results were read from (instance files the report cites live there), or
        None when the report was built from a DataFrame.
    out_dir
        The report folder (figures go to ``out_dir / "plots"``).
    """

    runs: pd.DataFrame
    summary: pd.DataFrame
    results_dir: Path | None
    out_dir: Path
    stress: pd.DataFrame = field(default_factory=pd.DataFrame)
    artifacts: Mapping[tuple[str, str], str] = field(default_factory=dict)


@dataclass(frozen=True)
class Section:
    """One report table, with optional figures and a note.

    Attributes
    ----------
    title
        Section heading.
    header
        Column headers as shown.
    rows
        Cells, already formatted as text (see :func:`moebench.report.writers.fmt`).
    slug
        File stem of the CSV/LaTeX outputs (letters, digits, ``-``).
    note
        A sentence or two shown under the heading (what the table says, how to read it).
    empty
        Text shown instead of the table when ``rows`` is empty.
    data
        The unformatted table written to ``<slug>.csv`` (default: the formatted cells).
    figures
        PNG files (inside the report's ``plots`` folder) shown under the table.
    latex
        Whether to write ``<slug>.tex``.
    """

    title: str
    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    slug: str
    note: str = ""
    empty: str = "Nothing to show."
    data: pd.DataFrame | None = None
    figures: Sequence[Path] = field(default_factory=tuple)
    latex: bool = True

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", self.slug):
            raise ValueError(f"section slug must be lower-case letters, digits and '-': {self.slug!r}")
        bad = [i for i, r in enumerate(self.rows) if len(r) != len(self.header)]
        if bad:
            raise ValueError(
                f"section {self.slug!r}: row {bad[0]} has {len(self.rows[bad[0]])} cells, header has {len(self.header)}"
            )

    def table(self) -> pd.DataFrame:
        """The table written to CSV."""
        if self.data is not None:
            return self.data
        return pd.DataFrame([list(r) for r in self.rows], columns=list(self.header))


#: A column of a section shown from a table: its header and the text of its cell in a row.
Column = tuple[str, Callable[[pd.Series], str]]


def frame_section(title: str, data: pd.DataFrame, columns: Sequence[Column], slug: str, **kw: Any) -> Section:
    """A :class:`Section` showing ``data`` row by row through ``columns``, with ``data`` as its CSV."""
    rows = [[cell(r) for _, cell in columns] for _, r in data.iterrows()]
    return Section(title, [h for h, _ in columns], rows, slug, data=data, **kw)


SectionProvider = Callable[[ReportContext], list[Section]]
#: Section providers by qualified name, with their display order.
SECTIONS: Registry[tuple[int, SectionProvider]] = Registry("report section", BUILTIN_MODULES)


def register_section(order: int = 50) -> Callable[[SectionProvider], SectionProvider]:
    """Decorator registering a section provider; sections appear sorted by ``order`` (then name)."""

    def deco(fn: SectionProvider) -> SectionProvider:
        # keyed by qualified name: a re-imported module replaces its providers, never duplicates them
        SECTIONS.register(_key(fn), (order, fn))
        return fn

    return deco


def unregister_section(fn: SectionProvider) -> None:
    """Remove a registered provider (tests; a plugin that withdraws a section)."""
    SECTIONS.unregister(_key(fn))


def _key(fn: SectionProvider) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def providers() -> list[SectionProvider]:
    """Registered providers in display order (built-in modules imported first)."""
    ordered = sorted(SECTIONS.items(), key=lambda kv: (kv[1][0], kv[0]))
    return [fn for _, (_, fn) in ordered]


def collect(ctx: ReportContext) -> list[Section]:
    """Every section the registered providers produce for this report."""
    out: list[Section] = []
    for fn in providers():
        out.extend(fn(ctx))
    slugs = [s.slug for s in out]
    dup = sorted({s for s in slugs if slugs.count(s) > 1})
    if dup:
        raise ValueError(f"two report sections share the slug(s) {', '.join(dup)}")
    return out
