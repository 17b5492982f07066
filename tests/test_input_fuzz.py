"""A mutation fuzzer over instance and placement files (issue 15, item 8).

Good files are mutated at the JSON level (deletions, duplications, type swaps, booleans, huge and
non-finite numbers, deep nesting) and at the byte level (flips, truncation, duplicate keys,
gzip of the result or of garbage), then run through ``instances show``, ``solve`` and
``evaluate``. Every outcome must be a success with strict JSON on stdout, exit 1 from
``evaluate`` for an infeasible placement, or exit 2 with at most 3 lines on stderr, never a
traceback. In process through :func:`moebench.cli.main` for speed (an uncaught exception fails
the test), plus a smaller sample through the real console script under a memory cap.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import io
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hostile_inputs import run_measured
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moebench.cli import main
from moebench.families import generate
from moebench.instance_file import instance_to_dict, load_instance
from moebench.placement import placement_to_dict

DATA = Path(__file__).parent / "data" / "good"
METHODS = ("popularity", "sgd-levels[dp]", "whole-layer")


def _deep(levels: int) -> Any:
    v: Any = 0
    for _ in range(levels):
        v = [v]
    return v


#: Values a mutation may put anywhere (JSON-able; 10**400 and the non-finite floats are written
#: by json.dumps as a 400-digit integer, NaN and Infinity).
VALUES: list[Any] = [
    True,
    False,
    None,
    0,
    -1,
    1,
    2,
    3,
    1000,
    0.5,
    -0.0,
    1e308,
    -1e308,
    5e-324,
    float("inf"),
    float("nan"),
    10**400,
    2**63,
    "x",
    "",
    "a b\n",
    [],
    {},
    [[0, 1]],
    [True, 0],
    _deep(80),
]


def _base_docs() -> dict[str, dict]:
    spec = json.loads((DATA / "spec-example.json").read_text())
    counts = json.loads((DATA / "counts-repeats.json").read_text())
    gen = instance_to_dict(generate("clustered", {"layers": 2, "experts": 6, "servers": 2, "tokens": 40}, seed=3))
    return {"spec": spec, "counts": counts, "generated": gen}


BASES = _base_docs()


@pytest.fixture(scope="module")
def workdir():
    path = Path(tempfile.mkdtemp(prefix="moebench-fuzz-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def good(workdir):
    """The good spec instance and a placement made for it (with its content hash)."""
    inst_path = workdir / "good.json"
    inst_path.write_text(json.dumps(BASES["spec"]))
    inst = load_instance(inst_path)
    x = np.zeros((inst.N, inst.G), bool)
    x[0, :2] = True
    place = placement_to_dict(inst, x)
    place_path = workdir / "good-placement.json"
    place_path.write_text(json.dumps(place))
    return inst_path, place_path, place


def _slots(doc: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) pair inside ``doc``."""
    out, stack = [], [doc]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            out.append((node, key))
            stack.append(value)
    return out


@st.composite
def json_mutation(draw: st.DrawFn, doc: Any) -> Any:
    """``doc`` after one to three structural mutations."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 2))):
        slots = _slots(doc)
        if not slots:
            break
        parent, key = draw(st.sampled_from(slots))
        op = draw(st.sampled_from(["delete", "replace", "duplicate", "wrap", "unwrap", "rename"]))
        value = parent[key]
        if op == "delete":
            del parent[key]
        elif op == "replace":
            parent[key] = copy.deepcopy(draw(st.sampled_from(VALUES)))
        elif op == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(value))
        elif op == "wrap":
            parent[key] = [value]
        elif op == "unwrap" and isinstance(value, list) and value:
            parent[key] = value[0]
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["K", "name", "meta", "x", "experts", "probs", "counts"]))] = parent.pop(key)
    return doc


@st.composite
def mutated_file(draw: st.DrawFn, docs: list[Any]) -> bytes:
    """Bytes of a mutated file: JSON mutations, then maybe byte-level damage or gzip."""
    doc = draw(json_mutation(draw(st.sampled_from(docs))))
    raw = json.dumps(doc).encode()
    damage = draw(st.sampled_from(["none", "none", "flip", "truncate", "dupkey", "deep", "gzip", "gzip-flip", "junk"]))
    if damage == "flip" and raw:
        i = draw(st.integers(0, len(raw) - 1))
        raw = raw[:i] + bytes([draw(st.integers(0, 255))]) + raw[i + 1 :]
    elif damage == "truncate":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif damage == "dupkey" and b"{" in raw:
        i = draw(st.sampled_from([j for j, b in enumerate(raw) if b == ord("{")]))
        key = draw(st.sampled_from([b'"K":1,', b'"format":"moebench-instance/1",', b'"placement":[],', b'"x":1,']))
        raw = raw[: i + 1] + key + raw[i + 1 :]
    elif damage == "deep":
        raw = b"[" * 5000 + raw + b"]" * 5000
    elif damage in ("gzip", "gzip-flip"):
        raw = gzip.compress(raw, mtime=0)
        if damage == "gzip-flip":
            i = draw(st.integers(0, len(raw) - 1))
            raw = raw[:i] + bytes([raw[i] ^ 0xFF]) + raw[i + 1 :]
    elif damage == "junk":
        raw = gzip.compress(draw(st.binary(max_size=200)), mtime=0)
    return raw


def _strict(text: str) -> Any:
    def refuse(token: str) -> Any:
        raise AssertionError(f"{token} on stdout")

    return json.loads(text, parse_constant=refuse)


def run_in_process(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def check_outcome(code: int, out: str, err: str, *, may_be_infeasible: bool = False) -> None:
    allowed = {0, 1, 2} if may_be_infeasible else {0, 2}
    assert code in allowed, (code, err)
    assert "Traceback" not in err and "Traceback" not in out
    assert len(err.splitlines()) <= 3, err
    if code == 2:
        assert out == ""
        assert err.startswith("moebench: ")
    else:
        _strict(out)


def _write(workdir: Path, raw: bytes, misnamed: int) -> Path:
    """The file, named ``.json.gz`` when it is gzip; ``misnamed == 0`` (1 in 8) swaps that."""
    gz = raw[:2] == b"\x1f\x8b"
    if misnamed == 0:
        gz = not gz
    path = workdir / ("fuzz.json.gz" if gz else "fuzz.json")
    path.write_bytes(raw)
    return path


@settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(raw=mutated_file(list(BASES.values())), misnamed=st.integers(0, 7), method=st.sampled_from(METHODS))
def test_fuzz_instance_files_in_process(raw, misnamed, method, workdir, good):
    path = _write(workdir, raw, misnamed)
    _, place_path, _ = good
    show = run_in_process(["instances", "show", str(path)])
    check_outcome(*show)
    solve = run_in_process(["solve", str(path), "--method", method])
    check_outcome(*solve)
    assert (show[0] == 0) == (solve[0] == 0), "show and solve disagree on the same file"
    if solve[0] == 0:
        rec = _strict(solve[1])
        assert rec["status"] in ("optimal", "feasible", "not-applicable"), rec
    check_outcome(*run_in_process(["evaluate", str(path), str(place_path)]), may_be_infeasible=True)


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), misnamed=st.integers(0, 7))
def test_fuzz_placement_files_in_process(data, misnamed, workdir, good):
    inst_path, _, place = good
    raw = data.draw(mutated_file([place]))
    path = _write(workdir, raw, misnamed)
    code, out, err = run_in_process(["evaluate", str(inst_path), str(path)])
    check_outcome(code, out, err, may_be_infeasible=True)


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(raw=mutated_file([*BASES.values()]), misnamed=st.integers(0, 7))
def test_fuzz_through_the_console_script(raw, misnamed, workdir, good):
    """A smaller sample through the installed script: exit codes, stderr, memory under 1 GB."""
    path = _write(workdir, raw, misnamed)
    _, place_path, _ = good
    for args in (["instances", "show", str(path)], ["evaluate", str(path), str(place_path)]):
        outcome = run_measured(args, timeout=120)
        check_outcome(outcome.returncode, outcome.stdout, outcome.stderr, may_be_infeasible=args[0] == "evaluate")
        assert outcome.max_rss_mb < 1024
