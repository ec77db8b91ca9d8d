"""ChannelLedger.check_block / stage / write: the split commit the node uses to sync a block on a
writer thread while it checks the next one."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from storage.errors import ChainError
from storage.kv import Database
from storage.ledger import ChannelLedger
from storage.model import ValidationCode
from storage.testing import Chain, TestKeys
from storage.writer import SyncWriter

V = ValidationCode.VALID


class FailingBatch:
    """Stands in for a LevelDB write batch whose write fails as LevelDB reports a full disk."""

    def write(self) -> None:
        raise OSError("IO error: disk full")


def test_height_and_state_move_only_when_the_batch_is_written(ledger: ChannelLedger, chain: Chain) -> None:
    block = chain.block([chain.tx([("a", b"1")])])
    staged = ledger.stage(ledger.check_block(block, block.encode()), [V])
    assert ledger.height == 0 and ledger.tip_hash is None
    assert ledger.get_state("kv", "a") is None  # nothing reaches LevelDB before write()
    staged.write()
    assert ledger.height == 1 and ledger.tip_hash == block.hash()
    assert ledger.get_state("kv", "a") == (b"1", (0, 0))
    with pytest.raises(ChainError, match="already written"):
        staged.write()


def test_one_block_is_staged_at_a_time(ledger: ChannelLedger, chain: Chain) -> None:
    b0 = chain.block([chain.tx([("a", b"1")])])
    b1 = chain.block([chain.tx([("b", b"2")])])
    staged = ledger.stage(ledger.check_block(b0), [V])
    checked1 = ledger.check_block(b1)  # the next block's checks do not wait for the write
    with pytest.raises(ChainError, match="still being written"):
        ledger.stage(checked1, [V])
    staged.write()
    ledger.stage(checked1, [V]).write()
    assert ledger.height == 2
    ledger.verify_chain()


def test_an_abandoned_stage_writes_nothing_and_frees_the_slot(ledger: ChannelLedger, chain: Chain) -> None:
    block = chain.block([chain.tx([("a", b"1")])])
    checked = ledger.check_block(block)
    ledger.stage(checked, [V]).abandon()
    assert ledger.height == 0 and ledger.get_state("kv", "a") is None
    ledger.stage(checked, [V]).write()
    assert ledger.height == 1


def test_check_block_refuses_what_commit_refuses(ledger: ChannelLedger, chain: Chain) -> None:
    block = chain.block([chain.tx([("a", b"1")])])
    other = chain.block([chain.tx([("b", b"2")])])
    with pytest.raises(ChainError, match="do not encode this block's header"):
        ledger.check_block(block, other.encode())
    with pytest.raises(ChainError, match="does not extend height 0"):
        ledger.stage(ledger.check_block(other), [V])
    assert ledger._staged is None  # a refused stage holds nothing


def test_a_failed_write_leaves_the_height_and_frees_the_slot(ledger: ChannelLedger, chain: Chain) -> None:
    block = chain.block([chain.tx([("a", b"1")])])
    staged = ledger.stage(ledger.check_block(block), [V])
    staged._batch = FailingBatch()
    with pytest.raises(OSError, match="disk full"):
        staged.write()
    assert ledger.height == 0 and ledger.get_state("kv", "a") is None
    ledger.stage(ledger.check_block(block), [V]).write()
    assert ledger.height == 1


def test_writes_on_a_thread_overlapped_with_checks_give_the_same_chain(tmp_path: Path, keys: TestKeys) -> None:
    """The node's pattern: write block n on a writer thread while block n+1 is checked."""
    blocks = []
    ref_chain = Chain("city", keys, seed=7)
    for i in range(12):
        blocks.append(ref_chain.block([ref_chain.tx([(f"k{i % 4}", b"v%d" % i)]), ref_chain.tx([(f"x{i}", None)])]))
    with Database(tmp_path / "seq") as db_seq, Database(tmp_path / "pipe") as db_pipe:
        seq, pipe = ChannelLedger(db_seq, "city"), ChannelLedger(db_pipe, "city")
        for b in blocks:
            seq.commit(b, [V, V])
        writer_threads: set[str] = set()
        with SyncWriter("test-writer") as writer:
            checked = pipe.check_block(blocks[0])
            for i in range(len(blocks)):
                staged = pipe.stage(checked, [V, V])
                batch = staged._batch

                class Spy:  # records which thread writes, then writes
                    def write(self, b: Any = batch) -> None:
                        writer_threads.add(threading.current_thread().name)
                        b.write()

                staged._batch = Spy()
                fut = writer.submit(staged.write)
                if i + 1 < len(blocks):
                    checked = pipe.check_block(blocks[i + 1])
                fut.result()
        assert len(writer_threads) == 1 and next(iter(writer_threads)).startswith("test-writer")
        assert (pipe.height, pipe.tip_hash) == (seq.height, seq.tip_hash)
        for i in range(4):
            assert pipe.get_state("kv", f"k{i}") == seq.get_state("kv", f"k{i}")
            assert pipe.get_history("kv", f"k{i}") == seq.get_history("kv", f"k{i}")
        pipe.verify_chain()


def test_the_writer_reports_a_failed_write_and_keeps_going(ledger: ChannelLedger, chain: Chain) -> None:
    block = chain.block([chain.tx([("a", b"1")])])
    with SyncWriter() as writer:
        staged = ledger.stage(ledger.check_block(block), [V])
        staged._batch = FailingBatch()
        with pytest.raises(OSError, match="disk full"):
            writer.submit(staged.write).result()
        writer.submit(ledger.stage(ledger.check_block(block), [V]).write).result()
    assert ledger.height == 1


def test_a_wrong_merkle_root_is_refused_by_stage_and_nothing_is_held(ledger: ChannelLedger, chain: Chain) -> None:
    """check_block leaves the root hashing on another core; stage waits for it and refuses."""
    import dataclasses

    good = chain.block([chain.tx([("a", b"1")]), chain.tx([("b", b"2")])])
    bad = dataclasses.replace(good, header=dataclasses.replace(good.header, data_hash=b"\x00" * 32))
    checked = ledger.check_block(bad)
    with pytest.raises(ChainError, match="Merkle root"):
        checked.check_root()
    with pytest.raises(ChainError, match="Merkle root") as info:
        ledger.stage(checked, [V, V])
    assert info.value.height == 0
    assert ledger._staged is None and ledger.height == 0 and ledger.get_state("kv", "a") is None
    ledger.stage(ledger.check_block(good), [V, V]).write()
    assert ledger.get_state("kv", "b") == (b"2", (0, 1))
