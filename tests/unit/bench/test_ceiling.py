"""Crypto ceiling: the signature count per transaction and the ceiling formula."""

from __future__ import annotations

import itertools

import pytest

from secprivnode.bench.ceiling import CryptoRates, ceiling_tps, count_signatures, measure_rates


def test_three_nodes_one_endorser() -> None:
    c = count_signatures(nodes=3, endorsers=1, block_txs=500)
    # endorse 1 + order 1 + validate 3*2 - 2 (endorser's cache) - 1 (leader's cache) + block 3/500
    assert c.verifies == pytest.approx(5 + 3 / 500)
    # client 1 + endorsement 1 + block 1/500
    assert c.signs == pytest.approx(2 + 1 / 500)
    assert "3*2" in c.formula()


def test_more_endorsers_cost_more_everywhere() -> None:
    one, two = count_signatures(4, 1, 100), count_signatures(4, 2, 100)
    assert two.verifies - one.verifies == pytest.approx(1 + 4 - 2)
    assert two.signs - one.signs == pytest.approx(1)
    with pytest.raises(ValueError):
        count_signatures(2, 3, 10)


def test_ceiling_formula() -> None:
    rates = CryptoRates(verify_per_s=10_000, sign_per_s=20_000, cores=2)
    c = count_signatures(3, 1, 1e12)  # block terms vanish
    # 20000 verifies/s of budget / (5 + 2 * 0.5) verify-equivalents per tx
    assert ceiling_tps(rates, c) == pytest.approx(20_000 / 6, rel=1e-6)


def test_measure_rates_with_an_injected_clock() -> None:
    ticks = itertools.count()
    # Each clock read advances 1 "second": one chunk per measurement, rate = chunk / elapsed.
    rates = measure_rates(1.0, clock=lambda: float(next(ticks)))
    assert rates.verify_per_s == 64 and rates.sign_per_s == 64 and rates.cores >= 1
