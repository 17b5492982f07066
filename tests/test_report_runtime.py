"""The proving frontier of the runtime report, on a hand-made ladder."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from test_report_tables import _row

from moebench.report.build import write_report
from moebench.report.runtime import frontier


def ladder() -> pd.DataFrame:
    """Exact 'ex' proves sizes 8 and 16, stops at 32 (gap 25%) and 64; 'bb' proves every size."""
    rows = []
    for i, (n, status, gain, bound) in enumerate(
        [
            (8, "optimal", 10.0, 10.0),
            (16, "optimal", 12.0, 12.0),
            (32, "time-limit", 9.0, 12.0),
            (64, "time-limit", 5.0, 20.0),
        ]
    ):
        for method, st, g, b in (("ex", status, gain, bound), ("bb", "optimal", bound, bound)):
            r = _row(f"i{i}", method, st, g, kind="exact", bound=b, t=float(n))
            r.update(binaries=n, M=2 * n, param_layers=n // 8, param_tokens=10 * n, time_limit=600.0)
            rows.append(r)
        rows.append(_row(f"i{i}", "h", "feasible", gain / 2, t=0.1) | {"binaries": n, "M": 2 * n})
    return pd.DataFrame(rows)


def test_frontier_values() -> None:
    fr = frontier(ladder()).set_index("method")
    assert set(fr.index) == {"ex", "bb"}  # heuristics have no frontier
    ex = fr.loc["ex"]
    assert (ex["tried"], ex["proven"]) == (4, 2)
    assert ex["largest_proven"] == "L2 T160 (32 sets, 16 vars)"
    assert ex["largest_proven_time"] == 16.0
    assert ex["first_unproven"] == "L4 T320 (64 sets, 32 vars)"
    assert ex["first_unproven_status"] == "time-limit"
    assert math.isclose(ex["first_unproven_gap"], 0.25)
    bb = fr.loc["bb"]
    assert bb["proven"] == 4 and pd.isna(bb["first_unproven"]) and math.isnan(bb["first_unproven_gap"])


def test_frontier_section_in_the_report(tmp_path: Path) -> None:
    write_report(ladder(), tmp_path, formats=("csv", "md"))
    md = (tmp_path / "report.md").read_text()
    assert "## Proving frontier of the exact methods" in md
    assert "none: proved every size tried" in md and "25.00%" in md
    csv = pd.read_csv(tmp_path / "frontier.csv").set_index("method")
    assert csv.loc["ex", "proven"] == 2


def test_no_frontier_without_exact_ladders(tmp_path: Path) -> None:
    from test_report_tables import synthetic

    # the synthetic table sweeps the capacity at one size: no ladder, no frontier, no time tables
    write_report(synthetic(), tmp_path, formats=("md",))
    md = (tmp_path / "report.md").read_text()
    assert "Proving frontier" not in md and "Method time by size" not in md


def test_time_table_marks_limits_and_missing_runs() -> None:
    from moebench.report.runtime import time_table

    header, rows, data = time_table(ladder(), "f")
    assert header[0] == "Method" and header[1].startswith("L1 T80")
    by = {r[0]: r[1:] for r in rows}
    assert by["ex"] == ["8.00", "16.00", "32.00 TL", "64.00 TL"]
    assert by["h"] == ["0.10"] * 4
    assert set(data["method"]) == {"ex", "bb", "h"}


def test_sweeps_at_a_fixed_size_are_not_ladders() -> None:
    from moebench.report.runtime import ladder_families

    d = ladder()
    sweep = d.assign(family="sweep", binaries=8, M=16)  # four instances of one size: a parameter sweep
    assert ladder_families(pd.concat([d, sweep])) == ["f"]
    assert frontier(sweep)["tried"].max() == 4  # the table itself exists, the section filters it
