"""Client SDK: load an identity, build and sign proposals, talk to any node over JSON-RPC.

Small enough for a device: it needs ``aiohttp``, the canonical encoding and ECDSA. The client
builds the proposal (random nonce from ``os.urandom``, timestamp from the client's own clock, which
is informational only), signs ``Proposal.hash()`` and sends the canonical bytes as hex, so the
node verifies exactly what was signed. Inclusion proofs are checked with hashing and RFC 6962
Merkle paths only (:func:`verify_inclusion`); a client need not trust the node it asked.

* :class:`AsyncClient` — asyncio, an async context manager; ``subscribe`` is an async iterator.
* :class:`Client` — the same methods, synchronous, running an event loop in its own thread.

Errors from the node arrive as :class:`RpcError` subclasses chosen by code (the application codes
mirror :data:`secprivnode.api.ERROR_CODES`). Contract arguments are Python values the canonical
encoding accepts; floats are refused (nothing hashed may hold a float).

State reads (``state_get``, ``state_get_range``, ``state_get_history``) are signed read requests
(:mod:`secprivnode.signed_read`) with a fresh nonce each. ``https://`` URLs take a
:class:`ClientTLS` naming the CAs to trust (the channel organisations' root CAs) and, for nodes that
require mutual TLS, the identity to present.

This module must never sign anything but ``Proposal.hash()``, ``config_update_digest`` and read
request digests, and must never send a private key anywhere.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import ssl
import threading
import time
from collections.abc import Coroutine, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from crypto.encoding import EncodingError, encode
from crypto.signing import PrivateKey, PublicKey, sign
from secprivnode.client_tls import ClientTLS
from secprivnode.rpc.codec import CodecError, from_hex, header_from_json, proposal_to_hex, to_hex
from secprivnode.rpc.errors import (
    BadRequest,
    ContractFailed,
    InternalError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    NotFound,
    NotLeader,
    Overloaded,
    ParseError,
    RpcError,
    RpcTimeout,
    ServerError,
    TxRejected,
    Unauthenticated,
    Unauthorized,
    UnknownChannel,
    rpc_error,
)
from secprivnode.signed_read import SIGNED_READ_PARAMS, auth_to_json, sign_read
from storage.model import NONCE_BYTES, ChannelConfig, Proposal, ProposalHeader, config_update_digest

__all__ = [
    "ArgumentError",
    "AsyncClient",
    "BadRequest",
    "Client",
    "ClientIdentity",
    "ClientTLS",
    "ContractFailed",
    "InternalError",
    "InvalidParams",
    "InvalidRequest",
    "MethodNotFound",
    "NotFound",
    "NotLeader",
    "Overloaded",
    "ParseError",
    "PreparedTx",
    "RpcError",
    "RpcTimeout",
    "ServerError",
    "Subscription",
    "SubscriptionClosed",
    "SyncSubscription",
    "TransportError",
    "TxRejected",
    "TxResult",
    "Unauthenticated",
    "Unauthorized",
    "UnknownChannel",
    "build_proposal",
    "check_args",
    "rpc_error",
    "verify_inclusion",
]

# Largest response body the client accepts: a block summary or a page of 1000 state entries fits
# comfortably; the bound protects a small device from a misbehaving node.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
# Default seconds for one HTTP round trip (tx_submitAndWait adds its own wait on top).
DEFAULT_HTTP_TIMEOUT_S = 60.0
# Pause between resubmissions of one proposal (and between polls of its status): a few Raft ticks,
# short beside an election (1-2 s), so a leader change costs little latency without a busy loop.
RESUBMIT_PAUSE_S = 0.25
# Seconds one attempt waits for its commit before the proposal is resubmitted: a commit takes about
# one BatchTimeout (200 ms) with a leader up, an election 1-2 s; a submission a leader took with it
# when it died is never committed, and only a resubmission brings it to the new leader.
ATTEMPT_WAIT_S = 5.0
# Refusal reasons meaning "this transaction id is already ordered or committed" (the endorser's
# replay check, the orderer's recent-id set).
DUPLICATE_REASONS = ("duplicate_txid", "DuplicateTransaction", "duplicate")


# ---- transport errors (JSON-RPC error objects are in secprivnode.rpc.errors) ---------------------


class TransportError(Exception):
    """The node could not be reached, or answered something that is not JSON-RPC."""


class SubscriptionClosed(TransportError):
    """The node closed the subscription's WebSocket (``close_code`` says why; 4000 = too slow)."""

    def __init__(self, message: str, close_code: int | None) -> None:
        super().__init__(message)
        self.close_code = close_code


class ArgumentError(TypeError):
    """A contract argument has no canonical encoding (a float, an unsupported type, an int out of range)."""


# ---- identity and proposals -------------------------------------------------------------------------


def _attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    attrs = name.get_attributes_for_oid(oid)
    return str(attrs[0].value) if attrs else ""


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """An X.509 identity: certificate (DER) and the matching P-256 private key."""

    cert_der: bytes
    key: PrivateKey = field(repr=False)
    org: str = ""
    name: str = ""
    role: str = ""

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes, password: bytes | None = None) -> ClientIdentity:
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
        except ValueError as exc:
            raise ValueError(f"bad certificate PEM: {exc}") from exc
        key = PrivateKey.from_pem(key_pem, password)
        spki = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if PublicKey.from_der(spki) != key.public:
            raise ValueError("the private key does not match the certificate")
        subject = cert.subject
        return cls(
            cert.public_bytes(serialization.Encoding.DER),
            key,
            _attr(subject, NameOID.ORGANIZATION_NAME),
            _attr(subject, NameOID.COMMON_NAME),
            _attr(subject, NameOID.ORGANIZATIONAL_UNIT_NAME),
        )

    @classmethod
    def load(cls, cert_path: str | os.PathLike[str], key_path: str | os.PathLike[str]) -> ClientIdentity:
        return cls.from_pem(Path(cert_path).read_bytes(), Path(key_path).read_bytes())

    def sign(self, data: bytes) -> bytes:
        return sign(self.key, data)


def check_args(args: Sequence[Any]) -> tuple[Any, ...]:
    """Refuse contract arguments the canonical encoding cannot carry, with a message saying which."""

    def walk(v: Any, where: str) -> None:
        if isinstance(v, float):
            raise ArgumentError(f"{where}: floats are not allowed (use an integer in fixed point, or a string)")
        if isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                walk(x, f"{where}[{i}]")
        elif isinstance(v, dict):
            for k, x in v.items():
                if not isinstance(k, str):
                    raise ArgumentError(f"{where}: map keys must be strings, got {type(k).__name__}")
                walk(x, f"{where}[{k!r}]")
        elif not (v is None or isinstance(v, (bool, int, str, bytes))):
            raise ArgumentError(f"{where}: unsupported type {type(v).__name__}")

    for i, a in enumerate(args):
        walk(a, f"argument {i}")
    try:
        encode(list(args))
    except EncodingError as exc:
        raise ArgumentError(str(exc)) from exc
    return tuple(args)


def build_proposal(
    identity: ClientIdentity,
    channel: str,
    contract: str,
    function: str,
    args: Sequence[Any],
    *,
    transient: Mapping[str, bytes] | None = None,
    nonce: bytes | None = None,
    timestamp_ms: int | None = None,
) -> tuple[Proposal, bytes]:
    """A proposal and the creator's signature over ``Proposal.hash()``."""
    header = ProposalHeader(
        channel,
        identity.cert_der,
        nonce if nonce is not None else os.urandom(NONCE_BYTES),
        timestamp_ms if timestamp_ms is not None else int(time.time() * 1000),
    )
    proposal = Proposal(header, contract, function, check_args(args), dict(transient or {}))
    return proposal, identity.sign(proposal.hash())


def verify_inclusion(proof: Mapping[str, Any], expected_block_hash: bytes | None = None) -> bool:
    """Whether ``proof`` (a ``chain_getTxProof`` result) proves its tx hash is in its block.

    Recomputes the block hash from the header fields, compares it with the proof's block hash (and
    ``expected_block_hash`` when given, e.g. from a block the caller trusts), then checks the RFC 6962
    audit path against the header's data hash. Any malformed field gives ``False``.
    """
    from crypto.merkle import verify_proof

    try:
        header = header_from_json(proof["header"])
        block_hash = from_hex(proof["block_hash"], "block_hash", length=32)
        tx_hash = from_hex(proof["tx_hash"], "tx_hash", length=32)
        path = [from_hex(p, "path", length=32) for p in proof["path"]]
        index, size = proof["index"], proof["size"]
    except (CodecError, KeyError, TypeError):
        return False
    if header.hash() != block_hash:
        return False
    if expected_block_hash is not None and block_hash != expected_block_hash:
        return False
    return verify_proof(tx_hash, index, size, path, header.data_hash)


def _unconfirmed(tx_id: bytes, timeout_s: float) -> RpcTimeout:
    return RpcTimeout(
        RpcTimeout.code,
        f"transaction {tx_id.hex()} not confirmed within {timeout_s}s; an earlier attempt may still commit",
        {"tx_id": to_hex(tx_id)},
    )


@dataclass(frozen=True, slots=True)
class PreparedTx:
    """A signed proposal ready to send (``params`` of tx_submit); every resubmission reuses its id."""

    tx_id: bytes
    params: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class TxResult:
    tx_id: bytes
    block_number: int | None = None
    code: str | None = None  # validation code name once committed
    response: Mapping[str, Any] = field(default_factory=dict)  # status, message, payload (bytes), events

    @property
    def valid(self) -> bool:
        return self.code == "VALID"


def _response(obj: Any) -> dict[str, Any]:
    """Decode the hex payloads of a contract response."""
    if not isinstance(obj, dict):
        return {}
    out = dict(obj)
    if isinstance(out.get("payload"), str):
        out["payload"] = from_hex(out["payload"], "payload")
    if isinstance(out.get("events"), list):
        out["events"] = [
            {**e, "payload": from_hex(e["payload"], "event payload")} if isinstance(e, dict) else e
            for e in out["events"]
        ]
    return out


def _state_row(row: Any) -> dict[str, Any]:
    out = dict(row)
    if isinstance(out.get("value"), str):
        out["value"] = from_hex(out["value"], "value")
    return out


# ---- async client ---------------------------------------------------------------------------------


class AsyncClient:
    """JSON-RPC client of one node. ``channel=None`` means the node's default channel."""

    def __init__(
        self,
        url: str,
        identity: ClientIdentity | None = None,
        channel: str | None = None,
        *,
        timeout_s: float = DEFAULT_HTTP_TIMEOUT_S,
        tls: ClientTLS | None = None,
    ) -> None:
        self.url = url.rstrip("/") + "/"
        self.ws_url = "ws" + self.url.removeprefix("http") + "ws"
        self.identity = identity
        self.channel = channel
        self._timeout_s = timeout_s
        # https:// without ClientTLS verifies against the system's CAs, which do not issue node
        # certificates: the connection then fails rather than trust an unknown server.
        self._ssl: ssl.SSLContext | None = tls.context() if tls is not None else None
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self._ssl) if self._ssl is not None else None
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout_s), connector=connector
            )
        return self._session

    async def call(
        self, method: str, params: Mapping[str, Any] | None = None, *, timeout_s: float | None = None
    ) -> Any:
        """One JSON-RPC call with named params; raise the :class:`RpcError` the node returned."""
        req = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": dict(params or {})}
        timeout = aiohttp.ClientTimeout(total=timeout_s) if timeout_s is not None else None
        try:
            async with self._http().post(self.url, json=req, timeout=timeout) as resp:
                body = await resp.content.read(MAX_RESPONSE_BYTES + 1)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransportError(f"{method}: {type(exc).__name__}: {exc}") from exc
        if len(body) > MAX_RESPONSE_BYTES:
            raise TransportError(f"{method}: response larger than {MAX_RESPONSE_BYTES} bytes")
        try:
            msg = json.loads(body)
        except ValueError as exc:
            raise TransportError(f"{method}: HTTP {status}, body is not JSON") from exc
        if not isinstance(msg, dict):
            raise TransportError(f"{method}: HTTP {status}, unexpected response shape")
        if "error" in msg and isinstance(msg["error"], dict):
            e = msg["error"]
            raise rpc_error(int(e.get("code", 0)), str(e.get("message", "")), e.get("data"))
        if "result" not in msg:
            raise TransportError(f"{method}: HTTP {status}, response has neither result nor error")
        return msg["result"]

    async def default_channel(self) -> str:
        if self.channel is None:
            status = await self.call("node_status")
            self.channel = str(status["default_channel"])
        return self.channel

    def _need_identity(self) -> ClientIdentity:
        if self.identity is None:
            raise ValueError("this operation signs a proposal: create the client with an identity")
        return self.identity

    async def _signed(
        self, contract: str, fn: str, args: Sequence[Any], transient: Mapping[str, bytes] | None
    ) -> dict[str, Any]:
        return dict((await self.prepare(contract, fn, *args, transient=transient)).params)

    async def prepare(
        self, contract: str, fn: str, *args: Any, transient: Mapping[str, bytes] | None = None
    ) -> PreparedTx:
        """Build and sign a proposal without sending it: its transaction id is known from here on."""
        proposal, signature = build_proposal(self._need_identity(), await self.default_channel(), contract, fn, args)
        params: dict[str, Any] = {"proposal": proposal_to_hex(proposal), "signature": to_hex(signature)}
        if transient:
            params["transient"] = {k: to_hex(v) for k, v in transient.items()}
        return PreparedTx(proposal.tx_id, params)

    async def invoke(
        self,
        contract: str,
        fn: str,
        *args: Any,
        transient: Mapping[str, bytes] | None = None,
        wait: bool = True,
        timeout_s: float = 30.0,
    ) -> TxResult:
        """Submit a transaction; with ``wait`` return once it is committed (code and block number)."""
        prepared = await self.prepare(contract, fn, *args, transient=transient)
        return await self.submit(prepared, wait=wait, timeout_s=timeout_s)

    async def submit(self, prepared: PreparedTx, *, wait: bool = True, timeout_s: float = 30.0) -> TxResult:
        """Send a prepared proposal; with ``wait`` return once it is committed (code and block number).

        A refusal for want of a leader (NotLeader, Overloaded) or an unanswered request (a lost
        connection, no commit within :data:`ATTEMPT_WAIT_S`) is resubmitted with the SAME proposal,
        hence the same transaction id, until ``timeout_s`` has passed: the id can be VALID only
        once, so a resubmission can never commit twice.

        Once an attempt went unanswered (or was refused by an overloaded or unreachable leader,
        which may have taken it after all), no later answer is definite on its own: a later
        refusal (a duplicate id, or a contract that now fails on state the first attempt
        changed) sends the client to wait for the transaction's commit, and if none is seen by
        the timeout it raises :class:`RpcTimeout` ("it may still commit"), never the refusal.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        ambiguous = False  # an earlier attempt may have been ordered
        attempt = 0
        while True:
            remaining = max(deadline - loop.time(), 0.0)
            try:
                return await self._submit_once(prepared, wait, min(remaining, ATTEMPT_WAIT_S))
            except (NotLeader, Overloaded, RpcTimeout, TransportError) as exc:
                if isinstance(exc, SubscriptionClosed):
                    raise
                ambiguous = ambiguous or not isinstance(exc, NotLeader)
                if loop.time() + RESUBMIT_PAUSE_S >= deadline:
                    if ambiguous and not isinstance(exc, RpcTimeout):
                        raise _unconfirmed(prepared.tx_id, timeout_s) from exc
                    raise
            except RpcError as exc:
                reason = exc.data.get("reason") if isinstance(exc.data, dict) else None
                if ambiguous or (attempt > 0 and reason in DUPLICATE_REASONS):
                    return await self._await_commit(prepared.tx_id, deadline, exc)
                raise
            attempt += 1
            await asyncio.sleep(RESUBMIT_PAUSE_S)

    async def _submit_once(self, prepared: PreparedTx, wait: bool, timeout_s: float) -> TxResult:
        params = dict(prepared.params)
        if not wait:
            return TxResult(from_hex(await self.call("tx_submit", params), "tx_id"))
        params["timeout_s"] = timeout_s
        r = await self.call("tx_submitAndWait", params, timeout_s=timeout_s + self._timeout_s)
        return TxResult(from_hex(r["tx_id"], "tx_id"), r.get("block_number"), r.get("code"), _response(r["response"]))

    async def _await_commit(self, tx_id: bytes, deadline: float, refusal: RpcError) -> TxResult:
        """Poll ``tx_status`` until ``tx_id`` is committed; raise ``refusal``'s timeout if it is not in time."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                st = await self.tx_status(tx_id)
                if st.get("status") == "committed":
                    return TxResult(tx_id, st.get("block"), st.get("code"))
            except (RpcError, TransportError):
                pass  # the node is busy or restarting: ask again
            if loop.time() + RESUBMIT_PAUSE_S >= deadline:
                raise RpcTimeout(
                    RpcTimeout.code,
                    f"transaction {tx_id.hex()} was ordered by an earlier attempt but not seen committed in time",
                    {"tx_id": to_hex(tx_id)},
                ) from refusal
            await asyncio.sleep(RESUBMIT_PAUSE_S)

    async def query(
        self, contract: str, fn: str, *args: Any, transient: Mapping[str, bytes] | None = None
    ) -> dict[str, Any]:
        """Evaluate a query function on committed state; nothing is ordered."""
        return _response(await self.call("tx_query", await self._signed(contract, fn, args, transient)))

    async def config_update(
        self,
        config: ChannelConfig,
        admins: Sequence[ClientIdentity],
        channel: str | None = None,
        packages: Sequence[bytes] = (),
    ) -> dict[str, Any]:
        """Propose ``config``, signed by each admin identity over ``config_update_digest``."""
        d = config_update_digest(config)
        return await self.submit_config(config, [(a.cert_der, a.sign(d)) for a in admins], channel, packages)

    async def submit_config(
        self,
        config: ChannelConfig,
        approvals: Sequence[tuple[bytes, bytes]],
        channel: str | None = None,
        packages: Sequence[bytes] = (),
    ) -> dict[str, Any]:
        """Propose ``config`` with admins' approvals already made: (cert DER, signature over
        ``config_update_digest``) pairs; ``packages`` is the code of the contract packages it commits."""
        params: dict[str, Any] = {
            "config": to_hex(encode(config.to_obj())),
            "signatures": [[to_hex(c), to_hex(s)] for c, s in approvals],
            "channel": channel or self.channel,
        }
        if packages:
            params["packages"] = [to_hex(p) for p in packages]
        return dict(await self.call("config_update", params))

    def _ch(self, extra: dict[str, Any]) -> dict[str, Any]:
        return {**extra, "channel": self.channel}

    async def height(self) -> int:
        return int(await self.call("chain_height", self._ch({})))

    async def contracts(self) -> list[dict[str, Any]]:
        """The channel's contract definitions with the functions the node has installed."""
        return list(await self.call("contract_list", self._ch({})))

    async def get_block(self, number: int) -> dict[str, Any]:
        return dict(await self.call("chain_getBlockByNumber", self._ch({"number": number})))

    async def get_block_by_hash(self, block_hash: bytes) -> dict[str, Any]:
        return dict(await self.call("chain_getBlockByHash", self._ch({"hash": to_hex(block_hash)})))

    async def get_tx(self, tx_id: bytes) -> dict[str, Any]:
        return dict(await self.call("chain_getTransaction", self._ch({"tx_id": to_hex(tx_id)})))

    async def tx_status(self, tx_id: bytes) -> dict[str, Any]:
        return dict(await self.call("tx_status", self._ch({"tx_id": to_hex(tx_id)})))

    async def get_tx_proof(self, tx_id: bytes) -> dict[str, Any]:
        return dict(await self.call("chain_getTxProof", self._ch({"tx_id": to_hex(tx_id)})))

    async def _signed_read(self, method: str, params: dict[str, Any]) -> Any:
        """Call a state read with ``auth``: a fresh read request signed by this client's identity."""
        ident = self._need_identity()
        channel = await self.default_channel()
        signed_params = [params[name] for name in SIGNED_READ_PARAMS[method]]
        read = sign_read(ident.cert_der, ident.sign, channel, method, signed_params)
        return await self.call(method, {**params, "channel": channel, "auth": auth_to_json(read)})

    async def state_get(self, contract: str, key: str) -> dict[str, Any] | None:
        """A key's committed value and version, or ``None`` (a read signed with this identity)."""
        r = await self._signed_read("state_get", {"contract": contract, "key": key})
        return None if r is None else _state_row(r)

    async def state_get_range(self, contract: str, start: str, end: str, limit: int = 100) -> list[dict[str, Any]]:
        """Committed keys in [start, end) with values and versions (a signed read)."""
        rows = await self._signed_read(
            "state_getRange", {"contract": contract, "start": start, "end": end, "limit": limit}
        )
        return [_state_row(r) for r in rows]

    async def state_get_history(self, contract: str, key: str, limit: int = 100) -> list[dict[str, Any]]:
        """A key's committed history, newest first (a signed read)."""
        rows = await self._signed_read("state_getHistory", {"contract": contract, "key": key, "limit": limit})
        return [_state_row(r) for r in rows]

    async def node_status(self) -> dict[str, Any]:
        return dict(await self.call("node_status"))

    async def raft_status(self) -> dict[str, Any]:
        return dict(await self.call("raft_status", self._ch({})))

    def verify_inclusion(self, proof: Mapping[str, Any], expected_block_hash: bytes | None = None) -> bool:
        return verify_inclusion(proof, expected_block_hash)

    def subscribe(self, kinds: Sequence[str], *, tx_id: bytes | None = None) -> Subscription:
        """Events of ``kinds`` (``{"kind", "channel", "data"}``) over WebSocket.

        ``async for ev in client.subscribe(["tx"])`` subscribes on first use; ``sub = await
        client.subscribe(...)`` returns once the node confirmed the subscription, so no later event
        is missed. ``await sub.aclose()`` (or use it as ``async with``) to unsubscribe.
        """
        params: dict[str, Any] = {"kinds": list(kinds), "channel": self.channel}
        if tx_id is not None:
            params["tx_id"] = to_hex(tx_id)
        return Subscription(self, params)


class Subscription:
    """One subscription on its own WebSocket: awaitable (to confirm it), async-iterable, closeable.

    Iteration ends with :class:`SubscriptionClosed` when the node closes the socket (close code 4000:
    this client read too slowly; 1001: the node shut down); catch up from the ledger and resubscribe.
    """

    def __init__(self, client: AsyncClient, params: dict[str, Any]) -> None:
        self._client = client
        self._params = params
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self.id: str | None = None

    async def start(self) -> Subscription:
        if self._ws is not None:
            return self
        c = self._client
        try:
            ws = await c._http().ws_connect(c.ws_url, max_msg_size=MAX_RESPONSE_BYTES)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransportError(f"subscribe: {type(exc).__name__}: {exc}") from exc
        try:
            await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": self._params})
            msg = await ws.receive(timeout=c._timeout_s)
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise SubscriptionClosed(f"subscribe: connection closed (code {ws.close_code})", ws.close_code)
            data = msg.json()
            if "error" in data:
                e = data["error"]
                raise rpc_error(int(e["code"]), str(e["message"]), e.get("data"))
            self.id = str(data["result"])
        except BaseException:
            await ws.close()
            raise
        self._ws = ws
        return self

    def __await__(self) -> Generator[Any, None, Subscription]:
        return self.start().__await__()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> dict[str, Any]:
        ws = (await self.start())._ws
        assert ws is not None
        while True:
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                await ws.close()
                raise SubscriptionClosed(f"subscription closed by the node (code {ws.close_code})", ws.close_code)
            data = msg.json()
            p = data.get("params") or {}
            if data.get("method") == "subscription" and p.get("subscription") == self.id:
                if "error" in p:
                    await ws.close()
                    raise rpc_error(int(p["error"]["code"]), str(p["error"]["message"]))
                return dict(p["result"])

    async def aclose(self) -> None:
        """Unsubscribe: closing the socket ends every subscription on it at the node."""
        if self._ws is not None:
            await self._ws.close()

    async def __aenter__(self) -> Subscription:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


# ---- sync client -----------------------------------------------------------------------------------

T = TypeVar("T")


class Client:
    """A synchronous :class:`AsyncClient`: its own event loop runs in a daemon thread."""

    def __init__(
        self,
        url: str,
        identity: ClientIdentity | None = None,
        channel: str | None = None,
        *,
        timeout_s: float = DEFAULT_HTTP_TIMEOUT_S,
        tls: ClientTLS | None = None,
    ) -> None:
        self._async = AsyncClient(url, identity, channel, timeout_s=timeout_s, tls=tls)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="secprivnode-client", daemon=True)
        self._thread.start()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._thread.is_alive():
            self._run(self._async.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        return self._run(self._async.call(method, params))

    def invoke(
        self,
        contract: str,
        fn: str,
        *args: Any,
        transient: Mapping[str, bytes] | None = None,
        wait: bool = True,
        timeout_s: float = 30.0,
    ) -> TxResult:
        return self._run(self._async.invoke(contract, fn, *args, transient=transient, wait=wait, timeout_s=timeout_s))

    def prepare(self, contract: str, fn: str, *args: Any, transient: Mapping[str, bytes] | None = None) -> PreparedTx:
        return self._run(self._async.prepare(contract, fn, *args, transient=transient))

    def submit(self, prepared: PreparedTx, *, wait: bool = True, timeout_s: float = 30.0) -> TxResult:
        return self._run(self._async.submit(prepared, wait=wait, timeout_s=timeout_s))

    def query(self, contract: str, fn: str, *args: Any, transient: Mapping[str, bytes] | None = None) -> dict[str, Any]:
        return self._run(self._async.query(contract, fn, *args, transient=transient))

    def config_update(
        self, config: ChannelConfig, admins: Sequence[ClientIdentity], channel: str | None = None
    ) -> dict[str, Any]:
        return self._run(self._async.config_update(config, admins, channel))

    def submit_config(
        self,
        config: ChannelConfig,
        approvals: Sequence[tuple[bytes, bytes]],
        channel: str | None = None,
        packages: Sequence[bytes] = (),
    ) -> dict[str, Any]:
        return self._run(self._async.submit_config(config, approvals, channel, packages))

    def height(self) -> int:
        return self._run(self._async.height())

    def contracts(self) -> list[dict[str, Any]]:
        return self._run(self._async.contracts())

    def get_block(self, number: int) -> dict[str, Any]:
        return self._run(self._async.get_block(number))

    def get_tx(self, tx_id: bytes) -> dict[str, Any]:
        return self._run(self._async.get_tx(tx_id))

    def tx_status(self, tx_id: bytes) -> dict[str, Any]:
        return self._run(self._async.tx_status(tx_id))

    def get_tx_proof(self, tx_id: bytes) -> dict[str, Any]:
        return self._run(self._async.get_tx_proof(tx_id))

    def state_get(self, contract: str, key: str) -> dict[str, Any] | None:
        return self._run(self._async.state_get(contract, key))

    def state_get_range(self, contract: str, start: str, end: str, limit: int = 100) -> list[dict[str, Any]]:
        return self._run(self._async.state_get_range(contract, start, end, limit))

    def state_get_history(self, contract: str, key: str, limit: int = 100) -> list[dict[str, Any]]:
        return self._run(self._async.state_get_history(contract, key, limit))

    def node_status(self) -> dict[str, Any]:
        return self._run(self._async.node_status())

    def verify_inclusion(self, proof: Mapping[str, Any], expected_block_hash: bytes | None = None) -> bool:
        return verify_inclusion(proof, expected_block_hash)

    def subscribe(self, kinds: Sequence[str], *, tx_id: bytes | None = None) -> SyncSubscription:
        """Subscribe now; return a blocking iterator over events. ``close()`` it to unsubscribe."""
        return SyncSubscription(self, self._run(self._async.subscribe(kinds, tx_id=tx_id).start()))


class SyncSubscription:
    """A :class:`Subscription` driven from a :class:`Client`'s thread; iterate, then ``close()``."""

    def __init__(self, client: Client, sub: Subscription) -> None:
        self._client = client
        self._sub = sub

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self

    def __next__(self) -> dict[str, Any]:
        return self._client._run(self._sub.__anext__())

    def close(self) -> None:
        self._client._run(self._sub.aclose())

    def __enter__(self) -> SyncSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
