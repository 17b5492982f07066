"""The tolerance policy of references (docs/tolerances.md, SPEC section 5): one definition.

``optimal`` means *proven within a relative tolerance of the gain*: the method holds a bound
``B`` on the optimal gain that is safe against its solver's tolerances and any rounding of its
model, and the gain ``R`` of its placement, recomputed by the evaluator, satisfies
``B - R <= rtol * R`` (plus the evaluator's rounding noise). ``rtol`` is :data:`OPTIMAL_RTOL`
unless the user asked the solver for a looser relative gap; every result records the ``rtol``
its status holds to (``Solution.tolerance``, the ``tolerance`` column).

Comparisons between placements and bounds allow only the evaluator's own rounding noise,
:data:`GAIN_NOISE` times ``max(1, Lat(empty))`` (the gain is a sum of products of
probabilities and latencies of that size; doubles lose about 1e-16 of it per term).
"""

from __future__ import annotations

#: Relative tolerance of an ``optimal`` status: proven within 1e-9 of the gain.
OPTIMAL_RTOL = 1e-9
#: Rounding noise of the evaluator, relative to ``max(1, Lat(empty))``.
GAIN_NOISE = 1e-12


def noise(empty_latency: float) -> float:
    """Absolute rounding noise of a gain computed by the evaluator on this instance."""
    return GAIN_NOISE * max(1.0, abs(float(empty_latency)))


def claim_slack(gain: float, empty_latency: float, rtol: float = OPTIMAL_RTOL) -> float:
    """How far above ``gain`` the optimum may lie when ``gain`` is claimed optimal within ``rtol``."""
    return rtol * abs(float(gain)) + noise(empty_latency)


def proven(gain: float, bound: float | None, empty_latency: float, rtol: float = OPTIMAL_RTOL) -> bool:
    """True when the safe ``bound`` proves ``gain`` optimal within ``rtol``."""
    return bound is not None and float(bound) - float(gain) <= claim_slack(gain, empty_latency, rtol)


def bound_below(bound: float, gain: float, empty_latency: float) -> bool:
    """True when an upper bound on the optimal gain is contradicted by a placement of gain ``gain``."""
    return float(gain) - float(bound) > noise(empty_latency)


def optimum_beaten(optimum: float, gain: float, empty_latency: float, rtol: float = OPTIMAL_RTOL) -> bool:
    """True when a placement of gain ``gain`` refutes the claim that ``optimum`` is optimal within ``rtol``."""
    return float(gain) - float(optimum) > claim_slack(optimum, empty_latency, rtol)
