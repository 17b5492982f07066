"""Supervised children run their BLAS and OpenMP pools on one thread (issue 16 item 5)."""

from __future__ import annotations

from typing import Any

from moebench.supervisor import Channel, run_in_child


def _pools(channel: Channel) -> list[tuple[str, int]]:
    from threadpoolctl import threadpool_info

    channel.started()
    return [(info["internal_api"], info["num_threads"]) for info in threadpool_info()]


def test_children_use_one_blas_thread() -> None:
    out = run_in_child(_pools)
    assert out.done, out.failure
    pools: list[Any] = out.result
    assert pools, "numpy's BLAS pool is visible to threadpoolctl"
    assert all(n == 1 for _, n in pools), pools


def test_the_limit_can_be_lifted() -> None:
    out = run_in_child(_pools, blas_threads=2)
    assert out.done, out.failure
    assert all(n <= 2 for _, n in out.result), out.result
