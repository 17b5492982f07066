"""The typed result of one method run on one instance (:class:`Record`).

The harness (:func:`moebench.harness.run_method`) is the only producer of records; a record's
fields are the ``record`` columns of the row schema (:mod:`moebench.schema.rows`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from moebench.status import Status


@dataclass
class Record:
    """The tidy result of one (instance, method, seed) run.

    Objectives (``latency``, ``gain``) are always recomputed by the evaluator from the
    placement; the method's own number is kept beside them as ``solver_latency``.
    ``bound`` is an upper bound on the optimal gain R*, and ``gap`` the relative gap
    ``(bound - gain) / bound`` (0 when the bound is 0). ``wall_time`` is what the run cost the
    caller (child process start and supervision included); ``method_time`` is the wall time of
    the method's own ``solve`` call, measured where it ran: the figure to compare methods by.
    ``method_cpu_time`` is the CPU time of the process during that call (all its threads): on a
    loaded machine it stays close to what the method costs, while wall times grow.
    ``tolerance`` is the relative gain tolerance the status and bound hold to
    (:mod:`moebench.tolerances`; None for heuristics).
    """

    instance: str
    instance_hash: str
    method: str
    seed: int
    status: Status
    latency: float | None = None
    gain: float | None = None
    empty_latency: float | None = None
    solver_latency: float | None = None
    bound: float | None = None
    gap: float | None = None
    feasible: bool | None = None
    wall_time: float | None = None
    method_time: float | None = None
    method_cpu_time: float | None = None
    build_time: float | None = None
    solve_time: float | None = None
    time_limit: float | None = None
    solver: str | None = None
    solver_version: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    placement: list[list[int]] = field(default_factory=list)
    tolerance: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (the ``moebench solve`` output; the row fields of the record)."""
        out = asdict(self)
        out["status"] = Status(self.status).value
        return out


def relative_gap(bound: float | None, value: float | None) -> float | None:
    """``(bound - value) / bound`` (0 when the bound is 0; None without both)."""
    if bound is None or value is None:
        return None
    if bound <= 1e-12:
        return 0.0
    return max(0.0, (bound - value) / bound)
