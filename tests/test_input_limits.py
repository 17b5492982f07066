"""Hostile and careless input (issue 15): every resource cap gives exit 2, one line, bounded memory.

The real console script runs each case in a child under an address-space cap; its maximum RSS
is read from ``wait4`` and must stay under 1 GB. Time is not asserted (the machine may be
loaded); a generous timeout only guards against a hang (a FIFO read would block forever).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import warnings
import zlib

import numpy as np
import pytest
from conftest import random_instance
from hostile_inputs import CASES, GOOD, build, fresh_folder, run_measured
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moebench import json_io
from moebench.cli import main
from moebench.errors import InputError
from moebench.instance_file import load_instance, save_instance
from moebench.json_io import check_structure, read_json, strict_jsonable

MEMORY_LIMIT_MB = 1024


@pytest.fixture(scope="module")
def folder():
    path = fresh_folder()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def assert_one_error_line(outcome, *, contains: str = "") -> None:
    assert outcome.returncode == 2, outcome.stderr
    assert outcome.stdout == ""
    lines = outcome.stderr.splitlines()
    assert len(lines) == 1, outcome.stderr
    assert lines[0].startswith("moebench: error: ")
    assert "Traceback" not in outcome.stderr
    assert contains in lines[0]


EXPECTED_REASON = {
    "gzip bomb (10 GiB of zeros)": "the decompressed content exceeds the input limit of 256 MB",
    "gzip of 200 MB of tiny lists": "parsing would need about",
    "experts = 10^9 (319 bytes)": "layers[0]: the instance needs about",
    "200k servers x 10k experts": "layers[0]: the instance needs about",
    "symlink to /dev/zero": "is a character device, expected a regular file",
    "FIFO": "is a FIFO (named pipe), expected a regular file",
    "directory": "is a directory, expected a file",
    "nesting 100k deep (meta)": "nesting deeper than 64 levels",
    "nesting 100k deep (whole file)": "nesting deeper than 64 levels at line 1 column 65",
    "integer of 400 digits": "servers[0].capacity: must be finite, got an integer of 400 digits",
    "integer of 5,000 digits": "an integer with more than 4300 digits",
    "integer of 10^6 digits": "an integer with more than 4300 digits",
    "booleans as expert ids": "layers[0].activations.sets[0][0]: expected an integer, got a boolean",
    "duplicate keys": "K: duplicate key",
}


def test_every_case_has_an_expected_reason():
    assert set(EXPECTED_REASON) == set(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_instance_file(case, folder):
    """``instances show`` on each hostile file: exit 2, one line naming the file, RSS < 1 GB."""
    path = build(case, folder)
    outcome = run_measured(["instances", "show", str(path)])
    assert_one_error_line(outcome, contains=f"{path}: ")
    assert EXPECTED_REASON[case] in outcome.stderr
    assert outcome.max_rss_mb < MEMORY_LIMIT_MB, f"{case}: {outcome.max_rss_mb:.0f} MB"


@pytest.mark.parametrize("case", ["gzip bomb (10 GiB of zeros)", "FIFO", "nesting 100k deep (whole file)"])
def test_hostile_placement_file(case, folder, tmp_path):
    """``evaluate`` reads placements through the same guarded reader."""
    path = build(case, tmp_path)
    outcome = run_measured(["evaluate", str(GOOD), str(path)])
    assert_one_error_line(outcome, contains=EXPECTED_REASON[case])
    assert outcome.max_rss_mb < MEMORY_LIMIT_MB


def test_solve_refuses_hostile_instance(tmp_path):
    path = build("experts = 10^9 (319 bytes)", tmp_path)
    outcome = run_measured(["solve", str(path), "--method", "greedy-ratio"])
    assert_one_error_line(outcome, contains="the instance needs about")
    assert outcome.max_rss_mb < MEMORY_LIMIT_MB


# ---- the limits themselves, in process -----------------------------------------------------
def test_input_limit_is_overridable(tmp_path, monkeypatch):
    path = tmp_path / "x.json"
    path.write_text(GOOD.read_text())
    monkeypatch.setenv(json_io.MAX_INPUT_ENV, "0.0001")  # 104 bytes
    with pytest.raises(InputError, match=r"the file \(.*\) exceeds the input limit .*MOEBENCH_MAX_INPUT_MB"):
        read_json(path)
    monkeypatch.setenv(json_io.MAX_INPUT_ENV, "1")
    assert read_json(path)["name"] == "tiny-0"
    for bad in ("0", "-1", "lots", "nan", "inf"):
        monkeypatch.setenv(json_io.MAX_INPUT_ENV, bad)
        with pytest.raises(InputError, match="MOEBENCH_MAX_INPUT_MB: expected a number of MB > 0"):
            read_json(path)


def test_decompressed_limit_single_member(tmp_path, monkeypatch):
    """One gzip member inflating past the cap stops at the cap (streamed, not inflated whole)."""
    monkeypatch.setenv(json_io.MAX_INPUT_ENV, "1")
    path = tmp_path / "x.json.gz"
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    path.write_bytes(comp.compress(b" " * (8 << 20)) + comp.flush())  # 8 MB of spaces
    with pytest.raises(InputError, match="the decompressed content exceeds the input limit of 1 MB"):
        read_json(path)


def test_gzip_members_and_whitespace_round_trip(tmp_path):
    text = GOOD.read_bytes()
    path = tmp_path / "two.json.gz"
    path.write_bytes(gzip.compress(text[:100], mtime=0) + gzip.compress(text[100:], mtime=0))
    assert read_json(path) == json.loads(text)


def test_array_estimate_counts_every_dimension(tmp_path, monkeypatch):
    """The estimate grows with servers x experts and with sets x K; a legitimate instance passes."""
    inst = random_instance(np.random.default_rng(0), servers=3, layers=2, experts=6, K=2, sets=10)
    path = tmp_path / "ok.json"
    save_instance(inst, path)
    assert load_instance(path).content_hash == inst.content_hash
    monkeypatch.setattr("moebench.instance_file.max_memory_bytes", lambda: 100)  # arrays only
    with pytest.raises(InputError, match=r"layers\[0\]: the instance needs about .* \(3 servers x 6 experts"):
        load_instance(path)


def test_non_regular_files_are_refused_before_opening(tmp_path, monkeypatch):
    """A FIFO is refused from ``stat``; ``open`` is never called (it would block without O_NONBLOCK)."""
    fifo = tmp_path / "p.json"
    os.mkfifo(fifo)
    opened = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    with pytest.raises(InputError, match="is a FIFO"):
        read_json(fifo)
    assert opened == []


def test_fifo_swapped_in_after_stat_does_not_block(tmp_path, monkeypatch):
    """The stat said "regular file" but a FIFO is opened: O_NONBLOCK returns at once, fstat refuses."""
    fifo = tmp_path / "p.json"
    os.mkfifo(fifo)
    regular = os.stat(GOOD)
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: regular if str(p) == str(fifo) else real_stat(p, *a, **k))
    with pytest.raises(InputError, match="is a FIFO"):
        read_json(fifo)


# ---- the structure scan against a plain reference ------------------------------------------
def reference_structure(raw: bytes) -> tuple[int, int, int]:
    """Max depth, containers and values (opens + commas) outside strings, byte by byte."""
    depth = best = containers = values = 0
    in_string = escaped = False
    for b in raw:
        c = chr(b)
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
            continue
        if c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            best = max(best, depth)
            containers += 1
            values += 1
        elif c in "]}":
            depth -= 1
        elif c == ",":
            values += 1
    return best, containers, values


json_text = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}",\\ab\n'),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(alphabet='[]{}",\\ab'), inner, max_size=3),
    max_leaves=30,
).map(json.dumps)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(text=json_text, chunk=st.sampled_from([1, 2, 3, 7, 64]))
def test_structure_scan_matches_reference(text, chunk):
    raw = text.encode()
    depth, containers, values = reference_structure(raw)
    saved = json_io._CHUNK
    json_io._CHUNK = chunk  # boundaries inside strings, escapes and backslash runs
    try:
        check_structure(raw, "x", max_depth=depth, memory=10**9)
        if depth > 0:
            with pytest.raises(InputError, match=f"nesting deeper than {depth - 1} levels"):
                check_structure(raw, "x", max_depth=depth - 1, memory=10**9)
        need = containers * json_io.CONTAINER_BYTES + values * json_io.SCALAR_BYTES
        if need > 0:
            with pytest.raises(InputError, match="parsing would need about"):
                check_structure(raw, "x", max_depth=10**6, memory=need - 1)
    finally:
        json_io._CHUNK = saved


@settings(
    max_examples=100, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.text(alphabet='\\"[', max_size=40))
def test_structure_scan_on_escape_runs(s):
    """Runs of backslashes before quotes, across chunk boundaries, on JSON strings."""
    raw = json.dumps([s, [[1]]]).encode()
    saved = json_io._CHUNK
    try:
        for chunk in (1, 2, 5):
            json_io._CHUNK = chunk
            check_structure(raw, "x", max_depth=3, memory=10**9)
            with pytest.raises(InputError):
                check_structure(raw, "x", max_depth=2, memory=10**9)
    finally:
        json_io._CHUNK = saved


# ---- strict output ---------------------------------------------------------------------------
def strict_loads(text: str):
    def refuse(token):
        raise ValueError(f"{token} in output")

    return json.loads(text, parse_constant=refuse)


def test_totals_that_overflow_a_float_are_refused(tmp_path, capsys):
    """Each size of 1e308 is finite, their sum is not: refused in one line, never Infinity on stdout."""
    doc = json.loads(GOOD.read_text())
    doc["layers"][0]["size"] = 1e308
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(doc))
    for args in (["instances", "show", str(path)], ["solve", str(path), "--method", "popularity"]):
        assert main(args) == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert (
            err
            == f"moebench: error: {path}: layers: the expert sizes add up to more than a float holds (about 1.8e308)\n"
        )
    doc = json.loads(GOOD.read_text())
    doc["layers"][0]["fallback"] = 1.7e308
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"layers: latencies up to 1.7e\+308 ms over 1 layer\(s\) can add up"):
        load_instance(path)
    doc = json.loads(GOOD.read_text())
    doc["servers"][0]["capacity"] = doc["servers"][1]["capacity"] = 1e308
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="servers: the capacities add up to more than a float holds"):
        load_instance(path)


def test_strict_jsonable_replaces_every_non_finite_number():
    obj = {"a": [1.0, float("inf"), {"b": float("nan")}], "c": np.float64("-inf"), "d": (np.int64(3),)}
    clean, replaced = strict_jsonable(obj)
    assert clean == {"a": [1.0, None, {"b": None}], "c": None, "d": [3]}
    assert replaced == ["a[1]", "a[2].b", "c"]


def test_extreme_valid_files_give_strict_json_and_no_warnings(tmp_path, capsys):
    """Numbers near the float limit (1e300) and subnormal ones (5e-324): strict JSON, clean stderr."""
    doc = json.loads(GOOD.read_text())
    doc["layers"][0]["size"] = 1e300
    doc["servers"][0]["capacity"] = 2.5e300
    doc["servers"][1]["capacity"] = 5e-324
    doc["layers"][0]["latency"] = [1e299, 5e-324]
    doc["layers"][0]["fallback"] = 1.5e300
    path = tmp_path / "extreme.json"
    path.write_text(json.dumps(doc))
    placement = tmp_path / "p.json"
    warnings.simplefilter("error")  # a numpy overflow warning would fail the test (pytest restores filters)
    assert main(["instances", "show", str(path)]) == 0
    out, err = capsys.readouterr()
    info = strict_loads(out)
    assert info["total_expert_mb"] == pytest.approx(4e300) and err == ""
    assert info["capacity_fraction"] == pytest.approx(2.5 / 4)
    assert main(["solve", str(path), "--method", "popularity", "-o", str(placement)]) == 0
    out, err = capsys.readouterr()
    rec = strict_loads(out)
    assert rec["status"] == "feasible" and rec["gain"] > 1e299 and err == ""
    assert main(["evaluate", str(path), str(placement)]) == 0
    out, err = capsys.readouterr()
    ev = strict_loads(out)
    assert ev["feasible"] is True and ev["latency"] == pytest.approx(rec["latency"]) and err == ""


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(parts=st.lists(st.binary(max_size=300), min_size=1, max_size=4), chunk=st.sampled_from([1, 2, 5, 64]))
def test_gunzip_members_in_any_chunking(parts, chunk, tmp_path_factory):
    """Members (empty ones included) inflate to their concatenation however input and output are cut."""
    path = tmp_path_factory.mktemp("gz") / "x.json.gz"
    path.write_bytes(b"".join(gzip.compress(p, mtime=0) for p in parts))
    saved = json_io._CHUNK
    json_io._CHUNK = chunk
    try:
        assert bytes(json_io.read_input_bytes(path)) == b"".join(parts)
        data = path.read_bytes()
        path.write_bytes(data[:-1])  # a truncated trailer
        with pytest.raises(InputError, match="corrupt gzip data"):
            json_io.read_input_bytes(path)
    finally:
        json_io._CHUNK = saved
