"""The JSON-RPC method table: names, parameters (with JSON Schemas and converters), results, handlers.

This table is the single source of truth: the dispatcher binds and converts parameters from it
and the OpenRPC document (``rpc.discover``) is generated from it, so the two cannot disagree.

Parameters may be given by name (an object) or by position (an array, in table order). Every
converter either returns the domain value or raises :class:`ParamError` naming the parameter;
the dispatcher turns that into -32602 Invalid params. Handlers call only :class:`NodeService`
and return JSON values (through :func:`codec.to_json`).

State reads (``state_get``, ``state_getRange``, ``state_getHistory``) first rebuild the signed read
request from the converted parameters (:mod:`secprivnode.rpc.auth`) and have the service check it;
each method's ``identity`` says what the caller must prove, for the OpenRPC document.

This module must never reach into node internals nor trust a client value it has not converted.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from crypto.encoding import MAX_DECODE_BYTES, EncodingError, decode
from secprivnode.api import (
    BadRequest,
    ContractFailed,
    NodeService,
    NotFoundError,
    NotLeaderError,
    Overloaded,
    ServiceError,
    TimeoutError_,
    TxRejected,
    Unauthenticated,
    Unauthorized,
    UnknownChannel,
)
from secprivnode.rpc import codec
from secprivnode.rpc.auth import (
    IDENTITY_ADMINS,
    IDENTITY_NONE,
    IDENTITY_PROPOSAL,
    IDENTITY_READ,
    S_AUTH,
    parse_auth,
    signed_read,
)
from storage.model import ChannelConfig, MalformedError, Proposal

__all__ = [
    "EVENT_KINDS",
    "METHODS",
    "CallContext",
    "Method",
    "Param",
    "ParamError",
    "Session",
    "method_table",
]

# ---- bounds on parameters ----------------------------------------------------------------------

# Longest channel/contract name accepted. Names are identifiers in the channel config; 250 matches
# Fabric's channel-name bound and is far above any real name.
MAX_NAME_CHARS = 250
# Longest state key. Keys are composite identifiers (e.g. "user/<org>/<id>"); 4 KiB leaves room for
# long composite keys while keeping range bounds cheap to compare.
MAX_KEY_CHARS = 4096
# Range and history queries return at most this many entries per call; clients page with ``start``.
# 1000 entries of a few KiB each stays well under a MiB of JSON.
MAX_RESULT_LIMIT = 1000
DEFAULT_RESULT_LIMIT = 100
# tx_submitAndWait waits at most this long: a commit normally takes one Raft round plus a
# BatchTimeout (200 ms); five minutes covers a leader election storm without pinning a request forever.
MAX_WAIT_S = 300.0
DEFAULT_WAIT_S = 30.0
# Transient (off-ledger) inputs per proposal: a few named secrets or blobs; the body limit bounds bytes.
MAX_TRANSIENT_ENTRIES = 64
# Admin signatures on one config update: one per member organisation is the usual maximum.
MAX_CONFIG_SIGNATURES = 64
# Contract packages one config update carries: a release of the city's application is a handful
# of contracts; the request body limit bounds their total size.
MAX_CONFIG_PACKAGES = 16
# A 32-byte hash/tx id.
HASH_BYTES = 32

EVENT_KINDS = ("block", "tx", "contract")


class ParamError(ValueError):
    """A parameter is missing, unexpected or malformed. The message names the parameter."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


class Session(Protocol):
    """What a WebSocket connection offers the subscription methods."""

    def subscribe(self, kinds: frozenset[str], channel: str | None, tx_id: bytes | None) -> str: ...

    def unsubscribe(self, subscription: str) -> bool: ...


@dataclass(slots=True)
class CallContext:
    service: NodeService
    session: Session | None = None  # None over HTTP
    table: Mapping[str, Method] = field(default_factory=dict)


Convert = Callable[[Any, str], Any]
Handler = Callable[[CallContext, dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    schema: Mapping[str, Any]
    convert: Convert
    required: bool = True
    default: Any = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    summary: str
    params: tuple[Param, ...]
    result: Mapping[str, Any]  # JSON Schema of the result
    handler: Handler
    errors: tuple[type[ServiceError], ...] = ()
    websocket_only: bool = False
    identity: str = IDENTITY_NONE  # what the caller must prove (secprivnode.rpc.auth.IDENTITY_*)


# ---- converters ----------------------------------------------------------------------------------


def _fail(name: str, msg: str) -> ParamError:
    return ParamError(name, f"parameter {name!r}: {msg}")


def conv_channel(v: Any, name: str) -> str | None:
    if v is None:
        return None
    return conv_name(v, name)


def conv_name(v: Any, name: str) -> str:
    if not isinstance(v, str) or not v or len(v) > MAX_NAME_CHARS:
        raise _fail(name, f"expected a non-empty string of at most {MAX_NAME_CHARS} characters")
    return v


def conv_key(v: Any, name: str) -> str:
    if not isinstance(v, str) or len(v) > MAX_KEY_CHARS:
        raise _fail(name, f"expected a string of at most {MAX_KEY_CHARS} characters")
    return v


def conv_uint(v: Any, name: str) -> int:
    if type(v) is not int or not 0 <= v < 2**63:
        raise _fail(name, "expected a non-negative integer below 2^63")
    return v


def conv_limit(v: Any, name: str) -> int:
    if type(v) is not int or not 1 <= v <= MAX_RESULT_LIMIT:
        raise _fail(name, f"expected an integer in [1, {MAX_RESULT_LIMIT}]")
    return v


def conv_hash(v: Any, name: str) -> bytes:
    try:
        return codec.from_hex(v, name, length=HASH_BYTES)
    except codec.CodecError as exc:
        raise _fail(name, str(exc)) from exc


def conv_hex(v: Any, name: str) -> bytes:
    try:
        return codec.from_hex(v, name)
    except codec.CodecError as exc:
        raise _fail(name, str(exc)) from exc


def conv_timeout(v: Any, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 < v <= MAX_WAIT_S:
        raise _fail(name, f"expected a number of seconds in (0, {MAX_WAIT_S:g}]")
    return float(v)


def conv_transient(v: Any, name: str) -> dict[str, bytes]:
    if v is None:
        return {}
    if not isinstance(v, dict) or len(v) > MAX_TRANSIENT_ENTRIES:
        raise _fail(name, f"expected an object of at most {MAX_TRANSIENT_ENTRIES} name -> hex entries")
    return {k: conv_hex(x, f"{name}.{k}") for k, x in v.items()}


def conv_proposal(v: Any, name: str) -> Proposal:
    # The transport's body limit is the real bound; this one only mirrors the decoder's own.
    try:
        return codec.proposal_from_hex(v, max_bytes=MAX_DECODE_BYTES)
    except codec.CodecError as exc:
        raise _fail(name, str(exc).removeprefix("proposal: ")) from exc


def conv_config(v: Any, name: str) -> Any:
    raw = conv_hex(v, name)
    try:
        obj = decode(raw)
        ChannelConfig.from_obj(obj)  # shape check only: the node decides whether to accept it
    except (EncodingError, MalformedError) as exc:
        raise _fail(name, f"not a canonical ChannelConfig encoding: {exc}") from exc
    return obj


def conv_signatures(v: Any, name: str) -> list[tuple[bytes, bytes]]:
    if not isinstance(v, list) or not 1 <= len(v) <= MAX_CONFIG_SIGNATURES:
        raise _fail(name, f"expected an array of 1..{MAX_CONFIG_SIGNATURES} [cert hex, signature hex] pairs")
    out = []
    for i, pair in enumerate(v):
        if not isinstance(pair, list) or len(pair) != 2:
            raise _fail(name, f"element {i}: expected [cert hex, signature hex]")
        out.append((conv_hex(pair[0], f"{name}[{i}][0]"), conv_hex(pair[1], f"{name}[{i}][1]")))
    return out


def conv_packages(v: Any, name: str) -> tuple[bytes, ...]:
    if v is None:
        return ()
    if not isinstance(v, list) or len(v) > MAX_CONFIG_PACKAGES:
        raise _fail(name, f"expected an array of at most {MAX_CONFIG_PACKAGES} package hex strings")
    return tuple(conv_hex(p, f"{name}[{i}]") for i, p in enumerate(v))


def conv_auth(v: Any, name: str) -> Any:
    try:
        return parse_auth(v)
    except ValueError as exc:
        raise _fail(name, str(exc)) from exc


def conv_kinds(v: Any, name: str) -> frozenset[str]:
    if not isinstance(v, list) or not v or any(k not in EVENT_KINDS for k in v):
        raise _fail(name, f"expected a non-empty array of {', '.join(map(repr, EVENT_KINDS))}")
    return frozenset(v)


def conv_opt_hash(v: Any, name: str) -> bytes | None:
    return None if v is None else conv_hash(v, name)


def conv_subscription(v: Any, name: str) -> str:
    if not isinstance(v, str) or len(v) > 64:
        raise _fail(name, "expected a subscription id string")
    return v


# ---- schemas -------------------------------------------------------------------------------------

S_HEX = {"type": "string", "pattern": "^0x([0-9a-f]{2})*$"}
S_HASH = {"type": "string", "pattern": "^0x[0-9a-f]{64}$"}
S_UINT = {"type": "integer", "minimum": 0}
S_STR = {"type": "string"}
S_OBJ = {"type": "object"}
S_ARR_OBJ = {"type": "array", "items": {"type": "object"}}
S_NULLABLE_OBJ = {"type": ["object", "null"]}
S_SUBMIT_RESULT = {
    "type": "object",
    "properties": {
        "tx_id": S_HASH,
        "block_number": {"type": ["integer", "null"]},
        "code": {"type": ["string", "null"]},
        "response": {"type": "object"},
    },
    "required": ["tx_id", "block_number", "code", "response"],
}
S_BLOCK = {
    "type": "object",
    "properties": {
        "hash": S_HASH,
        "number": S_UINT,
        "tx_ids": {"type": "array", "items": S_HASH},
        "validation_codes": {"type": ["array", "null"], "items": S_STR},
    },
    "required": ["hash", "number", "tx_ids", "validation_codes"],
}

CHANNEL = Param(
    "channel",
    {"type": ["string", "null"]},
    conv_channel,
    required=False,
    description="Channel name; the node's default channel when omitted or null.",
)


def _limit(desc: str) -> Param:
    return Param(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_RESULT_LIMIT},
        conv_limit,
        required=False,
        default=DEFAULT_RESULT_LIMIT,
        description=desc,
    )


PROPOSAL = Param("proposal", S_HEX, conv_proposal, description="Hex of the canonical encoding of Proposal.to_obj().")
SIGNATURE = Param("signature", S_HEX, conv_hex, description="Creator's DER ECDSA signature over the proposal hash.")
TRANSIENT = Param(
    "transient",
    {"type": ["object", "null"], "additionalProperties": S_HEX},
    conv_transient,
    required=False,
    description="Off-ledger inputs: name -> hex. Never hashed, ordered or stored.",
)
TX_CHANNEL = dataclasses.replace(CHANNEL, description="If given, must equal the proposal's channel.")
AUTH = Param(
    "auth",
    S_AUTH,
    conv_auth,
    required=False,
    description=(
        "Signed read: {channel, creator, nonce, timestamp_ms, signature}. Without a valid one the "
        "call fails with Unauthenticated (-32010). See docs/rpc.md, 'Signed reads'."
    ),
)


# ---- handlers ------------------------------------------------------------------------------------


def _proposal(a: dict[str, Any]) -> Proposal:
    p: Proposal = a["proposal"]
    if a.get("channel") is not None and a["channel"] != p.header.channel:
        raise ParamError("channel", "parameter 'channel': does not match the proposal's channel")
    if a.get("transient"):
        p = dataclasses.replace(p, transient=a["transient"])
    return p


async def _node_status(ctx: CallContext, a: dict[str, Any]) -> Any:
    status = codec.to_json(await ctx.service.node_status())
    status.setdefault("default_channel", ctx.service.default_channel)
    return status


async def _node_peers(ctx: CallContext, a: dict[str, Any]) -> Any:
    return codec.to_json(await ctx.service.node_peers())


async def _raft_status(ctx: CallContext, a: dict[str, Any]) -> Any:
    return codec.to_json(await ctx.service.raft_status(a["channel"]))


async def _chain_height(ctx: CallContext, a: dict[str, Any]) -> Any:
    return int(await ctx.service.chain_height(a["channel"]))


async def _block_by_number(ctx: CallContext, a: dict[str, Any]) -> Any:
    block, codes = await ctx.service.get_block(a["channel"], a["number"])
    return codec.block_to_json(block, codes)


async def _block_by_hash(ctx: CallContext, a: dict[str, Any]) -> Any:
    block, codes = await ctx.service.get_block_by_hash(a["channel"], a["hash"])
    return codec.block_to_json(block, codes)


async def _get_tx(ctx: CallContext, a: dict[str, Any]) -> Any:
    return codec.to_json(await ctx.service.get_transaction(a["channel"], a["tx_id"]))


async def _get_tx_proof(ctx: CallContext, a: dict[str, Any]) -> Any:
    # A mapping or storage.blockstore.TxProof (header, tx_hash, index, size, path) both become the
    # documented object; the block hash is derived from the header when the node leaves it out.
    proof = codec.to_json(await ctx.service.get_tx_proof(a["channel"], a["tx_id"]))
    if "block_hash" not in proof:
        proof["block_hash"] = codec.to_hex(codec.header_from_json(proof["header"]).hash())
    proof.setdefault("tx_id", codec.to_hex(a["tx_id"]))
    return proof


def _version_row(row: Any, names: tuple[str, ...]) -> Any:
    """State rows as objects: the node may give ``(value, version)`` / ``(key, value, version)`` tuples."""
    if isinstance(row, (tuple, list)) and len(row) == len(names):
        return dict(zip(names, row, strict=True))
    return row


async def _authorize(ctx: CallContext, method: str, a: dict[str, Any]) -> None:
    """Refuse the read unless ``auth`` signs exactly this read by a reader the node admits."""
    auth = a["auth"]
    if auth is None:
        raise Unauthenticated(
            f"{method} needs a signed read: pass 'auth' signed by a channel member (see docs/rpc.md)",
            {"reason": "missing"},
        )
    target = a["channel"] or ctx.service.default_channel
    read = signed_read(method, a, auth)
    if read.request.channel != target:
        raise Unauthenticated(
            f"the read was signed for channel {read.request.channel!r}, not {target!r}", {"reason": "wrong_channel"}
        )
    await ctx.service.authorize_read(read)


async def _state_get(ctx: CallContext, a: dict[str, Any]) -> Any:
    await _authorize(ctx, "state_get", a)
    row = await ctx.service.state_get(a["channel"], a["contract"], a["key"])
    return codec.to_json(_version_row(row, ("value", "version")))


async def _state_range(ctx: CallContext, a: dict[str, Any]) -> Any:
    await _authorize(ctx, "state_getRange", a)
    rows = await ctx.service.state_get_range(a["channel"], a["contract"], a["start"], a["end"], a["limit"])
    return codec.to_json([_version_row(r, ("key", "value", "version")) for r in rows[: a["limit"]]])


async def _state_history(ctx: CallContext, a: dict[str, Any]) -> Any:
    await _authorize(ctx, "state_getHistory", a)
    rows = await ctx.service.state_get_history(a["channel"], a["contract"], a["key"], a["limit"])
    return codec.to_json(rows[: a["limit"]])


async def _tx_submit(ctx: CallContext, a: dict[str, Any]) -> Any:
    result = await ctx.service.tx_submit(_proposal(a), a["signature"])
    return codec.to_hex(result.tx_id)


async def _tx_submit_wait(ctx: CallContext, a: dict[str, Any]) -> Any:
    result = await ctx.service.tx_submit_and_wait(_proposal(a), a["signature"], a["timeout_s"])
    return codec.to_json(result)


async def _tx_query(ctx: CallContext, a: dict[str, Any]) -> Any:
    return codec.to_json(await ctx.service.tx_query(_proposal(a), a["signature"]))


async def _tx_status(ctx: CallContext, a: dict[str, Any]) -> Any:
    return codec.to_json(await ctx.service.tx_status(a["channel"], a["tx_id"]))


async def _contract_list(ctx: CallContext, a: dict[str, Any]) -> Any:
    return codec.to_json(await ctx.service.contract_list(a["channel"]))


async def _config_get(ctx: CallContext, a: dict[str, Any]) -> Any:
    return codec.to_json(await ctx.service.config_get(a["channel"]))


async def _config_update(ctx: CallContext, a: dict[str, Any]) -> Any:
    result = await ctx.service.config_update(a["channel"], a["config"], a["signatures"], a["packages"])
    return codec.to_json(result)


async def _subscribe(ctx: CallContext, a: dict[str, Any]) -> Any:
    assert ctx.session is not None  # the dispatcher refuses websocket-only methods without a session
    return ctx.session.subscribe(a["kinds"], a["channel"], a["tx_id"])


async def _unsubscribe(ctx: CallContext, a: dict[str, Any]) -> Any:
    assert ctx.session is not None
    return ctx.session.unsubscribe(a["subscription"])


async def _discover(ctx: CallContext, a: dict[str, Any]) -> Any:
    from secprivnode.rpc.openrpc import openrpc_document

    return openrpc_document(ctx.table)


# ---- the table -----------------------------------------------------------------------------------

_CH = (UnknownChannel,)
_READ_ERRORS = (Unauthenticated, Unauthorized, Overloaded, UnknownChannel)
_TX_ERRORS = (TxRejected, ContractFailed, NotLeaderError, Overloaded, Unauthorized, BadRequest, UnknownChannel)


def _methods() -> tuple[Method, ...]:
    tx_id = Param("tx_id", S_HASH, conv_hash, description="Transaction id (32-byte hash).")
    contract = Param("contract", S_STR, conv_name, description="Contract (state namespace) name.")
    key = Param("key", S_STR, conv_key, description="State key.")
    return (
        Method("node_status", "This node's identity, version, channels and uptime.", (), S_OBJ, _node_status),
        Method("node_peers", "Connected P2P peers.", (), S_ARR_OBJ, _node_peers),
        Method(
            "raft_status",
            "Raft view of the channel: leader, term, role, commit, applied, voters, learners.",
            (CHANNEL,),
            S_OBJ,
            _raft_status,
            _CH,
        ),
        Method("chain_height", "Number of blocks in the local ledger.", (CHANNEL,), S_UINT, _chain_height, _CH),
        Method(
            "chain_getBlockByNumber",
            "A block by number, with its hash, header fields, tx ids and validation codes.",
            (Param("number", S_UINT, conv_uint, description="Block number."), CHANNEL),
            S_BLOCK,
            _block_by_number,
            (NotFoundError, UnknownChannel),
        ),
        Method(
            "chain_getBlockByHash",
            "A block by header hash.",
            (Param("hash", S_HASH, conv_hash, description="Block header hash."), CHANNEL),
            S_BLOCK,
            _block_by_hash,
            (NotFoundError, UnknownChannel),
        ),
        Method(
            "chain_getTransaction",
            "A committed transaction: creator, contract, function, args, response, rwset, extra_rwsets"
            " (the called contracts' namespaces), position, validation code.",
            (tx_id, CHANNEL),
            S_OBJ,
            _get_tx,
            (NotFoundError, UnknownChannel),
        ),
        Method(
            "chain_getTxProof",
            "Inclusion proof: block header, block hash, tx hash, index, size and RFC 6962 audit path.",
            (tx_id, CHANNEL),
            S_OBJ,
            _get_tx_proof,
            (NotFoundError, UnknownChannel),
        ),
        Method(
            "state_get",
            "Committed value (hex) and version [block, tx] of a key, or null.",
            (contract, key, CHANNEL, AUTH),
            S_NULLABLE_OBJ,
            _state_get,
            _READ_ERRORS,
            identity=IDENTITY_READ,
        ),
        Method(
            "state_getRange",
            "Committed keys in [start, end) with values and versions, at most limit entries.",
            (
                contract,
                Param("start", S_STR, conv_key, description="First key (inclusive)."),
                Param("end", S_STR, conv_key, description="Last key (exclusive); empty for no bound."),
                _limit("Maximum entries returned."),
                CHANNEL,
                AUTH,
            ),
            S_ARR_OBJ,
            _state_range,
            _READ_ERRORS,
            identity=IDENTITY_READ,
        ),
        Method(
            "state_getHistory",
            "Committed history of a key, newest first, at most limit entries.",
            (contract, key, _limit("Maximum entries returned."), CHANNEL, AUTH),
            S_ARR_OBJ,
            _state_history,
            _READ_ERRORS,
            identity=IDENTITY_READ,
        ),
        Method(
            "tx_submit",
            "Endorse and submit a signed proposal for ordering; returns the tx id without waiting.",
            (PROPOSAL, SIGNATURE, TRANSIENT, TX_CHANNEL),
            S_HASH,
            _tx_submit,
            _TX_ERRORS,
            identity=IDENTITY_PROPOSAL,
        ),
        Method(
            "tx_submitAndWait",
            "Submit a signed proposal and wait for its commit; returns tx id, block number, code and response.",
            (
                PROPOSAL,
                SIGNATURE,
                TRANSIENT,
                Param(
                    "timeout_s",
                    {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_WAIT_S},
                    conv_timeout,
                    required=False,
                    default=DEFAULT_WAIT_S,
                    description="Seconds to wait for the commit.",
                ),
                TX_CHANNEL,
            ),
            S_SUBMIT_RESULT,
            _tx_submit_wait,
            (*_TX_ERRORS, TimeoutError_),
            identity=IDENTITY_PROPOSAL,
        ),
        Method(
            "tx_query",
            "Evaluate a query function on committed state without ordering; returns the response.",
            (PROPOSAL, SIGNATURE, TRANSIENT, TX_CHANNEL),
            S_OBJ,
            _tx_query,
            _TX_ERRORS,
            identity=IDENTITY_PROPOSAL,
        ),
        Method(
            "tx_status",
            "Whether a tx id is pending, committed (with block and code) or unknown.",
            (tx_id, CHANNEL),
            S_OBJ,
            _tx_status,
            (NotFoundError, UnknownChannel),
        ),
        Method(
            "contract_list",
            "Contracts defined on the channel: name, version, policy, definition sequence, package hash, "
            "the admins who approved the transaction that last changed the definition, and the version "
            "and functions installed on this node.",
            (CHANNEL,),
            S_ARR_OBJ,
            _contract_list,
            _CH,
        ),
        Method("config_get", "The channel's current configuration.", (CHANNEL,), S_OBJ, _config_get, _CH),
        Method(
            "config_update",
            "Propose a new channel configuration signed by channel admins (admin identities only).",
            (
                Param("config", S_HEX, conv_config, description="Hex of the canonical ChannelConfig encoding."),
                Param(
                    "signatures",
                    {"type": "array", "items": {"type": "array", "items": S_HEX, "minItems": 2, "maxItems": 2}},
                    conv_signatures,
                    description="[admin cert DER hex, signature over config_update_digest hex] pairs.",
                ),
                Param(
                    "packages",
                    {"type": ["array", "null"], "items": S_HEX, "maxItems": MAX_CONFIG_PACKAGES},
                    conv_packages,
                    required=False,
                    default=(),
                    description="Hex of the encoded code of each contract package whose definition "
                    "the update commits (see docs/lifecycle.md).",
                ),
                CHANNEL,
            ),
            S_SUBMIT_RESULT,
            _config_update,
            (Unauthorized, TxRejected, BadRequest, NotLeaderError, UnknownChannel, TimeoutError_),
            identity=IDENTITY_ADMINS,
        ),
        Method(
            "subscribe",
            "WebSocket only: subscribe to events; returns a subscription id. Events arrive as "
            '"subscription" notifications.',
            (
                Param(
                    "kinds",
                    {"type": "array", "items": {"enum": list(EVENT_KINDS)}, "minItems": 1},
                    conv_kinds,
                    description="Event kinds: block, tx, contract.",
                ),
                Param(
                    "tx_id",
                    {"type": ["string", "null"], "pattern": "^0x[0-9a-f]{64}$"},
                    conv_opt_hash,
                    required=False,
                    description="Only events of this transaction.",
                ),
                CHANNEL,
            ),
            S_STR,
            _subscribe,
            (Overloaded, UnknownChannel),
            websocket_only=True,
        ),
        Method(
            "unsubscribe",
            "WebSocket only: cancel a subscription; returns whether it existed.",
            (Param("subscription", S_STR, conv_subscription, description="Subscription id."),),
            {"type": "boolean"},
            _unsubscribe,
            websocket_only=True,
        ),
        Method("rpc.discover", "This interface as an OpenRPC 1.2 document.", (), S_OBJ, _discover),
    )


METHODS: dict[str, Method] = {m.name: m for m in _methods()}


def method_table() -> dict[str, Method]:
    """A copy of the method table (name -> Method)."""
    return dict(METHODS)
