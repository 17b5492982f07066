"""One child-process supervisor: run a function in a child, stream its messages, enforce a limit.

Method runs (:func:`moebench.harness.solve_in_child`) and stress searches alike run through
:func:`run_in_child`: the child starts from a forkserver (it inherits no solver thread pools
or locks from the parent and starts from a server that already imported moebench), ignores
Ctrl-C (the parent decides when to stop it), sends its output to stderr or /dev/null (solver
banners must not pollute the parent's stdout or garble a progress bar), limits its BLAS and
OpenMP pools to one thread (``threadpoolctl``), optionally limits its address space, and talks
to the parent through a pipe:

- ``channel.started()`` inside the child says that the work proper begins (imports, plugins
  and registries are ready): the wall-clock limit counts from then, since start-up on a
  loaded machine is not the method's time;
- ``channel.send(payload)`` streams a message (an incumbent, progress) to the parent's
  ``on_message``;
- the function's return value is the result.

The child is killed ``limit`` seconds after it started its work, at once when ``stop`` is set,
and when it has not started after :data:`STARTUP_LIMIT` seconds. The outcome says which of
these happened, or how the child died.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Seconds a child may take to start (imports included) before it is killed.
STARTUP_LIMIT = 120.0


@dataclass
class Outcome:
    """How a child run ended: the function returned ``result`` (``done``), raised (``failure``:
    ``Type: message (file:line)``), was killed at the limit (``timed_out``; before it ``started``:
    at :data:`STARTUP_LIMIT`) or on ``stop`` (``stopped``), or died (``exitcode`` < 0: a signal)."""

    result: Any = None
    done: bool = False
    failure: str | None = None
    timed_out: bool = False
    started: bool = False
    stopped: bool = False
    exitcode: int | None = None

    def death(self) -> str:
        """Why a child that neither returned nor timed out ended, in words."""
        code = self.exitcode
        if code is None or code == 0:
            return "child process exited without a result"
        why = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        if code == -signal.SIGKILL:
            why += " (out of memory?)"
        return f"child process died: {why}"


def _context() -> mp.context.BaseContext:
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["moebench.harness"])
        return ctx
    return mp.get_context("spawn")


def _child(
    conn: Any,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    quiet: bool,
    memory_limit_mb: int | None,
    paths: tuple[str, ...],
    blas_threads: int | None,
) -> None:
    if quiet:  # results come through the pipe; solver logs would garble a progress bar
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
    else:
        os.dup2(2, 1)  # solver banners must not pollute the parent's stdout (JSON output)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop us
    for p in paths:  # the forkserver may predate the parent's sys.path changes (pytest, PYTHONPATH)
        if p not in sys.path:
            sys.path.append(p)
    if memory_limit_mb:
        limit = int(memory_limit_mb) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if blas_threads is not None:
        # one thread per child: the runner already runs --jobs children at a time, and an
        # OpenBLAS pool spinning on every core makes them fight (benchmarks/child_blas.py)
        from threadpoolctl import threadpool_limits

        threadpool_limits(blas_threads)

    try:
        msg = ("done", fn(Channel(conn), *args))
    except BaseException as exc:
        msg = ("failed", describe(exc))
    conn.send(msg)
    conn.close()


class Channel:
    """The child's side of the pipe to its supervisor."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def started(self) -> None:
        """The work proper begins: the wall-clock limit counts from now."""
        self._conn.send(("started", None))

    def send(self, payload: Any) -> None:
        """Stream ``payload`` to the parent's ``on_message``."""
        self._conn.send(("message", payload))


def describe(exc: BaseException) -> str:
    """``Type: message (file:line)`` of an exception, naming where it was raised."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" ({os.path.basename(tb[-1].filename)}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


def run_in_child(
    fn: Callable[..., Any],
    args: tuple[Any, ...] = (),
    *,
    limit: float | None = None,
    on_message: Callable[[Any], None] | None = None,
    stop: threading.Event | None = None,
    quiet: bool = False,
    memory_limit_mb: int | None = None,
    blas_threads: int | None = 1,
) -> Outcome:
    """Run ``fn(channel, *args)`` in a child process and supervise it.

    Parameters
    ----------
    fn
        A module-level function (it is pickled by reference); it calls ``channel.started()``
        when its work proper begins and may ``channel.send(...)`` messages.
    args
        Its arguments after the channel.
    limit
        Seconds the work may take from ``channel.started()`` (None: unlimited).
    on_message
        Called in this process with every payload the child sends.
    stop
        When set, the child is killed at once.
    quiet
        Send the child's stdout and stderr to /dev/null (else its stdout goes to stderr).
    memory_limit_mb
        Address-space limit of the child (``RLIMIT_AS``), in MB.
    blas_threads
        Threads of the child's BLAS and OpenMP pools (``threadpoolctl``); None leaves them as
        the libraries chose (one per core).
    """
    ctx = _context()
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_child, args=(child, fn, args, quiet, memory_limit_mb, tuple(sys.path), blas_threads), daemon=True
    )
    proc.start()
    child.close()
    out = Outcome()
    deadline = time.monotonic() + STARTUP_LIMIT
    try:
        while not (out.done or out.failure is not None):
            wait = min(0.5, max(0.0, deadline - time.monotonic())) if deadline is not None else 0.5
            if not parent.poll(wait):
                if stop is not None and stop.is_set():
                    out.stopped = True
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    out.timed_out = True
                    break
                if not proc.is_alive() and not parent.poll(0):
                    break
                continue
            try:
                kind, payload = parent.recv()
            except (EOFError, OSError):
                break
            if kind == "started":
                out.started = True
                deadline = None if limit is None else time.monotonic() + limit
            elif kind == "message":
                if on_message is not None:
                    on_message(payload)
            elif kind == "done":
                out.result, out.done = payload, True
            else:
                out.failure = str(payload)
    finally:
        if out.done or out.failure is not None:
            proc.join(2)  # let a finished child exit cleanly (it releases its own resources)
        if proc.is_alive():
            proc.terminate()
            proc.join(2)
            if proc.is_alive():
                proc.kill()
        proc.join()
        parent.close()
    out.exitcode = proc.exitcode
    return out
