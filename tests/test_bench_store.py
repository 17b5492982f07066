"""The append-only store (torn lines) and the reference file (.solu) round trip and merging."""

from __future__ import annotations

import json
from pathlib import Path

from moebench.bench.references import Reference, read_references, reconcile, write_references
from moebench.bench.store import ResultStore, read_table, write_table


def test_store_appends_whole_lines_and_ignores_a_torn_last_line(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "r.jsonl")
    store.open()
    for i in range(3):
        store.append({"task_id": f"t{i}", "value": i / 3, "nested": {"a": [1, 2]}, "nan": float("nan")})
    store.close()
    # a writer killed mid-record leaves a partial line without newline
    with open(tmp_path / "r.jsonl", "ab") as fh:
        fh.write(b'{"task_id": "t3", "val')
    recs = list(ResultStore(tmp_path / "r.jsonl").records())
    assert [r["task_id"] for r in recs] == ["t0", "t1", "t2"]
    assert recs[1]["value"] == 1 / 3 and recs[0]["nan"] is None and recs[2]["nested"] == {"a": [1, 2]}
    # reopening for append cuts the torn tail, so the next record is intact
    store = ResultStore(tmp_path / "r.jsonl")
    store.open()
    store.append({"task_id": "t3", "value": 3})
    store.close()
    lines = (tmp_path / "r.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b"" and [json.loads(x)["task_id"] for x in lines[:-1]] == ["t0", "t1", "t2", "t3"]
    assert {r["task_id"] for r in ResultStore(tmp_path / "r.jsonl").records()} == {"t0", "t1", "t2", "t3"}


def test_fresh_store_moves_the_old_one_aside(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "r.jsonl")
    store.open()
    store.append({"task_id": "a"})
    store.close()
    store.open(fresh=True)
    store.close()
    assert list(store.records()) == []
    assert (tmp_path / "r.jsonl.prev").read_text().startswith('{"task_id":"a"')


def test_table_round_trip(tmp_path: Path) -> None:
    rows = [
        {"task_id": "a", "instance": "i", "gain": 1.5, "options": {"x": 1}, "placement": [[0, 0, 1]], "p": 1},
        {"task_id": "b", "instance": "j", "gain": None, "options": {}, "placement": [], "p": "1,2"},
    ]
    write_table(rows, tmp_path)
    pq = read_table(tmp_path)
    csv = read_table(tmp_path / "results.csv")
    assert list(pq["task_id"]) == ["a", "b"] and list(csv["task_id"]) == ["a", "b"]
    assert json.loads(pq["options"][0]) == {"x": 1} and json.loads(pq["placement"][0]) == [[0, 0, 1]]
    assert "placement" not in csv.columns
    assert list(pq["p"]) == ["1", "1,2"]  # mixed cell types become text


def _row(inst: str, method: str, status: str, gain: float, bound: float | None, kind: str = "exact") -> dict:
    return {
        "instance": inst,
        "instance_hash": "h" + inst,
        "method": method,
        "method_kind": kind,
        "status": status,
        "gain": gain,
        "latency": 100.0 - gain,
        "bound": bound,
        "feasible": True,
    }


def test_references_merge_and_round_trip(tmp_path: Path) -> None:
    rows = [
        _row("a", "cpsat", "time-limit", 5.0, 9.0),
        _row("a", "milp-highs", "time-limit", 6.0, 8.0),
        _row("a", "greedy", "feasible", 7.0, None, kind="heuristic"),  # never a reference
        _row("b", "cpsat", "time-limit", 4.0, 6.0),
        _row("b", "bruteforce", "optimal", 5.0, None),
        _row("b", "milp-highs", "feasible", 4.5, 5.5),
        _row("c", "bruteforce", "error", 0.0, None),
    ]
    refs = reconcile({}, rows).refs
    a, b = refs[("a", "ha")], refs[("b", "hb")]
    assert (a.gain, a.proven, a.bound, a.method, a.bound_method) == (6.0, False, 8.0, "milp-highs", "milp-highs")
    assert a.latency == 94.0
    assert (b.gain, b.proven, b.bound, b.method) == (5.0, True, 5.0, "bruteforce")
    assert ("c", "hc") not in refs
    path = tmp_path / "refs.solu"
    write_references(path, refs)
    text = path.read_text()
    assert "=opt= b 5.0 hash=hb latency=95.0 method=bruteforce" in text
    assert "=best= a 6.0 hash=ha latency=94.0 method=milp-highs" in text
    assert "=bound= a 8.0 hash=ha method=milp-highs" in text
    assert read_references(path) == refs
    # a later, better exact run improves the stored values; a stale hash is another key
    refs2 = reconcile(read_references(path), [_row("a", "cpsat", "optimal", 7.5, 7.5)]).refs
    assert refs2[("a", "ha")] == Reference("a", "ha", 7.5, 92.5, True, 7.5, "cpsat", "cpsat")
