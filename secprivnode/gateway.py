"""The gateway: turns a client's signed proposal into an ordered transaction (Fabric's Gateway).

1. Pick endorsers that satisfy the contract's endorsement policy among the channel's reachable
   nodes, this node first (``policy.plan``).
2. Ask them concurrently (this node directly, others with ``wire.ENDORSE`` requests).
3. Check that every endorser produced the same response and read/write set (a mismatch means
   the endorsers saw different state or run different code: the transaction would fail
   validation, so it is refused here with a clear error instead).
4. Assemble the transaction and hand it to ordering: the local ordering service (which forwards
   to the Raft leader), or an orderer peer over ``wire.SUBMIT``.
5. Optionally wait for the commit and report the block number and validation code.

Every failure becomes a :class:`~secprivnode.api.ServiceError` with a stable code. This module
never signs for the client and never orders a transaction whose endorsements disagree.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from consensus.orderer.errors import OrdererError, PoolFull
from consensus.raft import NotLeader, ProposalDropped
from crypto.encoding import EncodingError, encode
from p2p.dispatch import MAX_INFLIGHT_REQUESTS_PER_PEER
from p2p.errors import P2PError
from secprivnode import wire
from secprivnode.api import (
    ContractFailed,
    NotLeaderError,
    Overloaded,
    ServiceError,
    SubmitResult,
    TimeoutError_,
    TxRejected,
    Unauthorized,
    UnknownChannel,
)
from secprivnode.contracts.config_contract import contract_policy
from secprivnode.contracts.policy import PolicyUnsatisfiable, plan
from secprivnode.contracts.runtime import Simulated
from secprivnode.metrics import NodeMetrics
from secprivnode.pipeline.commit_loop import ChannelHalted
from secprivnode.pipeline.endorser import EndorsementResult
from secprivnode.pipeline.errors import ContractRejected, ProposalRejected, RejectCode
from secprivnode.pipeline.events import TxOutcome
from storage.model import (
    ChannelConfig,
    Endorsement,
    MalformedError,
    Proposal,
    ReadWriteSet,
    Response,
    Transaction,
)
from storage.privstate import WriteSet

# Sends an endorsement's private write sets to member nodes; raises Overloaded when too few took them.
Disseminate = Callable[[str, Sequence[WriteSet]], Awaitable[None]]

__all__ = ["Gateway", "GatewayChannel", "rejection_to_error"]

log = logging.getLogger(__name__)

# How long one remote endorsement may take (simulation is milliseconds; this covers a busy peer).
ENDORSE_TIMEOUT_S = 10.0
# How long a forwarded submission may take to be admitted by an orderer.
SUBMIT_TIMEOUT_S = 10.0
# Submissions this gateway forwards to the Raft leader at once. Each is one P2P request, and the
# leader answers "busy" beyond MAX_INFLIGHT_REQUESTS_PER_PEER per peer; three quarters of it leaves
# room for endorsement and state-transfer requests on the same link. Beyond it submissions queue
# here (bounded by the RPC server's own request limits) instead of failing.
FORWARD_CONCURRENCY_MAX = MAX_INFLIGHT_REQUESTS_PER_PEER * 3 // 4
# How long a submission is held while ordering has no reachable leader: a Raft election takes one
# to two election timeouts (1-2 s with the default 100 ms ticks) plus a pre-vote round; 5 s covers
# it on a loaded machine and stays well inside a client's wait (30 s by default).
ELECTION_HOLD_S = 5.0
# Pause between attempts while holding: a few Raft ticks, so the retries do not spin.
LEADER_POLL_S = 0.2
# Refusal kinds meaning "this id is already pending or ordered" (the local orderer's exception
# name, or the remote orderer's refusal kind).
_DUPLICATE_KINDS = ("DuplicateTransaction", "duplicate")
# Endorser plans remembered per (channel, config sequence, contract, reachable peers). A channel
# has tens of contracts and the reachable set changes rarely; when full the cache starts over.
PLAN_CACHE_MAX = 256


class ConfigSource(Protocol):
    def require_config(self) -> ChannelConfig: ...


class ProposalEndorser(Protocol):
    def endorse(self, proposal: Proposal, signature: bytes) -> EndorsementResult: ...

    def evaluate(self, proposal: Proposal, signature: bytes) -> Simulated: ...


class TxSubmitter(Protocol):
    async def submit(self, tx_bytes: bytes) -> bytes: ...


class GatewayChannel(Protocol):
    """What the gateway needs of a channel (:class:`secprivnode.channel.ChannelRuntime` has it):
    its configuration, its endorser, its local ordering service if any, and commit waits."""

    @property
    def name(self) -> str: ...

    @property
    def view(self) -> ConfigSource: ...

    @property
    def endorser(self) -> ProposalEndorser: ...

    @property
    def orderer(self) -> TxSubmitter | None: ...

    def leader(self) -> str | None: ...

    def require_healthy(self) -> None: ...

    @property
    def excluded(self) -> str | None:
        """Why this node is no longer a member of the channel (removed or revoked), or None."""
        ...

    def wait_for(self, tx_id: bytes) -> asyncio.Future[TxOutcome]: ...

    def forget_waiter(self, tx_id: bytes, fut: asyncio.Future[TxOutcome]) -> None: ...


class _NoLeaderNow(Exception):
    """Ordering refused only for want of a reachable leader; ``error`` is what the client gets if it lasts."""

    def __init__(self, error: ServiceError) -> None:
        super().__init__(error.message)
        self.error = error


def rejection_to_error(exc: ProposalRejected) -> ServiceError:
    if isinstance(exc, ContractRejected):
        r = exc.response
        return ContractFailed(exc.message, {"status": r.status, "message": r.message, "payload": r.payload})
    if exc.code is RejectCode.BAD_CHANNEL:
        return UnknownChannel(exc.message)
    return TxRejected(exc.message, {"reason": exc.code.value})


def _response_json(r: Response) -> dict[str, Any]:
    return {
        "status": r.status,
        "message": r.message,
        "payload": r.payload,
        "events": [{"name": n, "payload": p} for n, p in r.events],
    }


class Gateway:
    def __init__(
        self,
        node_name: str,
        org: str,
        channels: Mapping[str, GatewayChannel],
        transport: Any,
        *,
        gateway: bool = True,
        endorser: bool = True,
        metrics: NodeMetrics | None = None,
        disseminate: Disseminate | None = None,
    ) -> None:
        self._name = node_name
        self._org = org
        self._channels = channels
        self._transport = transport
        self._forward_slots = asyncio.Semaphore(FORWARD_CONCURRENCY_MAX)
        self._plans: dict[tuple[str, int, str, frozenset[str]], tuple[str, ...]] = {}
        self._is_gateway = gateway  # accepts client submissions
        self._is_endorser = endorser  # runs contracts for proposals
        self._metrics = metrics
        self._disseminate = disseminate  # private write sets to member nodes (secprivnode.privnet)

    def channel(self, name: str) -> GatewayChannel:
        ch = self._channels.get(name)
        if ch is None:
            raise UnknownChannel(f"this node does not serve channel {name!r}")
        return ch

    # ------------------------------------------------------------------ endorsement
    def _endorsers(self, ch: GatewayChannel, contract: str) -> list[str]:
        cfg = ch.view.require_config()
        connected = frozenset(self._transport.connected_peers())
        # plan() is a pure function of the policy (fixed by the config sequence), the reachable
        # nodes and this node's org; parsing the policy and searching plans per transaction cost
        # about 5% of a node's time under load, so the answer is remembered.
        key = (ch.name, cfg.sequence, contract, connected)
        cached = self._plans.get(key)
        if cached is not None:
            return list(cached)
        policy = contract_policy(cfg, contract)
        if policy is None:
            raise TxRejected(
                f"contract {contract!r} is not defined on channel {ch.name}", {"reason": "unknown_contract"}
            )
        available: dict[str, list[str]] = {self._org: [self._name] if self._is_endorser else []}
        for n in cfg.nodes:
            if n.name in connected:
                available.setdefault(n.org, []).append(n.name)
        try:
            chosen = plan(policy, available, self._org)
        except PolicyUnsatisfiable as exc:
            raise Overloaded(f"not enough reachable endorsers for {contract!r}: {exc}") from exc
        if len(self._plans) >= PLAN_CACHE_MAX:
            self._plans.clear()
        self._plans[key] = tuple(chosen)
        return chosen

    async def _endorse_remote(self, peer: str, ch: GatewayChannel, proposal: Proposal, sig: bytes) -> EndorsementResult:
        payload = [ch.name, proposal.to_obj(), sig, dict(proposal.transient)]
        try:
            answer = await self._transport.request(peer, wire.ENDORSE, payload, ENDORSE_TIMEOUT_S)
            values = wire.unpack_answer(answer)
            if len(values) not in (3, 4):
                raise MalformedError("endorsement answer: expected 3 or 4 values")
            extra = tuple(ReadWriteSet.from_obj(rw) for rw in values[3]) if len(values) == 4 else ()
            return EndorsementResult(
                Response.from_obj(values[0]), ReadWriteSet.from_obj(values[1]), Endorsement.from_obj(values[2]), extra
            )
        except wire.RemoteRefusal as exc:
            reject = wire.rejection_of(exc.code)
            if reject is RejectCode.CONTRACT_ERROR:
                raise ContractFailed(f"{peer}: {exc.message}") from exc
            if reject is None and exc.code in _ENDORSER_UNAVAILABLE:
                raise Overloaded(f"endorser {peer} unavailable: {exc.message}") from exc
            reason = reject.value if reject is not None else exc.code.name.lower()
            raise TxRejected(f"{peer} refused to endorse: {exc.message}", {"reason": reason}) from exc
        except (P2PError, MalformedError, EncodingError, ValueError) as exc:
            raise Overloaded(f"endorser {peer} unavailable: {exc}") from exc

    async def on_endorse(self, peer: str, payload: Any) -> list[Any]:
        """Serve a ``wire.ENDORSE`` request from another node's gateway."""
        if not self._is_endorser:
            return wire.err(wire.ErrorCode.UNAUTHORIZED, f"{self._name} does not have the endorser role")
        try:
            channel, prop_obj, sig, transient = payload
            ch = self.channel(channel)
            ch.require_healthy()
            self.require_member(ch)
            proposal = Proposal.from_obj(prop_obj)
            if not isinstance(sig, bytes) or not isinstance(transient, dict):
                raise MalformedError("bad signature or transient map")
            if not all(isinstance(k, str) and isinstance(v, bytes) for k, v in transient.items()):
                raise MalformedError("transient map must map strings to bytes")
            proposal = Proposal(proposal.header, proposal.contract, proposal.function, proposal.args, transient)
            res = self._timed_endorse(ch, proposal, sig)
            await self._private(ch, res)
        except ProposalRejected as exc:
            return wire.err(wire.reject_code(exc.code), exc.message)
        except Overloaded as exc:
            return wire.err(wire.ErrorCode.BUSY, exc.message)
        except (MalformedError, EncodingError, ValueError, TypeError) as exc:
            return wire.err(wire.ErrorCode.BAD_PROPOSAL, str(exc))
        except ChannelHalted as exc:
            return wire.err(wire.ErrorCode.CHANNEL_HALTED, exc.message)
        except UnknownChannel as exc:
            return wire.err(wire.ErrorCode.UNKNOWN_CHANNEL, exc.message)
        extra = [[rw.to_obj() for rw in res.extra_rwsets]] if res.extra_rwsets else []
        return wire.ok(res.response.to_obj(), res.rwset.to_obj(), res.endorsement.to_obj(), *extra)

    async def _endorse_all(
        self, ch: GatewayChannel, peers: list[str], proposal: Proposal, sig: bytes
    ) -> list[EndorsementResult]:
        jobs = []
        for p in peers:
            if p == self._name:
                jobs.append(self._endorse_local(ch, proposal, sig))
            else:
                jobs.append(self._endorse_remote(p, ch, proposal, sig))
        return list(await asyncio.gather(*jobs))

    async def endorse(self, proposal: Proposal, sig: bytes) -> Transaction:
        ch = self.channel(proposal.header.channel)
        peers = self._endorsers(ch, proposal.contract)
        results = await self._endorse_all(ch, peers, proposal, sig)
        # A contract that called others and wrote in their namespaces needs their endorsement
        # policies satisfied too: add the nodes a plan for each of those would pick.
        more: list[str] = []
        for rw in results[0].extra_rwsets:
            if rw.writes:
                more.extend(p for p in self._endorsers(ch, rw.namespace) if p not in peers and p not in more)
        if more:
            results += await self._endorse_all(ch, more, proposal, sig)
            peers = peers + more
        first = results[0]

        def outcome(r: EndorsementResult) -> bytes:
            return encode([r.response.to_obj(), r.rwset.to_obj(), [rw.to_obj() for rw in r.extra_rwsets]])

        ref = outcome(first) if len(results) > 1 else b""
        for p, r in zip(peers[1:], results[1:], strict=True):
            if outcome(r) != ref:
                raise TxRejected(
                    f"endorsements disagree ({peers[0]} vs {p}): the endorsers' states or contracts differ",
                    {"reason": "endorsement_mismatch"},
                )
        stored = Proposal(proposal.header, proposal.contract, proposal.function, proposal.args)
        ends = tuple(r.endorsement for r in results)
        return Transaction(stored, sig, first.response, first.rwset, ends, first.extra_rwsets)

    def _timed_endorse(self, ch: GatewayChannel, proposal: Proposal, sig: bytes) -> EndorsementResult:
        """Endorse with this node's endorser, timing successful endorsements."""
        t0 = time.perf_counter()
        res = ch.endorser.endorse(proposal, sig)
        if self._metrics is not None:
            self._metrics.endorse_latency.labels(channel=ch.name).observe(time.perf_counter() - t0)
        return res

    async def _endorse_local(self, ch: GatewayChannel, proposal: Proposal, sig: bytes) -> EndorsementResult:
        try:
            res = self._timed_endorse(ch, proposal, sig)
        except ProposalRejected as exc:
            raise rejection_to_error(exc) from exc
        await self._private(ch, res)
        return res

    async def _private(self, ch: GatewayChannel, res: EndorsementResult) -> None:
        """Disseminate the endorsement's private writes before it is answered (required peers)."""
        if res.private and self._disseminate is not None:
            await self._disseminate(ch.name, res.private)

    # ------------------------------------------------------------------ ordering
    async def order(self, ch: GatewayChannel, tx_bytes: bytes) -> None:
        """Hand the transaction to ordering, holding it through a leader election.

        A refusal that only means "no leader right now" (no leader known, the leader unreachable,
        a proposal dropped by a leader that lost its term) is retried with the same bytes until
        :data:`ELECTION_HOLD_S` has passed, so that a leader change costs the client latency and not
        a failure. A retry refused as a duplicate means an earlier attempt was admitted after all.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ELECTION_HOLD_S
        retried = False
        while True:
            try:
                await self._order_once(ch, tx_bytes)
                return
            except _NoLeaderNow as exc:
                if loop.time() >= deadline:
                    raise exc.error from exc
            except TxRejected as exc:
                if retried and isinstance(exc.data, dict) and exc.data.get("reason") in _DUPLICATE_KINDS:
                    return
                raise
            retried = True
            await asyncio.sleep(LEADER_POLL_S)

    async def _order_once(self, ch: GatewayChannel, tx_bytes: bytes) -> None:
        try:
            if ch.orderer is not None and ch.leader() in (None, self._name):
                await ch.orderer.submit(tx_bytes)
                return
            # Forwarded (by the local orderer to its leader, or to a remote orderer): one P2P
            # request each, so keep them under the peer's in-flight limit.
            async with self._forward_slots:
                if ch.orderer is not None:
                    await ch.orderer.submit(tx_bytes)
                else:
                    await self._submit_remote(ch, tx_bytes)
        except P2PError as exc:
            # The link to the leader failed or the leader was busy: the transaction was not
            # admitted, and the client may retry. Not the node's bug, so not an internal error.
            raise _NoLeaderNow(Overloaded(f"could not forward the transaction to the ordering leader: {exc}")) from exc
        except wire.RemoteRefusal as exc:
            # The leader refused a forwarded transaction for a reason that is not the transaction's
            # (it halted, or could not be reached itself): not admitted; held like a missing leader.
            raise _NoLeaderNow(Overloaded(f"the ordering leader did not take the transaction: {exc}")) from exc
        except NotLeader as exc:
            hint = exc.leader_hint
            msg = (
                f"not the leader; try {hint}"
                if hint
                else "no Raft leader is known yet (an election is under way); retry"
            )
            raise _NoLeaderNow(NotLeaderError(msg, {"leader": hint})) from exc
        except ProposalDropped as exc:
            raise _NoLeaderNow(Overloaded(f"ordering dropped the transaction: {exc}")) from exc
        except OrdererError as exc:
            raise _orderer_error(exc) from exc

    async def _submit_remote(self, ch: GatewayChannel, tx_bytes: bytes) -> None:
        cfg = ch.view.require_config()
        connected = set(self._transport.connected_peers())
        orderers = [n.name for n in cfg.orderers() if n.name in connected]
        leader = ch.leader()
        if leader in orderers:
            orderers.remove(leader)
            orderers.insert(0, leader)
        last: Exception | None = None
        for o in orderers:
            try:
                answer = await self._transport.request(o, wire.SUBMIT, [ch.name, tx_bytes], SUBMIT_TIMEOUT_S)
                wire.unpack_answer(answer)
                return
            except wire.RemoteRefusal as exc:
                if exc.code in _TRY_ANOTHER_ORDERER:
                    last = exc
                    continue
                typed = wire.ordering_exception(exc)
                if isinstance(typed, OrdererError):
                    raise _orderer_error(typed) from exc
                raise TxRejected(
                    f"{o} refused the transaction: {exc.message}", {"reason": exc.code.name.lower()}
                ) from exc
            except P2PError as exc:
                last = exc
        raise _NoLeaderNow(Overloaded(f"no orderer of {ch.name} accepted the transaction: {last}"))

    def require_gateway(self) -> None:
        if not self._is_gateway:
            raise Unauthorized(f"{self._name} does not have the gateway role: submit through a gateway node")

    @staticmethod
    def require_member(ch: GatewayChannel) -> None:
        """Refuse writes on a channel this node was removed from (or whose CRL revokes it)."""
        if ch.excluded is not None:
            raise TxRejected(
                f"this node no longer serves writes on channel {ch.name}: {ch.excluded}",
                {"reason": "node_not_member", "detail": ch.excluded},
            )

    async def submit(self, proposal: Proposal, sig: bytes, *, wait: bool, timeout_s: float) -> SubmitResult:
        self.require_gateway()
        ch = self.channel(proposal.header.channel)
        ch.require_healthy()
        self.require_member(ch)
        tx = await self.endorse(proposal, sig)
        tx_bytes = tx.encode()
        tx_id = tx.tx_id
        fut = ch.wait_for(tx_id) if wait else None
        try:
            t0 = time.perf_counter()
            await self.order(ch, tx_bytes)
            if fut is None:
                return SubmitResult(tx_id, response=_response_json(tx.response))
            try:
                outcome = await asyncio.wait_for(asyncio.shield(fut), timeout_s)
            except TimeoutError as exc:
                raise TimeoutError_(
                    f"transaction 0x{tx_id.hex()} not committed within {timeout_s}s (it may still commit)",
                    {"tx_id": "0x" + tx_id.hex()},
                ) from exc
            if self._metrics is not None:
                self._metrics.order_latency.labels(channel=ch.name).observe(time.perf_counter() - t0)
            return SubmitResult(tx_id, outcome.block_number, outcome.code, _response_json(tx.response))
        finally:
            if fut is not None:
                ch.forget_waiter(tx_id, fut)

    async def query(self, proposal: Proposal, sig: bytes) -> dict[str, Any]:
        if not self._is_endorser:
            raise Unauthorized(f"{self._name} does not have the endorser role: it runs no contracts")
        ch = self.channel(proposal.header.channel)
        try:
            response = ch.endorser.evaluate(proposal, sig).response
        except ProposalRejected as exc:
            raise rejection_to_error(exc) from exc
        if response.status >= 400:
            raise ContractFailed(f"contract returned {response.status}: {response.message}", _response_json(response))
        return _response_json(response)


# Endorsement refusals that say nothing against the proposal: the endorser cannot serve it now.
_ENDORSER_UNAVAILABLE = frozenset({wire.ErrorCode.UNKNOWN_CHANNEL, wire.ErrorCode.CHANNEL_HALTED, wire.ErrorCode.BUSY})

# Refusals that say nothing against the transaction: another orderer may take it.
_TRY_ANOTHER_ORDERER = frozenset(
    {
        wire.ErrorCode.NOT_LEADER,
        wire.ErrorCode.NOT_ORDERER,
        wire.ErrorCode.PROPOSAL_DROPPED,
        wire.ErrorCode.ORDERER_STOPPED,
        wire.ErrorCode.CHANNEL_HALTED,
        wire.ErrorCode.UNKNOWN_CHANNEL,
        wire.ErrorCode.UNAVAILABLE,
    }
)


def _orderer_error(exc: OrdererError) -> ServiceError:
    if isinstance(exc, PoolFull):
        return Overloaded(str(exc))
    return TxRejected(str(exc), {"reason": exc.reason})
