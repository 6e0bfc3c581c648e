"""The token bucket's arithmetic (domain/token_bucket.py): what gets through, at one token a request or more for
a bulk request, and the headers it yields."""

from __future__ import annotations

import pytest

from domain.token_bucket import Decision, Limit, LocalBuckets, refill, take


def test_a_full_bucket_lets_a_burst_through_then_refuses():
    limit = Limit(rate=2.0, burst=5)
    tokens, results = 5.0, []
    for _ in range(7):
        tokens, allowed = take(tokens, 0.0, limit)
        results.append(allowed)
    assert results == [True] * 5 + [False] * 2


def test_refill_is_rate_times_elapsed_capped_at_burst_and_ignores_a_clock_going_back():
    limit = Limit(rate=4.0, burst=10)
    assert refill(0.0, 0.5, limit) == 2.0
    assert refill(9.0, 100.0, limit) == 10.0
    assert refill(3.0, -5.0, limit) == 3.0


@pytest.mark.parametrize(("rate", "burst", "seconds"), [(10.0, 20, 3.0), (0.5, 1, 10.0), (100.0, 5, 1.0)])
def test_over_a_window_at_most_burst_plus_rate_times_time_get_through(rate, burst, seconds):
    buckets = LocalBuckets(Limit(rate=rate, burst=burst))
    step = 1 / (rate * 10)  # a client sending ten times faster than the rate
    now, allowed = 0.0, 0
    while now <= seconds:
        allowed += buckets.take("client", now).allowed
        now += step
    assert burst + rate * seconds - 1 <= allowed <= burst + rate * seconds + 1


def test_clients_have_separate_buckets_and_old_ones_are_forgotten_past_capacity():
    buckets = LocalBuckets(Limit(rate=1.0, burst=1), capacity=2)
    assert buckets.take("a", 0.0).allowed and not buckets.take("a", 0.0).allowed
    assert buckets.take("b", 0.0).allowed
    buckets.take("c", 0.0)  # "a" is now the least recently seen: forgotten, so it starts full again
    assert buckets.take("a", 0.0).allowed


def test_headers_of_an_allowed_and_a_refused_request():
    limit = Limit(rate=2.0, burst=10)
    allowed = dict(Decision(allowed=True, remaining=6.5, limit=limit).headers())
    assert allowed == {b"ratelimit-limit": b"10", b"ratelimit-remaining": b"6", b"ratelimit-reset": b"2"}
    refused = dict(Decision(allowed=False, remaining=0.2, limit=limit).headers())
    assert refused[b"ratelimit-remaining"] == b"0"
    assert refused[b"retry-after"] == b"1"  # 0.8 tokens at 2/s: 0.4 s, rounded up to whole seconds
    assert refused[b"ratelimit-reset"] == b"5"
    slow = Decision(allowed=False, remaining=0.0, limit=Limit(rate=0.25, burst=1))
    assert slow.retry_after_s == 4


def test_a_cost_is_taken_whole_or_not_at_all():
    limit = Limit(rate=1.0, burst=10)
    assert take(10.0, 0.0, limit, cost=7) == (3.0, True)
    assert take(3.0, 0.0, limit, cost=4) == (3.0, False)  # refused: the three tokens stay
    assert take(3.0, 1.0, limit, cost=4) == (0.0, True)  # a second later there are four
    assert take(10.0, 0.0, limit) == (9.0, True)  # the default cost is one request
    with pytest.raises(ValueError):
        take(10.0, 0.0, limit, cost=0)


def test_a_cost_over_the_burst_never_passes_however_long_the_wait():
    buckets = LocalBuckets(Limit(rate=5.0, burst=10))
    assert not buckets.take("client", 0.0, cost=11).allowed
    assert not buckets.take("client", 3600.0, cost=11).allowed
    assert buckets.take("client", 3600.0, cost=10).allowed


@pytest.mark.parametrize("cost", [1, 4, 10])
def test_over_a_window_at_most_burst_plus_rate_times_time_items_get_through_whatever_the_batch_size(cost):
    limit, seconds = Limit(rate=20.0, burst=30), 5.0
    buckets = LocalBuckets(limit)
    now, items = 0.0, 0
    while now <= seconds:
        items += cost * buckets.take("client", now, cost=cost).allowed
        now += 0.01  # a client sending a batch every 10 ms
    assert limit.burst + limit.rate * seconds - cost <= items <= limit.burst + limit.rate * seconds


def test_a_refused_batch_is_told_to_wait_for_its_whole_cost():
    limit = Limit(rate=2.0, burst=10)
    refused = LocalBuckets(limit)
    refused.take("client", 0.0, cost=9)
    decision = refused.take("client", 0.0, cost=5)  # one token left, five wanted
    assert not decision.allowed and decision.cost == 5
    assert decision.retry_after_s == 2  # four tokens at 2/s
    assert dict(decision.headers())[b"retry-after"] == b"2"
    assert refused.take("client", 2.0, cost=5).allowed  # and then it passes


def test_a_limit_needs_a_positive_rate_and_burst():
    with pytest.raises(ValueError):
        Limit(rate=0, burst=1)
    with pytest.raises(ValueError):
        Limit(rate=1, burst=0)
