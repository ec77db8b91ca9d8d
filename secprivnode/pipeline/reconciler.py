"""Reconcilers that make a channel's live membership follow its committed configuration.

* :class:`RaftMembershipReconciler` — on the Raft leader, one server at a time: a new orderer is
  added as a learner and promoted once it has caught up; a removed one is removed (Raft thesis
  §4.1–4.2: single-server changes).
* :class:`PeerReconciler` — on every node: dial the channel's other nodes, drop removed ones
  (after handing them the block that removed them, so they can tell), rebuild the transport's
  trust store when the configuration changes (new CAs or CRLs), and notice when this node itself
  was removed or revoked (``excluded``).

Both act only on committed configurations; this module never changes a configuration itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from consensus.raft import ConfChange, ConfChangeType, Role, Status
from crypto.msp import Identity
from p2p.api import PeerTransport
from p2p.messages import BlockPush
from secprivnode.pipeline.standing import ConfigHistory, ever_listed, exclusion_reason
from storage.model import ChannelConfig

__all__ = [
    "MEMBERSHIP_CHECK_S",
    "PROMOTE_LAG_ENTRIES",
    "REMOVED_PEER_LINGER_S",
    "PeerReconciler",
    "RaftMembershipReconciler",
]

log = logging.getLogger(__name__)

# How often the Raft leader compares the channel's orderer set with the Raft membership.
MEMBERSHIP_CHECK_S = 0.5
# A learner is promoted once it is within this many entries of the leader's commit index.
PROMOTE_LAG_ENTRIES = 8
# How long a node keeps its link to a node the configuration just removed: long enough for the
# block that removes it (pushed to it by every member, and on orderers carried by Raft, whose
# heartbeats bring the commit index every 100 ms) to arrive, so it can tell it was removed. New
# connections from it are refused at once: the transport validates peers against the current MSP.
REMOVED_PEER_LINGER_S = 3.0


class _StatusSource(Protocol):
    def status(self) -> Status: ...


class _ConfChangeProposer(Protocol):
    async def propose_conf_change(self, change: ConfChange) -> object: ...


class _ConfigSource(Protocol):
    def config(self) -> ChannelConfig | None: ...


class _Sleeper(Protocol):
    async def sleep(self, seconds: float) -> None: ...


class RaftMembershipReconciler:
    """On the Raft leader: make the Raft membership follow the channel's orderer set."""

    def __init__(
        self, name: str, driver: _StatusSource, orderer: _ConfChangeProposer, view: _ConfigSource, clock: _Sleeper
    ) -> None:
        self.name = name
        self.clock = clock
        self.driver = driver
        self.orderer = orderer
        self.view = view

    async def run(self) -> None:
        """Check every :data:`MEMBERSHIP_CHECK_S` until cancelled."""
        while True:
            await self.clock.sleep(MEMBERSHIP_CHECK_S)
            await self.check()

    async def check(self) -> None:
        """Propose the next membership change, if this node leads and one is due."""
        st = self.driver.status()
        if st.role != Role.LEADER:
            return
        cfg = self.view.config()
        if cfg is None:
            return
        change = self._next_conf_change(st, {n.name for n in cfg.orderers()})
        if change is None:
            return
        try:
            await self.orderer.propose_conf_change(change)
            log.info("channel %s: proposed Raft membership change %s %s", self.name, change.kind.name, change.node_id)
        except Exception as exc:  # refused or dropped: retried on the next check
            log.info("channel %s: membership change %s not taken: %s", self.name, change, exc)

    @staticmethod
    def _next_conf_change(st: Status, want: set[str]) -> ConfChange | None:
        voters, learners = set(st.voters), set(st.learners)
        for n in sorted(want - voters - learners):
            return ConfChange(ConfChangeType.ADD_LEARNER, n)
        for n in sorted(learners & want):
            prog = st.progress.get(n)
            if prog is not None and prog.match + PROMOTE_LAG_ENTRIES >= st.commit:
                return ConfChange(ConfChangeType.PROMOTE, n)
        for n in sorted((voters | learners) - want):
            if n != st.id:
                return ConfChange(ConfChangeType.REMOVE, n)
        return None


class PeerReconciler:
    """Dial the channel's other nodes; drop removed ones (after handing them the block that removed
    them); trust the orgs' current CAs and CRLs; tell when this node itself is no longer a member."""

    def __init__(
        self,
        name: str,
        identity: Identity,
        transport: PeerTransport,
        ledger: ConfigHistory,
        now_s: Callable[[], int],
        spawn: Callable[[Coroutine[Any, Any, None], str], None],
    ) -> None:
        self.name = name
        self._identity = identity
        self._transport = transport
        self._ledger = ledger
        self._now_s = now_s
        self._spawn = spawn
        self._config_nodes: set[str] = set()
        # Why this node is no longer a member of the channel (removed or revoked), or None.
        self.excluded: str | None = None
        self._was_member = False  # listed by some committed configuration

    def apply(self, cfg: ChannelConfig, *, initial: bool, block: tuple[int, bytes] | None = None) -> None:
        """Follow ``cfg``; ``block`` is the (number, bytes) of the block that committed it."""
        me = self._identity.name
        names = {n.name for n in cfg.nodes}
        if initial:
            self._was_member = ever_listed(self._ledger, me)
        self._was_member = self._was_member or cfg.node(me) is not None
        reason = exclusion_reason(cfg, self._identity, self._now_s(), was_member=self._was_member)
        if reason is not None:
            if self.excluded is None:
                log.error("channel %s: %s; this node no longer accepts transactions for it", self.name, reason)
            self.excluded = reason
            for peer in self._config_nodes | names:
                self._transport.remove_peer(peer)  # nobody will talk to us: stop dialling them
            self._config_nodes = set()
            return
        for n in cfg.nodes:
            if n.name != me:
                self._transport.add_peer(n.name, n.address)
        gone = self._config_nodes - names
        if block is not None:
            # Gossip no longer serves a node the configuration dropped; this push is its last block.
            for peer in gone:
                self._transport.send(peer, BlockPush(self.name, block[0], block[1]))
        if gone and not initial:
            self._spawn(self._drop_later(gone), "drop-removed")
        self._config_nodes = names
        if not initial:
            self._transport.refresh_trust()
            log.info("channel %s: configuration sequence %d applied", self.name, cfg.sequence)

    async def _drop_later(self, gone: set[str]) -> None:
        await asyncio.sleep(REMOVED_PEER_LINGER_S)
        for peer in gone:
            if peer not in self._config_nodes:
                self._transport.remove_peer(peer)
