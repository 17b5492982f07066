"""Report files: LaTeX against golden files, a self-contained HTML page, Markdown, CSV, CLI."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from test_report_tables import synthetic

from moebench.report.build import parse_formats, write_report
from moebench.report.writers import macro_name, tex_escape

GOLDEN = Path(__file__).parent / "data" / "golden"
#: method names with LaTeX special characters and digits (escaping and macro names)
RENAME = {"g": "sgd_x[eps=0.1]+ls", "h": "greedy-enum[2]"}


def _table() -> pd.DataFrame:
    df = synthetic()
    df["method"] = df["method"].replace(RENAME)
    df["family"] = df["family"].replace({"f": "fam_1"})
    return df


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    write_report(_table(), out, formats=("csv", "latex", "md", "html"))
    return out


@pytest.mark.parametrize("name", ["tables.tex", "macros.tex", "violations.tex"])
def test_latex_matches_golden(report: Path, name: str) -> None:
    got = (report / name).read_text()
    if os.environ.get("MOEBENCH_UPDATE_GOLDEN"):
        (GOLDEN / name).write_text(got)
    assert got == (GOLDEN / name).read_text()


def test_latex_escaping_and_macro_names() -> None:
    assert tex_escape("a_b&c%d$e#f{g}~^\\") == (
        r"a\_b\&c\%d\$e\#f\{g\}\textasciitilde{}\textasciicircum{}\textbackslash{}"
    )
    assert macro_name("GainGmean", "sgd-levels[maxconv,eps=0.1]+ls") == "mbGainGmeanSgdLevelsMaxconvEpsZeroOneLs"
    assert macro_name("x", "greedy-enum[2]").isalpha()


class _Checker(HTMLParser):
    """Collects tags, unclosed elements, images and anything that would load from outside."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.images: list[str] = []
        self.external: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src", ""))
        for key in ("src", "href"):
            # relative links (a figure's PDF beside the page) stay on the machine; URLs do not
            if key in a and re.match(r"^([a-z][a-z0-9+.-]*:|//)", str(a[key])) and not a[key].startswith("data:"):
                self.external.append(a[key])
        if tag == "link" or (tag == "script" and "src" in a):
            self.external.append(tag)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> (open: {self.stack[-3:]})")
        else:
            self.stack.pop()


def test_html_is_self_contained_and_well_formed(report: Path) -> None:
    text = (report / "report.html").read_text()
    assert text.startswith("<!DOCTYPE html>")
    chk = _Checker()
    chk.feed(text)
    chk.close()
    assert chk.errors == [] and chk.stack == []
    assert chk.external == []
    assert {"table", "h1", "h2", "figure"} <= chk.tags
    assert len(chk.images) == len(list((report / "plots").glob("*.png")))  # every figure, embedded
    for src in chk.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "greedy-enum[2]" in text and "i4" in text and "boom" in text


def test_markdown_and_csv(report: Path) -> None:
    md = (report / "report.md").read_text()
    assert "## Guarantee violations" in md
    assert "| i1 | fam_1 | greedy-enum[2] | below | 0.6321 (test theorem) | 0.500 |" in md
    assert "![ratio-profile](plots/ratio-profile.png)" in md and (report / "plots" / "ratio-profile.png").exists()
    summary = pd.read_csv(report / "summary.csv")
    row = summary[(summary["family"] == "all") & (summary["method"] == "greedy-enum[2]")].iloc[0]
    assert row["gain_worst"] == pytest.approx(0.5) and row["failed"] == 1
    ratios = pd.read_csv(report / "ratios.csv")
    assert len(ratios) == 12 and set(pd.read_csv(report / "violations.csv")["instance"]) == {"i1", "i4"}


def test_formats() -> None:
    assert parse_formats("csv, markdown,tex,html") == ("csv", "md", "latex", "html")
    from moebench.errors import InputError

    with pytest.raises(InputError, match="unknown format 'pdf'"):
        parse_formats("csv,pdf")


def test_report_cli(tmp_path: Path) -> None:
    df = _table()
    df.to_parquet(tmp_path / "results.parquet")
    cmd = [sys.executable, "-m", "moebench.cli", "report", str(tmp_path), "--format", "csv,latex"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "report" / "summary.csv").exists() and (tmp_path / "report" / "tables.tex").exists()
    assert not (tmp_path / "report" / "report.html").exists() and not (tmp_path / "report" / "report.md").exists()
    res = subprocess.run([*cmd[:-1], "pdf"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.startswith("moebench: error: --format: unknown format")
    res = subprocess.run([*cmd[:4], str(tmp_path / "nothing")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "no such file" in res.stderr


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium)")
def test_html_opens_in_headless_chromium_without_console_messages(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    res = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            f"--screenshot={shot}",
            "--window-size=1200,2000",
            (report / "report.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # page console output (errors included) is logged as ":CONSOLE" lines
    console = [line for line in res.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


PDFLATEX = shutil.which("pdflatex")


@pytest.mark.skipif(PDFLATEX is None, reason="no LaTeX engine installed (golden files are checked instead)")
def test_latex_compiles_with_booktabs(report: Path, tmp_path: Path) -> None:
    for name in ("tables.tex", "violations.tex", "macros.tex"):
        shutil.copy(report / name, tmp_path / name)
    (tmp_path / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage[margin=1cm,landscape]{geometry}\n\\usepackage{booktabs}\n"
        "\\input{macros.tex}\n\\begin{document}\n\\footnotesize\n"
        "Best: \\mbBestHeuristic{} (\\mbBestHeuristicGainGmean), \\mbGainWorstGreedyEnumTwo.\n\n"
        "\\input{tables.tex}\n\n\\input{violations.tex}\n\\end{document}\n"
    )
    res = subprocess.run(
        [str(PDFLATEX), "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout[-2000:]
    assert (tmp_path / "doc.pdf").read_bytes()[:5] == b"%PDF-"


def test_a_table_without_the_needed_columns_is_an_input_error(tmp_path: Path) -> None:
    from moebench.errors import InputError

    with pytest.raises(InputError, match="missing column"):
        write_report(pd.DataFrame({"instance": ["a"]}), tmp_path)
    with pytest.raises(InputError, match="no rows"):
        write_report(_table().iloc[:0], tmp_path)
