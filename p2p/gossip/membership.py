"""Gossip membership: signed alive messages, expiry and purging of dead members (sans-I/O).

Each node periodically signs an :class:`~p2p.messages.Alive` (Tag.GOSSIP_ALIVE) carrying its
certificate, address, channels, its *incarnation* (chosen at start-up, larger after a restart)
and a *sequence number* counting up within the incarnation. ``(incarnation, seq)`` orders a
node's statements, so an old or replayed message never overrides a newer one. A newer alive is
relayed to a fan-out of peers; an older or equal one is dropped, which ends the epidemic.

A member is alive while we keep hearing newer alive messages; silent for ``alive_expiry_ms`` it
is declared dead, and ``dead_purge_ms`` later it is forgotten (as in Fabric's gossip discovery).

Alive messages are checked before they change anything: the certificate must validate in the MSP
with the node role, the claims must match it (node id = CN, org = O) and the signature must
verify. A bad one comes from the peer that relayed it, which is penalised.

Never reads the clock (``now_ms`` is passed in) and draws randomness only from the injected RNG.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final

from crypto.hashing import Tag, digest
from crypto.msp import Identity, IdentityError
from crypto.signing import PrivateKey, sign, verify
from p2p.errors import RemoteProtocolError
from p2p.gossip.common import Discovered, GossipConfig, Output, Send
from p2p.messages import Alive

__all__ = ["MEMBERS_MAX", "Member", "Membership"]

# Members tracked (alive + dead). A city network has tens to hundreds of nodes; beyond this new
# names are ignored rather than letting forged-but-valid identities grow the table.
MEMBERS_MAX: Final = 4096

# (certificate DER, now in unix seconds) -> the MSP identity; raises on an invalid certificate.
CertValidator = Callable[[bytes, int], Identity]


@dataclass(slots=True)
class Member:
    alive: Alive
    last_seen_ms: int
    dead_since_ms: int | None = None

    @property
    def is_alive(self) -> bool:
        return self.dead_since_ms is None


def alive_digest(msg: Alive) -> bytes:
    return digest(Tag.GOSSIP_ALIVE, msg.signed_obj())


class Membership:
    """The membership view of one node."""

    def __init__(
        self,
        *,
        node_id: str,
        org: str,
        address: str,
        channels: tuple[str, ...],
        cert_der: bytes,
        key: PrivateKey,
        incarnation: int,
        validate_cert: CertValidator,
        rng: random.Random,
        config: GossipConfig,
    ) -> None:
        self.node_id = node_id
        self._key = key
        self._validate_cert = validate_cert
        self._rng = rng
        self._cfg = config
        self._self = Alive(node_id, org, address, channels, incarnation, 0, cert_der)
        self.members: dict[str, Member] = {}
        self._next_alive_ms: int | None = None

    # --- our own liveness ---------------------------------------------------------------------

    def make_alive(self) -> Alive:
        """Our next signed alive message (the sequence number advances)."""
        unsigned = replace(self._self, seq=self._self.seq + 1, signature=b"")
        self._self = replace(unsigned, signature=sign(self._key, alive_digest(unsigned)))
        return self._self

    def tick(self, now_ms: int, peers: list[str]) -> list[Output]:
        out: list[Output] = []
        if self._next_alive_ms is None or now_ms >= self._next_alive_ms:
            self._next_alive_ms = now_ms + self._cfg.alive_interval_ms
            msg = self.make_alive()
            out += [Send(p, msg) for p in self._sample(peers, self._cfg.fanout)]
        for nid, m in list(self.members.items()):
            if m.dead_since_ms is None and now_ms - m.last_seen_ms > self._cfg.alive_expiry_ms:
                m.dead_since_ms = now_ms
            elif m.dead_since_ms is not None and now_ms - m.dead_since_ms > self._cfg.dead_purge_ms:
                del self.members[nid]
        return out

    # --- others' liveness ---------------------------------------------------------------------

    def on_alive(self, now_ms: int, sender: str, msg: Alive, peers: list[str]) -> list[Output]:
        """Apply an alive message relayed by ``sender``; RemoteProtocolError if it is forged."""
        if msg.node_id == self.node_id:
            return []  # our own statement coming back
        known = self.members.get(msg.node_id)
        if known is not None and (msg.incarnation, msg.seq) <= (known.alive.incarnation, known.alive.seq):
            return []  # stale or duplicate: the epidemic stops here
        if known is None and len(self.members) >= MEMBERS_MAX:
            return []
        self._check(now_ms, msg)
        self.members[msg.node_id] = Member(msg, now_ms)
        out: list[Output] = []
        if known is None or not known.is_alive or known.alive.address != msg.address:
            out.append(Discovered(msg.node_id, msg.address))
        targets = [p for p in peers if p not in (sender, msg.node_id)]
        out += [Send(p, msg) for p in self._sample(targets, self._cfg.fanout)]
        return out

    def _check(self, now_ms: int, msg: Alive) -> None:
        try:
            ident = self._validate_cert(msg.cert, now_ms // 1000)
        except IdentityError as exc:
            raise RemoteProtocolError(f"alive of {msg.node_id!r}: certificate refused: {exc}") from exc
        if ident.name != msg.node_id or ident.org != msg.org:
            raise RemoteProtocolError(f"alive of {msg.node_id!r}: claims do not match its certificate")
        if not verify(ident.public_key, msg.signature, alive_digest(msg)):
            raise RemoteProtocolError(f"alive of {msg.node_id!r}: bad signature")

    def alive_members(self) -> list[str]:
        return sorted(n for n, m in self.members.items() if m.is_alive)

    def dead_members(self) -> list[str]:
        return sorted(n for n, m in self.members.items() if not m.is_alive)

    def _sample(self, peers: list[str], k: int) -> list[str]:
        ordered = sorted(peers)  # sort first: the same seed gives the same choice
        return ordered if len(ordered) <= k else self._rng.sample(ordered, k)
