"""The one figure style of every report: method styles, axes, legends, titles and saving.

Every figure of a report draws a method with the same colour, marker and line style, computed
once from the report's runs by :func:`method_styles`:

- the colour family says the method kind (blues: exact; greens: approximation; reds, oranges
  and purples: heuristic; greys and ochre: baseline); the colours are taken from the Okabe-Ito
  and Paul Tol palettes, which stay distinguishable under the common colour-vision
  deficiencies, and the black of the reference line is used by no method;
- within a kind, methods (sorted by name) take the kind's colours in turn, then the next line
  style; the marker changes with every method, so two methods never share all three.

Figures are written by :func:`save` as PNG (for HTML and Markdown) and PDF (for LaTeX).
"""

from __future__ import annotations

import contextlib
import math
import textwrap
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from moebench.report.confidence import mean_ci
from moebench.report.tables import KIND_ORDER, kind_rank

#: Colour family per kind (Okabe-Ito and Paul Tol colour-blind-safe colours, grouped by hue).
PALETTES: Mapping[str, tuple[str, ...]] = {
    "exact": ("#0072B2", "#332288", "#56B4E9"),
    "approximation": ("#117733", "#44AA99", "#999933"),
    "heuristic": ("#D55E00", "#CC6677", "#882255", "#E69F00", "#AA4499"),
    "baseline": ("#555555", "#997700", "#AAAAAA"),
}
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "p")
LINESTYLES: tuple[str, ...] = ("-", "--", ":", "-.")
#: The reference (optimum or certified bound): the only black line.
REFERENCE = {"color": "black", "linewidth": 2.2, "alpha": 0.45, "zorder": 1.5}
#: PNG resolution (the PDF is vector).
DPI = 120
#: Figure widths in inches: one panel, and the width of the legend column beside it.
PANEL = (5.6, 3.4)

_RC = {
    "font.size": 9,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.3,
    "lines.markersize": 5,
    "pdf.fonttype": 42,  # TrueType in PDFs: text stays text for LaTeX and copy-paste
    "savefig.bbox": "tight",
}


@dataclass(frozen=True)
class MethodStyle:
    """How one method is drawn.

    Attributes
    ----------
    color, marker, linestyle
        Matplotlib colour, marker and line style.
    kind
        The method kind (legend group).
    """

    color: str
    marker: str
    linestyle: str
    kind: str

    def line(self, **extra: Any) -> dict[str, Any]:
        """Keyword arguments of ``Axes.plot`` for a line with markers (hollow markers keep
        coinciding points of other methods visible)."""
        kw = {
            "color": self.color,
            "marker": self.marker,
            "linestyle": self.linestyle,
            "markerfacecolor": "white",
            "markeredgewidth": 1.2,
        }
        return {**kw, **extra}


def kind_style(kind: str, i: int) -> MethodStyle:
    """The ``i``-th style of a kind (unknown kinds draw from the baseline greys).

    Colour and line style together are unique for ``i < 4 · len(palette)``; the marker
    changes with ``i`` as well, so the triple stays unique much further.
    """
    pal = PALETTES.get(kind, PALETTES["baseline"])
    offset = KIND_ORDER.index(kind) * 3 if kind in KIND_ORDER else 0
    return MethodStyle(
        color=pal[i % len(pal)],
        marker=MARKERS[(i + offset) % len(MARKERS)],
        linestyle=LINESTYLES[(i // len(pal)) % len(LINESTYLES)],
        kind=kind if kind in KIND_ORDER else "baseline",
    )


def method_styles(runs: pd.DataFrame | Mapping[str, str]) -> dict[str, MethodStyle]:
    """The style of every method of a report.

    Parameters
    ----------
    runs
        The report's runs (columns ``method`` and, if known, ``method_kind``), or a mapping
        method -> kind. Pass the whole report's runs so that every figure agrees.

    Returns
    -------
    dict
        method -> :class:`MethodStyle`; methods of one kind are numbered in name order.
    """
    kinds = dict(runs) if isinstance(runs, Mapping) else method_kinds(runs)
    out: dict[str, MethodStyle] = {}
    for kind in [*KIND_ORDER, *sorted(set(kinds.values()) - set(KIND_ORDER))]:
        for i, m in enumerate(sorted(m for m, k in kinds.items() if k == kind)):
            out[m] = kind_style(kind, i)
    return out


def method_kinds(runs: pd.DataFrame) -> dict[str, str]:
    """method -> kind from the runs' ``method_kind`` column (``baseline`` where unknown)."""
    if runs.empty:
        return {}
    if "method_kind" not in runs:
        return {str(m): "baseline" for m in runs["method"].unique()}
    first = runs.groupby("method", sort=True)["method_kind"].first()
    return {str(m): (str(k) if isinstance(k, str) and k in KIND_ORDER else "baseline") for m, k in first.items()}


def ordered(methods: Iterable[str], styles: Mapping[str, MethodStyle]) -> list[str]:
    """Methods by kind (exact first), then name: the order of every legend."""
    return sorted(set(methods), key=lambda m: (kind_rank(styles[m].kind if m in styles else None), m))


@contextlib.contextmanager
def figure_context() -> Iterator[Any]:
    """``matplotlib.pyplot`` on the Agg back end, with the report's rc parameters."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    with plt.rc_context(_RC):
        yield plt


def legend_outside(fig: Any, axes: Sequence[Any], styles: Mapping[str, MethodStyle], extra: Sequence[Any] = ()) -> Any:
    """One legend for the figure, right of the axes, methods grouped under their kind.

    ``extra`` are further handles (the reference line) shown first.
    """
    from matplotlib.lines import Line2D

    # a method's artists carry its name as gid when their label says more ("m (n=2)")
    seen: dict[str, tuple[Any, str]] = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(h.get_gid() or label, (h, label))
    handles, labels, heads = list(extra), [h.get_label() for h in extra], []
    for kind in KIND_ORDER:
        ms = [m for m in ordered([m for m in seen if m in styles], styles) if styles[m].kind == kind]
        if not ms:
            continue
        heads.append(len(handles))
        handles.append(Line2D([], [], linestyle="none"))
        labels.append(kind)
        for m in ms:
            handles.append(seen[m][0])
            labels.append(seen[m][1])
    rest = [k for k in seen if k not in styles and seen[k][1] not in labels]
    handles += [seen[k][0] for k in rest]
    labels += [seen[k][1] for k in rest]
    ncol = 1 if len(handles) <= 26 else 2
    leg = fig.legend(
        handles, labels, loc="upper left", bbox_to_anchor=(1.0, 0.9), frameon=False, ncol=ncol, handlelength=2.6
    )
    for i in heads:
        leg.get_texts()[i].set_fontweight("bold")
    return leg


def integer_ticks(ax: Any, values: Iterable[float], axis: str = "x") -> None:
    """Ticks at the parameter's values when they are whole numbers (K, servers, layers),
    never at 2.25 or 2.5; at most 12 ticks (integer locator beyond)."""
    from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator

    vals = sorted({float(v) for v in values if v is not None and math.isfinite(float(v))})
    if not vals or any(v != round(v) for v in vals):
        return
    target = ax.xaxis if axis == "x" else ax.yaxis
    if len(vals) <= 12:
        target.set_major_locator(FixedLocator(vals))
        target.set_major_formatter("{x:.0f}")
        target.set_minor_locator(NullLocator())  # a log axis would label 3x10^1 in between
    else:
        target.set_major_locator(MaxNLocator(integer=True))


def dodge(ax: Any, i: int, n: int, step_pt: float = 2.5) -> Any:
    """A transform shifting the ``i``-th of ``n`` series sideways by a few points (centred on 0),
    so that series with equal values stay visible side by side; the data are unchanged."""
    from matplotlib.transforms import ScaledTranslation

    return ax.transData + ScaledTranslation((i - (n - 1) / 2) * step_pt / 72.0, 0.0, ax.figure.dpi_scale_trans)


def mean_ci_dodged(
    ax: Any, sub: pd.DataFrame, col: str, i: int, n: int, step_pt: float, st: MethodStyle, **kw: Any
) -> None:
    """The mean of ``col`` per value of ``sub["_x"]`` as the ``i``-th of ``n`` lines shifted by
    :func:`dodge`, with its 95% bootstrap interval bar where a point has one. The axes still scale
    to the data (an artist drawn with its own transform does not update the data limits by itself)."""
    import numpy as np

    pts = [(x, ci) for x, s in sub.groupby("_x") if (ci := mean_ci(s[col].to_numpy(float))).n]
    if not pts:
        return
    shift = dodge(ax, i, n, step_pt)
    xy = np.array([(x, ci.mean) for x, ci in pts], dtype=float)
    ax.plot(xy[:, 0], xy[:, 1], transform=shift, **kw, **st.line())
    ax.update_datalim(xy[np.isfinite(xy).all(axis=1)])
    for x, ci in pts:
        if ci.has_interval:
            ax.vlines(x, ci.low, ci.high, color=st.color, linewidth=1.0, transform=shift)
            ax.update_datalim([(x, ci.low), (x, ci.high)])
    ax.autoscale_view()


def title(family: str | None, what: str, parameter: str | None = None, fixed: Mapping[str, Any] | None = None) -> str:
    """A figure title naming the family, the quantity, the swept parameter and the fixed ones:
    ``zipf: expected latency vs K (capacity=0.25, servers=3)``."""
    head = f"{family}: {what}" if family else what
    if parameter:
        head += f" vs {parameter}"
    if fixed:
        tail = "(" + ", ".join(f"{k}={short_value(v)}" for k, v in fixed.items()) + ")"
        # long lists of fixed parameters go on their own lines, never over the legend
        head += "\n" + "\n".join(textwrap.wrap(tail, 90)) if len(head) + len(tail) > 70 else " " + tail
    return head


def fixed_parameters(family_rows: pd.DataFrame, swept: str, group: pd.DataFrame) -> dict[str, Any]:
    """The ``param_*`` columns that vary within the family but are fixed in ``group`` (a sweep
    of ``swept``): what tells two sweeps of one family and parameter apart."""
    out: dict[str, Any] = {}
    for c in sorted(c for c in family_rows.columns if c.startswith("param_") and c != swept):
        if family_rows[c].map(str).nunique() > 1 and group[c].map(str).nunique() == 1:
            out[c.removeprefix("param_")] = group[c].iloc[0]
    return out


def suptitle(fig: Any, text: str, y: float = 1.0) -> Any:
    """The figure title, raised by one line height per extra line so that it clears the axes titles."""
    return fig.suptitle(text, fontsize=_RC["axes.titlesize"], y=y + 0.025 * text.count("\n"))


def note_below(ax: Any, text: str, y: float, **kw: Any) -> Any:
    """A grey note at the left edge under the axes (``y`` in axes coordinates, below 0)."""
    return ax.text(0.0, y, text, transform=ax.transAxes, color="#444444", **kw)


def slug(text: object, keep: str = "") -> str:
    """``text`` as a file name or anchor: lower-case letters, digits and ``keep``, other characters ``-``."""
    return "".join(c if c.isalnum() or c in keep else "-" for c in str(text).lower()).strip("-") or "x"


def short_value(v: Any) -> str:
    """A parameter value as in a title or file name: ``0.25``, ``3``, text unchanged."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return f"{f:g}"


def save(fig: Any, png: Path) -> Path:
    """Write ``fig`` as ``png`` and as the PDF beside it, close it, return the PNG path."""
    png.parent.mkdir(parents=True, exist_ok=True)
    # the title travels with the file: the HTML report shows it as the caption
    name = fig.get_suptitle() or next((ax.get_title() for ax in fig.axes if ax.get_title()), png.stem)
    fig.savefig(png, dpi=DPI, metadata={"Title": name})
    # no creation date: regenerating a report leaves unchanged figures byte-identical
    fig.savefig(png.with_suffix(".pdf"), metadata={"Title": name, "CreationDate": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return png


def with_pdfs(pngs: Iterable[Path]) -> list[Path]:
    """Every PNG followed by its PDF twin (where written): the files a report lists."""
    out = []
    for p in pngs:
        out.append(p)
        if p.suffix == ".png" and p.with_suffix(".pdf").is_file():
            out.append(p.with_suffix(".pdf"))
    return out
