"""SGD decompositions: exactness where the decomposition is exact, the co-activated pair, the ablation."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_instance

from moebench.algorithms.greedy import true_gain_greedy
from moebench.algorithms.sgd import server_groups
from moebench.evaluate import evaluate, gain
from moebench.exact.bruteforce import solve_bruteforce
from moebench.families import generate
from moebench.harness import run_method
from moebench.instance import LayerSpec, build_instance
from moebench.placement import from_triples


def pair_instance():
    """The always-co-activated pair (our version of the SPEC section 2 example).

    K = 2, one server with room for exactly two experts. Experts 0 and 1 always fire together
    (set {0, 1}, probability 0.2). Experts 2 and 3 are the most popular (marginal 0.4 each) but
    each fires with a different rare partner, so caching any two popular experts completes no
    set. Optimum: cache {0, 1}, gain 0.2 * (T0 - T) = 0.2 * 9.
    """
    sets = [[0, 1]] + [[2, 4 + i] for i in range(4)] + [[3, 8 + i] for i in range(4)]
    probs = [0.2] + [0.1] * 8
    e = 12
    spec = LayerSpec(np.full(e, 1.0), np.full((1, e), 1.0), np.full(e, 10.0), np.array(sets), np.array(probs))
    return build_instance("co-activated-pair", 2, [2.0], [spec])


def test_coactivated_pair_defeats_greedy_but_not_sgd():
    inst = pair_instance()
    _, opt_lat = solve_bruteforce(inst)
    opt = inst.empty_latency - opt_lat
    assert opt == pytest.approx(0.2 * 9)
    assert run_method(inst, "greedy-marginal").gain == pytest.approx(0.0)
    # "plain greedy": single-element marginal gains of the true objective (greedy-ratio's rule
    # without its K = 1 assumption); every single expert gains 0, so it caches nothing useful
    assert gain(inst, true_gain_greedy(inst)) == pytest.approx(0.0)
    for m in ["sgd-levels[dp]", "sgd-levels[maxconv,eps=0.1]", "sgd-servers[dp]"]:
        rec = run_method(inst, m)
        assert rec.status == "feasible"
        assert rec.gain == pytest.approx(opt), m


def test_sgd_servers_ablation_misses_a_pair_split_over_two_servers():
    # each server holds one expert; the pair only gains when both are cached (on different servers)
    spec = LayerSpec(np.full(3, 1.0), np.array([[1.0] * 3, [2.0] * 3]), np.full(3, 10.0), np.array([[0, 1]]), [1.0])
    inst = build_instance("split-pair", 2, [1.0, 1.0], [spec])
    assert run_method(inst, "sgd-servers[dp]").gain == pytest.approx(0.0)
    levels = run_method(inst, "sgd-levels[dp]")
    assert levels.gain == pytest.approx(10.0 - 2.0)  # optimum: one expert on each server


@pytest.mark.parametrize("seed", range(25))
def test_single_server_sgd_levels_dp_is_exact(seed):
    """One server, every layer enumerated exactly, integer sizes with res = 1: the subproblem is the problem."""
    rng = np.random.default_rng(seed)
    inst = random_instance(rng, servers=1, layers=int(rng.integers(1, 4)), experts=4, K=int(rng.integers(1, 4)), sets=5)
    _, opt_lat = solve_bruteforce(inst)
    rec = run_method(inst, "sgd-levels[dp,res=1]")
    assert rec.status == "feasible"
    assert rec.gain == pytest.approx(inst.empty_latency - opt_lat, abs=1e-9)
    assert all(kind == "exact" for level in rec.info["levels"] for kind in level["profiles"] if kind != "empty")


@pytest.mark.parametrize("seed", range(10))
def test_equal_servers_equal_sizes_sgd_levels_dp_is_exact(seed):
    """Servers with identical latencies form one level; whole-expert units pack exactly."""
    rng = np.random.default_rng(50 + seed)
    k = int(rng.integers(1, 4))
    specs = []
    for _ in range(2):
        e = 4
        combos = [c for c in np.array(np.meshgrid(*[range(e)] * k)).reshape(k, -1).T if len(set(c)) == k]
        pick = rng.choice(len(combos), size=4, replace=False)
        lat = np.tile(rng.uniform(1, 5, e), (3, 1))
        specs.append(
            LayerSpec(
                np.full(e, 2.0),
                lat,
                rng.uniform(6, 10, e),
                np.array([combos[i] for i in pick]),
                rng.random(4) + 0.1,
                counts=True,
            )
        )
    inst = build_instance("eq", k, rng.integers(0, 4, 3) * 2.0 + rng.uniform(0, 1.9, 3), specs)
    assert len(server_groups(inst)) == 1
    _, opt_lat = solve_bruteforce(inst)
    assert run_method(inst, "sgd-levels[dp]").gain == pytest.approx(inst.empty_latency - opt_lat, abs=1e-9)


def test_sgd_on_heterogeneous_instances_feasible_and_close():
    """Heterogeneous sizes and per-expert latencies: always feasible; worst ratio reported."""
    rng = np.random.default_rng(99)
    worst = {"sgd-levels[dp]": 1.0, "sgd-levels[maxconv,eps=0.1]": 1.0, "sgd-servers[dp]": 1.0}
    for i in range(30):
        inst = random_instance(rng, servers=2, layers=2, experts=4, K=int(rng.integers(1, 4)), sets=5, name=f"h{i}")
        _, opt_lat = solve_bruteforce(inst)
        opt = inst.empty_latency - opt_lat
        for m in worst:
            rec = run_method(inst, m)
            assert rec.status == "feasible", rec.error
            assert evaluate(inst, from_triples(inst, rec.placement)).feasible
            assert rec.gain <= opt + 1e-9
            if opt > 1e-12:
                worst[m] = min(worst[m], rec.gain / opt)
    print("\nheterogeneous 2-server worst gain ratios:", {k: round(v, 4) for k, v in worst.items()})


def test_levels_are_reported_and_nested():
    inst = generate("clustered", {"K": 4, "layers": 3, "experts": 20, "servers": 3, "tokens": 400}, seed=3)
    rec = run_method(inst, "sgd-levels[dp]")
    levels = rec.info["levels"]
    assert [lv["level"] for lv in levels] == [2, 1, 0]  # coarsest first
    for lv in levels:
        assert len(lv["profiles"]) == inst.L
        assert set(lv["profiles"]) <= {"exact", "chain", "empty"}
    # nested: an expert's server is never faster than the level that promoted the fewest
    promoted = [lv["promoted"] for lv in levels]
    assert promoted == sorted(promoted, reverse=True)


def test_bad_bracket_arguments_are_input_errors():
    from moebench.errors import InputError
    from moebench.methods import get_method

    for name in ["sgd-levels", "sgd-levels[foo]", "sgd-levels[dp,eps=0.1]", "sgd-levels[maxconv,eps=2]"]:
        with pytest.raises(InputError):
            get_method(name)


def test_sgd_on_consistent_server_order_instances_reports_ratios():
    """Equal sizes, latencies by server only (the order SGD-levels assumes): worst ratios reported."""
    rng = np.random.default_rng(5)
    names = ["sgd-levels[dp]", "sgd-levels[maxconv,eps=0.1]", "sgd-servers[dp]", "greedy-marginal", "whole-layer"]
    ratios: dict[str, list[float]] = {m: [] for m in names}
    for i in range(40):
        inst = random_instance(
            rng,
            servers=int(rng.integers(2, 4)),
            layers=2,
            experts=4,
            K=int(rng.integers(2, 4)),
            sets=5,
            hetero=False,
            capacity=float(rng.integers(1, 5)) * 2.0,
            name=f"c{i}",
        )
        _, opt_lat = solve_bruteforce(inst)
        opt = inst.empty_latency - opt_lat
        if opt <= 1e-9:
            continue
        for m in names:
            rec = run_method(inst, m)
            assert rec.status == "feasible" and rec.gain <= opt + 1e-9
            ratios[m].append(rec.gain / opt)
    print(
        "\nconsistent-order 2-3 server (worst, mean):",
        {m: (round(min(v), 4), round(float(np.mean(v)), 4)) for m, v in ratios.items()},
    )
