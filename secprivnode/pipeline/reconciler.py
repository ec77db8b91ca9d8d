"""Reconcilers that make a channel's live membership follow its committed configuration.

* :class:`RaftMembershipReconciler` — on the Raft leader, one server at a time: a new orderer is
  added as a learner and promoted once it has caught up; a removed one is removed (Raft thesis
  §4.1–4.2: single-server changes).
* :class:`PeerReconciler` — on every node: dial the channel's other nodes, drop removed ones, and
  rebuild the transport's trust store when the configuration changes (new CAs or CRLs).

Both act only on committed configurations; this module never changes a configuration itself.
"""

from __future__ import annotations

import logging
from typing import Protocol

from consensus.raft import ConfChange, ConfChangeType, Role, Status
from p2p.api import PeerTransport
from storage.model import ChannelConfig

__all__ = ["MEMBERSHIP_CHECK_S", "PROMOTE_LAG_ENTRIES", "PeerReconciler", "RaftMembershipReconciler"]

log = logging.getLogger(__name__)

# How often the Raft leader compares the channel's orderer set with the Raft membership.
MEMBERSHIP_CHECK_S = 0.5
# A learner is promoted once it is within this many entries of the leader's commit index.
PROMOTE_LAG_ENTRIES = 8


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
    """Dial the channel's other nodes; drop removed ones; trust the orgs' current CAs and CRLs."""

    def __init__(self, name: str, me: str, transport: PeerTransport) -> None:
        self.name = name
        self._me = me
        self._transport = transport
        self._config_nodes: set[str] = set()

    def apply(self, cfg: ChannelConfig, *, initial: bool) -> None:
        me = self._me
        names = {n.name for n in cfg.nodes}
        for n in cfg.nodes:
            if n.name != me:
                self._transport.add_peer(n.name, n.address)
        for gone in self._config_nodes - names:
            self._transport.remove_peer(gone)
        self._config_nodes = names
        if not initial:
            self._transport.refresh_trust()
            log.info("channel %s: configuration sequence %d applied", self.name, cfg.sequence)
