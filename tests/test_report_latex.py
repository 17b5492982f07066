"""LaTeX of the reports: every generated .tex compiles in a plain article with booktabs, no box
is overfull beyond 1 pt, every tabular sits in a table float with a caption and a label; the
splitting, the paper table and the report options."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from test_report_tables import synthetic

from moebench.errors import InputError
from moebench.report import latex
from moebench.report.build import write_report
from moebench.report.paper import ReportOptions, fmt_time, fmt_value, options_toml, read_options
from moebench.schema.config import ReportTable

REPORTS = Path(__file__).resolve().parents[1] / "reports"
PDFLATEX = shutil.which("pdflatex")
#: committed runs whose reports are compiled: the quick suite (the acceptance), the runtime suite
#: (long size labels, frontier paragraphs) and the guarantees suite (long verdicts, file paths)
COMPILED = ("quick", "runtime", "guarantees")


def compile_all(folder: Path, work: Path, preamble: str = "") -> str:
    """\\input every .tex of ``folder`` into a plain article and run pdflatex; returns the log."""
    work.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in folder.glob("*.tex"))
    for n in names:
        shutil.copy(folder / n, work / n)
    body = "".join(f"\\input{{{n}}}\n\\clearpage\n" for n in names if n != "macros.tex")
    (work / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n" + preamble + "\\input{macros.tex}\n"
        "\\begin{document}\n" + body + "\\end{document}\n"
    )
    res = subprocess.run(
        [str(PDFLATEX), "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = (work / "doc.log").read_text(errors="replace")
    assert res.returncode == 0, log[-3000:]
    return log


def overfull(log: str) -> list[float]:
    """Overfull hbox amounts (pt) in a pdflatex log."""
    return [float(x) for x in re.findall(r"Overfull \\hbox \(([\d.]+)pt too wide\)", log)]


def floats_are_complete(text: str) -> None:
    """Every tabular is inside a table float holding one caption and one label."""
    floats = re.findall(r"\\begin\{table\}.*?\\end\{table\}", text, flags=re.S)
    assert text.count("\\begin{tabular}") == len(floats) > 0
    for f in floats:
        assert f.count("\\begin{tabular}") == 1 and f.count("\\caption{") == 1 and f.count("\\label{tab:") == 1, f
        assert "\\toprule" in f and "\\bottomrule" in f


@pytest.mark.skipif(
    PDFLATEX is None, reason="no pdflatex (apt-get install texlive-latex-base texlive-latex-recommended)"
)
@pytest.mark.parametrize("name", COMPILED)
def test_every_generated_tex_compiles_without_overfull_boxes(name: str, tmp_path: Path) -> None:
    out = tmp_path / "report"
    write_report(REPORTS / name / "results.parquet", out, formats=("latex",))
    tex = sorted(out.glob("*.tex"))
    assert {"tables.tex", "summary.tex", "violations.tex", "macros.tex"} <= {p.name for p in tex}
    for p in tex:
        if p.name != "macros.tex":
            floats_are_complete(p.read_text())
    log = compile_all(out, tmp_path / "tex")
    assert [x for x in overfull(log) if x > 1.0] == []
    labels = re.findall(r"\\label\{([^}]*)\}", "".join(p.read_text() for p in tex))
    assert len(labels) == len(set(labels))  # unique labels across every file of a report
    assert "multiply defined" not in log


@pytest.mark.skipif(PDFLATEX is None, reason="no pdflatex")
def test_resize_option_scales_wide_tables_and_compiles(tmp_path: Path) -> None:
    out = tmp_path / "report"
    write_report(
        REPORTS / "quick" / "results.parquet", out, formats=("latex",), options=ReportOptions(latex_wide="resize")
    )
    text = (out / "tables.tex").read_text()
    assert "\\resizebox{\\linewidth}{!}{%" in text and text.count("\\begin{table}") == 1  # one table, all families
    assert "graphicx" in text.splitlines()[0]
    log = compile_all(out, tmp_path / "tex", preamble="\\usepackage{graphicx}\n")
    assert [x for x in overfull(log) if x > 1.0] == []


def test_a_wide_grid_is_split_with_its_key_column_and_spans_kept_whole() -> None:
    header = ["Method", *[f"q{i}" for i in range(12)]]
    rows = [["sgd-levels[maxconv,eps=0.1]", *["0.123 (4)"] * 12]]
    spans = [(1, 4, "family one"), (5, 8, "family two"), (9, 12, "family three")]
    grid = latex.Grid("A wide table. More words.", "tab:x", header, rows, tt=frozenset({0}), supergroups=spans)
    text = latex.render(grid)
    parts = re.findall(r"\\begin\{tabular\}\{(\w+)\}", text)
    assert len(parts) >= 2 and all(p.startswith("l") for p in parts)
    assert text.count("\\texttt{sgd-levels[maxconv,eps=0.1]}") == len(parts)  # the key column in every part
    # a span is never cut: every part shows whole families (4 columns each) after the method
    assert all((len(p) - 1) % 4 == 0 for p in parts)
    assert "\\caption{A wide table (continued).}" in text and "\\label{tab:x-2}" in text
    assert "\\footnotesize" in text  # set smaller before splitting


def test_long_text_becomes_paragraphs_and_cells_are_escaped() -> None:
    verdict = "VIOLATED: ratio 0.0930 on violations/greedy-ratio-uniform-L1-E12-K1-N1-s0.json " * 3
    grid = latex.Grid("Claims.", "tab:c", ["Method", "Claim", "Verdict"], [["greedy-ratio", "0.632", verdict]])
    text = latex.render(grid)
    assert "\\parbox[t]{" in text and "/\\allowbreak{}" in text
    assert latex.tex_escape("50% of a_b & c") == "50\\% of a\\_b \\& c"
    # a cell opening with '[' would be read as the optional argument of the \\ ending the row above
    g2 = latex.Grid("X.", "tab:y", ["a", "b"], [["[1]", "x"]])
    assert "{}[1] & x" in latex.render(g2)
    # a header much wider than its numbers wraps onto lines
    g3 = latex.Grid("X.", "tab:z", ["Method", "L8 T200 N5 (1448 sets, 2560 vars)"], [["cpsat", "1.0"]])
    assert "\\shortstack[r]{" in latex.render(g3)


def test_number_style() -> None:
    assert [fmt_time(v) for v in (0.000394, 0.0123, 1.377, 12.3, 1234.5, 0.0)] == [
        "0.00039",
        "0.012",
        "1.4",
        "12",
        "1234",
        "0",
    ]
    assert fmt_value(0.12345, "ratio") == "0.123" and fmt_value(-1e-12, "pct") == "0.0"
    assert fmt_value(float("nan"), "ratio") == "–"


def test_paper_table_groups_methods_by_kind_and_counts_partial_cells(tmp_path: Path) -> None:
    df = synthetic()
    df.loc[df["method"] == "g", "method_kind"] = "baseline"
    write_report(df, tmp_path, formats=("latex", "csv"))
    text = (tmp_path / "tables.tex").read_text()
    floats_are_complete(text)
    # exact, then heuristic, then baseline; family z: 'h' failed on i4 and 'g' does not apply to i3
    assert text.index("\\emph{exact}") < text.index("\\emph{heuristic}") < text.index("\\emph{baseline}")
    row_h = next(ln for ln in text.splitlines() if ln.startswith("\\texttt{h}"))
    row_g = next(ln for ln in text.splitlines() if ln.startswith("\\texttt{g}"))
    assert row_h.split(" & ")[3:5] == ["1.000 (1)", "1.000 (1)"]  # z: over i3 only, and it says so
    assert row_g.split(" & ")[3:5] == ["0.950 (1)", "0.950 (1)"]  # z: over i4 only
    assert row_g.split(" & ")[1:3] == ["0.900", "0.800"]  # f: both instances, no count
    assert "proven 1/2, bound 1" in text  # f: i2 has no proven optimum
    paper = pd.read_csv(tmp_path / "paper.csv")
    z = paper[paper["family"] == "z"].set_index("method")
    assert z.loc["h", "instances"] == 1 and z.loc["ex", "instances"] == 2 and set(z["family_instances"]) == {2}


def test_options_choose_methods_families_and_columns(tmp_path: Path) -> None:
    opts = ReportOptions().merged(methods=("g", "ex"), families=("z",), columns=("gain_gmean", "lat_worst"))
    write_report(synthetic(), tmp_path, formats=("latex", "csv"), options=opts)
    text = (tmp_path / "tables.tex").read_text()
    assert "\\texttt{h}" not in text and "\\shortstack{f" not in text and "\\shortstack{z" in text
    assert "gmean & lat. worst" in text
    assert "time [s]" not in text  # time only when asked for
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert set(summary["method"]) == {"g", "ex"} and set(summary["family"]) == {"z"}
    with pytest.raises(InputError, match="no method 'nope'"):
        write_report(synthetic(), tmp_path, options=ReportOptions().merged(methods=("nope",)))


def test_report_toml_round_trip(tmp_path: Path) -> None:
    table = ReportTable(methods=["g"], families=["z"], columns=["gain_mean", "time"], latex_wide="resize")
    (tmp_path / "report.toml").write_text(options_toml(table))
    opts = read_options(tmp_path)
    assert (opts.methods, opts.families, opts.columns, opts.latex_wide) == (
        ("g",),
        ("z",),
        ("gain_mean", "time"),
        "resize",
    )
    (tmp_path / "report.toml").write_text('[report]\ncolumns = ["gain_mean", "speed"]\n')
    with pytest.raises(InputError, match=r"report.toml: .*columns"):
        read_options(tmp_path)


def test_quantities_match_the_suite_schema() -> None:
    from typing import get_args

    from moebench.report.paper import QUANTITIES
    from moebench.schema.config import ReportColumn

    assert set(QUANTITIES) == set(get_args(ReportColumn))


def test_a_bad_report_table_in_a_suite_is_refused_with_its_key(tmp_path: Path) -> None:
    from bench_helpers import write_suite

    from moebench.bench.suite import load_suite

    path = write_suite(tmp_path, ("popularity",), extra='\n[report]\ncolumns = ["gain_mean", "speed"]\n')
    with pytest.raises(InputError, match=r"report\.columns\[1\]"):
        load_suite(path)
    path = write_suite(tmp_path, ("popularity",), extra='\n[report]\nlatex_wide = "shrink"\n')
    with pytest.raises(InputError, match=r"report\.latex_wide"):
        load_suite(path)
    path = write_suite(tmp_path, ("popularity",), extra='\n[report]\nmethods = ["popularity"]\n')
    assert load_suite(path).report.methods == ["popularity"]


def test_report_cli_options_and_their_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from moebench.cli import main

    synthetic().to_parquet(tmp_path / "results.parquet")
    base = ["report", str(tmp_path), "--format", "latex"]
    assert main([*base, "--methods", "ex,g", "--columns", "gain_worst", "--latex-wide", "resize"]) == 0
    text = (tmp_path / "report" / "tables.tex").read_text()
    assert "\\texttt{h}" not in text and "& worst & worst \\\\" in text
    capsys.readouterr()
    for extra, msg in (
        (["--methods", "ex,nope"], "moebench: error: --methods: no method 'nope' in the results (there are: ex, g, h)"),
        (["--columns", "gain_mean,speed"], "moebench: error: --columns: unknown column 'speed'"),
        (["--families", ","], "moebench: error: --families: empty list"),
    ):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith(msg) and err.count("\n") == 1
