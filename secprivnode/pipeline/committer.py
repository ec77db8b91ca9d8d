"""The committer: validate a block, then append it with its codes in one atomic ledger write.

``commit`` holds a lock from validation to the ledger write, so no other block can commit in
between (validation reads the state the block will be applied to). A caller that wants the disk
sync off its thread splits it: ``prepare`` (validate, then stage the ledger batch), the staged
batch's ``write`` wherever it likes, then ``finish``. The ledger stages one block at a time, so the
next block cannot be validated and staged against a state its predecessor has not reached yet.
The ledger applies the writes of VALID transactions itself, in the same synchronous LevelDB
batch as the block (see :mod:`storage.ledger`), together with the private data this node derives
from the block (``private``: :mod:`secprivnode.pipeline.privdata`). The result lists, per transaction, its id, code
and, for VALID ones, the contract's events, for subscribers; and the new channel config when the
block changed it. The channel MSP needs no notice: :class:`~secprivnode.pipeline.membership.ChannelView` derives it
from the committed config.

This module never commits a block the validator has not coded, never reads the clock, and never
swallows a ledger error.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from secprivnode.pipeline.validator import BlockValidator, ValidatorLedger
from storage.ledger import CheckedBlock, StagedCommit
from storage.model import CONFIG_CONTRACT, Block, ChannelConfig, ValidationCode

__all__ = ["CommitResult", "Committer", "CommitterLedger", "PreparedCommit", "PrivateCommit", "TxEvent"]


class CommitterLedger(ValidatorLedger, Protocol):
    def check_block(self, block: Block, block_bytes: bytes | None = None) -> CheckedBlock: ...

    def stage(
        self, checked: CheckedBlock, codes: Sequence[ValidationCode], extra: Sequence[tuple[bytes, bytes | None]] = ()
    ) -> StagedCommit: ...


class PrivateCommit(Protocol):
    """Private data derived from a coded block (``secprivnode.pipeline.privdata``)."""

    def commit_ops(self, block: Block, codes: Sequence[ValidationCode]) -> list[tuple[bytes, bytes | None]]: ...


@dataclass(frozen=True, slots=True)
class TxEvent:
    tx_id: bytes
    code: ValidationCode
    contract: str
    events: tuple[tuple[str, bytes], ...]  # the contract's events; empty unless VALID


@dataclass(frozen=True, slots=True)
class CommitResult:
    number: int
    block_hash: bytes
    codes: tuple[ValidationCode, ...]
    txs: tuple[TxEvent, ...]
    config: ChannelConfig | None  # the channel config after this block, if the block changed it

    @property
    def valid_count(self) -> int:
        return sum(1 for c in self.codes if c is ValidationCode.VALID)


@dataclass(frozen=True, slots=True)
class PreparedCommit:
    """A validated block with its ledger batch staged: ``staged.write()``, then ``finish``."""

    block: Block
    codes: tuple[ValidationCode, ...]
    staged: StagedCommit


class Committer:
    """Commits blocks of one channel, in order, one at a time."""

    def __init__(
        self, ledger: CommitterLedger, validator: BlockValidator, private: PrivateCommit | None = None
    ) -> None:
        if validator.ledger is not ledger:
            raise ValueError("the validator must read the ledger this committer writes")
        self.ledger = ledger
        self.private = private
        self.validator = validator
        self._lock = threading.Lock()

    def commit(self, block: Block, *, block_bytes: bytes | None = None) -> CommitResult:
        """Validate and append ``block``; raises BlockRejected/AlreadyCommitted, or the ledger's error."""
        with self._lock:
            prepared = self._prepare(block, block_bytes, None)
            prepared.staged.write()
            return self.finish(prepared)

    def prepare(
        self, block: Block, *, block_bytes: bytes | None = None, checked: CheckedBlock | None = None
    ) -> PreparedCommit:
        """Validate ``block`` and stage its ledger batch (``checked``: the ledger's
        ``check_block`` of it, done ahead). Nothing is written until ``staged.write()``."""
        with self._lock:
            return self._prepare(block, block_bytes, checked)

    def _prepare(self, block: Block, block_bytes: bytes | None, checked: CheckedBlock | None) -> PreparedCommit:
        codes = self.validator.validate(block)
        assert len(codes) == len(block.transactions), "validator returned the wrong number of codes"
        if checked is None:
            checked = self.ledger.check_block(block, block_bytes)
        elif checked.block is not block:
            raise ValueError("checked is the check of another block")
        extra = self.private.commit_ops(block, codes) if self.private is not None and block.number > 0 else []
        return PreparedCommit(block, tuple(codes), self.ledger.stage(checked, codes, extra))

    def finish(self, prepared: PreparedCommit) -> CommitResult:
        """The result of a prepared commit whose batch has been written."""
        block, codes = prepared.block, prepared.codes
        if self.ledger.height <= block.number:
            raise RuntimeError(f"block {block.number} has not been written")
        config_changed = any(
            c is ValidationCode.VALID and tx.proposal.contract == CONFIG_CONTRACT
            for tx, c in zip(block.transactions, codes, strict=True)
        )
        config = self.ledger.latest_config() if config_changed else None
        txs = tuple(
            TxEvent(tx.tx_id, c, tx.proposal.contract, tx.response.events if c is ValidationCode.VALID else ())
            for tx, c in zip(block.transactions, codes, strict=True)
        )
        return CommitResult(block.number, block.hash(), codes, txs, config)
