"""The compact paper table (methods grouped by kind × families), the report options that choose
its methods, families and columns, and the one number style of every table.

Number style (every format): ratios with 3 decimals, percentages with 1, times with 2
significant digits (never in exponent notation), counts as integers, missing values as an
en-dash ``–``; ``n/a`` where a method did not apply, or where a geometric mean is not defined
(a ratio of 0). A cell aggregated over fewer instances than its family has carries its own
instance count in parentheses, ``0.903 (1)``: the common-ground rule of
:mod:`moebench.report.tables`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from moebench.errors import InputError
from moebench.report import latex
from moebench.report.tables import KIND_ORDER, kind_rank
from moebench.schema.config import ReportFile, ReportTable, load_toml

#: Kinds of quantity and how each is printed.
STYLE = {"ratio": 3, "pct": 1, "ms": 2}


@dataclass(frozen=True)
class Quantity:
    """A column the paper table can show for each family.

    Attributes
    ----------
    name
        Key used in ``--columns`` and the suite's ``[report]`` table.
    field
        Column of :func:`moebench.report.tables.summary_table`.
    header
        Short header (under the family name).
    kind
        ``ratio``, ``pct`` or ``time`` (the number style).
    doc
        What it is (shown in ``moebench report --help`` and the caption).
    """

    name: str
    field: str
    header: str
    kind: str
    doc: str


QUANTITIES: dict[str, Quantity] = {
    q.name: q
    for q in (
        Quantity("gain_mean", "gain_mean", "mean", "ratio", "mean gain ratio R/R*"),
        Quantity("gain_worst", "gain_worst", "worst", "ratio", "worst gain ratio"),
        Quantity("gain_gmean", "gain_gmean", "gmean", "ratio", "geometric mean gain ratio (n/a with a zero ratio)"),
        Quantity("lat_mean", "lat_mean", "lat.", "ratio", "mean latency ratio Lat/Lat*"),
        Quantity("lat_worst", "lat_worst", "lat. worst", "ratio", "worst latency ratio"),
        Quantity("bound_worst", "bound_worst", "R/UB", "ratio", "worst gain over the best bound (unproven only)"),
        Quantity("reduction", "reduction_pct", "red. %", "pct", "mean latency reduction against no caching, %"),
        Quantity(
            "test_reduction",
            "holdout_reduction_pct",
            "test %",
            "pct",
            "mean latency reduction on the holdout (test-token) twin, %",
        ),
        Quantity("gap", "gap_worst", "gap %", "pct", "worst relative gap (bound - gain)/bound of a run, %"),
        Quantity("time", "time_sgm", "time [s]", "time", "method time, shifted geometric mean (shift 1 s)"),
    )
}
#: Quantities shown once per method over every family (rightmost), not per family.
OVERALL = ("time",)
#: Quantities left out for a family where no method has a value (no holdout twins, every optimum proven).
OPTIONAL = ("test_reduction", "bound_worst", "gap")
DEFAULT_COLUMNS = ("gain_mean", "gain_worst", "time")
#: Group headings of the method kinds.
KIND_TITLES = {
    "exact": "exact",
    "approximation": "approximation (with a guarantee)",
    "heuristic": "heuristic",
    "baseline": "baseline",
}


@dataclass(frozen=True)
class ReportOptions:
    """What a report shows: the suite's ``[report]`` table, overridden by the command line.

    Attributes
    ----------
    methods
        Methods to show (None: all), in this order within their kind.
    families
        Families to show (None: all); ``all`` is the aggregate over every family.
    columns
        Quantities of the paper table (:data:`QUANTITIES`); ``time`` is shown once per method.
    latex_wide
        ``split`` (default) or ``resize`` (one ``\\resizebox`` table; needs graphicx).
    """

    methods: tuple[str, ...] | None = None
    families: tuple[str, ...] | None = None
    columns: tuple[str, ...] = DEFAULT_COLUMNS
    latex_wide: str = "split"
    #: whether ``columns`` was given (else holdout columns are added where holdout twins exist)
    columns_given: bool = field(default=False, compare=False)

    def merged(self, **over: Any) -> ReportOptions:
        """These options with the given (non-None) values replaced."""
        given = {k: v for k, v in over.items() if v is not None}
        if "columns" in given:
            given["columns_given"] = True
        return replace(self, **given)


#: File of a results folder holding the suite's ``[report]`` table (written by ``moebench run``).
OPTIONS_FILE = "report.toml"


def options_from_table(table: ReportTable | None) -> ReportOptions:
    """Report options from a ``[report]`` table (None: the defaults)."""
    if table is None:
        return ReportOptions()
    lists = {k: getattr(table, k) for k in ("methods", "families", "columns")}
    return ReportOptions(latex_wide=table.latex_wide).merged(**{k: tuple(v) for k, v in lists.items() if v is not None})


def read_options(folder: Path | None) -> ReportOptions:
    """The options in ``folder/report.toml`` (the defaults when there is none).

    Raises
    ------
    InputError
        ``report.toml: key: reason`` for a bad file.
    """
    if folder is None or not (folder / OPTIONS_FILE).is_file():
        return ReportOptions()
    doc = load_toml(folder / OPTIONS_FILE, ReportFile)
    return options_from_table(doc.report)


def options_toml(table: ReportTable) -> str:
    """``report.toml`` text of a ``[report]`` table (JSON strings are TOML basic strings)."""
    lines = ["# the suite's [report] table: what `moebench report` on this folder shows", "[report]"]
    for key in ("methods", "families", "columns"):
        v = getattr(table, key)
        if v is not None:
            lines.append(f"{key} = [{', '.join(json.dumps(x) for x in v)}]")
    lines.append(f"latex_wide = {json.dumps(table.latex_wide)}")
    return "\n".join(lines) + "\n"


def parse_list(spec: str | Sequence[str] | None, where: str) -> tuple[str, ...] | None:
    """``"a,b"`` or a list -> ``("a", "b")``; None stays None; an empty list is an input error."""
    if spec is None:
        return None
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec)]
    items = [s for s in items if s]
    if not items:
        raise InputError("empty list", where=where)
    return tuple(dict.fromkeys(items))


def check_columns(columns: Iterable[str], where: str = "--columns") -> tuple[str, ...]:
    """The columns, each a known quantity.

    Raises
    ------
    InputError
        For an unknown quantity, naming the known ones.
    """
    out = tuple(columns)
    bad = [c for c in out if c not in QUANTITIES]
    if bad:
        raise InputError(f"unknown column {bad[0]!r} (known: {', '.join(QUANTITIES)})", where=where)
    return out


def select(runs: pd.DataFrame, options: ReportOptions, where: str = "") -> pd.DataFrame:
    """The scored runs of the chosen methods and families (``all`` is not a family: it keeps all).

    Raises
    ------
    InputError
        For a method or family the table does not have (naming the ones it has).
    """
    out = runs
    for col, chosen, flag in (("method", options.methods, "--methods"), ("family", options.families, "--families")):
        if chosen is None:
            continue
        have = set(out[col].astype(str))
        wanted = [c for c in chosen if not (col == "family" and c == "all")]
        bad = [c for c in wanted if c not in have]
        if bad:
            raise InputError(
                f"no {col} {bad[0]!r} in the results (there are: {', '.join(sorted(have))})", where=where or flag
            )
        if wanted and len(wanted) == len(chosen):
            out = out[out[col].astype(str).isin(wanted)]
    if out.empty:
        raise InputError("the chosen methods and families have no runs", where=where or "--methods")
    return out


# ---- the number style ---------------------------------------------------------------------------------
def fmt_time(v: float) -> str:
    """Seconds with 2 significant digits, never in exponent notation (``0.00039``, ``1.4``, ``12``, ``1234``)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    v = float(v)
    if v <= 0:
        return "0"
    if v >= 100:
        return f"{v:.0f}"
    digits = max(0, 1 - math.floor(math.log10(v)))
    return f"{round(v, digits):.{digits}f}"


def fmt_value(v: Any, kind: str) -> str:
    """One number in the style of its kind (``ratio``, ``pct``, ``ms``, ``time``, ``count``)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if kind == "time":
        return fmt_time(v)
    if kind == "count":
        return str(int(v))
    # rounding noise such as -1e-12 would print as "-0.0"
    d = STYLE[kind]
    return f"{round(float(v), d) + 0.0:.{d}f}"


def gmean_undefined(row: pd.Series, col: str) -> bool:
    """Whether ``row[col]`` is a gain geometric mean left undefined by a zero ratio (printed ``n/a``)."""
    return col == "gain_gmean" and pd.isna(row[col]) and bool(row.get("gain_zero", 0))


def fmt_cell(row: pd.Series, q: Quantity) -> str:
    """A summary row's value of ``q``, with its instance count where it is not the family's."""
    if row["instances"] == 0:
        return "n/a" if row["skipped"] == row["runs"] else ("failed" if row["failed"] else "–")
    text = "n/a" if gmean_undefined(row, q.field) else fmt_value(row[q.field], q.kind)
    if q.kind != "time" and row["instances"] < row["family_instances"] and text != "–":
        text += f" ({int(row['instances'])})"
    return text


# ---- the paper table -----------------------------------------------------------------------------------
def reference_kinds(runs: pd.DataFrame) -> dict[str, str]:
    """Per family (and ``all``): what the ratios are measured against, e.g. ``proven 6/6``,
    ``proven 4/6, bound 2``; ``best known`` counts instances with neither."""
    inst = runs.drop_duplicates(["instance", "instance_hash"])
    out = {}
    for fam, g in [*inst.groupby("family", sort=True), ("all", inst)]:
        n = len(g)
        proven = int(g["ref_proven"].fillna(False).astype(bool).sum())
        bound = int((~g["ref_proven"].fillna(False).astype(bool) & g["ref_bound"].notna()).sum())
        text = f"proven {proven}/{n}"
        if bound:
            text += f", bound {bound}"
        if n - proven - bound:
            text += f", best known {n - proven - bound}"
        out[str(fam)] = text
    return out


def paper_columns(options: ReportOptions, summary: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(per-family quantities, overall quantities) of the paper table; the holdout reduction is
    added where holdout twins exist, unless the columns were chosen explicitly."""
    cols = list(check_columns(options.columns))
    if not options.columns_given and summary["holdout_reduction_pct"].notna().any() and "test_reduction" not in cols:
        cols.insert(len([c for c in cols if c not in OVERALL]), "test_reduction")
    return [c for c in cols if c not in OVERALL], [c for c in cols if c in OVERALL]


def method_order(summary: pd.DataFrame, options: ReportOptions) -> list[tuple[str, str]]:
    """(method, kind) in table order: by kind (exact, approximation, heuristic, baseline), then as
    chosen (``--methods``) or by name."""
    kinds = summary.groupby("method")["kind"].first()
    chosen = {m: i for i, m in enumerate(options.methods or ())}
    methods = sorted(kinds.index, key=lambda m: (kind_rank(kinds[m]), chosen.get(m, len(chosen)), str(m)))
    return [(str(m), str(kinds[m])) for m in methods]


def paper_families(summary: pd.DataFrame, options: ReportOptions) -> list[str]:
    """Families as columns: the chosen ones (in their order), else every family (without ``all``)."""
    have = list(dict.fromkeys(summary["family"].astype(str)))
    if options.families:
        return [f for f in options.families if f in have]
    real = [f for f in have if f != "all"]
    return real or have


def paper_table(
    summary: pd.DataFrame, runs: pd.DataFrame, options: ReportOptions
) -> tuple[list[str], list[list[str]], dict[int, str], list[tuple[int, int, str]], pd.DataFrame]:
    """The compact paper table: one row per method grouped by kind, a block of columns per family.

    Returns
    -------
    header, rows, groups, supergroups
        Formatted cells, group headings by row and column spans (family and its reference kind).
    data
        The unformatted long table (method, kind, family, quantity columns, instances, family_instances).
    """
    per_family, overall = paper_columns(options, summary)
    fams = paper_families(summary, options)
    refs = reference_kinds(runs)
    by = summary.set_index(["family", "method"])
    all_fam = "all" if "all" in set(summary["family"]) else fams[0]
    header = ["Method"]
    spans: list[tuple[int, int, str]] = []
    # a quantity that only some families have (holdout twins, bounds, gaps) is left out where it is empty
    shown = {
        f: [
            q
            for q in per_family
            if q not in OPTIONAL or summary.loc[summary["family"] == f, QUANTITIES[q].field].notna().any()
        ]
        for f in fams
    }
    for f in fams:
        a = len(header)
        header += [QUANTITIES[q].header for q in shown[f]]
        spans.append((a, len(header) - 1, f"{f}\n{refs.get(f, '')}"))
    header += [QUANTITIES[q].header for q in overall]
    rows: list[list[str]] = []
    data = []
    order = method_order(summary, options)
    for method, kind in order:
        cells = [method]
        for f in fams:
            if (f, method) not in by.index:
                cells += ["–"] * len(shown[f])
                continue
            r = by.loc[(f, method)]
            cells += [fmt_cell(r, QUANTITIES[q]) for q in shown[f]]
            data.append(
                {"method": method, "kind": kind, "family": f, **{q: r[QUANTITIES[q].field] for q in per_family}}
            )
            data[-1].update(instances=int(r["instances"]), family_instances=int(r["family_instances"]))
        ra = by.loc[(all_fam, method)] if (all_fam, method) in by.index else None
        cells += [fmt_cell(ra, QUANTITIES[q]) if ra is not None else "–" for q in overall]
        rows.append(cells)
    return header, rows, kind_groups([k for _, k in order]), spans, pd.DataFrame(data)


def kind_groups(kinds: Sequence[str]) -> dict[int, str]:
    """Row index -> heading of the group of methods of one kind that starts there (rows in kind order)."""
    return {i: KIND_TITLES.get(k, k or "other") for i, k in enumerate(kinds) if i == 0 or k != kinds[i - 1]}


def paper_caption(options: ReportOptions, summary: pd.DataFrame) -> str:
    """The caption: what every column is, the common-ground count and the time's shift."""
    per_family, overall = paper_columns(options, summary)
    parts = [f"{QUANTITIES[q].header}: {QUANTITIES[q].doc}" for q in [*per_family, *overall]]
    return (
        "Methods by kind against the reference of each family (in parentheses: proven optima, "
        "certified bounds). " + "; ".join(parts) + ". A count in parentheses: over that many of the "
        "family's instances only (the method does not apply to, or failed on, the others); "
        "n/a: not applicable; –: not run."
    )


def paper_grid(summary: pd.DataFrame, runs: pd.DataFrame, options: ReportOptions) -> latex.Grid:
    """The paper table as a LaTeX grid (method names in ``\\texttt``)."""
    header, rows, groups, spans, _ = paper_table(summary, runs, options)
    return latex.Grid(
        caption=paper_caption(options, summary),
        label=latex.label_name("paper"),
        header=header,
        rows=rows,
        tt=frozenset({0}),
        key=1,
        groups=groups,
        supergroups=spans,
    )


__all__ = ["KIND_ORDER", "QUANTITIES", "ReportOptions", "paper_grid", "paper_table", "select"]
