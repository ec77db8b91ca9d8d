"""Typed errors of the ordering service: what a submitter is told when a transaction is refused.

Every refusal a client can cause is an :class:`OrdererError` with a stable ``reason`` label (the
metrics and the node's RPC error table key on it). A follower asked in no-forward mode raises the
Raft core's ``consensus.raft.types.NotLeader`` (with its ``leader_hint``), so callers catch one
class wherever it was raised.

This module must never import anything but the standard library.
"""

from __future__ import annotations

__all__ = [
    "DuplicateTransaction",
    "InvalidTransaction",
    "OrdererError",
    "OrdererStopped",
    "PoolFull",
]


class OrdererError(Exception):
    """Base class of the refusals the ordering service reports to a submitter."""

    reason = "error"


class PoolFull(OrdererError):
    """The pending pool is at its transaction or byte limit; retry after some blocks commit."""

    reason = "pool_full"


class DuplicateTransaction(OrdererError):
    """A transaction with this id is pending, in flight or was ordered recently."""

    reason = "duplicate"

    def __init__(self, tx_id: bytes) -> None:
        super().__init__(f"transaction {tx_id.hex()} is already pending or ordered")
        self.tx_id = tx_id


class InvalidTransaction(OrdererError):
    """The bytes are not an acceptable transaction for this channel; ``detail`` says why."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        # A short machine label (``malformed``, ``too_large``, ``wrong_channel``, ``bad_signature``,
        # ``bad_creator``), stable for metrics; ``detail`` is for humans.
        self.reason = reason
        self.detail = detail


class OrdererStopped(OrdererError):
    """The service is not running (not started yet, or stopping)."""

    reason = "stopped"
