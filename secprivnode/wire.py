"""Node-to-node application messages carried by the P2P transport.

The transport moves opaque canonical values tagged with an integer *kind*; this module fixes the
kinds the node uses, the shape of their payloads, and the error codes their answers carry, so
that consensus and p2p never need to know about each other. Each payload starts with the channel
name: every Raft group, endorsement and submission is per channel.

=====  ==========  ===========================================================================
kind   style       payload → answer
=====  ==========  ===========================================================================
1      one-way     RAFT: ``[channel, raft_message.to_wire()]``
2      request     SUBMIT: ``[channel, tx_bytes]`` → ``["ok", tx_id]`` or ``["err", code, message]``
3      request     ENDORSE: ``[channel, proposal_obj, signature, transient]`` →
                   ``["ok", response_obj, rwset_obj, endorsement_obj]``, with a fifth element
                   ``[rwset_obj...]`` (the called contracts' namespaces, as
                   ``Transaction.extra_rwsets``) when the contract called others; or
                   ``["err", code, message]``
4      request     PVT_PUSH: ``[channel, "channel/contract/collection", write_set_blob]`` →
                   ``["ok"]`` once stored (see secprivnode.privnet)
5      request     PVT_FETCH: ``[channel, contract, collection, tx_id]`` → ``["ok", write_set_blob | nil]``
6      request     BLOB_OFFER: ``[channel, contract, collection, digest, size, expiry_height]`` →
                   ``["ok"]``; the receiver then pulls the blob (see secprivnode.blobnet)
7      request     BLOB_CHUNK: ``[channel, digest, offset]`` → ``["ok", bytes]`` (at most 1 MiB;
                   empty past the end)
=====  ==========  ===========================================================================

Errors travel as values, not exceptions, so the asking node can tell a refusal (the client's
fault: bad signature, duplicate) from a failure to reach the peer. ``code`` is an
:class:`ErrorCode` (an unsigned integer, stable across versions; ``docs/architecture.md`` lists
them); ``message`` is for humans. Earlier versions sent a string instead of the integer (an
exception class name, or an endorsement refusal label); :func:`unpack_answer` still reads those.

This module never raises anything but :class:`RemoteRefusal` from a peer's answer, and never
puts an exception's class name on the wire.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from consensus.orderer.errors import InvalidTransaction, OrdererError, OrdererStopped, PoolFull
from consensus.raft import NotLeader, ProposalDropped
from secprivnode.pipeline.errors import RejectCode

__all__ = [
    "BLOB_CHUNK",
    "BLOB_OFFER",
    "ENDORSE",
    "PVT_FETCH",
    "PVT_PUSH",
    "RAFT",
    "SUBMIT",
    "ErrorCode",
    "RemoteRefusal",
    "err",
    "ok",
    "ordering_code",
    "ordering_exception",
    "reject_code",
    "rejection_of",
    "unpack_answer",
]

RAFT = 1
SUBMIT = 2
ENDORSE = 3
PVT_PUSH = 4
PVT_FETCH = 5
BLOB_OFFER = 6
BLOB_CHUNK = 7


class ErrorCode(IntEnum):
    """The code of an ``["err", code, message]`` answer. Never renumber a member; add new ones."""

    UNKNOWN = 0  # a code this node does not know (from a newer peer): a refusal all the same
    PROTOCOL = 1  # the request or the answer is malformed
    BAD_REQUEST = 2  # well-formed, but not acceptable (e.g. a transaction that is not bytes)
    UNKNOWN_CHANNEL = 3  # the peer does not serve the channel
    CHANNEL_HALTED = 4  # the peer's channel stopped committing (its ledger failed)
    UNAVAILABLE = 5  # the peer could not pass the request on (e.g. it cannot reach the Raft leader)
    NOT_FOUND = 6  # the peer does not hold what was asked for (a blob, a private write set)
    TOO_LARGE = 7  # beyond the peer's size limit
    BUSY = 8  # the peer has too much of this in progress; retry later
    # SUBMIT: ordering refusals
    NOT_ORDERER = 10  # the peer is not an orderer of the channel
    NOT_LEADER = 11  # the peer is not the Raft leader and does not forward (or knows no leader)
    PROPOSAL_DROPPED = 12  # Raft did not append it (leadership transfer, too many bytes in flight)
    ORDERER_STOPPED = 13  # the ordering service is not running
    POOL_FULL = 14  # the pending pool is full; retry after some blocks
    DUPLICATE_TX = 15  # pending, in flight or ordered recently
    INVALID_TX = 16  # not an acceptable transaction for the channel (the message says why)
    # ENDORSE: endorsement refusals, one per secprivnode.pipeline.errors.RejectCode
    BAD_PROPOSAL = 20
    BAD_CHANNEL = 21
    NOT_READY = 22
    UNKNOWN_IDENTITY = 23
    EXPIRED_IDENTITY = 24
    REVOKED_IDENTITY = 25
    BAD_SIGNATURE = 26
    DUPLICATE_TXID = 27
    UNKNOWN_CONTRACT = 28
    UNAUTHORIZED = 29  # also: the peer's roles or memberships do not allow the request
    CONTRACT_ERROR = 30


_REJECT_TO_CODE: dict[RejectCode, ErrorCode] = {r: ErrorCode[r.name] for r in RejectCode}
_CODE_TO_REJECT: dict[ErrorCode, RejectCode] = {c: r for r, c in _REJECT_TO_CODE.items()}

# What earlier versions sent in place of the code: exception class names (SUBMIT) and the
# endorsement refusal labels (ENDORSE).
_LEGACY_KINDS: dict[str, ErrorCode] = {
    "protocol": ErrorCode.PROTOCOL,
    "BadRequest": ErrorCode.BAD_REQUEST,
    "Unauthorized": ErrorCode.UNAUTHORIZED,
    "NotFound": ErrorCode.NOT_FOUND,
    "TooLarge": ErrorCode.TOO_LARGE,
    "Overloaded": ErrorCode.BUSY,
    "NotOrderer": ErrorCode.NOT_ORDERER,
    "NotLeader": ErrorCode.NOT_LEADER,
    "ProposalDropped": ErrorCode.PROPOSAL_DROPPED,
    "OrdererStopped": ErrorCode.ORDERER_STOPPED,
    "PoolFull": ErrorCode.POOL_FULL,
    "DuplicateTransaction": ErrorCode.DUPLICATE_TX,
    "InvalidTransaction": ErrorCode.INVALID_TX,
    **{r.value: c for r, c in _REJECT_TO_CODE.items()},
}


def ok(*values: Any) -> list[Any]:
    return ["ok", *values]


def err(code: ErrorCode, message: str) -> list[Any]:
    return ["err", int(code), message]


class RemoteRefusal(Exception):
    """The peer answered with an error value."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code.name.lower()}: {message}")
        self.code = code
        self.message = message


def _code_of(raw: Any) -> ErrorCode | None:
    if isinstance(raw, int) and not isinstance(raw, bool):
        try:
            return ErrorCode(raw)
        except ValueError:
            return ErrorCode.UNKNOWN
    if isinstance(raw, str):
        return _LEGACY_KINDS.get(raw, ErrorCode.UNKNOWN)
    return None


def unpack_answer(answer: Any) -> tuple[Any, ...]:
    """The values of an ``ok`` answer; raise :class:`RemoteRefusal` for ``err`` or a bad shape."""
    if isinstance(answer, (list, tuple)) and answer:
        if answer[0] == "ok":
            return tuple(answer[1:])
        if answer[0] == "err" and len(answer) == 3 and isinstance(answer[2], str):
            code = _code_of(answer[1])
            if code is not None:
                raise RemoteRefusal(code, answer[2])
    raise RemoteRefusal(ErrorCode.PROTOCOL, "malformed answer from peer")


# ---------------------------------------------------------------------- typed errors <-> codes
def ordering_code(exc: Exception) -> ErrorCode | None:
    """The code of an ordering service's refusal; None for an exception that is no refusal."""
    if isinstance(exc, NotLeader):
        return ErrorCode.NOT_LEADER
    if isinstance(exc, ProposalDropped):
        return ErrorCode.PROPOSAL_DROPPED
    if isinstance(exc, OrdererStopped):
        return ErrorCode.ORDERER_STOPPED
    if isinstance(exc, PoolFull):
        return ErrorCode.POOL_FULL
    if isinstance(exc, OrdererError):
        return ErrorCode.DUPLICATE_TX if exc.reason == "duplicate" else ErrorCode.INVALID_TX
    return None


def ordering_exception(refusal: RemoteRefusal) -> Exception:
    """The ordering service's own exception for a peer's SUBMIT refusal, where it has one
    (what a local submission would have raised); ``refusal`` itself otherwise."""
    code, msg = refusal.code, refusal.message
    if code is ErrorCode.NOT_LEADER:
        return NotLeader(None)
    if code is ErrorCode.PROPOSAL_DROPPED:
        return ProposalDropped(msg)
    if code is ErrorCode.ORDERER_STOPPED:
        return OrdererStopped(msg)
    if code is ErrorCode.POOL_FULL:
        return PoolFull(msg)
    if code is ErrorCode.DUPLICATE_TX:
        return InvalidTransaction("duplicate", msg)
    if code is ErrorCode.INVALID_TX:
        return InvalidTransaction("invalid", msg)
    return refusal


def reject_code(code: RejectCode) -> ErrorCode:
    """The wire code of an endorser's refusal."""
    return _REJECT_TO_CODE[code]


def rejection_of(code: ErrorCode) -> RejectCode | None:
    """The endorser's refusal a wire code stands for (None: not an endorsement refusal)."""
    return _CODE_TO_REJECT.get(code)
