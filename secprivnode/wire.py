"""Node-to-node application messages carried by the P2P transport.

The transport moves opaque canonical values tagged with an integer *kind*; this module fixes the
kinds the node uses and the shape of their payloads, so that consensus and p2p never need to know
about each other. Each payload starts with the channel name: every Raft group, endorsement and
submission is per channel.

=====  ==========  ===========================================================================
kind   style       payload → answer
=====  ==========  ===========================================================================
1      one-way     RAFT: ``[channel, raft_message.to_wire()]``
2      request     SUBMIT: ``[channel, tx_bytes]`` → ``["ok", tx_id]`` or ``["err", kind, message]``
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
fault: bad signature, duplicate) from a failure to reach the peer.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BLOB_CHUNK",
    "BLOB_OFFER",
    "ENDORSE",
    "PVT_FETCH",
    "PVT_PUSH",
    "RAFT",
    "SUBMIT",
    "RemoteRefusal",
    "err",
    "ok",
    "unpack_answer",
]

RAFT = 1
SUBMIT = 2
ENDORSE = 3
PVT_PUSH = 4
PVT_FETCH = 5
BLOB_OFFER = 6
BLOB_CHUNK = 7


def ok(*values: Any) -> list[Any]:
    return ["ok", *values]


def err(kind: str, message: str) -> list[Any]:
    return ["err", kind, message]


class RemoteRefusal(Exception):
    """The peer answered with an error value."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


def unpack_answer(answer: Any) -> tuple[Any, ...]:
    """The values of an ``ok`` answer; raise :class:`RemoteRefusal` for ``err`` or a bad shape."""
    if isinstance(answer, (list, tuple)) and answer:
        if answer[0] == "ok":
            return tuple(answer[1:])
        if answer[0] == "err" and len(answer) == 3 and isinstance(answer[1], str) and isinstance(answer[2], str):
            raise RemoteRefusal(answer[1], answer[2])
    raise RemoteRefusal("protocol", "malformed answer from peer")
