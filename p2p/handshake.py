"""The application handshake that follows TLS (sans-I/O).

Each side's first message is a :class:`~p2p.messages.Hello`: protocol version, network id, node
id, org, channels, advertised address, a random nonce and the sender's clock, signed with the
node key over ``digest(Tag.HANDSHAKE, hello.signed_obj())``.

TLS (mutual, TLS 1.3) has already proven that the peer holds the private key of the certificate it
presented, and the transport has validated that certificate against the MSP (node role, org CA
known, not revoked). :func:`verify_hello` then binds the hello to that certificate: the signature
must verify under the certificate's key, the node id must equal the certificate's CN and the org
its O. A hello signed by one node can therefore not be replayed over another node's TLS session,
and a stale one is refused by the clock-skew bound.

This module never touches sockets or the clock: time and nonces are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Protocol

from crypto.hashing import Tag, digest
from crypto.signing import PrivateKey, PublicKey, sign, verify
from p2p.errors import HandshakeError, UnexpectedPeer
from p2p.messages import Hello

__all__ = [
    "HELLO_MAX_SKEW_MS",
    "NONCE_BYTES",
    "PROTOCOL_VERSION",
    "PeerIdentity",
    "PeerInfo",
    "hello_digest",
    "make_hello",
    "verify_hello",
]

PROTOCOL_VERSION: Final = 1
# How far a hello's timestamp may be from our clock. Nodes run NTP; five minutes tolerates a bad
# clock while keeping a captured hello from being useful for long.
HELLO_MAX_SKEW_MS: Final = 5 * 60 * 1000
NONCE_BYTES: Final = 16


class PeerIdentity(Protocol):
    """What the handshake needs of an MSP-validated identity (``crypto.msp.Identity``)."""

    @property
    def name(self) -> str: ...

    @property
    def org(self) -> str: ...

    @property
    def public_key(self) -> PublicKey: ...


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """A peer whose TLS certificate and hello have both checked out."""

    node_id: str
    org: str
    channels: tuple[str, ...]  # the channels both sides serve
    address: str
    identity: Any  # the crypto.msp.Identity of its certificate


def hello_digest(hello: Hello) -> bytes:
    return digest(Tag.HANDSHAKE, hello.signed_obj())


def make_hello(
    *,
    key: PrivateKey,
    node_id: str,
    org: str,
    network_id: str,
    channels: tuple[str, ...],
    address: str,
    nonce: bytes,
    now_ms: int,
) -> Hello:
    """Our signed hello."""
    unsigned = Hello(PROTOCOL_VERSION, network_id, node_id, org, tuple(channels), address, nonce, now_ms)
    sig = sign(key, hello_digest(unsigned))
    return Hello(PROTOCOL_VERSION, network_id, node_id, org, tuple(channels), address, nonce, now_ms, sig)


def verify_hello(
    hello: Hello,
    *,
    peer: PeerIdentity,
    network_id: str,
    our_channels: tuple[str, ...],
    now_ms: int,
    expected_node_id: str | None = None,
) -> PeerInfo:
    """Check the peer's hello against its validated TLS identity; :class:`HandshakeError` if not."""
    if hello.version != PROTOCOL_VERSION:
        raise HandshakeError(f"protocol version {hello.version} is not {PROTOCOL_VERSION}")
    if hello.network_id != network_id:
        raise HandshakeError(f"peer is on network {hello.network_id!r}, we are on {network_id!r}")
    if hello.node_id != peer.name:
        raise HandshakeError(f"hello node id {hello.node_id!r} does not match certificate CN {peer.name!r}")
    if hello.org != peer.org:
        raise HandshakeError(f"hello org {hello.org!r} does not match certificate O {peer.org!r}")
    if expected_node_id is not None and hello.node_id != expected_node_id:
        raise UnexpectedPeer(f"dialled {expected_node_id!r} but reached {hello.node_id!r}")
    if abs(hello.timestamp_ms - now_ms) > HELLO_MAX_SKEW_MS:
        raise HandshakeError(f"hello timestamp is {hello.timestamp_ms - now_ms} ms from our clock")
    if len(hello.nonce) != NONCE_BYTES:
        raise HandshakeError(f"hello nonce must be {NONCE_BYTES} bytes")
    if not verify(peer.public_key, hello.signature, hello_digest(hello)):
        raise HandshakeError(f"hello signature of {hello.node_id!r} does not verify under its certificate")
    shared = tuple(c for c in hello.channels if c in our_channels)
    return PeerInfo(hello.node_id, hello.org, shared, hello.address, peer)
