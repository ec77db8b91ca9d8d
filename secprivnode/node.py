"""The node daemon: assembly, lifecycle and graceful shutdown.

Components are started in dependency order under one :class:`contextlib.AsyncExitStack` and
unwound in reverse, also when start-up fails half-way:

    storage → identity → transport → channels (ledger, pipeline, Raft, ordering) → gossip → RPC

Shutdown (SIGTERM/SIGINT, or :meth:`Node.request_stop`): the RPC and operations servers stop
accepting work, each channel hands its Raft leadership to a caught-up follower and stops ordering,
gossip and the transport close, then storage. Every task is owned by the component that created
it, and each component's ``stop`` cancels and awaits its own.

This module wires components together; it holds no protocol logic of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import ssl
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from crypto.batch import BatchVerifier
from crypto.msp import MSP, Identity, IdentityError, Role
from crypto.signing import BACKEND_ENV, PrivateKey, PublicKey
from crypto.tls import TLS_VERSIONS, build_context
from p2p.api import PeerTransport
from p2p.gossip.core import GossipCore
from p2p.gossip.service import GossipService
from p2p.transport import Transport
from secprivnode import wire
from secprivnode.blobnet import BlobNet
from secprivnode.channel import ChannelRuntime
from secprivnode.clock import NodeClock, SystemClock
from secprivnode.config import NodeConfig, parse_hostport
from secprivnode.contracts.builtin import builtin_registry
from secprivnode.gateway import Gateway
from secprivnode.genesis import read_genesis
from secprivnode.memory import tune_allocator
from secprivnode.metrics import NodeMetrics
from secprivnode.metrics_feed import feed_channel, feed_node
from secprivnode.ops import create_ops_app
from secprivnode.privnet import GossipPrivateStore, PrivateNet
from secprivnode.rpc.blobs import add_blob_routes
from secprivnode.rpc.server import RpcLimits, create_rpc_app, run_rpc_server
from secprivnode.service import LocalNodeService
from storage.blobstore import BlobStore
from storage.kv import Database
from storage.model import ChannelConfig
from storage.privstate import WriteSet
from storage.writer import set_write_failure_handler

__all__ = ["Node", "NodeStartError", "run_node"]

log = logging.getLogger(__name__)

# How long a graceful shutdown may take before the remaining tasks are cancelled.
SHUTDOWN_TIMEOUT_S = 20.0
# Exit code of a node whose database refused a write (EX_IOERR of sysexits.h): the service
# manager restarts it, and it comes up once the disk has space again.
EXIT_STORAGE_FAILED = 74


class NodeStartError(RuntimeError):
    """The node cannot start with this configuration (bad identity, genesis, ports…)."""


def rpc_tls_context(config: NodeConfig) -> ssl.SSLContext | None:
    """The server context of the RPC and operations listeners (``rpc.tls``), or ``None`` for plain HTTP.

    The certificate defaults to the node's own (its SANs name the host clients dial); with
    ``client_ca`` clients must present a certificate that CA bundle issued (mutual TLS).
    """
    tls = config.rpc.tls
    if not tls.enabled:
        return None
    cert_path = tls.cert or config.identity.cert
    key_path = tls.key or config.identity.key
    try:
        cert_pem = cert_path.read_bytes()
        key = PrivateKey.from_pem(key_path.read_bytes())
        client_cas = tls.client_ca.read_text() if tls.client_ca is not None else ""
        return build_context(
            server=True,
            cas_pem=client_cas,
            cert_pem=cert_pem,
            key=key,
            require_peer_cert=tls.client_ca is not None,
            minimum=TLS_VERSIONS[tls.min_version],
        )
    except (OSError, ValueError, ssl.SSLError) as exc:
        raise NodeStartError(f"rpc.tls: cannot load the TLS certificate, key or client CA: {exc}") from exc


def _load_identity(config: NodeConfig) -> tuple[Identity, PrivateKey, bytes]:
    try:
        cert_pem = config.identity.cert.read_bytes()
        key = PrivateKey.from_pem(config.identity.key.read_bytes())
        ident = Identity.from_cert(cert_pem)
    except (OSError, ValueError, IdentityError) as exc:
        raise NodeStartError(f"cannot load the node identity: {exc}") from exc
    if ident.role is not Role.NODE:
        raise NodeStartError(f"{config.identity.cert} is a {ident.role.value} certificate, not a node certificate")
    if (ident.name, ident.org) != (config.node.name, config.node.org):
        raise NodeStartError(
            f"certificate is for {ident.org}/{ident.name} but the config says {config.node.org}/{config.node.name}"
        )
    if ident.public_key != key.public:
        raise NodeStartError("the private key does not match the certificate")
    return ident, key, cert_pem


class Node:
    """One node process. ``async with Node(cfg) as node`` starts it; leaving the block stops it."""

    def __init__(
        self,
        config: NodeConfig,
        *,
        clock: NodeClock | None = None,
        rng: random.Random | None = None,
        make_transport: Callable[[Identity], PeerTransport] | None = None,
    ) -> None:
        """``clock``, ``rng`` and ``make_transport`` replace the system clock, the seed from
        ``os.urandom`` and the TLS transport (e.g. with a virtual clock, a seeded generator and an
        in-memory transport); the node passes the one clock to every component."""
        self.config = config
        self.clock: NodeClock = clock if clock is not None else SystemClock()
        self._rng = rng
        self._make_transport = make_transport
        self.metrics = NodeMetrics()
        self.channels: dict[str, ChannelRuntime] = {}
        self._members: dict[str, tuple[ChannelConfig, frozenset[str]]] = {}  # channel -> (config, node names)
        self.rpc_port = 0
        self.ops_port = 0
        self.p2p_port = 0
        self._stack = contextlib.AsyncExitStack()
        self._stop = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Node:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    def request_stop(self) -> None:
        self._stop.set()

    async def wait_stopped(self) -> None:
        await self._stop.wait()

    async def _start(self) -> None:
        cfg = self.config
        os.environ[BACKEND_ENV] = cfg.crypto.backend
        ident, key, cert_pem = _load_identity(cfg)
        self.identity = ident

        # storage
        cfg.node.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            db = Database(
                cfg.node.data_dir / "ledger",
                block_cache_bytes=cfg.storage.block_cache_bytes,
                write_buffer_bytes=cfg.storage.write_buffer_bytes,
                max_open_files=cfg.storage.max_open_files,
            )
        except Exception as exc:
            raise NodeStartError(f"cannot open the ledger in {cfg.node.data_dir}: {exc}") from exc
        self._stack.callback(db.close)
        if cfg.crypto.verify_workers > 0:
            verifier = BatchVerifier(workers=cfg.crypto.verify_workers)
        else:
            verifier = BatchVerifier(workers=1, inline_max=1 << 62)  # never leaves the process
        self._stack.callback(verifier.close)

        genesis = {}
        for spec in cfg.channels:
            try:
                genesis[spec.name] = read_genesis(spec.genesis, spec.name)
            except (OSError, ValueError) as exc:
                raise NodeStartError(f"channel {spec.name}: cannot read genesis block {spec.genesis}: {exc}") from exc

        # transport; its trust store follows the default channel's membership
        rng = self._rng or random.Random(int.from_bytes(os.urandom(8), "big"))
        transport: PeerTransport
        if self._make_transport is not None:
            transport = self._make_transport(ident)
        else:
            host, port = parse_hostport(cfg.p2p.listen, "p2p.listen")
            transport = Transport(
                identity=ident,
                key=key,
                cert_pem=cert_pem,
                msp_provider=self._default_msp,
                network_id=cfg.p2p.network_id,
                channels=[c.name for c in cfg.channels],
                listen_host=host,
                listen_port=port,
                advertise_address=cfg.p2p.advertised,
                rng=rng,
                clock=self.clock,
            )
        self.transport = transport
        contracts = builtin_registry()
        for spec in cfg.channels:
            self.channels[spec.name] = ChannelRuntime(
                name=spec.name,
                db=db,
                genesis=genesis[spec.name],
                config=cfg,
                identity=ident,
                key=key,
                transport=transport,
                contracts=contracts,
                metrics=self.metrics,
                verifier=verifier,
                rng=rng,
                clock=self.clock,
            )
        feed_node(self.metrics, transport.connected_peers)
        for name, ch in self.channels.items():
            feed_channel(self.metrics, name, ch.raft_status)
        self.gateway = Gateway(
            ident.name,
            ident.org,
            self.channels,
            transport,
            gateway=cfg.has_role("gateway"),
            endorser=cfg.has_role("endorser"),
            metrics=self.metrics,
            disseminate=self._disseminate,
        )
        transport.register_app_handler(wire.RAFT, self._on_raft)
        transport.register_request_handler(wire.SUBMIT, self._on_submit)
        transport.register_request_handler(wire.ENDORSE, self.gateway.on_endorse)
        private_store = GossipPrivateStore({n: ch.privdata for n, ch in self.channels.items()})
        try:
            await transport.start()
        except OSError as exc:
            raise NodeStartError(f"cannot listen for peers on {cfg.p2p.listen}: {exc.strerror}") from exc
        self._stack.push_async_callback(transport.stop)
        self.p2p_port = transport.listen_port
        for b in cfg.p2p.bootstrap:
            name, _, addr = b.rpartition("@")
            if name:
                transport.add_peer(name, addr)

        # gossip
        core = GossipCore(
            node_id=ident.name,
            org=ident.org,
            address=cfg.p2p.advertised,
            cert_der=ident.cert_der,
            key=key,
            incarnation=self.clock.now_ms(),
            stores={n: ch.gossip_store for n, ch in self.channels.items()},
            resolve_key=self._orderer_key,
            validate_cert=self._validate_node_cert,
            rng=random.Random(rng.getrandbits(64)),
            private_store=private_store,
            collections=private_store.collections,
            is_member=self._channel_member,
        )
        privdata = {n: ch.privdata for n, ch in self.channels.items()}
        blobs = BlobStore(cfg.node.data_dir / "blobs", max_blob_bytes=cfg.rpc.max_blob_bytes)
        self.blobnet = BlobNet(ident.name, ident.org, transport, blobs, privdata, cfg.default_channel)
        self.blobnet.register()
        assert core.private is not None  # a private store was given
        self.privnet = PrivateNet(ident.name, transport, core.private, privdata, on_blobs_due=self.blobnet.purge)
        self.privnet.register()
        # The clock's unix milliseconds: the core also judges certificate validity with them.
        gossip = GossipService(transport, core, clock=self.clock, connect_discovered=True)

        # channels: commit loops, Raft and ordering
        for ch in self.channels.values():
            await ch.start(publish=gossip.publish_block)
            self._stack.push_async_callback(ch.stop)
        await gossip.start()
        self._stack.push_async_callback(gossip.stop)
        await self.privnet.start()
        self._stack.push_async_callback(self.privnet.stop)
        await self.blobnet.start()
        self._stack.push_async_callback(self.blobnet.stop)

        # RPC and operations
        self.service = LocalNodeService(
            cfg, self.channels, self.gateway, transport, lambda: (ident.cert_der, key), clock=self.clock
        )
        limits = RpcLimits(max_body_bytes=cfg.rpc.max_body_bytes, max_batch_len=cfg.rpc.max_batch)
        tls = rpc_tls_context(cfg)
        rpc_app = create_rpc_app(self.service, limits=limits, metrics=self.metrics)
        add_blob_routes(rpc_app, self.blobnet)
        await self._serve(rpc_app, cfg.rpc.listen, "rpc", tls)
        await self._serve(create_ops_app(self.service, self.metrics.registry), cfg.rpc.operations_listen, "ops", tls)
        log.info(
            "node %s (%s) up: p2p :%d, rpc :%d, ops :%d (%s), channels %s",
            ident.name,
            ident.org,
            self.p2p_port,
            self.rpc_port,
            self.ops_port,
            "https" if tls is not None else "http",
            ", ".join(self.channels),
        )

    async def _serve(self, app: web.Application, listen: str, which: str, tls: ssl.SSLContext | None) -> None:
        host, port = parse_hostport(listen, which)
        try:
            runner, bound = await run_rpc_server(app, host, port, ssl_context=tls)
        except OSError as exc:
            raise NodeStartError(f"cannot listen for {which} on {listen}: {exc.strerror}") from exc
        self._stack.push_async_callback(runner.cleanup)
        if which == "rpc":
            self.rpc_port = bound
        else:
            self.ops_port = bound

    async def _disseminate(self, channel: str, write_sets: Sequence[WriteSet]) -> None:
        await self.privnet.disseminate(channel, write_sets)

    # ------------------------------------------------------------------ peers
    def _default_msp(self) -> MSP:
        return self.channels[self.config.default_channel].view.msp()

    def _validate_node_cert(self, cert_der: bytes, now: int) -> Identity:
        return self._default_msp().validate(cert_der, now=now, roles={Role.NODE})

    def _orderer_key(self, channel: str, cert_der: bytes) -> PublicKey | None:
        ch = self.channels.get(channel)
        if ch is None:
            return None
        cfg = ch.view.config()
        if cfg is None:
            return None
        try:
            ident = ch.view.msp().validate(cert_der, now=self.clock.now_ms() // 1000, roles={Role.NODE})
        except IdentityError:
            return None
        node = cfg.node(ident.name)
        if node is None or not node.orderer or node.org != ident.org:
            return None
        return ident.public_key

    def _channel_member(self, channel: str, node_id: str) -> bool:
        """Whether ``node_id`` is listed in ``channel``'s latest configuration (gossip serves and
        accepts a channel's blocks only between its members)."""
        ch = self.channels.get(channel)
        cfg = None if ch is None else ch.view.config()
        if cfg is None:
            return False
        cached = self._members.get(channel)
        if cached is None or cached[0] is not cfg:
            cached = (cfg, frozenset(n.name for n in cfg.nodes))
            self._members[channel] = cached
        return node_id in cached[1]

    def _on_raft(self, peer: str, payload: Any) -> None:
        try:
            channel, msg = payload
            ch = self.channels[channel]
        except (ValueError, TypeError, KeyError):
            return
        try:
            ch.on_raft_message(peer, msg)
        except (ValueError, TypeError) as exc:
            log.warning("bad Raft message from %s: %s", peer, exc)

    async def _on_submit(self, peer: str, payload: Any) -> Any:
        try:
            channel, tx_bytes = payload
        except (ValueError, TypeError):
            return wire.err(wire.ErrorCode.PROTOCOL, "malformed submission")
        ch = self.channels.get(channel) if isinstance(channel, str) else None
        if ch is None:
            return wire.err(wire.ErrorCode.UNKNOWN_CHANNEL, f"this node does not serve channel {channel!r}")
        if not isinstance(tx_bytes, bytes):
            return wire.err(wire.ErrorCode.BAD_REQUEST, "transaction must be bytes")
        return await ch.on_submit(peer, tx_bytes)


def _stop_on_write_failure(exc: BaseException) -> None:
    """The database refused a write: log why and exit at once (see storage/writer.py).

    Nothing more is written (not even a graceful shutdown's), so the ledger stays as its last
    complete write left it; the restart reopens it and catches up from the peers.
    """
    log.critical(
        "storage: the database refused a write (%s); stopping the node now so that nothing more is "
        "written to it. Free space or repair the disk, then restart the node: it reopens its ledger "
        "and catches up from its peers",
        exc,
    )
    logging.shutdown()  # flush the log handlers: the exit below skips every cleanup
    os._exit(EXIT_STORAGE_FAILED)


async def run_node(config: NodeConfig) -> int:
    """Run until SIGTERM/SIGINT; return the process exit code."""
    set_write_failure_handler(_stop_on_write_failure)
    if config.memory.pin_malloc:
        tune_allocator()  # before the ledger and buffers are allocated; see secprivnode/memory.py
    else:
        log.info("malloc tuning off (memory.pin_malloc: false)")
    node = Node(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, node.request_stop)
    try:
        await node.__aenter__()
    except NodeStartError as exc:
        log.error("%s", exc)
        return 2
    await node.wait_stopped()
    log.info("shutting down")
    try:
        await asyncio.wait_for(node.__aexit__(None, None, None), SHUTDOWN_TIMEOUT_S)
    except TimeoutError:
        log.error("shutdown did not finish within %.0fs; exiting anyway", SHUTDOWN_TIMEOUT_S)
        return 1
    log.info("stopped")
    return 0
