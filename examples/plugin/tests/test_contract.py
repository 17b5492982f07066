"""The plugin's method keeps moebench's method contract: one test per check (moebench.testing).

Run with ``pytest`` after ``pip install ./examples/plugin`` (the entry point registers the method).
"""

from moebench.testing import parametrize_with_checks


@parametrize_with_checks(["cheapest-first", "cheapest-first+ls"])
def test_cheapest_first_contract(method, check):
    check(method)
