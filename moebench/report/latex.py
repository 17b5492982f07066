"""LaTeX tables of a report: booktabs ``table`` floats that fit the text width of a plain article.

Every table is a float with ``\\caption`` (above the table) and ``\\label``, set in ``\\small``
with booktabs rules; method names are in ``\\texttt``, missing values are en-dashes. A table
wider than :data:`LINEWIDTH_PT` (the ``\\linewidth`` of ``\\documentclass{article}`` at 10 pt)
is, by default, *split*: long text columns become ragged paragraphs of a fixed width, and
tables with too many columns are cut into several floats that repeat the key column (the
method). With the documented option ``latex_wide = "resize"`` a wide table is instead scaled
to the line width with ``\\resizebox`` (needs ``\\usepackage{graphicx}``). Tables longer than
:data:`MAX_ROWS` rows are continued in further floats, so that none runs past a page.

Widths are estimated from Computer Modern's character widths; the LaTeX test of the report
compiles every generated file and checks that no box is overfull.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

#: ``\linewidth`` of a plain article (10 pt, letter or A4 paper), in points.
LINEWIDTH_PT = 345.0
#: Rows per float before a table is continued in the next one.
MAX_ROWS = 40
#: Font sizes a table may be set in, and their scale against the 10 pt metrics below (with a margin).
SIZES = {"small": 0.93, "footnotesize": 0.83}
#: How wide tables are set: split into several floats, or scaled with ``\resizebox``.
WIDE_MODES = ("split", "resize")

# Computer Modern Roman 10 pt widths (pt) of the lower-case letters; other characters below.
_CMR = dict(zip("abcdefghijklmnopqrstuvwxyz", (5.0, 5.56, 4.44, 5.56, 4.44, 3.06, 5.0, 5.56, 2.78, 3.06, 5.28, 2.78, 8.33, 5.56, 5.0, 5.56, 5.28, 3.92, 3.94, 3.89, 5.56, 5.28, 7.22, 5.28, 5.28, 4.44)))  # fmt: skip
_TT = 5.25  # every character of Computer Modern Typewriter 10 pt

_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "–": "--",
    "−": "--",
    "—": "---",
    "·": r"$\cdot$",
    "×": r"$\times$",
    "≥": r"$\geq$",
    "≤": r"$\leq$",
    "∅": r"$\emptyset$",
    "●": r"$\bullet$",
    "○": r"$\circ$",
    "…": r"\ldots{}",
    "’": "'",
    "\n": " ",
}
_DIGITS = "Zero One Two Three Four Five Six Seven Eight Nine".split()


def tex_escape(s: object) -> str:
    """Escape LaTeX special characters (and the few Unicode signs the report prints)."""
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(s))


def macro_name(*parts: str) -> str:
    """A LaTeX macro name (letters only) from free text: ``greedy-enum[2]`` -> ``GreedyEnumTwo``."""
    out = []
    for part in parts:
        for tok in re.findall(r"[A-Za-z]+|[0-9]", part):
            out.append(_DIGITS[int(tok)] if tok.isdigit() else tok[0].upper() + tok[1:])
    return "mb" + "".join(out)


def label_name(text: str) -> str:
    """A label key from free text: ``tab:moebench-<letters, digits and dashes>``."""
    return "tab:moebench-" + (re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "table")


def text_width(s: str, tt: bool = False) -> float:
    """Estimated width in points of ``s`` at 10 pt (upper-case letters and signs generously)."""
    if tt:
        return _TT * len(s)
    w = 0.0
    for ch in s:
        if ch in _CMR:
            w += _CMR[ch]
        elif ch.isdigit() or ch in "–":
            w += 5.0
        elif ch == " ":
            w += 3.33
        elif ch.isupper() or ch in "%&@mw—":
            w += 8.4
        elif ch in ".,:;'!|":
            w += 2.78
        else:
            w += 5.6
    return w


def breakable(s: str) -> str:
    """Escaped text in which long unbroken tokens (paths, method names) may break after ``/ - _ , =``."""
    out = []
    for tok in re.split(r"(\s+)", s):
        esc = tex_escape(tok)
        if len(tok) > 14:
            esc = re.sub(r"(/|--|\\_|,|=)", r"\1\\allowbreak{}", esc)
        out.append(esc)
    return "".join(out)


@dataclass
class Grid:
    """A table to set: plain-text header and cells, and how to set them.

    Attributes
    ----------
    caption
        Caption text (plain text; escaped when set).
    label
        ``\\label`` key (:func:`label_name`).
    header
        Column headers (plain text).
    rows
        Cells (plain text, already formatted; ``–`` for missing).
    tt
        Indices of the columns set in ``\\texttt`` (method names).
    key
        Number of leading columns repeated in every part when the table is split by columns.
    groups
        Row index -> heading of a group of rows starting there (a rule and the heading, in italics).
    supergroups
        Column spans above the header: (first column, last column, text), inclusive, 0-based.
    note
        A sentence set under the caption of the first part (plain text).
    """

    caption: str
    label: str
    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    tt: frozenset[int] = frozenset()
    key: int = 1
    groups: dict[int, str] = field(default_factory=dict)
    supergroups: Sequence[tuple[int, int, str]] = ()
    note: str = ""
    #: font size (a key of :data:`SIZES`) and ``\\tabcolsep`` in points
    size: str = "small"
    colsep: float = 6.0

    def numeric(self, j: int) -> bool:
        """Whether every cell of column ``j`` is a number (possibly with a count or a sign): right-aligned."""
        cells = [str(r[j]) for r in self.rows]
        return bool(cells) and all(_numberish(c) for c in cells)

    def head_lines(self, j: int) -> list[str]:
        """Header of column ``j`` in lines: a header much wider than its cells is wrapped at spaces."""
        head = str(self.header[j])
        cells = max([text_width(str(r[j]), j in self.tt) for r in self.rows], default=0.0)
        limit = max(cells, 50.0)
        if text_width(head) <= limit or " " not in head:
            return [head]
        lines: list[str] = []
        for word in head.split(" "):
            if lines and text_width(lines[-1] + " " + word) <= limit:
                lines[-1] += " " + word
            else:
                lines.append(word)
        return lines

    def natural(self, j: int) -> float:
        """Estimated natural width of column ``j`` in points (header and cells, in the grid's size)."""
        tt = j in self.tt
        w = max([text_width(x) for x in self.head_lines(j)] + [text_width(str(r[j]), tt) for r in self.rows])
        return SIZES[self.size] * w

    def widths(self) -> list[float]:
        """Natural widths of the columns, the last column of a span widened to hold the span's text."""
        w = [self.natural(j) for j in range(len(self.header))]
        for a, b, text in self.supergroups:
            need = SIZES[self.size] * max(text_width(line) for line in text.split("\n"))
            have = sum(w[a : b + 1]) + 2 * self.colsep * (b - a)
            if need > have:
                w[b] += need - have
        return w

    def units(self) -> list[list[int]]:
        """Columns that stay together when the table is split: each span, and every other column alone."""
        out: list[list[int]] = []
        spans = {a: b for a, b, _ in self.supergroups}
        j = 0
        while j < len(self.header):
            b = spans.get(j, j)
            out.append(list(range(j, b + 1)))
            j = b + 1
        return out


def _numberish(cell: str) -> bool:
    return bool(re.fullmatch(r"[<>≤≥]?[-+]?\d[\d.,]*%?( \(\d+\))?|\d+/\d+|–|n/a|[-+]?inf", cell.strip()))


def render(grid: Grid, wide: str = "split") -> str:
    """The LaTeX of ``grid``: one or more ``table`` floats (see the module docstring).

    A table wider than the line is first set smaller (``\\footnotesize``, 4 pt column
    separation); if it still does not fit, long text columns become ragged paragraphs and the
    rest is split into parts that repeat the key columns (``wide="split"``), or the whole is
    scaled to the line (``wide="resize"``).
    """
    if wide not in WIDE_MODES:
        raise ValueError(f"wide must be one of {WIDE_MODES}, not {wide!r}")
    ncol = len(grid.header)
    para: dict[int, float] = {}
    parts: list[list[int]] = [list(range(ncol))]
    resize = False
    if _total(grid) > LINEWIDTH_PT:
        grid = replace(grid, size="footnotesize", colsep=min(grid.colsep, 4.0))
        if _total(grid) > LINEWIDTH_PT:
            if wide == "split":
                para, parts = _fit(grid)
            else:
                resize = True
    chunks = [list(range(i, min(i + MAX_ROWS, len(grid.rows)))) for i in range(0, max(len(grid.rows), 1), MAX_ROWS)]
    # every column part in row chunks, numbered from 1 (part 1 carries the caption and label)
    floats = itertools.product(parts, chunks)
    return "\n".join(_float(grid, cols, rows, para, n, resize=resize) for n, (cols, rows) in enumerate(floats, 1))


def _total(grid: Grid) -> float:
    return sum(grid.widths()) + 2 * grid.colsep * len(grid.header)


def _fit(grid: Grid) -> tuple[dict[int, float], list[list[int]]]:
    """Paragraph widths for long text columns and the column parts of a table too wide to fit."""
    widths = grid.widths()
    ncol = len(widths)
    sep = 2 * grid.colsep
    key = list(range(min(grid.key, ncol - 1)))
    free = [j for j in range(ncol) if j not in key and not grid.numeric(j) and j not in grid.tt]
    long = [j for j in free if widths[j] > 0.22 * LINEWIDTH_PT]
    para: dict[int, float] = {}
    if long:
        rest = sum(w for j, w in enumerate(widths) if j not in long) + sep * ncol
        room = LINEWIDTH_PT - rest - 2.0
        if room >= 0.2 * LINEWIDTH_PT * len(long):
            share = sum(min(widths[j], LINEWIDTH_PT) for j in long)
            for j in long:
                para[j] = math.floor(room * min(widths[j], LINEWIDTH_PT) / share)
            return para, [list(range(ncol))]
        for j in long:  # too many other columns: paragraphs of a fifth of the line, then split
            para[j] = math.floor(0.2 * LINEWIDTH_PT)
    eff = [para.get(j, w) + sep for j, w in enumerate(widths)]
    base = sum(eff[j] for j in key)
    units: list[list[int]] = []
    for unit in grid.units():
        if unit[0] < len(key):
            continue
        # a column group wider than a part on its own is cut into single columns
        units += [unit] if base + sum(eff[j] for j in unit) <= LINEWIDTH_PT else [[j] for j in unit]
    for unit in units:
        for j in unit:  # a single text column still too wide becomes a paragraph filling the part
            if base + eff[j] > LINEWIDTH_PT and not grid.numeric(j):
                para[j] = math.floor(LINEWIDTH_PT - base - sep - 2.0)
                eff[j] = para[j] + sep
    parts: list[list[int]] = []
    cur: list[int] = []
    used = base
    for unit in units:
        w = sum(eff[j] for j in unit)
        if cur and used + w > LINEWIDTH_PT:
            parts.append(key + cur)
            cur, used = [], base
        cur += unit
        used += w
    parts.append(key + cur)
    return para, parts


def _cell(grid: Grid, j: int, text: str, para: dict[int, float]) -> str:
    if j in para:
        return f"\\parbox[t]{{{para[j]:.0f}pt}}{{\\raggedright {breakable(text)}}}"
    if j in grid.tt and text not in ("–", ""):
        return f"\\texttt{{{tex_escape(text)}}}"
    # after the \\\\ ending the row above, a leading "[" would be read as its optional argument
    return ("{}" if text.startswith("[") else "") + tex_escape(text)


def _head(grid: Grid, j: int) -> str:
    lines = grid.head_lines(j)
    if len(lines) == 1:
        return tex_escape(lines[0])
    return _stack(lines, "[r]" if grid.numeric(j) else "[l]")


def _stack(lines: Sequence[str], pos: str = "") -> str:
    """Lines of text stacked in one cell."""
    return f"\\shortstack{pos}{{" + "\\\\\\relax ".join(tex_escape(x) for x in lines) + "}"


def _float(grid: Grid, cols: list[int], rows: list[int], para: dict[int, float], part: int, resize: bool) -> str:
    spec = "".join("r" if grid.numeric(j) else "l" for j in cols)
    caption = grid.caption if part == 1 else grid.caption.split(". ")[0].rstrip(".") + " (continued)."
    label = grid.label if part == 1 else f"{grid.label}-{part}"
    lines = [
        "\\begin{table}[htbp]",
        "\\centering",
        f"\\{grid.size}",
        f"\\caption{{{tex_escape(caption)}}}",
        f"\\label{{{label}}}",
    ]
    if grid.note and part == 1:
        lines.append(f"\\par\\smallskip{{\\footnotesize {tex_escape(grid.note)}}}\\par\\smallskip")
    if grid.colsep != 6.0:
        lines.append(f"\\setlength{{\\tabcolsep}}{{{grid.colsep:g}pt}}")
    if resize:
        lines.append("\\resizebox{\\linewidth}{!}{%")
    lines += [f"\\begin{{tabular}}{{{spec}}}", "\\toprule"]
    pos = {j: i for i, j in enumerate(cols)}
    spans = [(pos[a], pos[b], t) for a, b, t in grid.supergroups if a in pos and b in pos]
    if spans:
        cells, rules, at = [], [], 0
        for a, b, t in sorted(spans):
            text = tex_escape(t) if "\n" not in t else _stack(t.split("\n"))
            cells += [""] * (a - at) + [f"\\multicolumn{{{b - a + 1}}}{{c}}{{{text}}}"]
            rules.append(f"\\cmidrule(lr){{{a + 1}-{b + 1}}}")
            at = b + 1
        cells += [""] * (len(cols) - at)
        lines += [" & ".join(cells) + " \\\\", "".join(rules)]
    lines += [" & ".join(_head(grid, j) for j in cols) + " \\\\", "\\midrule"]
    if not grid.rows:
        lines.append(f"\\multicolumn{{{len(cols)}}}{{c}}{{nothing to show}} \\\\")
    for n, i in enumerate(rows):
        if i in grid.groups:
            if n > 0:
                lines.append("\\midrule")
            lines.append(f"\\multicolumn{{{len(cols)}}}{{l}}{{\\emph{{{tex_escape(grid.groups[i])}}}}} \\\\")
        lines.append(" & ".join(_cell(grid, j, str(grid.rows[i][j]), para) for j in cols) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    if resize:
        lines.append("}")
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"
