"""The node's :class:`~secprivnode.api.NodeService`: ledger reads, submissions, status, events.

A thin translation layer over the channel runtimes and the gateway; results use the shapes
``docs/rpc.md`` documents for the RPC server. Storage errors of a missing item become
``NotFoundError``; anything else unexpected is left to the RPC server's internal-error path.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Protocol

import psutil

from crypto.encoding import EncodingError, encode
from crypto.msp import MSP, Identity, IdentityError, Role
from crypto.signing import get_backend
from p2p.api import PeerTransport
from secprivnode import __version__
from secprivnode.api import (
    BadRequest,
    Event,
    NotFoundError,
    Overloaded,
    SubmitResult,
    Unauthenticated,
    Unauthorized,
    UnknownChannel,
)
from secprivnode.clock import NodeClock, SystemClock
from secprivnode.config import NodeConfig
from secprivnode.contracts.config_contract import ConfigError, check_config, decode_config
from secprivnode.contracts.lifecycle import ContractLoadError, LifecycleError, definition_key, vet_update
from secprivnode.gateway import ConfigSource, Gateway, GatewayChannel
from secprivnode.genesis import config_transaction
from secprivnode.pipeline.endorser import Endorser
from secprivnode.read_guard import ReadDenied, ReadGuard, ReadRefused, ReplayCacheFull
from secprivnode.signed_read import SignedRead
from storage.errors import CorruptionError, NotFound
from storage.ledger import CONFIG_KEY, CONFIG_NAMESPACE, BlockSummary, ChannelLedger
from storage.model import ChannelConfig, ContractDefinition, Proposal, ValidationCode, config_update_digest

__all__ = ["LocalNodeService", "ServiceChannel"]

# Most rows a range or history read returns in one call.
RANGE_LIMIT_MAX = 1000
# Free space on the data directory's file system below which /healthz fails its "disk" check: a
# few full blocks (BatchMaxBytes) plus LevelDB's log and a compaction's output, so an operator is
# warned before a commit is refused (which stops the node: see storage/writer.py).
DISK_FREE_MIN_BYTES = 64 * 1024 * 1024


class ChannelConfigView(ConfigSource, Protocol):
    def msp(self) -> MSP: ...


class ServiceChannel(GatewayChannel, Protocol):
    """What the service needs of a channel beyond the gateway's: its ledger for reads, its
    membership, its health and Raft status, and event subscriptions."""

    @property
    def ledger(self) -> ChannelLedger: ...

    @property
    def view(self) -> ChannelConfigView: ...

    @property
    def halted(self) -> str | None: ...

    @property
    def endorser(self) -> Endorser: ...

    def raft_status(self) -> dict[str, Any]: ...

    def is_awaited(self, tx_id: bytes) -> bool: ...

    def subscribe(self, kinds: frozenset[str], tx_id: bytes | None) -> AsyncIterator[Event]: ...


class LocalNodeService:
    def __init__(
        self,
        config: NodeConfig,
        channels: Mapping[str, ServiceChannel],
        gateway: Gateway,
        transport: PeerTransport,
        admin_signer: Callable[[], Any],
        *,
        clock: NodeClock | None = None,
    ) -> None:
        self._cfg = config
        self._channels = channels
        self._gateway = gateway
        self._transport = transport
        self._admin_signer = admin_signer  # (cert_der, key) of this node, to create config txs
        self._clock: NodeClock = clock if clock is not None else SystemClock()
        self._started = self._clock.now()
        self._proc = psutil.Process(os.getpid())
        self._reads = ReadGuard({p.namespace: p.policy for p in config.rpc.read_policies})

    @property
    def default_channel(self) -> str:
        return self._cfg.default_channel

    def _ch(self, channel: str | None) -> ServiceChannel:
        name = channel or self._cfg.default_channel
        ch = self._channels.get(name)
        if ch is None:
            raise UnknownChannel(f"this node does not serve channel {name!r}")
        return ch

    # ------------------------------------------------------------------ status
    async def node_status(self) -> dict[str, Any]:
        return {
            "name": self._cfg.node.name,
            "org": self._cfg.node.org,
            "version": __version__,
            "roles": list(self._cfg.node.roles),
            "default_channel": self._cfg.default_channel,
            "channels": {
                n: {"height": c.ledger.height, "orderer": c.orderer is not None} for n, c in self._channels.items()
            },
            "peers": len(self._transport.connected_peers()),
            "uptime_s": int(self._clock.now() - self._started),
            "rss_bytes": self._proc.memory_info().rss,
            "crypto_backend": get_backend().name,
        }

    async def node_peers(self) -> list[dict[str, Any]]:
        out = []
        for p in sorted(self._transport.connected_peers()):
            info = self._transport.peer_info(p)
            out.append(
                {
                    "name": p,
                    "org": getattr(info, "org", None),
                    "address": getattr(info, "address", None),
                    "channels": list(getattr(info, "channels", ())),
                }
            )
        return out

    async def raft_status(self, channel: str | None) -> dict[str, Any]:
        return self._ch(channel).raft_status()

    async def health(self) -> dict[str, tuple[bool, str]]:
        """Liveness of what clients rely on: ledgers committing, a Raft leader known where this node
        orders (without one, submissions fail), and peers connected when the channel has any."""
        checks: dict[str, tuple[bool, str]] = {}
        for name, ch in self._channels.items():
            halted = ch.halted
            checks[f"ledger:{name}"] = (halted is None, halted or f"height {ch.ledger.height}")
            checks[f"membership:{name}"] = (ch.excluded is None, ch.excluded or "a member of the channel")
            if ch.orderer is not None:
                st = ch.raft_status()
                leader = st["leader"]
                detail = f"{st['role']}, leader {leader}" if leader else f"{st['role']}, no leader known (election)"
                checks[f"raft:{name}"] = (leader is not None, detail)
        peers = len(self._transport.connected_peers())
        expected = max(len(c.view.require_config().nodes) - 1 for c in self._channels.values())
        checks["p2p"] = (peers > 0 or expected == 0, f"{peers} of {expected} peers connected")
        free = shutil.disk_usage(self._cfg.node.data_dir).free
        checks["disk"] = (
            free >= DISK_FREE_MIN_BYTES,
            f"{free >> 20} MiB free in {self._cfg.node.data_dir}"
            + ("" if free >= DISK_FREE_MIN_BYTES else f" (below {DISK_FREE_MIN_BYTES >> 20} MiB: commits will fail)"),
        )
        return checks

    # ------------------------------------------------------------------ chain
    async def chain_height(self, channel: str | None) -> int:
        return self._ch(channel).ledger.height

    async def get_block(self, channel: str | None, number: int) -> tuple[BlockSummary, list[ValidationCode]]:
        ledger = self._ch(channel).ledger
        if not 0 <= number < ledger.height:
            raise NotFoundError(f"no block {number} (height {ledger.height})")
        return ledger.get_block_summary(number), ledger.get_codes(number)

    async def get_block_by_hash(
        self, channel: str | None, block_hash: bytes
    ) -> tuple[BlockSummary, list[ValidationCode]]:
        ledger = self._ch(channel).ledger
        try:
            number = ledger.block_number_of_hash(block_hash)
        except NotFound as exc:
            raise NotFoundError(f"no block with hash 0x{block_hash.hex()}") from exc
        summary = ledger.get_block_summary(number)
        if summary.hash != block_hash:
            raise CorruptionError(f"hash index points block {number} at another hash", height=number)
        return summary, ledger.get_codes(number)

    async def get_transaction(self, channel: str | None, tx_id: bytes) -> dict[str, Any]:
        ledger = self._ch(channel).ledger
        try:
            rec = ledger.get_tx(tx_id)
        except NotFound as exc:
            raise NotFoundError(f"no transaction 0x{tx_id.hex()}") from exc
        tx = rec.tx
        creator = _creator_name(tx.proposal.header.creator)
        return {
            "tx_id": tx_id,
            "block": rec.block_number,
            "index": rec.tx_index,
            "code": rec.code,
            "channel": tx.channel,
            "creator": creator,
            "contract": tx.proposal.contract,
            "function": tx.proposal.function,
            "args": list(tx.proposal.args),
            "timestamp_ms": tx.proposal.header.timestamp_ms,
            "response": tx.response,
            "rwset": tx.rwset,
            "extra_rwsets": list(tx.extra_rwsets),
            "endorsers": [_creator_name(e.endorser) for e in tx.endorsements],
        }

    async def get_tx_proof(self, channel: str | None, tx_id: bytes) -> dict[str, Any]:
        ledger = self._ch(channel).ledger
        try:
            proof = ledger.tx_proof(tx_id)
        except NotFound as exc:
            raise NotFoundError(f"no transaction 0x{tx_id.hex()}") from exc
        return {
            "header": proof.header,
            "tx_hash": proof.tx_hash,
            "index": proof.index,
            "size": proof.size,
            "path": list(proof.path),
            "block_hash": proof.header.hash(),
            "tx_id": tx_id,
        }

    # ------------------------------------------------------------------ state
    async def authorize_read(self, read: SignedRead) -> str:
        ch = self._ch(read.request.channel)
        orgs = [o.name for o in ch.view.require_config().orgs]
        try:
            ident = self._reads.check(read, ch.name, ch.view.msp(), orgs, self._clock.now_ms())
        except ReadRefused as exc:
            raise Unauthenticated(exc.message, {"reason": exc.reason}) from exc
        except ReadDenied as exc:
            raise Unauthorized(str(exc), {"reason": "read_policy"}) from exc
        except ReplayCacheFull as exc:
            raise Overloaded(str(exc)) from exc
        return ident.id

    async def state_get(self, channel: str | None, contract: str, key: str) -> dict[str, Any] | None:
        got = self._ch(channel).ledger.get_state(contract, key)
        if got is None:
            return None
        return {"value": got[0], "version": got[1]}

    async def state_get_range(
        self, channel: str | None, contract: str, start: str, end: str, limit: int
    ) -> list[dict[str, Any]]:
        rows = self._ch(channel).ledger.get_range(contract, start, end, min(max(limit, 1), RANGE_LIMIT_MAX))
        return [{"key": k, "value": v, "version": ver} for k, v, ver in rows]

    async def state_get_history(self, channel: str | None, contract: str, key: str, limit: int) -> list[dict[str, Any]]:
        # The ledger yields history oldest first; the RPC promises the newest ``limit`` entries,
        # newest first. The storage layer has no reverse scan yet, so this reads the key's whole
        # history: O(writes of the key), fine for records, costly for a key written millions of times.
        hist = self._ch(channel).ledger.get_history(contract, key)[-min(max(limit, 1), RANGE_LIMIT_MAX) :][::-1]
        return [{"version": h.version, "tx_id": h.tx_id, "value": h.value, "is_delete": h.is_delete} for h in hist]

    # ------------------------------------------------------------------ transactions
    async def tx_submit(self, proposal: Proposal, signature: bytes) -> SubmitResult:
        return await self._gateway.submit(proposal, signature, wait=False, timeout_s=0)

    async def tx_submit_and_wait(self, proposal: Proposal, signature: bytes, timeout_s: float) -> SubmitResult:
        return await self._gateway.submit(proposal, signature, wait=True, timeout_s=timeout_s)

    async def tx_query(self, proposal: Proposal, signature: bytes) -> dict[str, Any]:
        return await self._gateway.query(proposal, signature)

    async def tx_status(self, channel: str | None, tx_id: bytes) -> dict[str, Any]:
        ch = self._ch(channel)
        loc = ch.ledger.tx_location(tx_id)
        if loc is not None:
            return {"tx_id": tx_id, "status": "committed", "block": loc[0], "index": loc[1], "code": loc[2]}
        return {"tx_id": tx_id, "status": "pending" if ch.is_awaited(tx_id) else "unknown"}

    async def contract_list(self, channel: str | None) -> list[dict[str, Any]]:
        """The channel's contract definitions, with what this node has installed of each."""
        ch = self._ch(channel)
        cfg = ch.view.require_config()
        return [self._definition(ch, c) | self._installed(ch, cfg, c.name) for c in cfg.contracts]

    @staticmethod
    def _definition(ch: ServiceChannel, d: ContractDefinition) -> dict[str, Any]:
        """A definition, with the admins who approved the transaction that last changed it."""
        approvals: list[str] = []
        if d.package_hash:
            got = ch.ledger.get_state(CONFIG_NAMESPACE, definition_key(d.name))
            if got is not None:
                block, index = got[1]
                tx = ch.ledger.get_block(block).transactions[index]
                approvals = sorted(_creator_name(e.endorser) for e in tx.endorsements)
        return {
            "name": d.name,
            "version": d.version,
            "policy": d.policy,
            "sequence": d.sequence,
            "package_hash": d.package_hash or None,
            "approvals": approvals,
        }

    @staticmethod
    def _installed(ch: ServiceChannel, cfg: ChannelConfig, name: str) -> dict[str, Any]:
        """What this node runs for contract ``name``: its version (``None`` when it has none, or
        its package cannot be loaded) and its functions."""
        try:
            contract = ch.endorser.lifecycle.resolve(name, cfg)
        except ContractLoadError:
            contract = None
        if contract is None:
            return {"installed": None, "functions": []}
        definition = cfg.contract(name)
        version = contract.version or (definition.version if definition is not None else "")
        return {"installed": version, "functions": [f.describe() for f in contract.functions.values()]}

    async def config_get(self, channel: str | None) -> dict[str, Any]:
        ch = self._ch(channel)
        cfg = ch.view.require_config()
        return {"sequence": cfg.sequence, "config": _config_json(cfg)}

    async def config_update(
        self,
        channel: str | None,
        config_obj: Any,
        signatures: list[tuple[bytes, bytes]],
        packages: Sequence[bytes] = (),
    ) -> SubmitResult:
        """Order a channel config update approved by ``signatures`` of channel admins, carrying
        the code of the contract ``packages`` its definitions commit."""
        self._gateway.require_gateway()
        ch = self._ch(channel)
        self._gateway.require_member(ch)
        current = ch.view.require_config()
        try:
            new = decode_config(config_obj)
            check_config(new, channel=ch.name)
            vet_update(current, new, packages)
        except (ConfigError, LifecycleError, EncodingError, ValueError) as exc:
            raise BadRequest(f"invalid configuration: {exc}") from exc
        if new.sequence != current.sequence + 1:
            raise BadRequest(f"configuration sequence must be {current.sequence + 1}, got {new.sequence}")
        msp = ch.view.msp()
        now = self._clock.now_ms() // 1000
        digest = config_update_digest(new)
        backend = get_backend()
        for cert, sig in signatures:
            try:
                ident = msp.validate(cert, now=now, roles={Role.ADMIN})
            except IdentityError as exc:
                raise Unauthorized(f"config approvals must come from channel admins: {exc}") from exc
            if not backend.verify(ident.public_key, sig, digest):
                raise Unauthorized(f"bad approval signature from {ident.id}")
        version = ch.ledger.get_version(CONFIG_NAMESPACE, CONFIG_KEY)
        cert_der, key = self._admin_signer()
        tx = config_transaction(
            new,
            creator_cert_der=cert_der,
            creator_key=key,
            approvals=signatures,
            current_version=version,
            timestamp_ms=now * 1000,
            packages=packages,
            previous=current,
        )
        fut = ch.wait_for(tx.tx_id)
        try:
            await self._gateway.order(ch, tx.encode())
            outcome = await asyncio.wait_for(asyncio.shield(fut), 30.0)
        finally:
            ch.forget_waiter(tx.tx_id, fut)
        return SubmitResult(tx.tx_id, outcome.block_number, outcome.code)

    # ------------------------------------------------------------------ events
    def subscribe(self, channel: str | None, kinds: frozenset[str], tx_id: bytes | None = None) -> AsyncIterator[Event]:
        return self._ch(channel).subscribe(kinds, tx_id)


# Distinct certificates named in transaction reads: a city has thousands of identities at most.
CREATOR_NAME_CACHE_MAX = 4096


@functools.lru_cache(maxsize=CREATOR_NAME_CACHE_MAX)
def _creator_name(cert_der: bytes) -> str:
    """ "org/name (role)" of a certificate; parsed once per distinct certificate."""
    try:
        ident = Identity.from_cert(cert_der)
    except IdentityError:
        return "?"
    return f"{ident.org}/{ident.name} ({ident.role.value})"


def _config_json(cfg: ChannelConfig) -> dict[str, Any]:
    return {
        "channel": cfg.channel,
        "sequence": cfg.sequence,
        "orgs": [{"name": o.name, "crls": len(o.crls)} for o in cfg.orgs],
        "nodes": [{"name": n.name, "org": n.org, "address": n.address, "orderer": n.orderer} for n in cfg.nodes],
        "batch": {
            "max_tx_count": cfg.batch.max_tx_count,
            "preferred_max_bytes": cfg.batch.preferred_max_bytes,
            "absolute_max_bytes": cfg.batch.absolute_max_bytes,
            "timeout_ms": cfg.batch.timeout_ms,
        },
        "contracts": [{"name": c.name, "version": c.version, "policy": c.policy} for c in cfg.contracts],
        "admin_policy": cfg.admin_policy,
        "collections": [
            {
                "contract": c.contract,
                "name": c.name,
                "member_orgs": list(c.member_orgs),
                "required_peers": c.required_peers,
                "max_peers": c.max_peers,
                "block_to_live": c.block_to_live,
            }
            for c in cfg.collections
        ],
        "encoded": encode(cfg.to_obj()),
    }
