"""The chain method: ``exact-sets`` and ``bound-levels`` (docs/certify.md).

Modules, bottom (shared vocabulary) to top (composition):

- :mod:`~moebench.exact.chain.kernel`: compiled node loops (numba, bitsets);
- :mod:`~moebench.exact.chain.model`: the chain reduction, chains <-> placements;
- :mod:`~moebench.exact.chain.coverage`: V(b) for one layer and budget by branch and bound;
- :mod:`~moebench.exact.chain.lp`: LP bounds (profile LP, chain LP);
- :mod:`~moebench.exact.chain.profiles`: lazily refined per-layer profiles, the (max,+) DP,
  one level's certificate;
- :mod:`~moebench.exact.chain.unions`: enumeration of closed unions;
- :mod:`~moebench.exact.chain.search`: the exact search over nested levels;
- :mod:`~moebench.exact.chain.method`: registration of the methods.
"""
