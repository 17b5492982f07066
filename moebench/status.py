"""Statuses of a run, their groups, and the conditions guarantees and assumptions are stated in.

Everything here is defined once and used by the harness, the runner, the references and every
report part. Conditions are tested on the *facts* of an instance (K, N, L, equal expert sizes):
:func:`instance_facts` computes them from an :class:`~moebench.instance.Instance`, and every
results row carries them as columns (``K``, ``N``, ``L``, ``equal_sizes``), so that one
definition of each condition works on an instance, on a row and on a whole results table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from moebench.instance import Instance


class Status(str, Enum):
    """Outcome of one method run.

    OPTIMAL
        Proven optimal (exact methods, within the stated gap tolerance, 0 by default).
    FEASIBLE
        A feasible placement without proof of optimality (every heuristic's normal result).
    TIME_LIMIT
        The wall-clock limit was hit; the best incumbent so far (if any) is kept.
    INFEASIBLE
        The solver declared the model infeasible (cannot happen for a correct model: caching
        nothing is always feasible, so it signals a bug).
    INVALID
        The method returned a placement that violates a capacity.
    ERROR
        The method raised, crashed, or its own objective disagrees with the evaluator's.
    UNAVAILABLE
        A required optional dependency or external solver is not installed.
    NOT_APPLICABLE
        The instance is outside the method's declared assumptions (e.g. ``K = 1`` only).
    """

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    TIME_LIMIT = "time-limit"
    INFEASIBLE = "infeasible"
    INVALID = "invalid"
    ERROR = "error"
    UNAVAILABLE = "unavailable"
    NOT_APPLICABLE = "not-applicable"

    def __str__(self) -> str:
        return self.value

    @property
    def has_placement(self) -> bool:
        """True when a result with this status carries a usable placement."""
        return self.value in WITH_PLACEMENT


#: Statuses whose results carry a placement (and get objective values and ratios).
WITH_PLACEMENT: tuple[str, ...] = (Status.OPTIMAL.value, Status.FEASIBLE.value, Status.TIME_LIMIT.value)
#: Statuses counted as failures (never averaged in silently; listed in reports).
FAILED: tuple[str, ...] = (Status.ERROR.value, Status.INVALID.value, Status.INFEASIBLE.value)
#: Statuses of runs that did not apply (counted as skipped).
SKIPPED: tuple[str, ...] = (Status.NOT_APPLICABLE.value, Status.UNAVAILABLE.value)

# ---- conditions: the vocabulary of assumptions and guarantee conditions -----------------
Facts = Mapping[str, Any]

#: Condition name -> test on facts. A test works on scalars (one instance or row) and on
#: columns (a results table) alike.
CONDITIONS: dict[str, Callable[[Any], Any]] = {
    "K = 1": lambda f: f["K"] == 1,
    "single server": lambda f: f["N"] == 1,
    "equal expert sizes": lambda f: f["equal_sizes"] == True,  # noqa: E712  (elementwise on a column)
    "single layer": lambda f: f["L"] == 1,
    "one expert size per layer": lambda f: f["one_size_per_layer"] == True,  # noqa: E712
}


def instance_facts(inst: Instance) -> dict[str, Any]:
    """The facts of ``inst`` that conditions test (every results row has them as columns)."""
    return {
        "K": inst.K,
        "N": inst.N,
        "L": inst.L,
        "equal_sizes": bool(np.all(inst.size == inst.size[0])),
        "one_size_per_layer": one_size_per_layer(inst),
    }


def one_size_per_layer(inst: Instance) -> bool:
    """Each layer's experts share one size and every size is a whole multiple of the smallest."""
    if not np.all(inst.size > 0):
        return False
    unit = float(inst.size.min())
    for layer in range(inst.L):
        s = inst.size[inst.expert_offset[layer] : inst.expert_offset[layer + 1]]
        ratio = float(s[0]) / unit if s.size else 1.0
        if s.size and (not np.all(s == s[0]) or abs(ratio - round(ratio)) > 1e-9 * ratio):
            return False
    return True


def check_conditions(conditions: Iterable[str], subject: Instance | Facts) -> list[str]:
    """The conditions among ``conditions`` that ``subject`` (an instance, or a row's facts) does not satisfy."""
    facts = subject if isinstance(subject, Mapping) else instance_facts(subject)
    return [c for c in conditions if not bool(CONDITIONS[c](facts))]


def split_conditions(text: Any) -> list[str]:
    """A ``;``-separated conditions text as a list (missing text: none)."""
    if not isinstance(text, str):
        return []
    return [c.strip() for c in text.split(";") if c.strip()]


def checkable(text: Any) -> list[str]:
    """The parts of a free-text conditions string that are condition names (the rest is asserted)."""
    return [c for c in split_conditions(text) if c in CONDITIONS]


def conditions_hold(conditions: Iterable[str], frame: pd.DataFrame) -> pd.Series:
    """Per row of a results table: whether every condition among ``conditions`` that is a known
    condition name holds for the row's instance (names that are not conditions are ignored)."""
    import pandas as pd

    ok = pd.Series(True, index=frame.index)
    for c in conditions:
        if c in CONDITIONS:
            ok &= CONDITIONS[c](frame).fillna(False).astype(bool)
    return ok
