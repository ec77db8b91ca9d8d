"""Connection state machine and handshake: the transition table, hello checks, and fuzzing."""

from __future__ import annotations

import itertools
from dataclasses import replace
from functools import partial

import pytest
from hypothesis import given
from hypothesis import strategies as st
from p2p_harness import NOW, Pki

from p2p.connection import TRANSITIONS, Connection, ConnectionClosed, Ev, PeerVerified, State
from p2p.errors import HandshakeError, LocalProtocolError, RemoteProtocolError
from p2p.framing import NEED_DATA, encode_frame
from p2p.handshake import HELLO_MAX_SKEW_MS, PeerInfo, make_hello, verify_hello
from p2p.messages import Goodbye, Hello, Message, Ping

NOW_MS = NOW * 1000
PKI = Pki.create(["council", "transport"])
A = PKI.node("council", "council-node1")
B = PKI.node("transport", "transport-node1")
B_OTHER = PKI.node("transport", "transport-node2")


def hello_of(creds, **kw) -> Hello:
    args = dict(
        key=creds.key,
        node_id=creds.name,
        org=creds.org,
        network_id="city",
        channels=("ch1",),
        address="127.0.0.1:1",
        nonce=b"\x01" * 16,
        now_ms=NOW_MS,
    )
    args.update(kw)
    return make_hello(**args)


def verifier(peer=B, **kw):
    return partial(verify_hello, peer=peer.identity, network_id="city", our_channels=("ch1",), now_ms=NOW_MS, **kw)


def open_pair() -> tuple[Connection, Connection]:
    a, b = Connection(verifier(B)), Connection(verifier(A))
    b.receive_data(a.send(hello_of(A)))
    a.receive_data(b.send(hello_of(B)))
    assert isinstance(a.next_event(), PeerVerified)
    assert isinstance(b.next_event(), PeerVerified)
    assert a.is_open and b.is_open
    return a, b


def test_handshake_opens_both_orders() -> None:
    a, b = open_pair()
    assert a.peer is not None and a.peer.node_id == B.name and a.peer.org == "transport"
    b.receive_data(a.send(Ping(5)))
    assert b.next_event() == Ping(5)
    assert b.next_event() is NEED_DATA
    # receiving first, sending second also opens
    c = Connection(verifier(A))
    c.receive_data(encode_frame(hello_of(A)))
    assert isinstance(c.next_event(), PeerVerified)
    assert c.state is State.HELLO_RECEIVED
    c.send(hello_of(B))
    assert c.is_open


def test_transition_table_is_closed() -> None:
    """Every (state, event) pair outside the table is refused."""
    for st_, ev in itertools.product(State, Ev):
        if (st_, ev) in TRANSITIONS:
            continue
        conn = Connection(verifier(B))
        conn.state = st_
        if ev in (Ev.SEND_HELLO, Ev.SEND_MSG, Ev.SEND_GOODBYE):
            msg: Message = {Ev.SEND_HELLO: hello_of(A), Ev.SEND_MSG: Ping(1), Ev.SEND_GOODBYE: Goodbye("x")}[ev]
            with pytest.raises(LocalProtocolError):
                conn.send(msg)


def test_message_before_hello_is_a_remote_error() -> None:
    conn = Connection(verifier(B))
    conn.send(hello_of(A))
    conn.receive_data(encode_frame(Ping(1)))
    with pytest.raises(RemoteProtocolError, match="recv-msg in state hello-sent"):
        conn.next_event()
    assert conn.state is State.CLOSED


def test_second_hello_is_a_remote_error() -> None:
    a, _b = open_pair()
    a.receive_data(encode_frame(hello_of(B)))
    with pytest.raises(RemoteProtocolError):
        a.next_event()


def test_local_misuse() -> None:
    conn = Connection(verifier(B))
    with pytest.raises(LocalProtocolError):
        conn.send(Ping(1))  # before the handshake
    conn.send(hello_of(A))
    with pytest.raises(LocalProtocolError):
        conn.send(hello_of(A))


def test_goodbye_and_eof_close() -> None:
    a, b = open_pair()
    b.receive_data(a.send(Goodbye("done")))
    ev = b.next_event()
    assert isinstance(ev, ConnectionClosed) and "done" in ev.reason
    assert b.state is State.CLOSED
    _a2, b2 = open_pair()
    b2.receive_data(b"")
    assert isinstance(b2.next_event(), ConnectionClosed)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda: hello_of(B, network_id="other"), "network"),
        (lambda: hello_of(B, node_id="transport-node9"), "CN"),
        (lambda: hello_of(B, org="council"), "org"),
        (lambda: hello_of(B, now_ms=NOW_MS - HELLO_MAX_SKEW_MS - 1), "timestamp"),
        (lambda: hello_of(B, nonce=b"short"), "nonce"),
        (lambda: replace(hello_of(B), version=2), "version"),
        (lambda: replace(hello_of(B), channels=("ch1", "ch2")), "signature"),  # tampered after signing
        (lambda: hello_of(B_OTHER, node_id=B.name), "signature"),  # signed with another node's key
    ],
)
def test_bad_hellos_are_refused(mutate, match) -> None:
    conn = Connection(verifier(B))
    conn.send(hello_of(A))
    conn.receive_data(encode_frame(mutate()))
    with pytest.raises(HandshakeError, match=match):
        conn.next_event()
    assert conn.state is State.CLOSED


def test_dialled_identity_must_match() -> None:
    with pytest.raises(HandshakeError, match="dialled"):
        verify_hello(
            hello_of(B),
            peer=B.identity,
            network_id="city",
            our_channels=(),
            now_ms=NOW_MS,
            expected_node_id="someone-else",
        )


def test_shared_channels_only() -> None:
    info = verify_hello(
        hello_of(B, channels=("ch1", "ch9")), peer=B.identity, network_id="city", our_channels=("ch1",), now_ms=NOW_MS
    )
    assert isinstance(info, PeerInfo) and info.channels == ("ch1",)


VALID_HELLO = encode_frame(hello_of(B))
PING = encode_frame(Ping(3))


@given(st.binary(max_size=400))
def test_fuzz_random_bytes_into_handshake(data: bytes) -> None:
    _feed_never_crashes(data)


@given(st.data())
def test_fuzz_mutated_handshake(data: st.DataObject) -> None:
    frame = bytearray(VALID_HELLO + PING)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(frame) - 1))
        op = data.draw(st.sampled_from(["flip", "set", "truncate"]))
        if op == "flip":
            frame[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "set":
            frame[i] = data.draw(st.integers(0, 255))
        else:
            del frame[i:]
            break
    _feed_never_crashes(bytes(frame))


def _feed_never_crashes(data: bytes) -> None:
    conn = Connection(verifier(B), max_frame_bytes=1 << 16)
    conn.send(hello_of(A))
    if data:
        conn.receive_data(data)
    conn.receive_data(b"")
    try:
        while True:
            ev = conn.next_event()
            if ev is NEED_DATA or isinstance(ev, ConnectionClosed):
                break
            if isinstance(ev, PeerVerified):
                assert ev.info.node_id == B.name  # only the genuine hello can verify
    except RemoteProtocolError:
        assert conn.state is State.CLOSED


STEPS = st.lists(st.sampled_from(list(Ev)), max_size=8)


@given(STEPS)
def test_any_event_sequence_follows_the_table(steps: list[Ev]) -> None:
    """Drive (state x event) pairs: an event in the table moves to its state, any other one fails
    with the right party's error, and a closed connection stays closed."""
    conn = Connection(verifier(B))
    peer_hello = encode_frame(hello_of(B))
    for ev in steps:
        before = conn.state
        expected = TRANSITIONS.get((before, ev))
        try:
            if ev is Ev.SEND_HELLO:
                conn.send(hello_of(A))
            elif ev is Ev.SEND_MSG:
                conn.send(Ping(1))
            elif ev is Ev.SEND_GOODBYE:
                conn.send(Goodbye("x"))
            else:
                frame = {
                    Ev.RECV_HELLO: peer_hello,
                    Ev.RECV_MSG: encode_frame(Ping(2)),
                    Ev.RECV_GOODBYE: encode_frame(Goodbye("y")),
                }
                if before is State.CLOSED:
                    assert isinstance(conn.next_event(), ConnectionClosed)
                    continue
                conn.receive_data(frame[ev] if ev is not Ev.RECV_EOF else b"")
                ev_out = conn.next_event()
                assert not isinstance(ev_out, type(NEED_DATA))
        except LocalProtocolError:
            assert expected is None and ev.value.startswith("send")
            assert conn.state is before
            continue
        except RemoteProtocolError:
            assert expected is None and ev.value.startswith("recv")
            assert conn.state is State.CLOSED
            return  # the transport closes the socket here
        assert expected is not None, f"{ev} accepted in {before}"
        assert conn.state is expected
