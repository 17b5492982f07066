"""The generic registry: filled once, completely, before any thread sees it (issue 15 item 7)."""

from __future__ import annotations

import threading

import pytest

from moebench.methods import METHODS, get_method
from moebench.registry import Registry


def test_concurrent_lookups_wait_until_the_registry_is_filled() -> None:
    from helpers_registry import REGISTRY

    got: dict[int, str | None] = {}

    def ask(i: int) -> None:
        got[i] = REGISTRY.get("late")

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # every thread, including those that asked while the slow import was running, sees the entry
    assert got == dict.fromkeys(range(4), "registered after a slow import")
    assert REGISTRY.names() == ["first", "late"]


def test_registration_rules() -> None:
    reg: Registry[int] = Registry("number")
    reg.register("a", 1)
    reg.register("a", 2)  # without `same`: the newer registration replaces
    assert reg.get("a") == 2 and "a" in reg and reg.get("b") is None
    reg.register("a", 2, same=lambda old, new: old == new)
    with pytest.raises(ValueError, match="number 'a' registered twice"):
        reg.register("a", 3, same=lambda old, new: old == new)
    reg.unregister("a")
    assert reg.names() == []


def test_builtin_methods_are_found_from_many_threads_at_once() -> None:
    names = ["milp-highs", "bruteforce", "greedy-ratio", "popularity", "sgd-levels[dp]+ls"]
    errors: list[BaseException] = []

    def build(name: str) -> None:
        try:
            assert get_method(name).name == name
        except BaseException as exc:  # collected: asserted below in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=build, args=(n,)) for n in names * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and "milp-highs" in METHODS
