"""Block cutting rules (Fabric BatchSize / BatchTimeout) with time passed in."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consensus.orderer.cutter import BlockCutter
from consensus.orderer.errors import InvalidTransaction
from storage.model import BatchConfig


@dataclass(frozen=True)
class Item:
    data: bytes


def items(*sizes: int) -> list[Item]:
    return [Item(bytes([i % 256]) * s) for i, s in enumerate(sizes)]


def sizes(batches: list[list[Item]]) -> list[list[int]]:
    return [[len(i.data) for i in b] for b in batches]


CFG = BatchConfig(max_tx_count=3, preferred_max_bytes=100, absolute_max_bytes=1000, timeout_ms=50)


def test_cut_on_count() -> None:
    c: BlockCutter[Item] = BlockCutter(CFG)
    assert c.add(items(10, 10), now_ms=0) == []
    out = c.add(items(10, 10), now_ms=1)
    assert sizes(out) == [[10, 10, 10]]
    assert c.pending_count == 1 and c.pending_bytes == 10


def test_cut_before_preferred_bytes_overflow() -> None:
    c: BlockCutter[Item] = BlockCutter(CFG)
    assert c.add(items(60), now_ms=0) == []
    out = c.add(items(50), now_ms=0)  # 60 + 50 > 100: the 60 goes out first, the 50 waits
    assert sizes(out) == [[60]]
    assert c.pending_bytes == 50


def test_exactly_preferred_bytes_stays_pending() -> None:
    c: BlockCutter[Item] = BlockCutter(CFG)
    assert c.add(items(50, 50), now_ms=0) == []
    assert c.pending_bytes == 100


def test_big_tx_goes_alone_after_pending() -> None:
    c: BlockCutter[Item] = BlockCutter(CFG)
    c.add(items(10, 20), now_ms=0)
    out = c.add(items(101, 5), now_ms=0)
    assert sizes(out) == [[10, 20], [101]]
    assert c.pending_count == 1 and c.pending_bytes == 5


def test_big_tx_alone_with_nothing_pending() -> None:
    c: BlockCutter[Item] = BlockCutter(CFG)
    assert sizes(c.add(items(500), now_ms=0)) == [[500]]
    assert c.pending_count == 0 and c.deadline_ms() is None


def test_absolute_max_rejected() -> None:
    c: BlockCutter[Item] = BlockCutter(CFG)
    c.add(items(10), now_ms=0)
    with pytest.raises(InvalidTransaction) as ei:
        c.add(items(1001), now_ms=0)
    assert ei.value.reason == "too_large"
    assert c.pending_count == 1  # the pending batch is untouched


def test_timeout_from_first_pending_tx() -> None:
    c: BlockCutter[Item] = BlockCutter(CFG)
    assert c.cut_if_due(1000) is None  # nothing pending: nothing due
    c.add(items(10), now_ms=100)
    c.add(items(10), now_ms=140)  # a later tx does not restart the timer
    assert c.deadline_ms() == 150
    assert c.cut_if_due(149) is None
    batch = c.cut_if_due(150)
    assert batch is not None and len(batch) == 2
    assert c.deadline_ms() is None
    c.add(items(10), now_ms=400)  # the next batch's timer starts with its first tx
    assert c.deadline_ms() == 450


def test_count_cut_resets_timer() -> None:
    c: BlockCutter[Item] = BlockCutter(CFG)
    c.add(items(1, 1, 1), now_ms=0)
    assert c.deadline_ms() is None


def test_bad_config_refused() -> None:
    with pytest.raises(ValueError):
        BlockCutter(BatchConfig(10, 200, 100, 10))
    with pytest.raises(ValueError, match="room"):
        BlockCutter(BatchConfig(10, 100, 32 * 1024 * 1024, 10))


@given(
    st.lists(st.integers(min_value=1, max_value=250), max_size=60),
    st.integers(min_value=1, max_value=6),
    st.integers(min_value=1, max_value=200),
)
def test_batches_keep_order_and_respect_limits(szs: list[int], count: int, preferred: int) -> None:
    cfg = BatchConfig(max_tx_count=count, preferred_max_bytes=preferred, absolute_max_bytes=250, timeout_ms=10)
    c: BlockCutter[Item] = BlockCutter(cfg)
    src = items(*szs)
    out = c.add(src, now_ms=0)
    out.append(c.cut())
    flat = [i for b in out for i in b]
    assert flat == src  # nothing lost, duplicated or reordered
    for b in out[:-1]:
        assert 1 <= len(b) <= count
        if len(b) > 1:
            assert sum(len(i.data) for i in b) <= preferred
        else:
            assert len(b[0].data) <= 250
