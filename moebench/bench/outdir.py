"""The output folder of a run: an exclusive lock, and what a run may find there.

One run at a time writes a folder. :func:`lock_folder` takes an exclusive ``flock`` on
``<out>/.moebench.lock`` (released by the kernel when the process dies, so a lock left by a
killed run is never stale: its file only names the last holder) and writes the holder's pid,
host and start time into it, which a second run quotes when it refuses (exit 2) or waits
(``--wait``).

Before any work it checks what the folder holds:

- a file in place of the folder, a folder it cannot create or write: one error line;
- results of another suite (``run.json`` or store records naming another suite): refused
  unless ``--force``, which moves them aside;
- files a run does not write (:data:`RUN_FILES`, the suite file, its references file) in a
  folder other than the suite file's own (which belongs to the suite: its instance files, notes):
  refused unless ``--resume`` or ``--force``; they are never touched;
- earlier results of the same suite, on a run without ``--resume``: moved to
  ``previous/<time>/`` (never overwritten), one line on stderr says where.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import itertools
import json
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from moebench.bench.store import ResultStore
from moebench.errors import InputError

#: The lock file (its content names the holder).
LOCK_NAME = ".moebench.lock"
#: Where a run without --resume moves the previous run's results.
PREVIOUS = "previous"
#: The previous run's results (moved aside together; references accumulate and stay).
RESULT_FILES = ("results.jsonl", "results.parquet", "results.csv", "run.json", "artifacts.json")
#: Everything a run writes into its folder (``moebench.bench.runner`` documents each).
RUN_FILES = frozenset(
    {
        LOCK_NAME,
        PREVIOUS,
        *RESULT_FILES,
        "results.jsonl.prev",
        "results.jsonl.damaged",
        "references.solu",
        "reference-placements",
        "stress",
        "violations",
        "report",
    }
)


@dataclass
class FolderLock:
    """An exclusive lock on a results folder; :meth:`release` (or process exit) frees it."""

    path: Path
    fd: int | None

    def release(self) -> None:
        """Unlock (the lock file stays: removing it would race with a waiting run)."""
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder(fd: int) -> str:
    """The holder named in the lock file, in words."""
    try:
        raw = os.pread(fd, 4096, 0)
        info = json.loads(raw) if raw else {}
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "another moebench run"
    return f"moebench run pid {info.get('pid')} on {info.get('host')} since {info.get('started_at')}"


def make_folder(out: Path) -> None:
    """Create ``out`` (and parents) or raise one :class:`InputError` saying why not."""
    if out.exists() and not out.is_dir():
        raise InputError("is a file, not a folder (--out must name a folder)", file=str(out))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError("a file is in the way of this folder (--out must name a folder)", file=str(out)) from None
    except OSError as exc:
        raise InputError(f"cannot create the output folder: {exc.strerror}", file=str(out)) from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise InputError("the output folder is not writable", file=str(out))


def lock_folder(out: Path, *, wait: bool = False) -> FolderLock:
    """Take the exclusive lock of ``out`` (created first).

    Raises
    ------
    InputError
        When another run holds it and ``wait`` is false, naming the holder.
    """
    make_folder(out)
    path = out / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise InputError(f"cannot create the lock file: {exc.strerror}", file=str(path)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            os.close(fd)
            raise InputError(f"cannot lock the output folder: {exc.strerror}", file=str(out)) from None
        holder = _holder(fd)
        if not wait:
            os.close(fd)
            raise InputError(f"busy: {holder} writes here (use --wait to wait for it)", file=str(out)) from None
        print(f"moebench: waiting for {holder} to finish with {out}", file=sys.stderr)
        fcntl.flock(fd, fcntl.LOCK_EX)
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
    return FolderLock(path, fd)


def _suites_in(out: Path) -> set[str]:
    """Names of the suites whose results are in ``out`` (run.json, first store records)."""
    names: set[str] = set()
    try:
        meta = json.loads((out / "run.json").read_text())
        if isinstance(meta, dict) and isinstance(meta.get("suite_name"), str):
            names.add(meta["suite_name"])
    except (OSError, ValueError):
        pass
    try:
        for _, rec in itertools.islice(ResultStore(out / "results.jsonl").lines(), 1000):
            if isinstance(rec, dict) and isinstance(rec.get("suite"), str):
                names.add(rec["suite"])
    except OSError:
        pass
    return names


def _archive(out: Path) -> Path | None:
    """Move the previous run's result files to ``previous/<time>/``; None when there were none."""
    present = [out / n for n in RESULT_FILES if (out / n).exists()]
    if not present:
        return None
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    dest = out / PREVIOUS / stamp
    i = 1
    while dest.exists():
        i += 1
        dest = out / PREVIOUS / f"{stamp}-{i}"
    dest.mkdir(parents=True)
    for p in present:
        os.replace(p, dest / p.name)
    return dest


def prepare_folder(
    out: Path, suite_name: str, own: set[Path], *, resume: bool, force: bool, home: Path | None = None
) -> Path | None:
    """Check what ``out`` holds before a run writes it (the caller holds its lock).

    Parameters
    ----------
    out
        The output folder.
    suite_name
        The suite about to run.
    own
        Further paths the run may find there (the suite file, its references file).
    resume, force
        The run's ``--resume`` and ``--force``.
    home
        The suite file's folder: there, other files belong to the suite and are not foreign.

    Returns
    -------
    Path or None
        Where the previous results were moved (None: nothing was moved).

    Raises
    ------
    InputError
        For another suite's results (without ``force``) or files a run does not write
        (without ``resume`` or ``force``).
    """
    root = out.resolve()
    own_names = {p.resolve().relative_to(root).parts[0] for p in own if p.resolve().is_relative_to(root)}
    foreign = sorted(
        p.name
        for p in out.iterdir()
        if p.name not in RUN_FILES and p.name not in own_names and not p.name.endswith(".tmp")
    )
    if home is not None and home.resolve() == root:
        foreign = []
    if foreign and not (resume or force):
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise InputError(
            f"holds files a run does not write ({shown}); pick an empty folder, or --resume/--force to use it anyway",
            file=str(out),
        )
    others = _suites_in(out) - {suite_name}
    if others and not force:
        raise InputError(
            f"holds the results of another suite ({', '.join(sorted(others))}); pick another --out, "
            "or --force to move them to previous/",
            file=str(out),
        )
    if resume and not others:
        return None
    return _archive(out)
