"""Wire form of Raft messages: round trip through canonical msgpack; bad input → WireError."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consensus.raft import ConfChange, ConfChangeType, ConfState, Entry, EntryKind, Message, MsgType, Snapshot
from consensus.raft.types import WireError
from crypto.encoding import EncodingError, decode, encode

ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)
u63 = st.integers(min_value=0, max_value=2**63 - 1)
entries = st.builds(Entry, u63, u63, st.sampled_from(EntryKind), st.binary(max_size=64))
snapshots = st.builds(
    Snapshot, u63, u63, st.builds(ConfState, st.tuples(ids, ids), st.tuples(ids)), st.binary(max_size=32)
)
messages = st.builds(
    Message,
    st.sampled_from(MsgType),
    ids,
    ids,
    u63,
    u63,
    u63,
    st.lists(entries, max_size=4).map(tuple),
    u63,
    st.booleans(),
    u63,
    st.none() | snapshots,
    st.booleans(),
)


@given(messages)
def test_message_round_trip(m: Message) -> None:
    wire = encode(m.to_wire())
    assert Message.from_wire(decode(wire)) == m


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-5, 5) | st.binary(max_size=4) | st.text(max_size=4),
        lambda c: st.lists(c, max_size=13).map(tuple),
        max_leaves=30,
    )
)
def test_garbage_never_crashes(obj: object) -> None:
    try:
        Message.from_wire(obj)
    except WireError:
        pass


@pytest.mark.parametrize(
    "mutate",
    [
        lambda w: (99, *w[1:]),  # unknown type tag
        lambda w: (w[0], "", *w[2:]),  # empty src
        lambda w: (*w[:3], -1, *w[4:]),  # negative term
        lambda w: (*w[:3], True, *w[4:]),  # bool is not an int here
        lambda w: w[:11],  # short
        lambda w: (*w[:6], ((1, 2, 7, b""),), *w[7:]),  # bad entry kind
    ],
)
def test_malformed_messages_are_rejected(mutate: object) -> None:
    w = Message(MsgType.APP, "a", "b", term=3, entries=(Entry(3, 4, EntryKind.NORMAL, b"x"),)).to_wire()
    with pytest.raises(WireError):
        Message.from_wire(mutate(w))  # type: ignore[operator]


def test_conf_change_payload() -> None:
    cc = ConfChange(ConfChangeType.PROMOTE, "transport-node2")
    assert ConfChange.decode(cc.encode()) == cc
    with pytest.raises(WireError):
        ConfChange.decode(b"\xc1")
    with pytest.raises(WireError):
        ConfChange.decode(encode((9, "x")))
    assert issubclass(WireError, ValueError) and not issubclass(EncodingError, WireError)
