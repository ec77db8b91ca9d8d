"""Admission checks: inspect_tx admits exactly what Transaction.decode accepts; creator checks."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from consensus.orderer.errors import InvalidTransaction
from consensus.orderer.txcheck import (
    DATA,
    LEAF_HASH,
    TX_ID,
    CreatorChecker,
    inspect_many,
    inspect_tx,
    proposal_slice,
)
from crypto.batch import BatchVerifier
from crypto.encoding import EncodingError
from crypto.hashing import Tag, digest_bytes
from crypto.merkle import leaf_hash
from crypto.signing import CURVE_ORDER
from storage.model import KVRead, ReadWriteSet, Transaction

from .conftest import CHANNEL, NOW_S, Network, TxFactory

MAX = 1 << 20


def test_ids_and_hash_match_model(make_tx: TxFactory) -> None:
    tx = make_tx(1)
    data = tx.encode()
    info = inspect_tx(data, CHANNEL, MAX)
    assert info[TX_ID] == tx.tx_id
    assert info[LEAF_HASH] == leaf_hash(tx.hash())  # RFC 6962 leaf of the tx hash
    assert info[DATA] is data
    prop, creator, sig = proposal_slice(data)
    assert digest_bytes(Tag.PROPOSAL, prop) == tx.proposal.hash()
    assert creator == tx.proposal.header.creator and sig == tx.signature


def test_proposal_slice_of_a_transaction_with_calls(make_tx: TxFactory) -> None:
    plain = make_tx(1)
    tx = dataclasses.replace(plain, extra_rwsets=(ReadWriteSet("_config", (KVRead("definition/registry", (1, 0)),)),))
    data = tx.encode()
    assert inspect_tx(data, CHANNEL, MAX)[TX_ID] == tx.tx_id
    prop, creator, sig = proposal_slice(data)
    assert digest_bytes(Tag.PROPOSAL, prop) == tx.proposal.hash()
    assert creator == tx.proposal.header.creator and sig == tx.signature


def test_wrong_channel_and_size(make_tx: TxFactory) -> None:
    data = make_tx(1, channel="other").encode()
    with pytest.raises(InvalidTransaction) as ei:
        inspect_tx(data, CHANNEL, MAX)
    assert ei.value.reason == "wrong_channel"
    with pytest.raises(InvalidTransaction) as ei:
        inspect_tx(make_tx(2).encode(), CHANNEL, 100)
    assert ei.value.reason == "too_large"


def _raw_tx(args: list[Any]) -> bytes:
    """A transaction array packed by plain msgpack (may be non-canonical)."""
    obj = [[[CHANNEL, b"c", b"n", 1], "ct", "fn", args], b"s", [200, "", b"", []], ["ns", [], [], []], []]
    return msgpack.packb(obj, use_bin_type=True)


@pytest.mark.parametrize(
    "data",
    [
        _raw_tx([1.5]),  # float
        _raw_tx([{"b": 1, "a": 2}]),  # unsorted map keys
        _raw_tx([{1: 2}]),  # non-str key
        _raw_tx([]) + b"\x00",  # trailing byte
        b"\x95" + _raw_tx([])[1:-1],  # truncated
        _raw_tx([])[:-1] + b"\xd0\x00",  # endorsements as int8 instead of an array
        b"\x94" + _raw_tx([])[1:],  # wrong arity
        msgpack.ExtType(1, b"x").data,
        b"",
        b"\xc1",
    ],
)
def test_malformed_rejected(data: bytes) -> None:
    with pytest.raises(InvalidTransaction) as ei:
        inspect_tx(data, CHANNEL, MAX)
    assert ei.value.reason == "malformed"


def test_non_shortest_int_rejected() -> None:
    good = _raw_tx([5])
    bad = good.replace(b"\x91\x05", b"\x91\xcc\x05")  # args [5] with 5 as uint8
    assert bad != good
    with pytest.raises(InvalidTransaction):
        inspect_tx(bad, CHANNEL, MAX)
    assert inspect_tx(good, CHANNEL, MAX)[TX_ID]


def test_deep_arguments_rejected() -> None:
    deep: Any = 1
    for _ in range(30):
        deep = [deep]
    with pytest.raises(InvalidTransaction):
        inspect_tx(_raw_tx([deep]), CHANNEL, MAX)


_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.binary(max_size=8), st.text(max_size=4)
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=8,
)


@given(st.lists(_values, max_size=4), st.data())
def test_agrees_with_transaction_decode(args: list[Any], data: st.DataObject) -> None:
    raw = _raw_tx(args)
    # Mutate some encodings: flip one byte, or drop a suffix.
    if data.draw(st.booleans()):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw = raw[:pos] + bytes([data.draw(st.integers(0, 255))]) + raw[pos + 1 :]
    try:
        expected = Transaction.decode(raw)
        ok = expected.channel == CHANNEL
    except EncodingError:
        ok = False
    try:
        info = inspect_tx(raw, CHANNEL, MAX)
    except InvalidTransaction:
        assert not ok
    else:
        assert ok
        assert info[TX_ID] == expected.tx_id and info[LEAF_HASH] == leaf_hash(expected.hash())


def test_creator_checker(network: Network, make_tx: TxFactory) -> None:
    good = inspect_tx(make_tx(1).encode(), CHANNEL, MAX)
    unsigned = inspect_tx(make_tx(2, sign=False).encode(), CHANNEL, MAX)
    # The same valid signature with s replaced by n - s (high S): mathematically valid, refused.
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

    tx3 = make_tx(3)
    r, s = decode_dss_signature(tx3.signature)
    high = Transaction(tx3.proposal, encode_dss_signature(r, CURVE_ORDER - s), tx3.response, tx3.rwset, ())
    high_s = inspect_tx(high.encode(), CHANNEL, MAX)
    # A creator that is not a member (a self-made certificate is not signed by the org CA).
    from crypto.msp import CertificateAuthority, Role

    rogue_ca = CertificateAuthority.create("council", now=NOW_S - 86400)
    _, rogue_pem = rogue_ca.issue("mallory", Role.CLIENT, now=NOW_S - 3600)
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    rogue_der = x509.load_pem_x509_certificate(rogue_pem).public_bytes(serialization.Encoding.DER)
    t4 = make_tx(4)
    from storage.model import Proposal, ProposalHeader

    h = t4.proposal.header
    p4 = Proposal(ProposalHeader(h.channel, rogue_der, h.nonce, h.timestamp_ms), "registry", "put", t4.proposal.args)
    rogue = inspect_tx(Transaction(p4, t4.signature, t4.response, t4.rwset, ()).encode(), CHANNEL, MAX)

    with BatchVerifier(workers=1, inline_max=1000) as verifier:
        checker = CreatorChecker(lambda: network.msp, verifier)
        res = checker.check([good, unsigned, high_s, rogue], NOW_S)
        assert res[0] is None
        assert res[1] is not None and res[1].reason == "bad_signature"
        assert res[2] is not None and res[2].reason == "bad_signature"
        assert res[3] is not None and res[3].reason == "bad_creator"
        # Membership is checked at the injected time: after the certificate expired, refused.
        late = checker.check([good], NOW_S + 900 * 86400)
        assert late[0] is not None and late[0].reason == "bad_creator"


def test_inspect_many_returns_columns_with_refusals_in_place(make_tx: TxFactory) -> None:
    good = [make_tx(i).encode() for i in range(3)]
    datas = [good[0], b"\x00junk", good[1], make_tx(9, channel="other").encode(), good[2]]
    ids, leaves, refused = inspect_many(datas, CHANNEL, MAX)
    assert [r[:2] for r in refused] == [(1, "malformed"), (3, "wrong_channel")]
    for i, data in enumerate(datas):
        if i in (1, 3):
            assert ids[i] == leaves[i] == b""
        else:
            info = inspect_tx(data, CHANNEL, MAX)
            assert (ids[i], leaves[i]) == info[:2]
    # A plain tuple: the garbage collector stops tracking it (a tuple subclass would stay tracked).
    assert type(inspect_tx(good[0], CHANNEL, MAX)) is tuple


def _tx_with_collections(colls: Any) -> bytes:
    obj = [[[CHANNEL, b"c", b"n", 1], "ct", "fn", []], b"s", [200, "", b"", []], ["ns", [], [], [], colls], []]
    return msgpack.packb(obj, use_bin_type=True)


H = b"\x01" * 32


def test_hashed_collections_admitted_as_transaction_decode_does() -> None:
    good = _tx_with_collections([["pair", [[H, [1, 0]], [H, None]], [[H, H], [H, None]]]])
    assert inspect_tx(good, CHANNEL, MAX)[TX_ID]
    assert Transaction.decode(good).rwset.collections[0].collection == "pair"
    for bad in (
        [],  # an empty collections field is never encoded
        [["pair", [[b"short", None]], []]],
        [["pair", [], [[H, b"short"]]]],
        [["pair", [[H, [1]]], []]],
        [[1, [], []]],
    ):
        data = _tx_with_collections(bad)
        with pytest.raises(InvalidTransaction):
            inspect_tx(data, CHANNEL, MAX)
        with pytest.raises(EncodingError):
            Transaction.decode(data)
