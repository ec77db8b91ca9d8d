"""Typed errors of the transaction pipeline.

:class:`ProposalRejected` carries a stable :class:`RejectCode` and a message that can be shown to
the client as it is (the RPC layer maps codes to its error table). :class:`BlockRejected` means a
block cannot be committed at all (it does not extend the chain, or its orderer signature is not
from an orderer of the channel); per-transaction problems are never errors but validation codes.
"""

from __future__ import annotations

from enum import StrEnum

from storage.model import Response

__all__ = [
    "AlreadyCommitted",
    "BlockRejected",
    "ContractRejected",
    "GenesisError",
    "PipelineError",
    "ProposalRejected",
    "RejectCode",
]


class RejectCode(StrEnum):
    """Why an endorser refused a proposal."""

    BAD_PROPOSAL = "bad_proposal"  # malformed: nonce length, non-canonical args
    BAD_CHANNEL = "bad_channel"  # the proposal names another channel
    NOT_READY = "not_ready"  # the channel has no configuration yet (no genesis committed)
    UNKNOWN_IDENTITY = "unknown_identity"  # not a member: unknown org, bad chain, malformed cert
    EXPIRED_IDENTITY = "expired_identity"
    REVOKED_IDENTITY = "revoked_identity"
    BAD_SIGNATURE = "bad_signature"  # the creator's signature over the proposal does not verify
    DUPLICATE_TXID = "duplicate_txid"  # a transaction with this id is already committed
    UNKNOWN_CONTRACT = "unknown_contract"  # not defined in the channel config, or not installed here
    UNAUTHORIZED = "unauthorized"  # e.g. a config update sent for endorsement
    CONTRACT_ERROR = "contract_error"  # the contract ran and answered with status >= 400


class PipelineError(Exception):
    """Base class of pipeline errors."""


class ProposalRejected(PipelineError):
    """The endorser refused the proposal; nothing was signed."""

    def __init__(self, code: RejectCode, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message


class ContractRejected(ProposalRejected):
    """The contract answered with an error status; ``response`` holds it (nothing is ordered)."""

    def __init__(self, response: Response) -> None:
        super().__init__(RejectCode.CONTRACT_ERROR, f"contract returned {response.status}: {response.message}")
        self.response = response


class BlockRejected(PipelineError):
    """The block cannot be committed (it is not the next block, or not signed by a channel orderer)."""

    def __init__(self, number: int, message: str) -> None:
        super().__init__(f"block {number}: {message}")
        self.number = number
        self.message = message


class AlreadyCommitted(BlockRejected):
    """The block's number is below the ledger height (a duplicate delivery): safe to ignore."""


class GenesisError(BlockRejected):
    """Block 0 is not a well-formed genesis block: the channel cannot start from it."""
