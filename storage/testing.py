"""Builders of real signed transactions and blocks, for tests and benchmarks of the ledger.

Everything built here is what the pipeline would produce: the creator signs the proposal hash,
each endorser signs ``endorsement_digest``, the block header carries the RFC 6962 Merkle root of
the transaction hashes, and the orderer signs the header hash. Certificates are opaque DER-sized
bytes chosen by the caller; the :class:`ChainBuilder` keeps a map from them to public keys so that
``verify_chain`` can be given a key resolver.

The node never imports this module. It draws randomness only from the ``random.Random`` it is
given, so every build is reproducible from a seed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from crypto.merkle import merkle_root
from crypto.signing import PrivateKey, PublicKey, get_backend
from storage.model import (
    BLOCK_VERSION,
    GENESIS_PREVIOUS_HASH,
    NONCE_BYTES,
    Block,
    BlockHeader,
    Endorsement,
    KVRead,
    KVWrite,
    Proposal,
    ProposalHeader,
    ReadWriteSet,
    Response,
    Transaction,
    ValidationCode,
    Version,
    endorsement_digest,
)

__all__ = ["Chain", "ChainBuilder", "Signer", "TestKeys", "make_tx"]


class _Committer(Protocol):
    def commit(self, block: Block, codes: Sequence[ValidationCode]) -> None: ...


@dataclass(frozen=True)
class Signer:
    """A key and the certificate bytes that stand for it."""

    key: PrivateKey
    cert: bytes

    @classmethod
    def generate(cls, rng: random.Random, cert_bytes: int = 64, label: bytes = b"cert") -> Signer:
        key = get_backend().generate()
        pad = max(0, cert_bytes - len(label))
        return cls(key, label + rng.randbytes(pad))


def make_tx(
    channel: str,
    creator: Signer,
    endorsers: Sequence[Signer],
    rng: random.Random,
    *,
    namespace: str = "kv",
    writes: Sequence[tuple[str, bytes | None]] = (),
    reads: Sequence[tuple[str, Version | None]] = (),
    args: tuple[object, ...] = (),
    payload: bytes = b"",
    timestamp_ms: int = 0,
) -> Transaction:
    """A signed, endorsed transaction with the given read/write set."""
    backend = get_backend()
    header = ProposalHeader(channel, creator.cert, rng.randbytes(NONCE_BYTES), timestamp_ms)
    proposal = Proposal(header, namespace, "invoke", tuple(args))
    rwset = ReadWriteSet(
        namespace,
        tuple(KVRead(k, v) for k, v in reads),
        tuple(KVWrite(k, v) for k, v in writes),
    )
    response = Response(200, "", payload)
    ph = proposal.hash()
    ends = tuple(Endorsement(e.cert, backend.sign(e.key, endorsement_digest(ph, response, rwset))) for e in endorsers)
    return Transaction(proposal, backend.sign(creator.key, ph), response, rwset, ends)


@dataclass
class ChainBuilder:
    """Builds a channel's chain block by block, as a Raft leader's orderer would."""

    channel: str
    orderer: Signer
    height: int = 0
    tip_hash: bytes = GENESIS_PREVIOUS_HASH
    keys: dict[bytes, PublicKey] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keys[self.orderer.cert] = self.orderer.key.public

    def resolver(self, cert: bytes) -> PublicKey | None:
        return self.keys.get(cert)

    def block(self, txs: Sequence[Transaction], *, timestamp_ms: int = 0, term: int = 1) -> Block:
        """The next block holding ``txs``, signed by the orderer; advances the builder's tip."""
        header = BlockHeader(
            BLOCK_VERSION,
            self.channel,
            self.height,
            self.tip_hash,
            merkle_root([t.hash() for t in txs]),
            timestamp_ms,
            term,
            self.height + 1,
        )
        h = header.hash()
        block = Block(header, tuple(txs), self.orderer.cert, get_backend().sign(self.orderer.key, h))
        self.height += 1
        self.tip_hash = h
        return block


@dataclass(frozen=True)
class TestKeys:
    """The three signers a test chain needs."""

    __test__ = False  # not a pytest test class

    creator: Signer
    endorser: Signer
    orderer: Signer

    @classmethod
    def generate(cls, rng: random.Random, cert_bytes: int = 64) -> TestKeys:
        return cls(
            Signer.generate(rng, cert_bytes, b"creator-cert"),
            Signer.generate(rng, cert_bytes, b"endorser-cert"),
            Signer.generate(rng, cert_bytes, b"orderer-cert"),
        )


class Chain:
    """Makes one channel's transactions and next blocks from a seed, and commits them to a ledger."""

    def __init__(self, channel: str, keys: TestKeys, seed: int = 1) -> None:
        self.channel = channel
        self.keys = keys
        self.rng = random.Random(seed)
        self.builder = ChainBuilder(channel, keys.orderer)

    def tx(
        self,
        writes: Sequence[tuple[str, bytes | None]] = (),
        *,
        ns: str = "kv",
        reads: Sequence[tuple[str, Version | None]] = (),
        payload: bytes = b"",
    ) -> Transaction:
        k = self.keys
        return make_tx(
            self.channel, k.creator, [k.endorser], self.rng, namespace=ns, writes=writes, reads=reads, payload=payload
        )

    def block(self, txs: Sequence[Transaction]) -> Block:
        return self.builder.block(txs)

    def commit(
        self, ledger: _Committer, txs: Sequence[Transaction], codes: Sequence[ValidationCode] | None = None
    ) -> Block:
        """Build the next block of ``txs`` and commit it (all VALID unless ``codes`` says otherwise)."""
        block = self.block(txs)
        ledger.commit(block, list(codes) if codes is not None else [ValidationCode.VALID] * len(txs))
        return block
