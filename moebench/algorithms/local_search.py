"""``<method>+ls``: local search on top of any method (ours, beyond the paper; SPEC section 4).

Moves, all measured with the true objective:

* **add**: cache one more (n, g) that fits (never worse, often useful to fill leftover space);
* **drop-add** (covers *swap* on one server and *move* of an expert to another server): remove
  one cached (n, g) and add one (n', g') that fits once (n, g) is gone.

Each round first applies pure additions (best gain first) while any fits and gains, then
sweeps once over the cached (n, g) in a fixed (server, expert) order: for each removal it takes
the best addition, applies the move if it improves (first improvement) and continues the
sweep. It stops after a round without improvement (no move improves the gain by more than a
relative 1e-12, against float noise), after ``max_moves`` moves (option, default 10 000), or
when the time limit is reached. Each applied
move is checked with the evaluator; the result is never worse than the start (asserted).

Gains of all additions are computed at once with the top-two trick (lowering one member of a
set changes its latency to max(the other members' maximum, the member's new latency)). A removal
only changes its own layer, so after a removal only that layer's addition gains are recomputed.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from moebench.algorithms.greedy import fits
from moebench.algorithms.greedy import single_add_gains as add_gains
from moebench.evaluate import effective_latency, gain
from moebench.instance import Instance
from moebench.methods import (
    Method,
    MethodSpec,
    Solution,
    SolveRequest,
    Status,
    both,
    number_options,
    register_modifier,
)

#: Default move budget (option ``max_moves``).
MAX_MOVES = 10_000


def _layer_latency(inst: Instance, tau: np.ndarray, layer: int) -> float:
    s0, s1 = inst.set_offset[layer], inst.set_offset[layer + 1]
    return float(inst.probs[s0:s1] @ tau[inst.sets[s0:s1]].max(axis=1))


def local_search(
    inst: Instance, x0: np.ndarray, max_moves: int = MAX_MOVES, deadline: float | None = None
) -> tuple[np.ndarray, dict]:
    """Improve ``x0`` by add and drop-add moves (see the module docstring).

    Parameters
    ----------
    inst
        The instance.
    x0
        A feasible starting placement.
    max_moves
        Move budget.
    deadline
        ``time.monotonic()`` value after which no new round starts.

    Returns
    -------
    x : ndarray of bool
        The improved placement (never worse than ``x0``).
    info : dict
        Moves applied by kind, start and final gain.
    """
    x = np.array(x0, dtype=bool)
    free = inst.capacity - x.astype(float) @ inst.size
    useful = inst.latency < inst.fallback[None, :]
    start = gain(inst, x)
    current = start
    tol = 1e-12 * max(1.0, inst.empty_latency)
    moves = {"add": 0, "drop-add": 0}
    rounds = 0

    def applied(kind: str) -> bool:
        """Whether the move just made to ``x`` gains; if so it is counted and the gains recomputed."""
        nonlocal current, tau, base
        g_new = gain(inst, x)
        if g_new > current + tol:
            current = g_new
            moves[kind] += 1
            tau = effective_latency(inst, x)
            base = add_gains(inst, tau)
            return True
        return False

    def budget_left() -> bool:
        if moves["add"] + moves["drop-add"] >= max_moves:
            return False
        return deadline is None or time.monotonic() <= deadline

    tau = effective_latency(inst, x)
    base = add_gains(inst, tau)
    while budget_left():
        rounds += 1
        before = sum(moves.values())
        # pure additions first, best gain first, as long as something fits and gains
        while budget_left():
            ok = useful & ~x & fits(inst.size[None, :], free[:, None]) & (base > tol)
            if not ok.any():
                break
            n, g = np.unravel_index(int(np.argmax(np.where(ok, base, -np.inf))), base.shape)
            x[n, g] = True
            if not applied("add"):
                x[n, g] = False
                break
            free[n] -= inst.size[g]
        # one sweep over the removals in (server, expert) order; after an improving move the
        # sweep continues with the next removal (first improvement)
        for n, g in zip(*np.nonzero(x)):
            if not budget_left():
                break
            if not x[n, g]:
                continue
            layer = int(inst.layer_of[g])
            lo, hi = int(inst.expert_offset[layer]), int(inst.expert_offset[layer + 1])
            x[n, g] = False
            tau2 = tau.copy()
            tau2[g] = min(inst.fallback[g], np.where(x[:, g], inst.latency[:, g], np.inf).min())
            loss = _layer_latency(inst, tau2, layer) - _layer_latency(inst, tau, layer)
            gains = base.copy()
            gains[:, lo:hi] = add_gains(inst, tau2, layer)
            free2 = free.copy()
            free2[n] += inst.size[g]
            cand = useful & ~x & fits(inst.size[None, :], free2[:, None])
            cand[n, g] = False
            delta = np.where(cand, gains, -np.inf) - loss
            n2, g2 = np.unravel_index(int(np.argmax(delta)), delta.shape)
            if delta[n2, g2] > tol:
                x[n2, g2] = True
                if applied("drop-add"):
                    free[:] = free2
                    free[n2] -= inst.size[g2]
                    continue
                x[n2, g2] = False
            x[n, g] = True
        if sum(moves.values()) == before:  # no move improved in this round
            break
    final = gain(inst, x)
    assert final >= start - tol, f"local search made the gain worse: {start!r} -> {final!r}"
    return x, {"moves": moves, "rounds": rounds, "start_gain": start, "final_gain": final}


@register_modifier("ls")
def _plus_ls(method: Method, spec: MethodSpec) -> Method:
    """Wrap ``method`` in local search; its assumptions and guarantee carry over (LS never loses gain)."""
    inner = method.solve

    def solve(inst: Instance, req: SolveRequest) -> Solution:
        max_moves = int(req.options.get("max_moves", MAX_MOVES))
        sol = inner(inst, replace(req, options={k: v for k, v in req.options.items() if k != "max_moves"}))
        if not Status(sol.status).has_placement:
            return sol
        remaining = req.remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        t0 = time.perf_counter()
        x, info = local_search(inst, sol.placement, max_moves, deadline)
        info["time"] = time.perf_counter() - t0
        status = sol.status
        if info["final_gain"] > info["start_gain"] and Status(status) == Status.OPTIMAL:
            status = Status.FEASIBLE  # cannot happen for a correct exact method; do not claim more
        return replace(
            sol,
            placement=x,
            status=status,
            solver_latency=None,
            info={**sol.info, "ls": info},
            options={**sol.options, "max_moves": max_moves},
        )

    base = method.info
    info = replace(base, name=f"{base.name}+ls", summary=f"{base.summary}; then add / drop-add local search")
    check = both(method.check_options, number_options(max_moves=(int, 0)))
    return Method(info, solve, options=(*method.options, "max_moves"), check_options=check)
