"""Rate controllers: targets, caps, ramps and splitting among workers (no clock involved)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secprivnode.bench.rate import FixedOutstanding, FixedRate, LinearRamp, parse_ramp, split


def test_fixed_rate_sends_first_at_zero_then_tps_per_second() -> None:
    r = FixedRate(100, max_outstanding=10_000)
    assert r.allowed(-0.1, 0, 0) == 0
    assert r.allowed(0.0, 0, 0) == 1
    assert r.allowed(1.0, 0, 0) == 101
    assert r.allowed(1.0, 101, 0) == 0
    assert r.allowed(2.5, 101, 0) == 150


def test_fixed_rate_is_capped_by_outstanding() -> None:
    r = FixedRate(1000, max_outstanding=50)
    assert r.allowed(10.0, 0, 0) == 50
    assert r.allowed(10.0, 0, 45) == 5
    assert r.allowed(10.0, 0, 60) == 0


def test_fixed_outstanding_refills_to_its_level() -> None:
    r = FixedOutstanding(20)
    assert r.allowed(0.0, 0, 0) == 20
    assert r.allowed(5.0, 1000, 17) == 3
    assert r.allowed(5.0, 1000, 25) == 0
    assert r.allowed(-1.0, 0, 0) == 0


def test_linear_ramp_integrates_the_rate() -> None:
    r = LinearRamp(0, 100, 10, max_outstanding=10**9)
    assert r.rate_at(5) == 50
    # Area under 0 -> 100 over 10 s is 500; one more for the transaction at t=0.
    assert r.target(10) == 501
    assert r.target(5) == 126  # 100 * 25 / 20 = 125
    assert r.target(12) == 701  # then 100 tx/s flat
    assert r.allowed(12, 700, 0) == 1


@given(st.floats(1, 5000), st.floats(0, 5000), st.floats(0.5, 100), st.floats(0, 200), st.floats(0, 200))
def test_ramp_target_is_monotone(start: float, end: float, ramp_s: float, t1: float, t2: float) -> None:
    if end <= 0:
        return
    r = LinearRamp(start, end, ramp_s)
    lo, hi = sorted((t1, t2))
    assert r.target(lo) <= r.target(hi)


def test_split_preserves_the_total_load() -> None:
    parts = split(FixedRate(3000, max_outstanding=1000), 3)
    assert [p.tps for p in parts] == [1000, 1000, 1000]  # type: ignore[attr-defined]
    assert sum(p.max_outstanding for p in parts) == 1000  # type: ignore[attr-defined]
    outs = split(FixedOutstanding(10), 3)
    assert sorted(p.outstanding for p in outs) == [3, 3, 4]  # type: ignore[attr-defined]
    ramps = split(LinearRamp(0, 90, 30), 3)
    assert all(p.end_tps == 30 and p.ramp_s == 30 for p in ramps)  # type: ignore[attr-defined]


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        FixedRate(0)
    with pytest.raises(ValueError):
        FixedOutstanding(0)
    with pytest.raises(ValueError):
        LinearRamp(10, 0, 5)
    with pytest.raises(ValueError):
        split(FixedOutstanding(3), 0)
    with pytest.raises(ValueError):
        parse_ramp("10", 30)
    with pytest.raises(ValueError):
        parse_ramp("a:b", 30)


def test_parse_ramp() -> None:
    assert parse_ramp("100:500", 60) == LinearRamp(100, 500, 60)
    assert parse_ramp("0:300:20", 60) == LinearRamp(0, 300, 20)
