"""Every committed report regenerates from its folder alone: no suite file, no trace data.

A report is a function of the files a run leaves (results table, references, the cited
instance files and their manifest). Each committed folder under reports/ is copied without
its suite file and its report, the trace-data folder is pointed at nothing, and the report
written from the copy must equal the committed one, table by table.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from moebench.report.build import write_report

REPORTS = Path(__file__).resolve().parents[1] / "reports"
FOLDERS = sorted(p for p in REPORTS.iterdir() if (p / "results.parquet").is_file())


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_committed_report_regenerates_from_a_copy_of_its_folder(folder, tmp_path, monkeypatch):
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("suite.toml", "report", "results.jsonl*"))
    monkeypatch.setenv("MOEBENCH_DATA", str(tmp_path / "no-trace-data-here"))
    monkeypatch.chdir(tmp_path)
    write_report(copy / "results.parquet", copy / "report", formats=("csv", "latex", "md"))
    committed = sorted(p.name for p in (folder / "report").glob("*.csv"))
    assert committed and committed == sorted(p.name for p in (copy / "report").glob("*.csv"))
    for name in committed:
        want, got = pd.read_csv(folder / "report" / name), pd.read_csv(copy / "report" / name)
        pd.testing.assert_frame_equal(want, got, check_exact=False, rtol=1e-12, obj=f"{folder.name}/{name}")
    assert (copy / "report" / "tables.tex").read_text() == (folder / "report" / "tables.tex").read_text()
