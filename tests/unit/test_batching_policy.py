"""The batching policy's rule (runners/batching.py), without a dispatcher."""

from __future__ import annotations

import pytest

from runners.batching import ArrivalRate, hold_budget, should_hold


def test_the_budget_is_twice_the_fixed_cost_within_a_quarter_of_the_deadline() -> None:
    assert hold_budget(0.020, 1.0) == pytest.approx(0.040)
    assert hold_budget(0.300, 1.0) == pytest.approx(0.250)
    assert hold_budget(-0.001, 1.0) == 0.0  # a fit gone negative holds nothing


@pytest.mark.parametrize(
    ("queued", "oldest_wait_s", "rate", "held"),
    [
        (1, 0.000, 5.0, False),  # 0.2 requests expected within 40 ms: nothing to wait for
        (1, 0.000, 30.0, True),  # 1.2 expected: hold the lone request for the next
        (2, 0.010, 30.0, False),  # the batch the budget would make is there
        (1, 0.041, 30.0, False),  # held a budget's worth already
        (3, 0.005, 100.0, True),  # 4 expected within 40 ms
        (5, 0.005, 100.0, False),
        (1, 0.120, 500.0, False),  # queued behind a running batch past the budget: never held further
        (8, 0.000, 1000.0, False),  # max_batch reached
    ],
)
def test_a_free_model_holds_only_for_company_the_rate_promises(queued, oldest_wait_s, rate, held) -> None:
    assert should_hold(queued, oldest_wait_s, rate, max_batch=8, budget_s=0.040) is held


def test_the_arrival_rate_forgets_a_burst_within_a_second() -> None:
    rate = ArrivalRate()
    for i in range(200):  # a burst: 200 in 0.2 s
        rate.arrived(100.0 + i * 0.001)
    assert rate.per_second(100.2) == 200
    assert rate.per_second(101.25) == 0
