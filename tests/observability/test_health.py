from __future__ import annotations

import pytest

from plughost.observability.health import RestartPolicy, Supervisor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_grows_exponentially_and_jitter_stays_within_bounds() -> None:
    clock = Clock()
    policy = RestartPolicy(
        initial_delay=1.0, multiplier=2.0, max_delay=60, jitter=0.25, max_crashes=10, window=300
    )
    low = Supervisor(policy, clock=clock, rng=lambda: 0.0)
    high = Supervisor(policy, clock=clock, rng=lambda: 1.0)
    mid = Supervisor(policy, clock=clock, rng=lambda: 0.5)
    assert [mid.record_crash("x").delay for _ in range(4)] == [1.0, 2.0, 4.0, 8.0]
    assert low.record_crash("x").delay == 0.75
    assert high.record_crash("x").delay == 1.25


def test_delay_is_capped_at_max_delay() -> None:
    sup = Supervisor(
        RestartPolicy(initial_delay=1, max_delay=3, jitter=0, max_crashes=99), rng=lambda: 0.5
    )
    delays = [sup.record_crash("x").delay for _ in range(5)]
    assert delays == [1, 2, 3, 3, 3]


def test_three_crashes_within_five_minutes_quarantine_with_the_reason() -> None:
    clock = Clock()
    sup = Supervisor(RestartPolicy(), clock=clock)
    assert not sup.record_crash("exited with code 1").quarantine
    clock.now += 100
    assert not sup.record_crash("exited with code 1").quarantine
    clock.now += 100
    decision = sup.record_crash("cpu limit 2s exceeded")
    assert decision.quarantine and sup.quarantined
    assert "3 crashes within 300s" in decision.reason
    assert "cpu limit 2s exceeded" in decision.reason


def test_crashes_older_than_the_window_do_not_count() -> None:
    clock = Clock()
    sup = Supervisor(RestartPolicy(), clock=clock)
    sup.record_crash("a")
    sup.record_crash("b")
    clock.now += 301
    assert sup.crashes_in_window() == 0
    assert not sup.record_crash("c").quarantine
    assert sup.total_crashes == 3


def test_reenable_clears_quarantine_and_history() -> None:
    sup = Supervisor(RestartPolicy(max_crashes=1))
    assert sup.record_crash("boom").quarantine
    sup.reenable()
    assert not sup.quarantined and sup.quarantine_reason is None
    assert sup.crashes_in_window() == 0


def test_policy_refuses_nonsense_values() -> None:
    with pytest.raises(ValueError):
        RestartPolicy(initial_delay=5, max_delay=1)
    with pytest.raises(ValueError):
        RestartPolicy(jitter=1.5)
