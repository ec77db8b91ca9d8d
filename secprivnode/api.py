"""The node's service facade: what the JSON-RPC server, the operations server and in-process callers
may ask of a running node.

The RPC layer translates JSON to these calls and their results back to JSON; it never reaches into
the node's internals. The node implements :class:`NodeService`; tests implement it with fakes.

Errors raised here are :class:`ServiceError` subclasses with a stable application error code in
the JSON-RPC range -32000…-32099 (see :data:`ERROR_CODES`); anything else is an internal error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from secprivnode.signed_read import SignedRead
from storage.blockstore import BlockSummary
from storage.model import Proposal, ValidationCode

__all__ = [
    "ERROR_CODES",
    "BadRequest",
    "ContractFailed",
    "Event",
    "NodeService",
    "NotFoundError",
    "NotLeaderError",
    "Overloaded",
    "ServiceError",
    "SubmitResult",
    "TimeoutError_",
    "TxRejected",
    "Unauthenticated",
    "Unauthorized",
    "UnknownChannel",
]


class ServiceError(Exception):
    """An application error with a JSON-RPC error code in -32000…-32099."""

    code = -32000
    name = "ServerError"

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class NotFoundError(ServiceError):
    code = -32001
    name = "NotFound"


class UnknownChannel(ServiceError):
    code = -32002
    name = "UnknownChannel"


class TxRejected(ServiceError):
    """The proposal or transaction was refused before ordering (bad signature, unknown identity…)."""

    code = -32003
    name = "TxRejected"


class ContractFailed(ServiceError):
    """The contract ran and returned an error status; nothing was ordered."""

    code = -32004
    name = "ContractFailed"


class NotLeaderError(ServiceError):
    code = -32005
    name = "NotLeader"


class Overloaded(ServiceError):
    """A bounded queue or pool is full; retry later."""

    code = -32006
    name = "Overloaded"


class TimeoutError_(ServiceError):
    code = -32007
    name = "Timeout"


class Unauthorized(ServiceError):
    """The caller's identity lacks the role the method requires (e.g. admin)."""

    code = -32008
    name = "Unauthorized"


class BadRequest(ServiceError):
    """Parameters are well-typed JSON but not acceptable to the node (e.g. undecodable proposal)."""

    code = -32009
    name = "BadRequest"


class Unauthenticated(ServiceError):
    """The method needs a signed request identifying the caller, and none valid came with it."""

    code = -32010
    name = "Unauthenticated"


ERROR_CODES: dict[int, str] = {
    cls.code: cls.name
    for cls in (
        ServiceError,
        NotFoundError,
        UnknownChannel,
        TxRejected,
        ContractFailed,
        NotLeaderError,
        Overloaded,
        TimeoutError_,
        Unauthorized,
        BadRequest,
        Unauthenticated,
    )
}


@dataclass(frozen=True, slots=True)
class SubmitResult:
    tx_id: bytes
    block_number: int | None = None  # set once committed
    code: ValidationCode | None = None  # set once committed
    response: Mapping[str, Any] = field(default_factory=dict)  # status, message, payload


@dataclass(frozen=True, slots=True)
class Event:
    """A subscription event: kind is "block", "tx" or "contract"."""

    kind: str
    channel: str
    data: Mapping[str, Any]


class NodeService(Protocol):
    """Everything the RPC server needs. ``channel=None`` means the node's default channel."""

    @property
    def default_channel(self) -> str: ...

    async def node_status(self) -> dict[str, Any]: ...

    async def node_peers(self) -> list[dict[str, Any]]: ...

    async def raft_status(self, channel: str | None) -> dict[str, Any]: ...

    async def chain_height(self, channel: str | None) -> int: ...

    async def get_block(self, channel: str | None, number: int) -> tuple[BlockSummary, list[ValidationCode]]: ...

    async def get_block_by_hash(
        self, channel: str | None, block_hash: bytes
    ) -> tuple[BlockSummary, list[ValidationCode]]: ...

    async def get_transaction(self, channel: str | None, tx_id: bytes) -> dict[str, Any]: ...

    async def get_tx_proof(self, channel: str | None, tx_id: bytes) -> dict[str, Any]: ...

    async def authorize_read(self, read: SignedRead) -> str:
        """Check a signed read (identity, freshness, replay, the namespace's read policy) and return
        the reader's id; raise :class:`Unauthenticated`, :class:`Unauthorized` or :class:`Overloaded`."""
        ...

    async def state_get(self, channel: str | None, contract: str, key: str) -> dict[str, Any] | None: ...

    async def state_get_range(
        self, channel: str | None, contract: str, start: str, end: str, limit: int
    ) -> list[dict[str, Any]]: ...

    async def state_get_history(
        self, channel: str | None, contract: str, key: str, limit: int
    ) -> list[dict[str, Any]]: ...

    async def tx_submit(self, proposal: Proposal, signature: bytes) -> SubmitResult: ...

    async def tx_submit_and_wait(self, proposal: Proposal, signature: bytes, timeout_s: float) -> SubmitResult: ...

    async def tx_query(self, proposal: Proposal, signature: bytes) -> dict[str, Any]: ...

    async def tx_status(self, channel: str | None, tx_id: bytes) -> dict[str, Any]: ...

    async def contract_list(self, channel: str | None) -> list[dict[str, Any]]: ...

    async def config_get(self, channel: str | None) -> dict[str, Any]: ...

    async def config_update(
        self,
        channel: str | None,
        config_obj: Any,
        signatures: list[tuple[bytes, bytes]],
        packages: Sequence[bytes] = (),
    ) -> SubmitResult: ...

    def subscribe(
        self, channel: str | None, kinds: frozenset[str], tx_id: bytes | None = None
    ) -> AsyncIterator[Event]: ...

    async def health(self) -> dict[str, tuple[bool, str]]: ...
