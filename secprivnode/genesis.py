"""Channel configuration transactions and the genesis block.

A channel begins with block 0, which holds a single transaction to the ``_config`` system
contract carrying the channel's first :class:`~storage.model.ChannelConfig`. The genesis block is
the operator's bootstrap: its hash names the channel, every node is given the same file, and its
configuration is applied without a policy check (there is nothing yet to check it against). Every
later configuration change is a transaction of the same shape whose endorsements are channel-admin
signatures over :func:`~storage.model.config_update_digest`, checked by the validator against the
*current* configuration's admin policy.

This module builds those structures; it never reads the clock (time is passed in).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from crypto.merkle import merkle_root
from crypto.signing import PrivateKey, get_backend
from secprivnode.contracts.config_contract import config_rwset
from storage.ledger import CONFIG_KEY  # the state key (namespace CONFIG_CONTRACT) of the config
from storage.model import (
    BLOCK_VERSION,
    CONFIG_CONTRACT,
    GENESIS_PREVIOUS_HASH,
    Block,
    BlockHeader,
    ChannelConfig,
    Endorsement,
    Proposal,
    ProposalHeader,
    Response,
    Transaction,
    Version,
    config_update_digest,
)

__all__ = [
    "CONFIG_KEY",
    "admin_signature",
    "config_transaction",
    "genesis_block",
    "read_genesis",
    "write_genesis",
]


def admin_signature(config: ChannelConfig, admin_cert_der: bytes, admin_key: PrivateKey) -> tuple[bytes, bytes]:
    """One channel admin's approval of ``config``: (admin certificate DER, signature)."""
    return admin_cert_der, get_backend().sign(admin_key, config_update_digest(config))


def config_transaction(
    config: ChannelConfig,
    *,
    creator_cert_der: bytes,
    creator_key: PrivateKey,
    approvals: Sequence[tuple[bytes, bytes]],
    current_version: Version | None,
    timestamp_ms: int,
    nonce: bytes | None = None,
    packages: Sequence[bytes] = (),
    previous: ChannelConfig | None = None,
) -> Transaction:
    """A transaction proposing ``config`` as the channel's next configuration.

    ``current_version`` is the version of the config key the proposer read (``None`` for genesis);
    the MVCC check then refuses two updates racing from the same base. ``packages`` is the encoded
    code of the contract packages whose definitions the update commits or changes
    (:mod:`secprivnode.contracts.lifecycle`); without packages the transaction has its original shape.
    ``previous`` is the configuration the update replaces (``None`` for genesis): packaged
    definitions that differ from it are written to state too.
    """
    header = ProposalHeader(config.channel, creator_cert_der, nonce or os.urandom(24), timestamp_ms)
    args: tuple[Any, ...] = (config.to_obj(), list(packages)) if packages else (config.to_obj(),)
    proposal = Proposal(header, CONFIG_CONTRACT, "update", args)
    backend = get_backend()
    signature = backend.sign(creator_key, proposal.hash())
    rwset = config_rwset(config, current_version, packages, previous)
    endorsements = tuple(Endorsement(cert, sig) for cert, sig in approvals)
    return Transaction(proposal, signature, Response(200), rwset, endorsements)


def genesis_block(
    config: ChannelConfig,
    *,
    admin_cert_der: bytes,
    admin_key: PrivateKey,
    timestamp_ms: int,
    packages: Sequence[bytes] = (),
) -> Block:
    """Block 0 of ``config.channel``, signed by the admin who created the channel; ``packages``
    installs the code of the packaged contracts the configuration defines."""
    if config.sequence != 0:
        raise ValueError("a genesis configuration has sequence 0")
    tx = config_transaction(
        config,
        creator_cert_der=admin_cert_der,
        creator_key=admin_key,
        approvals=[admin_signature(config, admin_cert_der, admin_key)],
        current_version=None,
        timestamp_ms=timestamp_ms,
        packages=packages,
    )
    header = BlockHeader(
        version=BLOCK_VERSION,
        channel=config.channel,
        number=0,
        previous_hash=GENESIS_PREVIOUS_HASH,
        data_hash=merkle_root([tx.hash()]),
        timestamp_ms=timestamp_ms,
        term=0,
        index=0,
    )
    signature = get_backend().sign(admin_key, header.hash())
    return Block(header, (tx,), admin_cert_der, signature)


def write_genesis(path: os.PathLike[str] | str, block: Block) -> bytes:
    """Write the genesis block file; return its block hash (the channel's fingerprint)."""
    data = block.encode()
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return block.hash()


def read_genesis(path: os.PathLike[str] | str, channel: str | None = None) -> Block:
    """Read and check a genesis block file (shape, number 0, Merkle root, channel)."""
    with open(path, "rb") as f:
        block = Block.decode(f.read())
    if block.number != 0 or block.header.previous_hash != GENESIS_PREVIOUS_HASH:
        raise ValueError(f"{path}: not a genesis block")
    if block.header.data_hash != block.computed_data_hash():
        raise ValueError(f"{path}: Merkle root does not match the transactions")
    if channel is not None and block.header.channel != channel:
        raise ValueError(f"{path}: genesis block is for channel {block.header.channel!r}, not {channel!r}")
    return block
