"""The pending pool: duplicate ids across pending / in-flight / recent, and its bounds."""

from __future__ import annotations

import pytest

from consensus.orderer.errors import DuplicateTransaction, InvalidTransaction, PoolFull
from consensus.orderer.pool import TxPool
from consensus.orderer.txcheck import TxInfo


def info(i: int, size: int = 10) -> TxInfo:
    return (i.to_bytes(32, "big"), b"h" * 32, b"x" * size)


def test_duplicate_pending_refused() -> None:
    p = TxPool(max_txs=10, max_bytes=1000, recent_max=100)
    p.admit(info(1))
    with pytest.raises(DuplicateTransaction) as ei:
        p.admit(info(1))
    assert ei.value.tx_id == info(1)[0]
    assert p.pending_count == 1


def test_duplicate_inflight_and_recent_refused() -> None:
    p = TxPool(max_txs=10, max_bytes=1000, recent_max=100)
    p.admit(info(1))
    p.to_inflight(7, [info(1)])
    assert p.pending_count == 0 and p.pending_bytes == 0
    with pytest.raises(DuplicateTransaction):
        p.admit(info(1))
    assert p.resolve(7, ordered=True) == [info(1)[0]]
    with pytest.raises(DuplicateTransaction):
        p.admit(info(1))


def test_lost_block_frees_ids() -> None:
    p = TxPool(max_txs=10, max_bytes=1000, recent_max=100)
    p.admit(info(1))
    p.to_inflight(7, [info(1)])
    p.resolve(7, ordered=False)
    p.admit(info(1))  # resubmission of a dropped tx is accepted


def test_count_bound() -> None:
    p = TxPool(max_txs=2, max_bytes=1000, recent_max=100)
    p.admit(info(1))
    p.admit(info(2))
    with pytest.raises(PoolFull):
        p.admit(info(3))
    p.remove_pending([info(1)])
    p.admit(info(3))


def test_byte_bound() -> None:
    p = TxPool(max_txs=100, max_bytes=25, recent_max=100)
    p.admit(info(1, 10))
    p.admit(info(2, 15))
    with pytest.raises(PoolFull):
        p.admit(info(3, 1))
    assert p.pending_bytes == 25


def test_admit_many_reports_per_item() -> None:
    p = TxPool(max_txs=2, max_bytes=1000, recent_max=100)
    res = p.admit_many([info(1), info(1), info(2), info(3)])
    assert res[0] is None and isinstance(res[1], DuplicateTransaction)
    assert res[2] is None and isinstance(res[3], PoolFull)


def test_recent_is_bounded_by_whole_blocks() -> None:
    p = TxPool(max_txs=10, max_bytes=1000, recent_max=4)
    for b in range(5):
        p.add_recent([info(b * 2)[0], info(b * 2 + 1)[0]])
        assert p.recent_count <= 4
    assert not p.known(info(0)[0])  # oldest block evicted
    assert p.known(info(9)[0])


def test_admit_batch_passes_refusals_through_and_catches_repeats() -> None:
    p = TxPool(max_txs=3, max_bytes=1000, recent_max=10)
    bad = InvalidTransaction("malformed", "x")
    admitted, results = p.admit_batch([info(1), bad, info(1), info(2), info(3), info(4)])
    assert admitted == [info(1), info(2), info(3)]
    assert results[0] == info(1)[0] and results[1] is bad
    assert isinstance(results[2], DuplicateTransaction)  # a repeat inside the same batch
    assert results[3:5] == [info(2)[0], info(3)[0]]
    assert isinstance(results[5], PoolFull)  # max_txs reached
    assert p.pending_count == 3 and p.pending_bytes == 30
    p.to_inflight(7, admitted)
    _, again = p.admit_batch([info(2)])
    assert isinstance(again[0], DuplicateTransaction)  # in flight counts too
