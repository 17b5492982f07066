"""Hostile input files and a runner that measures the resources of the real console script.

Shared by ``tests/test_input_limits.py`` (assertions) and ``benchmarks/input_limits.py`` (the
table of time and memory per case). Every case is built in well under a second: the 10 GiB gzip
bomb is one gzip member of 16 MiB of zeros repeated 640 times (a valid multi-member gzip file).
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

GOOD = Path(__file__).parent / "data" / "good" / "spec-example.json"
#: Address-space cap of every measured child: a safety net, so that a regression fails with
#: MemoryError instead of exhausting the machine. Assertions are on the measured RSS.
CHILD_ADDRESS_SPACE = 3 << 30


def console_script() -> list[str]:
    """The installed ``moebench`` script beside this interpreter, else ``python -m moebench.cli``."""
    script = Path(sys.executable).with_name("moebench")
    return [str(script)] if script.exists() else [sys.executable, "-m", "moebench.cli"]


@dataclass
class Outcome:
    """What one run of the console script did and cost."""

    returncode: int
    stdout: str
    stderr: str
    wall: float
    cpu: float
    max_rss_mb: float


def _limit_child() -> None:  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_ADDRESS_SPACE, CHILD_ADDRESS_SPACE))


def run_measured(args: list[str], *, env: dict[str, str] | None = None, timeout: float = 120.0) -> Outcome:
    """Run ``moebench ARGS`` under an address-space cap; its own max RSS comes from ``wait4``.

    ``timeout`` only guards against a hang (the child is killed and the outcome says so).
    """
    full_env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", **(env or {})}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [*console_script(), *args], stdout=out, stderr=err, env=full_env, preexec_fn=_limit_child
        )
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Outcome(
            returncode=proc.returncode,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
            wall=wall,
            cpu=usage.ru_utime + usage.ru_stime,
            max_rss_mb=usage.ru_maxrss / 1024,  # kilobytes on Linux
        )


def _spec() -> dict:
    return json.loads(GOOD.read_text())


def _write(path: Path, doc: dict | str | bytes) -> Path:
    if isinstance(doc, dict):
        doc = json.dumps(doc)
    path.write_bytes(doc if isinstance(doc, bytes) else doc.encode())
    return path


def gzip_bomb(path: Path, gib: int = 10) -> Path:
    """A valid gzip file that inflates to ``gib`` GiB of zero bytes (about 10 MB on disk)."""
    member = gzip.compress(b"\0" * (16 << 20), compresslevel=9, mtime=0)
    with open(path, "wb") as f:
        for _ in range(gib * 64):
            f.write(member)
    return path


def small_lists_bomb(path: Path, mb: int = 200) -> Path:
    """Gzipped valid-looking JSON: ``mb`` MB of ``[0,0],`` inside ``meta`` (a few hundred KB on disk).

    Within the size cap, but Python objects for it would take about 30 x its size.
    """
    head = json.dumps(_spec())[:-1] + ', "junk": ['  # reopen the top-level object
    chunk = b"[0,0]," * (1 << 20)
    with open(path, "wb") as f:
        f.write(gzip.compress(head.encode(), mtime=0))
        member = gzip.compress(chunk, compresslevel=9, mtime=0)
        for _ in range(mb * (1 << 20) // len(chunk)):
            f.write(member)
        f.write(gzip.compress(b"[0]]}", mtime=0))
    return path


def deep(path: Path, levels: int = 100_000, in_meta: bool = True) -> Path:
    """``levels`` nested lists, inside ``meta`` of a valid instance or as the whole file."""
    nest = "[" * levels + "]" * levels
    if not in_meta:
        return _write(path, nest)
    text = json.dumps(_spec())
    return _write(path, text.replace('"seed": 0', f'"seed": 0, "x": {nest}'))


def huge_int(path: Path, digits: int, where: str = "capacity") -> Path:
    """An integer of ``digits`` digits as the first capacity, or inside ``meta``."""
    text = json.dumps(_spec())
    number = "9" * digits
    if where == "capacity":
        return _write(path, text.replace('"capacity": 40.0', f'"capacity": {number}', 1))
    return _write(path, text.replace('"seed": 0', f'"seed": {number}', 1))


def booleans(path: Path) -> Path:
    """``[[true, false], ...]`` as activation sets."""
    doc = _spec()
    doc["layers"][0]["activations"]["sets"][0] = [True, False]
    return _write(path, doc)


def duplicate_keys(path: Path) -> Path:
    """``"K": 2, "K": 1``."""
    return _write(path, json.dumps(_spec()).replace('"K": 2', '"K": 2, "K": 1', 1))


def huge_experts(path: Path) -> Path:
    """A few hundred bytes declaring 10^9 experts with scalar sizes and latencies."""
    doc = _spec()
    doc["layers"][0]["experts"] = 1_000_000_000
    doc["layers"][0]["latency"] = [2.0, 3.0]
    return _write(path, json.dumps(doc, separators=(",", ":")))


def many_servers(path: Path, servers: int = 200_000, experts: int = 10_000) -> Path:
    """200,000 servers x 10,000 experts: a 3 MB file whose latency matrix would take 16 GB."""
    doc = _spec()
    doc["servers"] = [{"capacity": 1} for _ in range(servers)]
    doc["layers"][0]["experts"] = experts
    doc["layers"][0]["latency"] = [1] * servers
    return _write(path, json.dumps(doc, separators=(",", ":")))


def dev_zero(path: Path) -> Path:
    """A symlink to /dev/zero named like an instance file."""
    path.symlink_to("/dev/zero")
    return path


def fifo(path: Path) -> Path:
    """A named pipe nobody writes to (reading it would block forever)."""
    os.mkfifo(path)
    return path


def directory(path: Path) -> Path:
    """A directory named like an instance file."""
    path.mkdir()
    return path


#: name -> (builder, file name); every case must end in exit 2 and one line.
CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "gzip bomb (10 GiB of zeros)": (gzip_bomb, "bomb.json.gz"),
    "gzip of 200 MB of tiny lists": (small_lists_bomb, "lists.json.gz"),
    "experts = 10^9 (319 bytes)": (huge_experts, "experts.json"),
    "200k servers x 10k experts": (many_servers, "servers.json"),
    "symlink to /dev/zero": (dev_zero, "zero.json"),
    "FIFO": (fifo, "fifo.json"),
    "directory": (directory, "dir.json"),
    "nesting 100k deep (meta)": (deep, "deep.json"),
    "nesting 100k deep (whole file)": (lambda p: deep(p, in_meta=False), "deep-top.json"),
    "integer of 400 digits": (lambda p: huge_int(p, 400), "int400.json"),
    "integer of 5,000 digits": (lambda p: huge_int(p, 5000, "meta"), "int5000.json"),
    "integer of 10^6 digits": (lambda p: huge_int(p, 1_000_000, "meta"), "int1e6.json"),
    "booleans as expert ids": (booleans, "bool.json"),
    "duplicate keys": (duplicate_keys, "dup.json"),
}


def build(case: str, folder: Path) -> Path:
    """Create the file of ``case`` inside ``folder`` and return its path."""
    builder, name = CASES[case]
    return builder(folder / name)


def fresh_folder() -> Path:
    """A new temporary folder (the caller removes it)."""
    return Path(tempfile.mkdtemp(prefix="moebench-hostile-"))
