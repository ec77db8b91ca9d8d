"""Byte-level pieces: block slicing against the model's own hashing, key layout, database stamp."""

from __future__ import annotations

from pathlib import Path

import pytest

from crypto.hashing import Tag, digest_bytes
from storage import keys as K
from storage.codec import commit_slices, slice_block, tx_slices
from storage.errors import CorruptionError, StorageError
from storage.kv import FORMAT_KEY, Database
from storage.testing import Chain


def test_slices_agree_with_the_model(chain: Chain) -> None:
    txs = [chain.tx([(f"k{i}", bytes([i]) * i)], ns=f"ns{i % 2}") for i in range(9)]
    block = chain.block(txs)
    data = block.encode()
    sl, cs = slice_block(data), commit_slices(data)
    assert sl.header_hash == cs.header_hash == block.hash()
    assert sl.tx_hashes == cs.tx_hashes == block.tx_hashes()
    assert sl.tx_ids == cs.tx_ids == [t.tx_id for t in txs]
    assert (sl.orderer, sl.signature) == (block.orderer, block.signature)
    assert digest_bytes(Tag.BLOCK_HEADER, data[sl.header_range[0] : sl.header_range[1]]) == block.hash()
    located = tx_slices(data)
    assert len(located) == len(txs)
    for i, t in enumerate(txs):
        s, e = sl.tx_ranges[i]
        assert data[s:e] == t.encode()
        ts = located[i]
        assert ts.tx_range == (s, e) and ts.rwset_range == sl.rwset_ranges[i]
        assert ts.tx_id(data) == t.tx_id
        ns, _reads, writes, _ranges = cs.rwsets[i]
        assert ns == t.rwset.namespace and [tuple(w) for w in writes] == [(w.key, w.value) for w in t.rwset.writes]


BAD_BLOCKS = [
    b"",
    b"\x90",  # an empty array
    b"\x94\x01",  # truncated
    b"\xc0",  # nil
    b"\x94\x90\x91\x90\xc4\x00\xc4\x00",  # a transaction that is an empty array
    b"\x94\x90\x90\x01\xc4\x00",  # orderer is an integer
]


@pytest.mark.parametrize("bad", BAD_BLOCKS)
def test_malformed_block_bytes(bad: bytes) -> None:
    for fn in (slice_block, commit_slices):
        with pytest.raises(CorruptionError):
            fn(bad)
    if bad != b"\x94\x90\x90\x01\xc4\x00":  # tx_slices reads no further than the transactions
        with pytest.raises(CorruptionError):
            tx_slices(bad)


def test_trailing_bytes_and_missing_tx(chain: Chain) -> None:
    data = chain.block([chain.tx()]).encode()
    with pytest.raises(CorruptionError):
        slice_block(data + b"\x00")
    with pytest.raises(CorruptionError):
        commit_slices(data + b"\x00")
    assert len(tx_slices(data)) == 1


def test_key_layout() -> None:
    cp = K.channel_prefix("city")
    assert cp == b"C\x04city"
    assert K.block_key(cp, 258) == cp + b"b" + (258).to_bytes(8, "big")
    assert K.state_key(cp, "kv", "é") == cp + b"s\x00\x02kv" + "é".encode()
    assert K.history_key(cp, "kv", "a", (1, 2)) == cp + b"y\x00\x02kv\x00\x00\x00\x01a" + K.pack_version(1, 2)
    assert K.unpack_loc(K.pack_loc(7, 3, 6)) == (7, 3, 6)
    assert K.unpack_height(K.pack_height(5, b"\x01" * 32)) == (5, b"\x01" * 32)
    assert K.prefix_end(b"a\xff\xff") == b"b"
    assert K.prefix_end(b"\xff") is None
    for bad in ("", "x" * 256):
        with pytest.raises(StorageError):
            K.channel_prefix(bad)
    with pytest.raises(CorruptionError):
        K.unpack_loc(b"\x00")
    with pytest.raises(CorruptionError):
        K.unpack_version(b"\x00" * 3)


def test_database_stamp_and_open_errors(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        Database(tmp_path / "missing", create=False)
    with Database(tmp_path / "db") as db:
        assert db.raw.get(FORMAT_KEY) == b"secprivnode-ledger/1"
        db.raw.put(FORMAT_KEY, b"secprivnode-ledger/999")
    with pytest.raises(StorageError, match="unsupported"):
        Database(tmp_path / "db")
    with Database(tmp_path / "db2") as db:
        db.raw.delete(FORMAT_KEY)
        db.raw.put(b"Cx", b"data")
    with pytest.raises(CorruptionError):
        Database(tmp_path / "db2", create=False)
    with Database(tmp_path / "db3") as db:
        view = db.prefixed(b"C\x01a")
        view.put(b"k", b"v")
        assert db.raw.get(b"C\x01ak") == b"v"
    assert db.closed


def test_tx_slices_of_one_transaction(chain: Chain) -> None:
    data = chain.block([chain.tx([(f"k{i}", b"v")]) for i in range(4)]).encode()
    every = tx_slices(data)
    assert [tx_slices(data, i) for i in range(4)] == [[s] for s in every]
    with pytest.raises(CorruptionError, match="holds 4 transactions, not 5"):
        tx_slices(data, 4)
