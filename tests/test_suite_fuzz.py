"""A mutation fuzzer over suite files (issue 15, item 8).

A good suite using every section (head, family grid, instance files, profiles, methods with
options, profiles and instance globs, references, a stress search) is mutated at the TOML level
(a value replaced by a hostile literal: non-finite, huge, negative, wrong type, misspelled
names, paths leaving the folder; a line deleted, duplicated or renamed; an entry added) and at the
byte level (flips, truncation), then run with ``moebench run`` up to the point where work would
start: the executor is replaced by one that runs nothing, so everything a run checks and builds
before its first task (validation, instance generation, task list, the output folder) happens
for real. Every outcome must be success or exit 2 with at most 3 lines on stderr, never a
traceback. In process for speed, plus a smaller sample in a child under a 2 GiB address-space cap.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from moebench.bench import executors
from moebench.cli import main

TESTS = Path(__file__).parent

GOOD = """\
[suite]
name = "fuzz"
time_limit = 5.0
repetitions = 1
seed = 0
grace = 1.0
memory_limit_mb = 2048
references = "refs.solu"

[[instances]]
files = ["inst/*.json"]

[[instances]]
family = "zipf"
params = { layers = 2, experts = 6, servers = 2, tokens = 200, alpha = 1.0, capacity = 0.3 }
grid = { K = [1, 2] }
seeds = [0, 1]

[profiles.one]
threads = 1

[[references]]
name = "bruteforce"

[[methods]]
name = "milp-highs"
options = { formulation = "assign" }
profile = "one"
time_limit = 3.0
instances = ["zipf-*"]

[[methods]]
name = "sgd-levels[maxconv,eps=0.1]"

[[methods]]
name = "popularity"

[[stress]]
method = "greedy-ratio"
family = "uniform"
params = { K = 1, servers = 2 }
budget = 2
seeds = [0]
"""

#: TOML literals a mutation may put in place of a value.
LITERALS = [
    "inf",
    "-inf",
    "nan",
    "0",
    "-1",
    "1e9",
    "1e308",
    "99999999999999999999",
    "true",
    '""',
    '"popularty"',
    '"milp-highs[x]"',
    '"../../outside"',
    '"/etc/passwd"',
    "[]",
    "{}",
    "[1e9]",
    "[0, 1000000]",
    "{ K = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], capacity = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0] }",
    "{ layers = 1000000000 }",
    "{ experts = 100000, tokens = 100000000 }",
    '{ formulation = "nope" }',
    "{ threads = -3 }",
    '["*"]',
    "1979-05-27T07:32:00Z",
]
ADDITIONS = [
    '[[methods]]\nname = "popularty"\n',
    '[[methods]]\nname = "milp-highs"\noptions = { profile = "no-such-profile" }\n',
    '[[instances]]\nfamily = "uniform"\ngrid = { K = [1, 2], layers = [1, 2, 3], experts = [4, 5, 6], tokens = [10, 20, 30, 40] }\nseeds = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n',
    '[[instances]]\nfiles = ["/dev/zero"]\n',
    '[[instances]]\nfamily = "nosuch"\n',
    '[[references]]\nname = "popularity"\n',
    "[suite]\nname = 'twice'\n",
    '[[stress]]\nmethod = "greedy-ratio"\nfamily = "uniform"\nbudget = inf\n',
]


@st.composite
def mutated_suite(draw: st.DrawFn) -> bytes:
    """The good suite after one to three text mutations, maybe then byte damage."""
    lines = GOOD.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["replace", "replace", "replace", "delete", "duplicate", "rename", "add"]))
        assigns = [i for i, line in enumerate(lines) if "=" in line and not line.startswith("[")]
        if op == "add":
            lines.append("\n" + draw(st.sampled_from(ADDITIONS)))
            continue
        i = draw(st.sampled_from(assigns))
        key, _, _ = lines[i].partition("=")
        if op == "replace":
            lines[i] = f"{key}= {draw(st.sampled_from(LITERALS))}\n"
        elif op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "rename":
            new = draw(st.sampled_from(["nam", "timelimit", "K", "methods", "x", "family", "budget"]))
            lines[i] = f"{new} ={lines[i].partition('=')[2]}"
    raw = "".join(lines).encode()
    damage = draw(st.sampled_from(["none", "none", "none", "flip", "truncate", "nul"]))
    if damage == "flip":
        j = draw(st.integers(0, len(raw) - 1))
        raw = raw[:j] + bytes([draw(st.integers(0, 255))]) + raw[j + 1 :]
    elif damage == "truncate":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif damage == "nul":
        raw = raw.replace(b"\n", b"\0", 1)
    return raw


def _folder() -> Path:
    """A fresh folder with the suite's instance file beside it."""
    root = Path(tempfile.mkdtemp(prefix="moebench-suite-fuzz-"))
    (root / "inst").mkdir()
    shutil.copy2(TESTS / "data" / "good" / "spec-example.json", root / "inst" / "spec.json")
    return root


def _nothing(self: object, tasks: object, on_result: object) -> None:
    """An executor that runs nothing: the fuzz stops where work would start."""


def run_in_process(raw: bytes) -> tuple[int, str, str]:
    root = _folder()
    try:
        (root / "suite.toml").write_bytes(raw)
        out, err = io.StringIO(), io.StringIO()
        with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            mp.setattr(executors.LocalExecutor, "run", _nothing)
            mp.setattr("moebench.bench.runner.LocalExecutor.run", _nothing)
            try:
                code = main(["run", str(root / "suite.toml"), "--no-report", "-q", "-j", "1"])
            except SystemExit as exc:
                code = int(exc.code or 0)
        return code, out.getvalue(), err.getvalue()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def check_outcome(code: int, out: str, err: str) -> None:
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err and "Traceback" not in out
    assert len(err.strip().splitlines()) <= 3, err
    if code == 2:
        assert err.startswith("moebench: error: "), err


def test_the_good_suite_passes() -> None:
    code, _, err = run_in_process(GOOD.encode())
    assert code == 0, err


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(raw=mutated_suite())
def test_fuzz_suite_files_in_process(raw: bytes) -> None:
    code, out, err = run_in_process(raw)
    event(f"exit {code}")
    check_outcome(code, out, err)


CHILD = textwrap.dedent(
    """
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    from moebench.bench import executors
    executors.LocalExecutor.run = lambda self, tasks, on_result: None
    from moebench.cli import main
    sys.exit(main(["run", sys.argv[1], "--no-report", "-q", "-j", "1"]))
    """
)


@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(raw=mutated_suite())
def test_fuzz_suite_files_under_a_memory_cap(raw: bytes) -> None:
    """A smaller sample in a child limited to 2 GiB of address space: exit 0 or 2, one to three lines."""
    root = _folder()
    try:
        (root / "suite.toml").write_bytes(raw)
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
        res = subprocess.run(
            [sys.executable, "-c", CHILD, str(root / "suite.toml")],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        check_outcome(res.returncode, res.stdout, res.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_outcomes_are_json_free_of_surprises() -> None:
    """The good suite's folder gets an empty results table (no task ran) and its run.json."""
    root = _folder()
    try:
        (root / "suite.toml").write_text(GOOD)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(executors.LocalExecutor, "run", _nothing)
            assert main(["run", str(root / "suite.toml"), "--no-report", "-q", "-j", "1"]) == 0
        meta = json.loads((root / "run.json").read_text())
        assert meta["suite_name"] == "fuzz" and meta["tasks"] > 0 and meta["resumed"] == 0
    finally:
        shutil.rmtree(root, ignore_errors=True)
