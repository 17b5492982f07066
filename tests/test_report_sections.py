"""Extra report sections: a registered provider shows up in every format, with its data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from test_report_tables import synthetic

from moebench.report import sections
from moebench.report.build import write_report
from moebench.report.sections import ReportContext, Section, register_section


@pytest.fixture()
def provider():
    seen: list[ReportContext] = []

    @register_section(order=10)
    def demo(ctx: ReportContext) -> list[Section]:
        seen.append(ctx)
        n = int(ctx.runs["method"].nunique())
        data = pd.DataFrame({"what": ["methods", "odd & 50%"], "value": [n, 0.5]})
        return [
            Section(
                "Demo section",
                ["What", "Value"],
                [["methods", str(n)], ["odd & 50%", "0.500"]],
                "demo",
                note="A note.",
                data=data,
            )
        ]

    yield demo, seen
    sections.unregister_section(demo)


def test_a_registered_section_appears_in_every_format(provider, tmp_path: Path) -> None:
    _, provider = provider
    df = synthetic()
    files = write_report(df, tmp_path)
    n = df["method"].nunique()
    assert len(provider) == 1 and provider[0].out_dir == tmp_path
    md = (tmp_path / "report.md").read_text()
    assert "## Demo section" in md and f"| methods | {n} |" in md and "A note." in md
    # the extra section comes after the summary and before the violations
    assert md.index("## Summary") < md.index("## Demo section") < md.index("## Guarantee violations")
    html = (tmp_path / "report.html").read_text()
    assert "Demo section</h2>" in html and "odd &amp; 50%" in html
    csv = pd.read_csv(tmp_path / "demo.csv")
    assert csv["value"].tolist() == [n, 0.5]
    tex = (tmp_path / "demo.tex").read_text()
    assert "\\begin{tabular}{lr}" in tex and "odd \\& 50\\%" in tex
    assert {tmp_path / "demo.csv", tmp_path / "demo.tex"} <= set(files)


def test_section_rows_must_match_the_header() -> None:
    with pytest.raises(ValueError, match="row 0 has 1 cells"):
        Section("x", ["a", "b"], [["1"]], "x")
    with pytest.raises(ValueError, match="slug"):
        Section("x", ["a"], [], "Bad Slug")


def test_a_section_that_disappears_leaves_no_stale_files(provider, tmp_path: Path) -> None:
    df = synthetic()
    write_report(df, tmp_path, formats=("csv", "latex", "md"))
    assert (tmp_path / "demo.csv").is_file() and (tmp_path / "demo.tex").is_file()
    (tmp_path / "mine.txt").write_text("a user's own file")
    sections.unregister_section(provider[0])
    write_report(df, tmp_path, formats=("csv", "latex", "md"))
    assert not (tmp_path / "demo.csv").exists() and not (tmp_path / "demo.tex").exists()
    assert (tmp_path / "mine.txt").read_text() == "a user's own file"  # never listed, never touched
    listed = (tmp_path / "report-files.txt").read_text().split()
    assert "report.md" in listed and "summary.csv" in listed and "demo.csv" not in listed
