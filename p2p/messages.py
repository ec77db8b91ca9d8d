"""Wire messages of the P2P layer: frozen, slotted dataclasses with stable integer tags.

A message travels as the canonical encoding (:mod:`crypto.encoding`) of ``[tag, body]`` where
``body`` is the array :meth:`to_obj` returns. Tags are part of the protocol: never reuse or
renumber one; add new messages with new tags. :func:`message_from_obj` is strict: a wrong shape,
a wrong type, an unknown tag or an over-long array raises :class:`RemoteProtocolError`, because
the only source of undecodable messages is a misbehaving peer.

Other layers (Raft, endorsement) ride on :class:`AppMessage` / :class:`AppRequest` /
:class:`AppResponse`: an integer ``kind`` they own and a ``payload`` that is any canonical value,
so this package never imports theirs.

Tag ranges: 1-9 connection control, 10-19 application carriage, 20-29 membership,
30-39 blocks, 40-49 private data.

This module does no I/O and keeps no state beyond the tag registry built at import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from p2p.errors import RemoteProtocolError

__all__ = [
    "MAX_ARRAY_ITEMS",
    "MAX_CHANNELS",
    "MESSAGE_TYPES",
    "Alive",
    "AppMessage",
    "AppRequest",
    "AppResponse",
    "BlockBatch",
    "BlockPush",
    "BlockRequest",
    "Goodbye",
    "Heights",
    "Hello",
    "Message",
    "Ping",
    "Pong",
    "PvtInventory",
    "PvtPush",
    "PvtRequest",
    "message_from_obj",
    "message_to_obj",
]

# Longest array of items (digests, blocks, blobs) any message may carry. The frame limit bounds
# bytes; this bounds the per-item work a single message can cause (4096 digests = 128 KiB).
MAX_ARRAY_ITEMS = 4096
# Channels a node may announce. A city network has a handful; the bound keeps hellos small.
MAX_CHANNELS = 64
# Longest identifier (node id, org, channel, address, reason) accepted from the wire.
MAX_NAME_CHARS = 256
_U64 = 2**64 - 1

M = TypeVar("M", bound="Message")

MESSAGE_TYPES: dict[int, type[Message]] = {}


def _register(cls: type[M]) -> type[M]:
    assert cls.TAG not in MESSAGE_TYPES, f"duplicate message tag {cls.TAG}"
    MESSAGE_TYPES[cls.TAG] = cls
    return cls


class Message:
    """Base of every wire message. Subclasses set ``TAG`` and implement the two conversions."""

    __slots__ = ()
    TAG: ClassVar[int] = 0

    def to_obj(self) -> list[Any]:
        raise NotImplementedError

    @classmethod
    def from_obj(cls: type[M], obj: Any) -> M:
        raise NotImplementedError


# --- strict field readers: every failure is the peer's fault ---------------------------------


def _fail(what: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"malformed message: {what}")


def _arr(obj: Any, n: int, what: str) -> tuple[Any, ...]:
    if type(obj) is not tuple or len(obj) != n:
        raise _fail(f"{what}: expected an array of {n}")
    return obj


def _u64(v: Any, what: str) -> int:
    if type(v) is not int or not 0 <= v <= _U64:
        raise _fail(f"{what}: expected an unsigned integer")
    return v


def _bytes(v: Any, what: str, max_len: int | None = None) -> bytes:
    if type(v) is not bytes or (max_len is not None and len(v) > max_len):
        raise _fail(f"{what}: expected bytes")
    return v


def _name(v: Any, what: str) -> str:
    if type(v) is not str or len(v) > MAX_NAME_CHARS:
        raise _fail(f"{what}: expected a string of at most {MAX_NAME_CHARS} characters")
    return v


def _bool(v: Any, what: str) -> bool:
    if type(v) is not bool:
        raise _fail(f"{what}: expected a boolean")
    return v


def _list(v: Any, what: str, max_items: int = MAX_ARRAY_ITEMS) -> tuple[Any, ...]:
    if type(v) is not tuple or len(v) > max_items:
        raise _fail(f"{what}: expected an array of at most {max_items} items")
    return v


def _names(v: Any, what: str, max_items: int = MAX_CHANNELS) -> tuple[str, ...]:
    return tuple(_name(x, what) for x in _list(v, what, max_items))


def _digests(v: Any, what: str) -> tuple[bytes, ...]:
    out = tuple(_bytes(x, what) for x in _list(v, what))
    if any(len(d) != 32 for d in out):
        raise _fail(f"{what}: expected 32-byte digests")
    return out


# --- connection control ----------------------------------------------------------------------


@_register
@dataclass(frozen=True, slots=True)
class Hello(Message):
    """The first message each side sends after TLS. Signed with the node key (Tag.HANDSHAKE)."""

    TAG: ClassVar[int] = 1
    version: int
    network_id: str
    node_id: str
    org: str
    channels: tuple[str, ...]
    address: str  # host:port where this node accepts connections ("" if it does not listen)
    nonce: bytes  # random, so two hellos never sign the same bytes
    timestamp_ms: int  # sender's clock; bounds how long a captured hello stays usable
    signature: bytes = b""

    def signed_obj(self) -> list[Any]:
        return [
            self.version,
            self.network_id,
            self.node_id,
            self.org,
            list(self.channels),
            self.address,
            self.nonce,
            self.timestamp_ms,
        ]

    def to_obj(self) -> list[Any]:
        return [*self.signed_obj(), self.signature]

    @classmethod
    def from_obj(cls, obj: Any) -> Hello:
        v, net, nid, org, ch, addr, nonce, ts, sig = _arr(obj, 9, "hello")
        return cls(
            _u64(v, "version"),
            _name(net, "network id"),
            _name(nid, "node id"),
            _name(org, "org"),
            _names(ch, "channels"),
            _name(addr, "address"),
            _bytes(nonce, "nonce", 64),
            _u64(ts, "timestamp"),
            _bytes(sig, "signature", 256),
        )


@_register
@dataclass(frozen=True, slots=True)
class Ping(Message):
    TAG: ClassVar[int] = 2
    nonce: int

    def to_obj(self) -> list[Any]:
        return [self.nonce]

    @classmethod
    def from_obj(cls, obj: Any) -> Ping:
        (n,) = _arr(obj, 1, "ping")
        return cls(_u64(n, "nonce"))


@_register
@dataclass(frozen=True, slots=True)
class Pong(Message):
    TAG: ClassVar[int] = 3
    nonce: int

    def to_obj(self) -> list[Any]:
        return [self.nonce]

    @classmethod
    def from_obj(cls, obj: Any) -> Pong:
        (n,) = _arr(obj, 1, "pong")
        return cls(_u64(n, "nonce"))


@_register
@dataclass(frozen=True, slots=True)
class Goodbye(Message):
    """An orderly close, with the reason shown in the peer's log."""

    TAG: ClassVar[int] = 4
    reason: str

    def to_obj(self) -> list[Any]:
        return [self.reason]

    @classmethod
    def from_obj(cls, obj: Any) -> Goodbye:
        (r,) = _arr(obj, 1, "goodbye")
        return cls(_name(r, "reason"))


# --- application carriage --------------------------------------------------------------------


@_register
@dataclass(frozen=True, slots=True)
class AppMessage(Message):
    """A one-way message of another layer: ``kind`` is theirs, ``payload`` any canonical value."""

    TAG: ClassVar[int] = 10
    kind: int
    payload: Any

    def to_obj(self) -> list[Any]:
        return [self.kind, self.payload]

    @classmethod
    def from_obj(cls, obj: Any) -> AppMessage:
        k, p = _arr(obj, 2, "app message")
        return cls(_u64(k, "kind"), p)


@_register
@dataclass(frozen=True, slots=True)
class AppRequest(Message):
    """A request expecting exactly one :class:`AppResponse` with the same ``request_id``."""

    TAG: ClassVar[int] = 11
    request_id: int
    kind: int
    payload: Any

    def to_obj(self) -> list[Any]:
        return [self.request_id, self.kind, self.payload]

    @classmethod
    def from_obj(cls, obj: Any) -> AppRequest:
        r, k, p = _arr(obj, 3, "app request")
        return cls(_u64(r, "request id"), _u64(k, "kind"), p)


@_register
@dataclass(frozen=True, slots=True)
class AppResponse(Message):
    """The answer to a request: ``payload`` on success, an error string when ``ok`` is false."""

    TAG: ClassVar[int] = 12
    request_id: int
    ok: bool
    payload: Any

    def to_obj(self) -> list[Any]:
        return [self.request_id, self.ok, self.payload]

    @classmethod
    def from_obj(cls, obj: Any) -> AppResponse:
        r, ok, p = _arr(obj, 3, "app response")
        return cls(_u64(r, "request id"), _bool(ok, "ok"), p)


# --- membership ------------------------------------------------------------------------------


@_register
@dataclass(frozen=True, slots=True)
class Alive(Message):
    """A node's signed statement that it is alive (Tag.GOSSIP_ALIVE), relayed epidemically.

    ``(incarnation, seq)`` orders a node's statements: incarnation changes on restart (it is the
    start time), seq counts within one incarnation. ``cert`` lets any receiver check the
    signature and the claims against the MSP without having met the node.
    """

    TAG: ClassVar[int] = 20
    node_id: str
    org: str
    address: str
    channels: tuple[str, ...]
    incarnation: int
    seq: int
    cert: bytes  # DER X.509 node certificate
    signature: bytes = b""

    def signed_obj(self) -> list[Any]:
        return [self.node_id, self.org, self.address, list(self.channels), self.incarnation, self.seq, self.cert]

    def to_obj(self) -> list[Any]:
        return [*self.signed_obj(), self.signature]

    @classmethod
    def from_obj(cls, obj: Any) -> Alive:
        nid, org, addr, ch, inc, seq, cert, sig = _arr(obj, 8, "alive")
        return cls(
            _name(nid, "node id"),
            _name(org, "org"),
            _name(addr, "address"),
            _names(ch, "channels"),
            _u64(inc, "incarnation"),
            _u64(seq, "seq"),
            _bytes(cert, "cert", 16384),
            _bytes(sig, "signature", 256),
        )


# --- blocks ----------------------------------------------------------------------------------


@_register
@dataclass(frozen=True, slots=True)
class Heights(Message):
    """Anti-entropy state info: the sender's ledger height on each channel it serves."""

    TAG: ClassVar[int] = 30
    heights: tuple[tuple[str, int], ...]

    def to_obj(self) -> list[Any]:
        return [[[c, h] for c, h in self.heights]]

    @classmethod
    def from_obj(cls, obj: Any) -> Heights:
        (hs,) = _arr(obj, 1, "heights")
        out = []
        for item in _list(hs, "heights", MAX_CHANNELS):
            c, h = _arr(item, 2, "height")
            out.append((_name(c, "channel"), _u64(h, "height")))
        return cls(tuple(out))


@_register
@dataclass(frozen=True, slots=True)
class BlockPush(Message):
    """A newly ordered block, pushed to a fan-out of peers. ``data`` is its canonical encoding."""

    TAG: ClassVar[int] = 31
    channel: str
    number: int
    data: bytes

    def to_obj(self) -> list[Any]:
        return [self.channel, self.number, self.data]

    @classmethod
    def from_obj(cls, obj: Any) -> BlockPush:
        c, n, d = _arr(obj, 3, "block push")
        return cls(_name(c, "channel"), _u64(n, "number"), _bytes(d, "block"))


@_register
@dataclass(frozen=True, slots=True)
class BlockRequest(Message):
    """State transfer: ask for blocks ``[start, start + count)`` of ``channel``."""

    TAG: ClassVar[int] = 32
    channel: str
    request_id: int
    start: int
    count: int

    def to_obj(self) -> list[Any]:
        return [self.channel, self.request_id, self.start, self.count]

    @classmethod
    def from_obj(cls, obj: Any) -> BlockRequest:
        c, r, s, n = _arr(obj, 4, "block request")
        return cls(_name(c, "channel"), _u64(r, "request id"), _u64(s, "start"), _u64(n, "count"))


@_register
@dataclass(frozen=True, slots=True)
class BlockBatch(Message):
    """The answer to a :class:`BlockRequest`: consecutive blocks from ``start`` (maybe fewer)."""

    TAG: ClassVar[int] = 33
    channel: str
    request_id: int
    start: int
    blocks: tuple[bytes, ...]

    def to_obj(self) -> list[Any]:
        return [self.channel, self.request_id, self.start, list(self.blocks)]

    @classmethod
    def from_obj(cls, obj: Any) -> BlockBatch:
        c, r, s, bs = _arr(obj, 4, "block batch")
        blocks = tuple(_bytes(b, "block") for b in _list(bs, "blocks"))
        return cls(_name(c, "channel"), _u64(r, "request id"), _u64(s, "start"), blocks)


# --- private data ----------------------------------------------------------------------------


@_register
@dataclass(frozen=True, slots=True)
class PvtPush(Message):
    """Private blobs of one collection, pushed to authorised peers or sent in answer to a pull."""

    TAG: ClassVar[int] = 40
    collection: str
    blobs: tuple[bytes, ...]

    def to_obj(self) -> list[Any]:
        return [self.collection, list(self.blobs)]

    @classmethod
    def from_obj(cls, obj: Any) -> PvtPush:
        c, bs = _arr(obj, 2, "private push")
        return cls(_name(c, "collection"), tuple(_bytes(b, "blob") for b in _list(bs, "blobs")))


@_register
@dataclass(frozen=True, slots=True)
class PvtInventory(Message):
    """Reconciliation: the digests of one collection's blobs the sender holds."""

    TAG: ClassVar[int] = 41
    collection: str
    digests: tuple[bytes, ...]

    def to_obj(self) -> list[Any]:
        return [self.collection, list(self.digests)]

    @classmethod
    def from_obj(cls, obj: Any) -> PvtInventory:
        c, ds = _arr(obj, 2, "private inventory")
        return cls(_name(c, "collection"), _digests(ds, "digests"))


@_register
@dataclass(frozen=True, slots=True)
class PvtRequest(Message):
    """Reconciliation: ask for the blobs with these digests."""

    TAG: ClassVar[int] = 42
    collection: str
    digests: tuple[bytes, ...]

    def to_obj(self) -> list[Any]:
        return [self.collection, list(self.digests)]

    @classmethod
    def from_obj(cls, obj: Any) -> PvtRequest:
        c, ds = _arr(obj, 2, "private request")
        return cls(_name(c, "collection"), _digests(ds, "digests"))


def message_to_obj(msg: Message) -> list[Any]:
    """``[tag, body]``: the value whose canonical encoding is the frame payload."""
    return [msg.TAG, msg.to_obj()]


def message_from_obj(obj: Any) -> Message:
    """Parse ``[tag, body]`` strictly; anything else is the peer's fault."""
    if type(obj) is not tuple or len(obj) != 2 or type(obj[0]) is not int:
        raise _fail("expected [tag, body]")
    cls = MESSAGE_TYPES.get(obj[0])
    if cls is None:
        raise _fail(f"unknown message tag {obj[0]}")
    return cls.from_obj(obj[1])
