"""The pending pool: duplicate ids across pending / in-flight / recent, and its bounds."""

from __future__ import annotations

import pytest

from consensus.orderer.errors import DuplicateTransaction, PoolFull
from consensus.orderer.pool import TxPool
from consensus.orderer.txcheck import TxInfo


def info(i: int, size: int = 10) -> TxInfo:
    return TxInfo(i.to_bytes(32, "big"), b"h" * 32, b"x" * size)


def test_duplicate_pending_refused() -> None:
    p = TxPool(max_txs=10, max_bytes=1000, recent_max=100)
    p.admit(info(1))
    with pytest.raises(DuplicateTransaction) as ei:
        p.admit(info(1))
    assert ei.value.tx_id == info(1).tx_id
    assert p.pending_count == 1


def test_duplicate_inflight_and_recent_refused() -> None:
    p = TxPool(max_txs=10, max_bytes=1000, recent_max=100)
    p.admit(info(1))
    p.to_inflight(7, [info(1)])
    assert p.pending_count == 0 and p.pending_bytes == 0
    with pytest.raises(DuplicateTransaction):
        p.admit(info(1))
    assert p.resolve(7, ordered=True) == [info(1).tx_id]
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
        p.add_recent([info(b * 2).tx_id, info(b * 2 + 1).tx_id])
        assert p.recent_count <= 4
    assert not p.known(info(0).tx_id)  # oldest block evicted
    assert p.known(info(9).tx_id)
