"""Framing: round trips under any chunking, and every kind of bad input is the peer's fault."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto.encoding import encode
from p2p.errors import LocalProtocolError, RemoteProtocolError
from p2p.framing import MAX_FRAME_BYTES, NEED_DATA, FrameDecoder, encode_frame
from p2p.messages import (
    MESSAGE_TYPES,
    Alive,
    AppMessage,
    AppRequest,
    AppResponse,
    BlockBatch,
    BlockPush,
    BlockRequest,
    Goodbye,
    Heights,
    Hello,
    Message,
    Ping,
    Pong,
    PvtInventory,
    PvtPush,
    PvtRequest,
)

SAMPLES: list[Message] = [
    Hello(1, "city", "council-node1", "council", ("ch1", "ch2"), "127.0.0.1:7051", b"n" * 16, 123, b"sig"),
    Ping(7),
    Pong(7),
    Goodbye("bye"),
    AppMessage(3, [1, b"x", {"a": None}]),
    AppRequest(9, 4, {"k": [1, 2]}),
    AppResponse(9, True, b"ok"),
    AppResponse(10, False, "no"),
    Alive("n1", "council", "h:1", ("ch1",), 5, 6, b"cert", b"sig"),
    Heights((("ch1", 10), ("ch2", 0))),
    BlockPush("ch1", 4, b"block"),
    BlockRequest("ch1", 1, 10, 64),
    BlockBatch("ch1", 1, 10, (b"a", b"b")),
    PvtPush("col", (b"blob1", b"blob2")),
    PvtInventory("col", (b"d" * 32,)),
    PvtRequest("col", (b"e" * 32, b"f" * 32)),
]


def _decode_all(data: bytes) -> Iterator[Message]:
    d = FrameDecoder()
    d.receive_data(data)
    yield from d


def test_every_message_type_has_a_sample() -> None:
    assert {type(m) for m in SAMPLES} == set(MESSAGE_TYPES.values())


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(msg: Message) -> None:
    out = list(_decode_all(encode_frame(msg)))
    assert len(out) == 1
    assert encode_frame(out[0]) == encode_frame(msg)
    assert type(out[0]) is type(msg)


@given(st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=40))
def test_any_chunking_gives_the_same_messages(cuts: list[int]) -> None:
    stream = b"".join(encode_frame(m) for m in SAMPLES)
    d = FrameDecoder()
    got: list[Message] = []
    pos = 0
    i = 0
    while pos < len(stream):
        n = cuts[i % len(cuts)]
        i += 1
        d.receive_data(stream[pos : pos + n])
        pos += n
        got.extend(d)
    d.receive_data(b"")
    assert d.next_event() is NEED_DATA and d.at_eof
    assert [encode_frame(m) for m in got] == [encode_frame(m) for m in SAMPLES]


def test_oversize_prefix_is_refused_before_the_payload_arrives() -> None:
    d = FrameDecoder()
    d.receive_data(struct.pack(">I", MAX_FRAME_BYTES + 1))
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        d.next_event()
    with pytest.raises(RemoteProtocolError):  # stays failed
        d.next_event()


def test_smaller_configured_limit() -> None:
    d = FrameDecoder(max_frame_bytes=100)
    d.receive_data(encode_frame(BlockPush("c", 1, b"x" * 200)))
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        d.next_event()


@pytest.mark.parametrize(
    "payload",
    [
        b"\xc1",  # never-used msgpack byte
        encode([1]),  # not [tag, body]
        encode([999, []]),  # unknown tag
        encode([2, ["x"]]),  # ping with a string nonce
        encode([2, [1, 2]]),  # wrong arity
        encode([2, [1]]) + b"\x00",  # trailing byte
        b"\x92\x02\x91\xcc\x01",  # non-shortest integer
        b"\x92\x02\x91\xcb" + b"\x00" * 8,  # a float
        encode([41, ["c", [b"short"]]]),  # digest of the wrong length
    ],
)
def test_malformed_payloads_are_remote_errors(payload: bytes) -> None:
    d = FrameDecoder()
    d.receive_data(struct.pack(">I", len(payload)) + payload)
    with pytest.raises(RemoteProtocolError):
        d.next_event()


def test_empty_frame_and_truncation() -> None:
    d = FrameDecoder()
    d.receive_data(b"\x00\x00\x00\x00")
    with pytest.raises(RemoteProtocolError, match="empty"):
        d.next_event()
    d = FrameDecoder()
    d.receive_data(encode_frame(Ping(1))[:-1])
    assert d.next_event() is NEED_DATA
    d.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="end of stream"):
        d.next_event()
    d = FrameDecoder()
    d.receive_data(b"\x00\x00")
    d.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="prefix"):
        d.next_event()


def test_local_errors() -> None:
    with pytest.raises(LocalProtocolError):
        encode_frame(AppMessage(1, 1.5))
    with pytest.raises(LocalProtocolError, match="MAX_FRAME_BYTES"):
        encode_frame(BlockPush("c", 1, b"x" * (MAX_FRAME_BYTES + 1)))
    d = FrameDecoder()
    d.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        d.receive_data(b"x")


@given(st.binary(max_size=300))
def test_random_bytes_never_crash(data: bytes) -> None:
    d = FrameDecoder(max_frame_bytes=1 << 16)
    if data:
        d.receive_data(data)
    d.receive_data(b"")
    try:
        while True:
            ev = d.next_event()
            if ev is NEED_DATA:
                break
            assert isinstance(ev, Message)
    except RemoteProtocolError:
        pass


@given(st.sampled_from(SAMPLES), st.data())
def test_mutated_frames_never_crash(msg: Message, data: st.DataObject) -> None:
    frame = bytearray(encode_frame(msg))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        i = data.draw(st.integers(0, len(frame) - 1))
        if op == "flip":
            frame[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "insert":
            frame.insert(i, data.draw(st.integers(0, 255)))
        elif len(frame) > 1:
            del frame[i]
    d = FrameDecoder(max_frame_bytes=1 << 16)
    d.receive_data(bytes(frame))
    d.receive_data(b"")
    try:
        for ev in d:
            encode_frame(ev)  # anything accepted is a well-formed message that re-encodes
    except RemoteProtocolError:
        pass
