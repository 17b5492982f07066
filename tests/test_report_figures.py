"""Figures and the HTML page of a report: one style, PDF twins, standard views, a page that sorts.

The quick suite's committed results are rendered into a temporary folder once (module fixture);
the Chromium test opens that page and drives its sorter and filter like a reader would.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from moebench.report import style
from moebench.report.build import write_report
from moebench.report.confidence import MIN_SAMPLE, mean_ci
from moebench.report.html import figure_title, readable, sort_value
from moebench.report.plots import share_at_least, time_ratios

QUICK = Path(__file__).resolve().parents[1] / "reports" / "quick"


# ---- style --------------------------------------------------------------------------------
def test_twenty_four_methods_get_distinct_colour_marker_linestyle_triples() -> None:
    kinds = {f"e{i}": "exact" for i in range(4)}
    kinds |= {f"a{i}": "approximation" for i in range(5)}
    kinds |= {f"h{i:02d}": "heuristic" for i in range(10)}
    kinds |= {f"b{i}": "baseline" for i in range(5)}
    styles = style.method_styles(kinds)
    triples = {(s.color, s.marker, s.linestyle) for s in styles.values()}
    assert len(styles) == 24 and len(triples) == 24
    # twenty methods of one kind are still told apart
    one = style.method_styles({f"m{i:02d}": "heuristic" for i in range(20)})
    assert len({(s.color, s.marker, s.linestyle) for s in one.values()}) == 20
    # the colour says the kind, and no method is drawn in the reference's black
    for m, s in styles.items():
        assert s.color in style.PALETTES[kinds[m]] and s.kind == kinds[m]
        assert s.color.lower() not in ("black", "#000000")
    assert not set(style.PALETTES["exact"]) & set(style.PALETTES["heuristic"])


def test_a_method_keeps_its_style_whatever_the_other_kinds_hold() -> None:
    a = style.method_styles({"milp-highs": "exact", "cpsat": "exact", "none": "baseline"})
    b = style.method_styles({"milp-highs": "exact", "cpsat": "exact", "none": "baseline", "sgd": "heuristic"})
    runs = pd.DataFrame(
        {"method": ["none", "cpsat", "milp-highs", "cpsat"], "method_kind": ["baseline", "exact", "exact", "exact"]}
    )
    c = style.method_styles(runs)
    assert a == {k: b[k] for k in a} == c
    assert style.ordered(["none", "sgd", "cpsat", "milp-highs"], b) == ["cpsat", "milp-highs", "sgd", "none"]


def test_integer_parameters_get_integer_ticks_only() -> None:
    with style.figure_context() as plt:
        fig, ax = plt.subplots()
        ax.plot([1, 3], [0.5, 0.7])
        style.integer_ticks(ax, [1, 3])
        assert list(ax.get_xticks()) == [1.0, 3.0]
        fig2, ax2 = plt.subplots()
        ax2.plot([0.1, 0.25], [1, 2])
        before = list(ax2.get_xticks())
        style.integer_ticks(ax2, [0.1, 0.25])  # not integers: left to matplotlib
        assert list(ax2.get_xticks()) == before
        plt.close(fig)
        plt.close(fig2)


def test_titles_name_family_parameter_and_fixed_parameters() -> None:
    assert style.title("zipf", "expected latency", "K", {"capacity": 0.25, "servers": 3.0}) == (
        "zipf: expected latency vs K (capacity=0.25, servers=3)"
    )
    fam = pd.DataFrame({"param_K": [1, 2, 1, 2], "param_servers": [2, 2, 3, 3], "param_tokens": [9, 9, 9, 9]})
    assert style.fixed_parameters(fam, "param_K", fam.iloc[:2]) == {"servers": 2}


# ---- statistics of the standard views ------------------------------------------------------
def test_bootstrap_interval_matches_scipy_and_needs_three_values() -> None:
    from scipy.stats import bootstrap

    v = np.array([0.91, 0.97, 1.0, 0.88, 0.95, 0.99])
    ci = mean_ci(v)
    ref = bootstrap((v,), np.mean, n_resamples=2000, method="percentile", rng=np.random.default_rng(0))
    assert ci.mean == pytest.approx(v.mean())
    assert (ci.low, ci.high) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    assert ci.low < ci.mean < ci.high and ci.n == 6
    assert not mean_ci(v[: MIN_SAMPLE - 1]).has_interval and mean_ci(v[:2]).mean == pytest.approx(0.94)
    assert (mean_ci([1.0, 1.0, 1.0]).low, mean_ci([1.0, 1.0, 1.0]).high) == (1.0, 1.0)
    assert math.isnan(mean_ci([]).mean)


def test_ratio_profile_share_counts_ratios_at_or_above_each_threshold() -> None:
    got = share_at_least(np.array([0.0, 0.5, 1.0, 1.0]), np.array([0.0, 0.5, 0.75, 1.0]))
    assert list(got) == [1.0, 0.75, 0.5, 0.5]


def test_performance_profile_ratios_against_the_fastest_solver_of_each_instance() -> None:
    d = pd.DataFrame(
        {
            "_key": ["i1", "i1", "i1", "i2", "i2", "i2", "i3", "i3"],
            "method": ["a", "b", "c", "a", "b", "c", "a", "b"],
            "status": ["optimal", "optimal", "optimal", "time-limit", "optimal", "optimal", "optimal", "optimal"],
            "feasible": [True] * 8,
            "_t": [1.0, 2.0, 4.0, 10.0, 3.0, 6.0, 0.5, 0.5],
        }
    )
    ratios, left_out, n = time_ratios(d, {"optimal"})
    assert left_out == ["c"] and n == 3  # c did not run on i3: not compared on a smaller set
    assert list(ratios["a"]) == [1.0, math.inf, 1.0] and list(ratios["b"]) == [2.0, 1.0, 1.0]


# ---- the quick report -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("quick-report")
    write_report(QUICK / "results.parquet", out, formats=("csv", "md", "html"))
    return out


def test_every_png_of_the_quick_report_has_a_pdf_and_a_unique_title(quick: Path) -> None:
    pngs = sorted((quick / "plots").glob("*.png"))
    names = {p.stem for p in pngs}
    # no family of the quick suite has two sizes: no time-vs-size figure
    assert {"ratio-profile", "performance-profile", "gain-ratio-ci"} <= names and "time-vs-size" not in names
    assert sum(n.startswith("sweep-latency-") for n in names) == 3
    for p in pngs:
        pdf = p.with_suffix(".pdf")
        assert pdf.is_file() and pdf.read_bytes()[:5] == b"%PDF-", p.name
    titles = [figure_title(p) for p in pngs]
    assert len(set(titles)) == len(titles) and not any(t in names for t in titles)
    sweep_titles = sorted(t for t in titles if "expected latency vs K" in t)
    assert sweep_titles == [f"{f}: expected latency vs K" for f in ("clustered", "uniform", "zipf")]
    listed = (quick / "report-files.txt").read_text().split()
    assert {f"plots/{p.name}" for p in pngs} | {f"plots/{p.stem}.pdf" for p in pngs} <= set(listed)


def test_cells_are_readable_and_sort_as_numbers() -> None:
    assert readable("True") == "yes" and readable(False) == "no" and readable(float("nan")) == "–"
    assert readable("none") == "none"  # the method that caches nothing keeps its name
    assert readable('{"numpy": "2.1.0", "highspy": "1.11.0"}') == "numpy: 2.1.0, highspy: 1.11.0"
    assert readable('{"a": {"x": 1, "y": [2, 3]}, "b": true}') == "a: (x: 1, y: 2, 3), b: yes"
    assert readable("{not json}") == "{not json}" and readable("greedy-enum[2]") == "greedy-enum[2]"
    assert sort_value("0.950") == "0.95" and sort_value("38.0%") == "38.0" and sort_value("–") == ""
    assert sort_value("milp-highs") is None and sort_value("inf") == "Infinity"


class _Page(HTMLParser):
    """Ids, TOC links, tables (rows with their cells and hidden flag), details and scripts of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.tables: dict[str, list[dict]] = {}
        self.in_details: set[str] = set()
        self.attrs_of: dict[str, dict] = {}
        self.scripts_with_src = 0
        self._table: str | None = None
        self._row: dict | None = None
        self._cell: dict | None = None
        self._details = 0
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
            self.attrs_of[a["id"]] = a
        if tag == "a" and a.get("href", "").startswith("#"):
            self.links.append(a["href"][1:])
        if tag == "script" and "src" in a:
            self.scripts_with_src += 1
        if tag == "details":
            self._details += 1
        if tag == "table":
            self._table = a.get("id")
            self.tables[self._table] = []
            if self._details:
                self.in_details.add(self._table)
        if tag == "tr" and self._table is not None:
            self._row = {"hidden": "hidden" in a, "cells": []}
        if tag == "td" and self._row is not None:
            self._cell = {"sort": a.get("data-sort")}
            self._text = []

    def handle_data(self, data):
        if self._cell is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._cell["text"] = "".join(self._text)
            self._row["cells"].append(self._cell)
            self._cell = None
        if tag == "tr" and self._row is not None:
            if self._row["cells"]:
                self.tables[self._table].append(self._row)
            self._row = None
        if tag == "table":
            self._table = None
        if tag == "details":
            self._details -= 1


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    page.close()
    return page


def test_html_has_contents_anchors_sortable_tables_and_readable_cells(quick: Path) -> None:
    text = (quick / "report.html").read_text()
    page = _parse(text)
    sections = set(re.findall(r"<section id=\"([^\"]+)\"", text))
    assert {"headline", "summary", "references", "figures", "provenance"} <= sections
    assert sections <= set(page.links)  # every section is in the table of contents
    assert set(page.links) <= page.ids  # and every link has its target
    assert all(f"fig-{p.stem}" in page.links for p in (quick / "plots").glob("*.png"))
    assert page.scripts_with_src == 0 and "http://" not in text and "https://" not in text
    for tid, rows in page.tables.items():
        assert 'class="sortable"' in text.split(f'id="{tid}"', 1)[1][:40]
        assert (len(rows) > 25) == (tid in page.in_details), tid  # long tables are collapsed
    refs = page.tables["table-references"]
    assert {r["cells"][2]["text"] for r in refs} == {"yes"}  # "Proven" column, not "True"
    assert "True" not in {c["text"] for rows in page.tables.values() for r in rows for c in r["cells"]}
    # the sweeps table names each figure and links to it
    assert text.count('href="#fig-sweep-latency-00-clustered-k"') == 2
    for href in re.findall(r'href="(plots/[^"]+)"', text):
        assert (quick / href).is_file()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")

#: Appended to a copy of the page: clicks the header of the first numeric column twice
#: (descending) and types a filter, as a reader would; the DOM is then dumped and checked here.
_DRIVER = """<script>
(function () {
  var pick = null;
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (t) {
    if (pick) return;
    for (var j = 0; j < t.tHead.rows[0].cells.length; j++) {
      var vals = Array.prototype.map.call(t.tBodies[0].rows, function (r) { return r.cells[j].getAttribute("data-sort"); })
        .filter(function (v) { return v !== null && v !== ""; });
      if (vals.length >= 3 && new Set(vals).size >= 3) { pick = [t, j]; return; }
    }
  });
  var button = pick[0].tHead.rows[0].cells[pick[1]].querySelector("button");
  button.click();
  button.click();
  var filter = document.querySelector('input.filter[data-table="' + pick[0].id + '"]');
  filter.value = "%s";
  filter.dispatchEvent(new Event("input"));
  document.body.setAttribute("data-driven", pick[0].id + ":" + pick[1]);
})();
</script>
</body>"""


def _chromium(page: Path, *flags: str) -> subprocess.CompletedProcess:
    cmd = [str(CHROMIUM), "--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr", "--v=0"]
    return subprocess.run([*cmd, *flags, page.as_uri()], capture_output=True, text=True, timeout=180)


def _console(res: subprocess.CompletedProcess) -> list[str]:
    return [line for line in res.stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium)")
def test_html_sorts_and_filters_in_headless_chromium_without_console_errors(quick: Path, tmp_path: Path) -> None:
    # the console check can fail: a page with a script error is caught
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>undefinedFunction();</script></body></html>")
    assert _console(_chromium(bad, "--dump-dom"))
    shot = tmp_path / "report.png"
    res = _chromium(quick / "report.html", f"--screenshot={shot}", "--window-size=1280,2400")
    assert _console(res) == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    word = "milp"
    original = (quick / "report.html").read_text()
    driven = tmp_path / "report-driven.html"
    driven.write_text(original.replace("</body>", _DRIVER % word, 1))
    res = _chromium(driven, "--dump-dom")
    assert _console(res) == [] and res.returncode == 0
    dom = _parse(res.stdout)
    tid, col = re.search(r'data-driven="([^":]+):(\d+)"', res.stdout).groups()
    rows, before = dom.tables[tid], _parse(original).tables[tid]
    assert sorted(str(r["cells"]) for r in rows) == sorted(str(r["cells"]) for r in before)  # same rows
    keys = [r["cells"][int(col)]["sort"] for r in rows]
    nums = [float(k) for k in keys if k not in (None, "")]
    assert nums == sorted(nums, reverse=True) and len(nums) >= 3
    assert all(k in (None, "") for k in keys[len(nums) :])  # missing and text values last
    for r in rows:
        has = word in " ".join(c["text"] for c in r["cells"]).lower()
        assert r["hidden"] is not has
    assert any(not r["hidden"] for r in rows) and any(r["hidden"] for r in rows)


def test_a_size_ladder_gets_a_time_figure_with_its_pdf(tmp_path: Path) -> None:
    from test_report_runtime import ladder

    from moebench.report.plots import time_vs_size

    runs = ladder()
    png = time_vs_size(runs, tmp_path / "t.png", style.method_styles(runs))
    assert png is not None and png.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
    assert figure_title(png) == "median method time vs size N·G, per family"
    assert time_vs_size(runs[runs["binaries"] == 8], tmp_path / "u.png", style.method_styles(runs)) is None
