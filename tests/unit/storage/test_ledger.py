"""ChannelLedger: commit checks, indices, state versions, history, proofs and chain verification."""

from __future__ import annotations

import dataclasses

import pytest

from crypto.encoding import encode
from storage import keys as K
from storage.errors import ChainError, CorruptionError, NotFound
from storage.kv import Database
from storage.ledger import CONFIG_KEY, CONFIG_NAMESPACE, BlockSummary, ChannelLedger, verify_tx_proof
from storage.model import (
    GENESIS_PREVIOUS_HASH,
    BatchConfig,
    ChannelConfig,
    OrgConfig,
    ValidationCode,
)
from storage.testing import Chain, TestKeys

V = ValidationCode.VALID


def test_empty_ledger(ledger: ChannelLedger) -> None:
    assert ledger.height == 0
    assert ledger.tip_hash is None
    assert ledger.latest_config() is None
    with pytest.raises(NotFound):
        ledger.get_block(0)
    assert ledger.tx_location(b"\x01" * 32) is None
    with pytest.raises(KeyError):  # NotFound is a KeyError too
        ledger.get_tx(b"\x01" * 32)
    ledger.verify_chain()


def test_commit_and_read_back(ledger: ChannelLedger, chain: Chain) -> None:
    t0, t1 = chain.tx([("a", b"1")]), chain.tx([("b", b"2"), ("c", b"3")])
    b0 = chain.commit(ledger, [t0, t1])
    assert ledger.height == 1
    assert ledger.tip_hash == b0.hash()
    assert ledger.get_block(0) == b0
    assert ledger.get_block_bytes(0) == b0.encode()
    assert ledger.get_block_by_hash(b0.hash()) == b0
    assert ledger.get_header(0) == b0.header
    assert ledger.get_codes(0) == [V, V]
    rec = ledger.get_tx(t1.tx_id)
    assert (rec.tx, rec.block_number, rec.tx_index, rec.code) == (t1, 0, 1, V)
    assert ledger.tx_location(t0.tx_id) == (0, 0, V)
    assert ledger.get_state("kv", "b") == (b"2", (0, 1))
    assert ledger.get_version("kv", "c") == (0, 1)
    assert ledger.get_version("kv", "zzz") is None
    assert ledger.get_version("other", "a") is None


def test_commit_with_caller_bytes(ledger: ChannelLedger, chain: Chain) -> None:
    block = chain.block([chain.tx([("a", b"1")])])
    ledger.commit(block, [V], block_bytes=block.encode())
    assert ledger.get_block_bytes(0) == block.encode()
    assert ledger.get_state("kv", "a") == (b"1", (0, 0))


def test_caller_bytes_of_another_block_are_refused(ledger: ChannelLedger, chain: Chain) -> None:
    block = chain.block([chain.tx([("a", b"1")])])
    other = dataclasses.replace(block, header=dataclasses.replace(block.header, timestamp_ms=99))
    with pytest.raises(ChainError):
        ledger.commit(block, [V], block_bytes=other.encode())
    with pytest.raises(ChainError):
        ledger.commit(block, [V], block_bytes=b"\x93\x01\x02")
    assert ledger.height == 0


def test_chain_errors_write_nothing(ledger: ChannelLedger, chain: Chain, keys: TestKeys) -> None:
    b0 = chain.commit(ledger, [chain.tx([("a", b"1")])])
    good = chain.block([chain.tx([("a", b"2")])])
    h = good.header
    bad_blocks = [
        dataclasses.replace(good, header=dataclasses.replace(h, number=2)),
        dataclasses.replace(good, header=dataclasses.replace(h, number=0)),
        dataclasses.replace(good, header=dataclasses.replace(h, previous_hash=GENESIS_PREVIOUS_HASH)),
        dataclasses.replace(good, header=dataclasses.replace(h, data_hash=b"\x00" * 32)),
        dataclasses.replace(good, header=dataclasses.replace(h, channel="other")),
        dataclasses.replace(good, transactions=(*good.transactions, chain.tx())),
    ]
    for bad in bad_blocks:
        with pytest.raises(ChainError) as info:
            ledger.commit(bad, [V] * len(bad.transactions))
        assert info.value.height is not None
    with pytest.raises(ChainError):
        ledger.commit(good, [V, V])  # wrong number of codes
    with pytest.raises(ChainError):
        ledger.commit(good, [99])  # type: ignore[list-item]
    assert (ledger.height, ledger.tip_hash) == (1, b0.hash())
    assert ledger.get_state("kv", "a") == (b"1", (0, 0))
    ledger.commit(good, [V])
    assert ledger.get_state("kv", "a") == (b"2", (1, 0))


def test_genesis_must_point_at_zero_hash(ledger: ChannelLedger, chain: Chain) -> None:
    b = chain.block([chain.tx()])
    bad = dataclasses.replace(b, header=dataclasses.replace(b.header, previous_hash=b"\x01" * 32))
    with pytest.raises(ChainError):
        ledger.commit(bad, [V])


def test_invalid_tx_writes_are_ignored_but_indexed(ledger: ChannelLedger, chain: Chain) -> None:
    ok, bad = chain.tx([("k", b"good")]), chain.tx([("k", b"bad"), ("j", b"bad")])
    chain.commit(ledger, [ok, bad], [V, ValidationCode.MVCC_READ_CONFLICT])
    assert ledger.get_state("kv", "k") == (b"good", (0, 0))
    assert ledger.get_state("kv", "j") is None
    assert ledger.tx_location(bad.tx_id) == (0, 1, ValidationCode.MVCC_READ_CONFLICT)
    assert [e.version for e in ledger.get_history("kv", "k")] == [(0, 0)]
    assert ledger.get_codes(0) == [V, ValidationCode.MVCC_READ_CONFLICT]


def test_duplicate_tx_ids_index_only_the_first(ledger: ChannelLedger, chain: Chain) -> None:
    t = chain.tx([("k", b"1")])
    chain.commit(ledger, [t, t], [V, ValidationCode.DUPLICATE_TXID])
    chain.commit(ledger, [t], [ValidationCode.DUPLICATE_TXID])
    assert ledger.tx_location(t.tx_id) == (0, 0, V)
    assert ledger.get_state("kv", "k") == (b"1", (0, 0))
    assert ledger.get_codes(1) == [ValidationCode.DUPLICATE_TXID]
    ledger.verify_chain()


def test_only_a_valid_transaction_takes_its_id(ledger: ChannelLedger, chain: Chain) -> None:
    t = chain.tx([("k", b"1")])
    chain.commit(ledger, [t], [ValidationCode.BAD_CREATOR_SIGNATURE])
    chain.commit(ledger, [t], [ValidationCode.BAD_PAYLOAD])  # invalid attempts: the latest is indexed
    assert ledger.tx_location(t.tx_id) == (1, 0, ValidationCode.BAD_PAYLOAD)
    chain.commit(ledger, [t])  # the genuine transaction still commits after invalid copies
    assert ledger.tx_location(t.tx_id) == (2, 0, V)
    assert ledger.get_state("kv", "k") == (b"1", (2, 0))
    chain.commit(ledger, [t], [ValidationCode.DUPLICATE_TXID])  # a later copy never moves the index
    chain.commit(ledger, [t], [ValidationCode.MVCC_READ_CONFLICT])
    assert ledger.tx_location(t.tx_id) == (2, 0, V)


def test_valid_replay_is_refused(ledger: ChannelLedger, chain: Chain) -> None:
    t = chain.tx([("k", b"1")])
    chain.commit(ledger, [t])
    with pytest.raises(ChainError, match="VALID"):
        chain.commit(ledger, [t])
    assert ledger.height == 1
    t2 = chain.tx([("k", b"2")])
    with pytest.raises(ChainError):  # a VALID duplicate inside one block
        ledger.commit(chain.builder.block([t2, t2]), [V, V])


def test_versions_follow_the_last_write(ledger: ChannelLedger, chain: Chain) -> None:
    chain.commit(ledger, [chain.tx([("x", b"1")]), chain.tx([("x", b"2")])])
    assert ledger.get_state("kv", "x") == (b"2", (0, 1))
    chain.commit(ledger, [chain.tx([("y", b"0")]), chain.tx([("x", b"3"), ("x", b"4")])])
    assert ledger.get_state("kv", "x") == (b"4", (1, 1))
    hist = ledger.get_history("kv", "x")
    assert [(e.version, e.value, e.is_delete) for e in hist] == [
        ((0, 0), b"1", False),
        ((0, 1), b"2", False),
        ((1, 1), b"4", False),
    ]


def test_delete_removes_the_key_and_is_in_history(ledger: ChannelLedger, chain: Chain) -> None:
    t1 = chain.tx([("x", b"1")])
    t2 = chain.tx([("x", None)])
    chain.commit(ledger, [t1])
    chain.commit(ledger, [t2])
    assert ledger.get_state("kv", "x") is None
    assert ledger.get_version("kv", "x") is None
    assert ledger.get_range("kv", "", "") == []
    hist = ledger.get_history("kv", "x")
    assert [(e.version, e.tx_id, e.value, e.is_delete) for e in hist] == [
        ((0, 0), t1.tx_id, b"1", False),
        ((1, 0), t2.tx_id, None, True),
    ]
    assert len(ledger.get_history("kv", "x", limit=1)) == 1
    assert ledger.get_history("kv", "x", limit=0) == []


def test_history_keys_do_not_bleed_into_each_other(ledger: ChannelLedger, chain: Chain) -> None:
    chain.commit(ledger, [chain.tx([("a", b"1"), ("ab", b"2")]), chain.tx([("a", b"3")], ns="kv2")])
    assert [e.value for e in ledger.get_history("kv", "a")] == [b"1"]
    assert [e.value for e in ledger.get_history("kv", "ab")] == [b"2"]
    assert [e.value for e in ledger.get_history("kv2", "a")] == [b"3"]


def test_range_scans(ledger: ChannelLedger, chain: Chain) -> None:
    names = ["a", "b", "b\x00", "ba", "c", "é", "z"]
    chain.commit(ledger, [chain.tx([(k, k.encode()) for k in names]), chain.tx([("b", b"x")], ns="kv2")])
    assert [k for k, _, _ in ledger.get_range("kv", "", "")] == sorted(names)
    assert [k for k, _, _ in ledger.get_range("kv", "b", "c")] == ["b", "b\x00", "ba"]
    assert [k for k, _, _ in ledger.get_range("kv", "b", "")] == ["b", "b\x00", "ba", "c", "z", "é"]
    assert [k for k, _, _ in ledger.get_range("kv", "", "", limit=2)] == ["a", "b"]
    assert ledger.get_range("kv", "c", "b") == []
    assert ledger.get_range("kv2", "", "") == [("b", b"x", (0, 1))]
    assert ledger.get_range("kv", "ba", "bb") == [("ba", b"ba", (0, 0))]


def test_two_channels_in_one_database(db: Database, keys: TestKeys) -> None:
    la, lb = ChannelLedger(db, "alpha"), ChannelLedger(db, "beta")
    ca, cb = Chain("alpha", keys, seed=1), Chain("beta", keys, seed=2)
    ta = ca.tx([("k", b"alpha")])
    ca.commit(la, [ta])
    ca.commit(la, [ca.tx([("k", b"alpha2")])])
    cb.commit(lb, [cb.tx([("k", b"beta")])])
    assert (la.height, lb.height) == (2, 1)
    assert la.get_state("kv", "k") == (b"alpha2", (1, 0))
    assert lb.get_state("kv", "k") == (b"beta", (0, 0))
    assert lb.tx_location(ta.tx_id) is None
    assert [k for k, _, _ in lb.get_range("kv", "", "")] == ["k"]
    assert len(la.get_history("kv", "k")) == 2 and len(lb.get_history("kv", "k")) == 1
    with pytest.raises(ChainError):  # a block of one channel never lands in the other
        lb.commit(ca.block([ca.tx()]), [V])
    la.verify_chain()
    lb.verify_chain()
    # channel names are length-prefixed: "a" and "ab" stay apart
    l1, l2 = ChannelLedger(db, "a"), ChannelLedger(db, "ab")
    Chain("a", keys).commit(l1, [])
    assert (l1.height, l2.height) == (1, 0)


def test_empty_block(ledger: ChannelLedger, chain: Chain) -> None:
    b = chain.commit(ledger, [])
    assert ledger.get_block(0) == b
    assert ledger.get_codes(0) == []
    ledger.verify_chain()


def test_reopen_keeps_everything(db_path, keys: TestKeys) -> None:  # type: ignore[no-untyped-def]
    chain = Chain("city", keys)
    with Database(db_path) as db:
        led = ChannelLedger(db, "city")
        blocks = [chain.commit(led, [chain.tx([(f"k{i}", bytes([i]))])]) for i in range(3)]
    with Database(db_path, create=False) as db:
        led = ChannelLedger(db, "city")
        assert led.height == 3 and led.tip_hash == blocks[-1].hash()
        assert led.get_state("kv", "k2") == (b"\x02", (2, 0))
        chain.commit(led, [chain.tx()])
        led.verify_chain(chain.builder.resolver)


def test_tx_proof(ledger: ChannelLedger, chain: Chain) -> None:
    txs = [chain.tx([(f"k{i}", b"v")]) for i in range(7)]
    block = chain.commit(ledger, txs)
    for i, t in enumerate(txs):
        p = ledger.tx_proof(t.tx_id)
        assert (p.index, p.size, p.tx_hash, p.header) == (i, 7, t.hash(), block.header)
        assert verify_tx_proof(p)
        assert verify_tx_proof(p, block.hash())
        assert not verify_tx_proof(p, b"\x00" * 32)
        assert not verify_tx_proof(dataclasses.replace(p, tx_hash=txs[(i + 1) % 7].hash()))
        assert not verify_tx_proof(dataclasses.replace(p, index=(i + 1) % 7))
    with pytest.raises(NotFound):
        ledger.tx_proof(b"\x00" * 32)


def test_verify_chain_checks_signatures(ledger: ChannelLedger, chain: Chain, keys: TestKeys) -> None:
    for i in range(3):
        chain.commit(ledger, [chain.tx([("k", bytes([i]))])])
    ledger.verify_chain(chain.builder.resolver)
    ledger.verify_chain(chain.builder.resolver, start=2)
    with pytest.raises(ChainError) as info:
        ledger.verify_chain(lambda cert: None)
    assert info.value.height == 0
    with pytest.raises(ChainError, match="signature") as info:
        ledger.verify_chain(lambda cert: keys.creator.key.public)
    assert info.value.height == 0


def test_latest_config(ledger: ChannelLedger, chain: Chain) -> None:
    cfg = ChannelConfig("city", 0, (OrgConfig("council", b"ca"),), (), BatchConfig(), (), "MAJORITY")
    chain.commit(ledger, [chain.tx([(CONFIG_KEY, encode(cfg.to_obj()))], ns=CONFIG_NAMESPACE)])
    assert ledger.latest_config() == cfg
    cfg2 = dataclasses.replace(cfg, sequence=1)
    chain.commit(ledger, [chain.tx([(CONFIG_KEY, encode(cfg2.to_obj()))], ns=CONFIG_NAMESPACE)])
    assert ledger.latest_config() == cfg2


# -- corruption: never served ------------------------------------------------------------------


def _flip(db: Database, key: bytes, offset: int) -> None:
    value = bytearray(db.raw.get(key))
    value[offset % len(value)] ^= 0x40
    db.raw.put(key, bytes(value), sync=True)


@pytest.mark.parametrize(("space", "offset"), [("b", 0), ("b", 5), ("b", 40), ("b", 300), ("b", -3), ("k", 1)])
def test_flipped_block_byte_is_never_served(db: Database, chain: Chain, space: str, offset: int) -> None:
    led = ChannelLedger(db, "city")
    txs = [chain.tx([("k", b"v" * 50)]) for _ in range(3)]
    chain.commit(led, txs)
    chain.commit(led, [chain.tx()])
    cp = K.channel_prefix("city")
    _flip(db, K.block_key(cp, 0) if space == "b" else K.crc_key(cp, 0), offset)
    fresh = ChannelLedger(db, "city")  # no cached copy
    for read in (
        lambda: fresh.get_block(0),
        lambda: fresh.get_block_bytes(0),
        lambda: fresh.get_header(0),
        lambda: fresh.get_tx(txs[1].tx_id),
        lambda: fresh.tx_proof(txs[0].tx_id),
        lambda: fresh.get_history("kv", "k"),
    ):
        with pytest.raises(CorruptionError):
            read()
    with pytest.raises(CorruptionError) as info:
        fresh.verify_chain()
    assert info.value.height == 0


def test_corrupt_tip_is_detected_on_open(db: Database, chain: Chain) -> None:
    chain.commit(ChannelLedger(db, "city"), [chain.tx()])
    _flip(db, K.block_key(K.channel_prefix("city"), 0), 100)
    with pytest.raises(CorruptionError):
        ChannelLedger(db, "city")


@pytest.mark.parametrize("damage", ["marker", "codes", "crc", "hash-index", "tx-index", "beyond", "no-marker"])
def test_recovery_refuses_inconsistent_stores(db: Database, chain: Chain, damage: str) -> None:
    led = ChannelLedger(db, "city")
    t = chain.tx([("k", b"v")])
    b0 = chain.commit(led, [t])
    cp = K.channel_prefix("city")
    if damage == "marker":
        db.raw.put(K.meta_key(cp), K.pack_height(1, b"\x00" * 32))
    elif damage == "codes":
        db.raw.delete(K.codes_key(cp, 0))
    elif damage == "crc":
        db.raw.delete(K.crc_key(cp, 0))
    elif damage == "hash-index":
        db.raw.delete(K.hash_key(cp, b0.hash()))
    elif damage == "tx-index":
        db.raw.delete(K.tx_key(cp, t.tx_id))
    elif damage == "beyond":
        db.raw.put(K.block_key(cp, 1), db.raw.get(K.block_key(cp, 0)))
    elif damage == "no-marker":
        db.raw.delete(K.meta_key(cp))
    with pytest.raises(CorruptionError):
        ChannelLedger(db, "city")


def test_verify_chain_finds_a_bad_middle_block(db: Database, chain: Chain) -> None:
    led = ChannelLedger(db, "city")
    txs = [chain.tx([("k", bytes([i]))]) for i in range(4)]
    for t in txs:
        chain.commit(led, [t])
    db.raw.delete(K.tx_key(K.channel_prefix("city"), txs[2].tx_id))
    with pytest.raises(CorruptionError) as info:
        ChannelLedger(db, "city").verify_chain()
    assert info.value.height == 2
    ChannelLedger(db, "city").verify_chain(start=3)


def test_corrupt_state_value_shape_is_refused(db: Database, chain: Chain) -> None:
    led = ChannelLedger(db, "city")
    chain.commit(led, [chain.tx([("k", b"v")])])
    db.raw.put(K.state_key(K.channel_prefix("city"), "kv", "k"), b"\x01")
    with pytest.raises(CorruptionError):
        led.get_version("kv", "k")


def test_planned_writes_are_exactly_what_commit_writes(db: Database, chain: Chain) -> None:
    led = ChannelLedger(db, "city")
    chain.commit(led, [chain.tx([("gone", b"1")])])
    before = dict(db.raw.iterator(prefix=K.channel_prefix("city")))
    block = chain.block([chain.tx([("a", b"1"), ("gone", None)]), chain.tx([("b", b"2")])])
    codes = [V, ValidationCode.ENDORSEMENT_POLICY_FAILURE]
    ops = led.planned_writes(block, codes)
    assert led.height == 1  # planning writes nothing
    expect = dict(before)
    for k, v in ops:
        if v is None:
            expect.pop(k, None)
        else:
            expect[k] = v
    led.commit(block, codes)
    assert dict(db.raw.iterator(prefix=K.channel_prefix("city"))) == expect


def test_validator_lookups_are_not_trusted_across_commits(ledger: ChannelLedger, chain: Chain) -> None:
    t = chain.tx([("k", b"1")])
    assert ledger.tx_location(t.tx_id) is None  # the validator's check, at height 0
    chain.commit(ledger, [t])
    assert ledger.tx_location(t.tx_id) == (0, 0, V)
    with pytest.raises(ChainError, match="VALID"):  # a stale "absent" must not let a replay in
        chain.commit(ledger, [t])
    chain.builder.height, chain.builder.tip_hash = ledger.height, ledger.tip_hash or b""  # rewind the refused block
    fresh = chain.tx([("k", b"2")])
    assert ledger.tx_location(fresh.tx_id) is None
    chain.commit(ledger, [fresh])
    assert ledger.tx_location(fresh.tx_id) == (1, 0, V)


def test_valid_tx_with_malformed_rwset_refuses_the_block(ledger: ChannelLedger, chain: Chain) -> None:
    import dataclasses as dc

    from storage.model import KVWrite

    good = chain.tx([("k", b"1")])
    bad = dc.replace(good, rwset=dc.replace(good.rwset, writes=(KVWrite(5, b"x"),)))  # type: ignore[arg-type]
    block = chain.builder.block([bad])
    with pytest.raises(ChainError, match="malformed"):
        ledger.commit(block, [V])
    assert ledger.height == 0
    # the same tx marked invalid is stored as it is (its writes are never applied)
    ledger.commit(block, [ValidationCode.BAD_PAYLOAD])
    assert ledger.get_range("kv", "", "") == []


def test_valid_after_an_invalid_copy_in_one_block(ledger: ChannelLedger, chain: Chain) -> None:
    t = chain.tx([("k", b"1")])
    ledger.commit(chain.builder.block([t, t]), [ValidationCode.BAD_ENDORSEMENT_SIGNATURE, V])
    assert ledger.tx_location(t.tx_id) == (0, 1, V)
    t2 = chain.tx([("k", b"2")])
    with pytest.raises(ChainError, match="VALID"):  # two VALID copies in one block
        ledger.commit(chain.builder.block([t2, t2]), [V, V])
    assert ledger.height == 1


def test_non_canonical_caller_bytes_are_refused(ledger: ChannelLedger, chain: Chain) -> None:
    block = chain.block([chain.tx([("a", b"1")])])
    data = block.encode()
    sig = block.signature
    assert data.endswith(b"\xc4" + bytes([len(sig)]) + sig)
    bin16 = data[: -(len(sig) + 2)] + b"\xc5" + len(sig).to_bytes(2, "big") + sig  # same value, longer form
    with pytest.raises(ChainError):
        ledger.commit(block, [V], block_bytes=bin16)
    a0 = 1 + len(encode(block.header.to_obj()))
    assert data[a0] == 0x91
    arr16 = data[:a0] + b"\xdc\x00\x01" + data[a0 + 1 :]  # the tx array as array16: same value
    with pytest.raises(ChainError):
        ledger.commit(block, [V], block_bytes=arr16)
    with pytest.raises(ChainError):
        ledger.commit(block, [V], block_bytes=data + b"\x00")
    ledger.commit(block, [V], block_bytes=data)
    assert ledger.get_block(0) == block


def test_list_channels(db: Database, keys: TestKeys) -> None:
    from storage.ledger import list_channels

    assert list_channels(db) == []
    for name in ["zeta", "a", "ab", "é"]:
        Chain(name, keys).commit(ChannelLedger(db, name), [])
    ChannelLedger(db, "empty")  # opened but never committed to: no marker, not listed
    assert list_channels(db) == ["a", "ab", "zeta", "é"]


def test_block_summary_is_the_decoded_blocks_without_decoding(ledger: ChannelLedger, chain: Chain) -> None:
    chain.commit(ledger, [chain.tx([("a", b"1")])])
    b1 = chain.commit(ledger, [chain.tx([("b", b"2")]), chain.tx([("c", None)])])
    s = ledger.get_block_summary(1)
    assert s == BlockSummary.of(b1)
    assert s.tx_ids == [t.tx_id for t in b1.transactions] and s.hash == b1.hash()
    assert ledger.block_number_of_hash(b1.hash()) == 1
    with pytest.raises(NotFound):
        ledger.get_block_summary(2)
    # a damaged stored block is refused, not summarised
    ledger.db.raw.put(K.block_key(K.channel_prefix("city"), 1), b1.encode()[:-1] + b"\x00")
    ledger._blocks.forget(1)
    with pytest.raises(CorruptionError):
        ledger.get_block_summary(1)


def test_point_reads_walk_a_block_once_it_is_read_again(ledger: ChannelLedger, chain: Chain) -> None:
    txs = [chain.tx([(f"k{i}", b"v")]) for i in range(3)]
    chain.commit(ledger, txs)
    store = ledger._blocks
    assert ledger.get_tx(txs[2].tx_id).tx == txs[2]  # first read: a walk to tx 2 only
    assert store._tx_slices[0] is None  # read once: not every tx located yet
    for t in (txs[0], txs[1], txs[2]):  # later reads: every tx located once, then sliced
        rec = ledger.get_tx(t.tx_id)
        assert (rec.tx, rec.block_number) == (t, 0)
    assert len(store._tx_slices[0]) == 3
    store.forget(0)
    assert 0 not in store._tx_slices
    assert ledger.get_history("kv", "k1")[0].tx_id == txs[1].tx_id
