"""The HTML report: one self-contained page from the jinja2 template ``templates/report.html.j2``.

The page has a table of contents with an anchor for every section and figure, tables that sort
(click a header) and filter (type words) with a small inline script written for moebench, long
tables collapsed by default, figures embedded as PNG (with a relative link to their PDF), and
cells made readable: booleans as yes/no, JSON objects and lists as ``key: value`` text. Nothing
is loaded from the network.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moebench.report.sections import Section
from moebench.report.style import slug
from moebench.report.writers import NOTES, fmt

#: Tables with more rows than this are collapsed (``<details>``) until opened.
COLLAPSE_ROWS = 25
#: Anchors of the page itself (a section slug equal to one gets a ``section-`` prefix).
RESERVED_IDS = frozenset({"contents", "headline", "figures", "provenance"})


@dataclass(frozen=True)
class Cell:
    """A rendered table cell: its text, for numbers the value it sorts by, and a link (a figure
    named in the cell, shown on the page)."""

    text: str
    sort: str | None
    href: str | None = None


def readable(value: Any) -> str:
    """A cell as a reader wants it: ``True`` -> ``yes``, JSON -> ``key: value`` text, NaN -> ``–``.

    Parameters
    ----------
    value
        A formatted cell or a raw value.

    Returns
    -------
    str
        The text to show.
    """
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if not isinstance(value, str):
        return fmt(value)
    s = value.strip()
    low = s.lower()
    if low in ("true", "false"):
        return "yes" if low == "true" else "no"
    if s in ("nan", "NaN", "None", "<NA>"):  # missing values spelled by str(); "none" is a method name
        return "–"
    if s[:1] in "{[" and s[-1:] in "}]":
        try:
            return _plain(json.loads(s))
        except ValueError:
            return value
    return value


def _plain(v: Any) -> str:
    """JSON data as text: ``{"a": 1, "b": [2, 3]}`` -> ``a: 1, b: 2, 3``; nested objects in parentheses."""
    if isinstance(v, dict):
        if not v:
            return "–"
        parts = []
        for k, x in v.items():
            inner = _plain(x)
            parts.append(f"{k}: ({inner})" if isinstance(x, dict) and len(x) > 1 else f"{k}: {inner}")
        return ", ".join(parts)
    if isinstance(v, list):
        return ", ".join(_plain(x) for x in v) if v else "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if v is None:
        return "–"
    return str(v)


def sort_value(text: str) -> str | None:
    """The number a cell sorts by (as text for the ``data-sort`` attribute), ``""`` for a missing
    value (sorted last), None for text (sorted as text). ``12.5%`` sorts as 12.5."""
    s = text.strip()
    if s in ("–", "-", ""):
        return ""
    num = s[:-1] if s.endswith("%") else s
    try:
        f = float(num)
    except ValueError:
        return None
    if math.isnan(f):
        return ""
    if math.isinf(f):  # as JavaScript's parseFloat reads it
        return "Infinity" if f > 0 else "-Infinity"
    return repr(f)


def _cell(value: Any, figures: dict[str, str]) -> Cell:
    text = readable(value)
    return Cell(text, sort_value(text), figures.get(text))


def _figure(p: Path, folder: Path) -> dict[str, Any]:
    data = base64.b64encode(p.read_bytes()).decode("ascii")
    pdf = p.with_suffix(".pdf")
    rel = None
    if pdf.is_file() and pdf.resolve().is_relative_to(folder.resolve()):
        rel = pdf.resolve().relative_to(folder.resolve()).as_posix()
    return {
        "id": f"fig-{slug(p.stem, '_')}",
        "title": figure_title(p),
        "src": f"data:image/png;base64,{data}",
        "pdf": rel,
    }


def _entry(sec: Section, anchor: str, links: dict[str, str], folder: Path) -> dict[str, Any]:
    """One section as the template shows it, under the page anchor ``anchor``."""
    return {
        "id": anchor,
        "title": sec.title,
        "note": sec.note,
        "header": list(sec.header),
        "rows": [[_cell(c, links) for c in r] for r in sec.rows],
        "collapsed": len(sec.rows) > COLLAPSE_ROWS,
        "empty": sec.empty,
        "figures": [_figure(p, folder) for p in sec.figures],
    }


def figure_title(png: Path) -> str:
    """The title a figure was saved with (PNG text chunk ``Title``), else its file stem."""
    try:
        from PIL import Image

        with Image.open(png) as im:
            title = im.text.get("Title") if hasattr(im, "text") else None
    except (ImportError, OSError):
        title = None
    return title or png.stem


def write_html(
    folder: Path,
    title: str,
    headline: dict[str, Any],
    sections: Sequence[Section],
    plots: Sequence[Path],
    provenance: dict[str, Any],
) -> Path:
    """Write ``report.html``: one self-contained page (inline CSS and script, figures embedded).

    Parameters
    ----------
    folder
        The report folder.
    title
        Page title.
    headline
        Headline numbers.
    sections
        The table sections in display order (:func:`moebench.report.writers.report_sections`).
    plots
        The report's figures (PNG) shown under "Figures".
    provenance
        Where the results come from (suite, versions, machine).

    Returns
    -------
    Path
        The page written.
    """
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("moebench.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        keep_trailing_newline=True,
    )
    # a cell naming a figure of the page links to it
    links = {p.name: f"#fig-{slug(p.stem, '_')}" for p in [*(f for sec in sections for f in sec.figures), *plots]}
    # the page's own anchors stay unique whatever a section provider calls its slug
    secs = [
        _entry(sec, f"section-{sec.slug}" if sec.slug in RESERVED_IDS else sec.slug, links, folder) for sec in sections
    ]
    if plots:
        note = "Every figure is also written as PDF beside its PNG (plots/), for LaTeX."
        secs.append(
            _entry(Section("Figures", [], [], "figures", note=note, empty="", figures=plots), "figures", {}, folder)
        )
    toc = [{"id": "headline", "title": "Headline numbers", "children": []}]
    toc += [{"id": s["id"], "title": s["title"], "children": s["figures"]} for s in secs]
    toc.append({"id": "provenance", "title": "Provenance", "children": []})
    page = env.get_template("report.html.j2").render(
        title=title,
        notes=NOTES,
        toc=toc,
        headline=[(k.replace("_", " "), readable(fmt(v))) for k, v in headline.items()],
        sections=secs,
        provenance=[(k.replace("_", " "), readable(v)) for k, v in provenance.items()],
    )
    p = folder / "report.html"
    p.write_text(page, encoding="utf-8")
    return p
