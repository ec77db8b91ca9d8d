"""The ledger's data model: proposals, endorsements, transactions, blocks and channel configuration.

Every structure is a frozen, slotted dataclass with ``to_obj()`` (a value the canonical encoding
accepts: arrays in a fixed field order) and ``from_obj()`` (strict: wrong shape or type raises
:class:`MalformedError`). Hashes are domain-separated digests of those objects (see
:mod:`crypto.hashing`), so each hash names exactly one kind of structure.

Identities (creator, endorser, orderer) are carried as the DER bytes of their X.509 certificate,
as Fabric's serialized identities are; the MSP validates them.

What is hashed and signed:

* tx id          = digest(PROPOSAL_HEADER, header)               -- a replay has the same id
* creator signs    digest(PROPOSAL, proposal)                    -- transient inputs excluded
* endorser signs   digest(ENDORSEMENT, [proposal hash, response, rwset])  -- one namespace
                   digest(ENDORSEMENT, [proposal hash, response, rwset, [rwset...]])  -- with calls
* Merkle leaf    = digest(TRANSACTION, transaction)
* block hash     = digest(BLOCK_HEADER, header); the orderer signs it

This module never reads the clock or randomness and holds no floats.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from crypto.encoding import EncodingError, decode, encode
from crypto.hashing import Tag, digest

__all__ = [
    "BLOCK_VERSION",
    "BLOCK_VERSIONS",
    "CONFIG_CONTRACT",
    "GENESIS_PREVIOUS_HASH",
    "BatchConfig",
    "Block",
    "BlockHeader",
    "ChannelConfig",
    "ChannelNode",
    "CollectionConfig",
    "CollectionHashes",
    "ContractDefinition",
    "Endorsement",
    "HashedRead",
    "HashedWrite",
    "KVRead",
    "KVWrite",
    "MalformedError",
    "OrgConfig",
    "Proposal",
    "ProposalHeader",
    "RangeRead",
    "ReadWriteSet",
    "Response",
    "Transaction",
    "ValidationCode",
    "Version",
    "config_update_digest",
    "endorsement_digest",
]

# Version 2 blocks may hold transactions with read/write sets in several namespaces (a contract
# that called other contracts: Transaction.extra_rwsets); version 1 blocks never do. Both are read.
BLOCK_VERSION = 2
BLOCK_VERSIONS = (1, 2)
GENESIS_PREVIOUS_HASH = b"\x00" * 32
NONCE_BYTES = 24  # enough that random nonces never collide across a city's lifetime (2^-96 scale)

Version = tuple[int, int]  # (block number, tx index): the position of the write that made a value


class MalformedError(EncodingError):
    """Bytes that decode canonically but do not have the shape of the expected structure."""


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise MalformedError(what)


def _seq(obj: Any, n: int, what: str) -> tuple[Any, ...]:
    _check(isinstance(obj, (tuple, list)) and len(obj) == n, f"{what}: expected an array of {n}")
    return tuple(obj)


def _typed(v: Any, t: type, what: str) -> Any:
    _check(type(v) is t, f"{what}: expected {t.__name__}")
    return v


def _opt_version(v: Any, what: str) -> Version | None:
    if v is None:
        return None
    a, b = _seq(v, 2, what)
    return (_typed(a, int, what), _typed(b, int, what))


class ValidationCode(IntEnum):
    """Per-transaction result written by each committer (block metadata, outside the hash)."""

    VALID = 0
    MVCC_READ_CONFLICT = 1
    PHANTOM_READ_CONFLICT = 2
    ENDORSEMENT_POLICY_FAILURE = 3
    BAD_CREATOR_SIGNATURE = 4
    BAD_ENDORSEMENT_SIGNATURE = 5
    DUPLICATE_TXID = 6
    UNKNOWN_IDENTITY = 7
    REVOKED_IDENTITY = 8
    UNAUTHORIZED = 9
    UNKNOWN_CONTRACT = 10
    BAD_PAYLOAD = 11
    BAD_CHANNEL = 12
    INVALID_CONFIG = 13
    ENDORSEMENT_MISMATCH = 14


@dataclass(frozen=True, slots=True)
class ProposalHeader:
    channel: str
    creator: bytes  # DER X.509 certificate of the client
    nonce: bytes  # NONCE_BYTES random bytes chosen by the client
    timestamp_ms: int  # the client's clock: informational only, never used by contracts

    def to_obj(self) -> list[Any]:
        return [self.channel, self.creator, self.nonce, self.timestamp_ms]

    @classmethod
    def from_obj(cls, obj: Any) -> ProposalHeader:
        ch, cr, nonce, ts = _seq(obj, 4, "proposal header")
        return cls(
            _typed(ch, str, "channel"),
            _typed(cr, bytes, "creator"),
            _typed(nonce, bytes, "nonce"),
            _typed(ts, int, "timestamp"),
        )

    @property
    def tx_id(self) -> bytes:
        return digest(Tag.PROPOSAL_HEADER, self.to_obj())


@dataclass(frozen=True, slots=True)
class Proposal:
    """A request to run ``contract.function(*args)``. ``transient`` is never hashed nor stored."""

    header: ProposalHeader
    contract: str
    function: str
    args: tuple[Any, ...]
    transient: Mapping[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    def to_obj(self) -> list[Any]:
        return [self.header.to_obj(), self.contract, self.function, list(self.args)]

    @classmethod
    def from_obj(cls, obj: Any) -> Proposal:
        h, c, f, a = _seq(obj, 4, "proposal")
        _check(isinstance(a, (tuple, list)), "proposal args: expected an array")
        return cls(ProposalHeader.from_obj(h), _typed(c, str, "contract"), _typed(f, str, "function"), tuple(a))

    @property
    def tx_id(self) -> bytes:
        return self.header.tx_id

    def hash(self) -> bytes:
        """What the creator signs, and what endorsements refer to."""
        return digest(Tag.PROPOSAL, self.to_obj())


@dataclass(frozen=True, slots=True)
class Response:
    """A contract's result: status (200 = success), message, payload and emitted events."""

    status: int
    message: str = ""
    payload: bytes = b""
    events: tuple[tuple[str, bytes], ...] = ()

    def to_obj(self) -> list[Any]:
        return [self.status, self.message, self.payload, [[n, p] for n, p in self.events]]

    @classmethod
    def from_obj(cls, obj: Any) -> Response:
        s, m, p, ev = _seq(obj, 4, "response")
        _check(isinstance(ev, (tuple, list)), "events: expected an array")
        events = tuple(
            (_typed(e[0], str, "event name"), _typed(e[1], bytes, "event payload"))
            for e in (_seq(x, 2, "event") for x in ev)
        )
        return cls(_typed(s, int, "status"), _typed(m, str, "message"), _typed(p, bytes, "payload"), events)


@dataclass(frozen=True, slots=True)
class KVRead:
    key: str
    version: Version | None  # None: the key was absent

    def to_obj(self) -> list[Any]:
        return [self.key, None if self.version is None else list(self.version)]


@dataclass(frozen=True, slots=True)
class KVWrite:
    key: str
    value: bytes | None  # None: delete

    def to_obj(self) -> list[Any]:
        return [self.key, self.value]


@dataclass(frozen=True, slots=True)
class RangeRead:
    """A range scan [start, end) and what it saw, so validation can detect phantoms."""

    start: str
    end: str
    reads: tuple[KVRead, ...]

    def to_obj(self) -> list[Any]:
        return [self.start, self.end, [r.to_obj() for r in self.reads]]


def _reads_from(obj: Any, what: str) -> tuple[KVRead, ...]:
    _check(isinstance(obj, (tuple, list)), f"{what}: expected an array")
    out = []
    for r in obj:
        k, v = _seq(r, 2, what)
        out.append(KVRead(_typed(k, str, "read key"), _opt_version(v, "read version")))
    return tuple(out)


HASH_LEN = 32  # SHA-256 digests of private keys and values


def _hash32(v: Any, what: str) -> bytes:
    _check(type(v) is bytes and len(v) == HASH_LEN, f"{what}: expected 32 bytes")
    return v


@dataclass(frozen=True, slots=True)
class HashedRead:
    """A private key read during simulation, by hash, with the version it had (None: absent)."""

    key_hash: bytes
    version: Version | None

    def to_obj(self) -> list[Any]:
        return [self.key_hash, None if self.version is None else list(self.version)]


@dataclass(frozen=True, slots=True)
class HashedWrite:
    """A private write as the public ledger sees it: the key's hash and the value's (None: delete)."""

    key_hash: bytes
    value_hash: bytes | None

    def to_obj(self) -> list[Any]:
        return [self.key_hash, self.value_hash]


@dataclass(frozen=True, slots=True)
class CollectionHashes:
    """What a transaction read and wrote in one private collection, as hashes only.

    The plaintext travels off the ledger (transient store, private-data gossip); every node keeps
    the hashes, so MVCC of private keys works on members and non-members alike.
    """

    collection: str
    reads: tuple[HashedRead, ...] = ()
    writes: tuple[HashedWrite, ...] = ()

    def to_obj(self) -> list[Any]:
        return [self.collection, [r.to_obj() for r in self.reads], [w.to_obj() for w in self.writes]]

    @classmethod
    def from_obj(cls, obj: Any) -> CollectionHashes:
        name, reads, writes = _seq(obj, 3, "collection hashes")
        _check(isinstance(reads, (tuple, list)) and isinstance(writes, (tuple, list)), "collection hashes: arrays")
        rs = []
        for r in reads:
            k, v = _seq(r, 2, "hashed read")
            rs.append(HashedRead(_hash32(k, "hashed read key"), _opt_version(v, "hashed read version")))
        ws = []
        for w in writes:
            k, v = _seq(w, 2, "hashed write")
            ws.append(HashedWrite(_hash32(k, "hashed write key"), None if v is None else _hash32(v, "value hash")))
        return cls(_typed(name, str, "collection"), tuple(rs), tuple(ws))


@dataclass(frozen=True, slots=True)
class ReadWriteSet:
    """What simulating a proposal read and would write, in one contract's namespace.

    ``collections`` (trailing, omitted when empty so older sets encode unchanged) carries the
    hashed reads and writes of the namespace's private collections, sorted by collection name.
    """

    namespace: str
    reads: tuple[KVRead, ...] = ()
    writes: tuple[KVWrite, ...] = ()
    range_reads: tuple[RangeRead, ...] = ()
    collections: tuple[CollectionHashes, ...] = ()

    def to_obj(self) -> list[Any]:
        obj = [
            self.namespace,
            [r.to_obj() for r in self.reads],
            [w.to_obj() for w in self.writes],
            [q.to_obj() for q in self.range_reads],
        ]
        if self.collections:
            obj.append([c.to_obj() for c in self.collections])
        return obj

    @classmethod
    def from_obj(cls, obj: Any) -> ReadWriteSet:
        _check(isinstance(obj, (tuple, list)) and len(obj) in (4, 5), "rwset: expected an array of 4 or 5")
        ns, reads, writes, ranges = obj[:4]
        _check(isinstance(writes, (tuple, list)) and isinstance(ranges, (tuple, list)), "rwset: bad arrays")
        ws = []
        for w in writes:
            k, v = _seq(w, 2, "write")
            _check(v is None or type(v) is bytes, "write value: expected bytes or nil")
            ws.append(KVWrite(_typed(k, str, "write key"), v))
        rr = []
        for q in ranges:
            s, e, rd = _seq(q, 3, "range read")
            rr.append(RangeRead(_typed(s, str, "range start"), _typed(e, str, "range end"), _reads_from(rd, "range")))
        colls: tuple[CollectionHashes, ...] = ()
        if len(obj) == 5:
            _check(isinstance(obj[4], (tuple, list)) and len(obj[4]) > 0, "rwset collections: a non-empty array")
            colls = tuple(CollectionHashes.from_obj(c) for c in obj[4])
        return cls(_typed(ns, str, "namespace"), _reads_from(reads, "reads"), tuple(ws), tuple(rr), colls)


def endorsement_digest(
    proposal_hash: bytes, response: Response, rwset: ReadWriteSet, extra_rwsets: tuple[ReadWriteSet, ...] = ()
) -> bytes:
    """What an endorser signs: the proposal it ran and exactly what running it produced (the
    called contract's read/write set, then those of the contracts it called, if any)."""
    obj = [proposal_hash, response.to_obj(), rwset.to_obj()]
    if extra_rwsets:
        obj.append([rw.to_obj() for rw in extra_rwsets])
    return digest(Tag.ENDORSEMENT, obj)


@dataclass(frozen=True, slots=True)
class Endorsement:
    endorser: bytes  # DER X.509 certificate of the endorsing node
    signature: bytes  # over endorsement_digest(...)

    def to_obj(self) -> list[Any]:
        return [self.endorser, self.signature]

    @classmethod
    def from_obj(cls, obj: Any) -> Endorsement:
        e, s = _seq(obj, 2, "endorsement")
        return cls(_typed(e, bytes, "endorser"), _typed(s, bytes, "endorsement signature"))


@dataclass(frozen=True, slots=True)
class Transaction:
    """An endorsed proposal as it is ordered and stored (without transient inputs)."""

    proposal: Proposal
    signature: bytes  # creator's signature over proposal.hash()
    response: Response
    rwset: ReadWriteSet  # the namespace of proposal.contract
    endorsements: tuple[Endorsement, ...]
    # The namespaces of the contracts that proposal.contract called (directly or not), sorted by
    # namespace, none of them proposal.contract's. A trailing field left out when empty, so a
    # transaction that called no other contract encodes as in version 1 blocks.
    extra_rwsets: tuple[ReadWriteSet, ...] = ()

    def to_obj(self) -> list[Any]:
        obj = [
            self.proposal.to_obj(),
            self.signature,
            self.response.to_obj(),
            self.rwset.to_obj(),
            [e.to_obj() for e in self.endorsements],
        ]
        if self.extra_rwsets:
            obj.append([rw.to_obj() for rw in self.extra_rwsets])
        return obj

    @classmethod
    def from_obj(cls, obj: Any) -> Transaction:
        _check(isinstance(obj, (tuple, list)) and len(obj) in (5, 6), "transaction: expected an array of 5 or 6")
        p, s, r, rw, ends = obj[:5]
        _check(isinstance(ends, (tuple, list)), "endorsements: expected an array")
        extra: tuple[ReadWriteSet, ...] = ()
        if len(obj) == 6:
            _check(isinstance(obj[5], (tuple, list)) and len(obj[5]) > 0, "extra rwsets: expected a non-empty array")
            extra = tuple(ReadWriteSet.from_obj(x) for x in obj[5])
        return cls(
            Proposal.from_obj(p),
            _typed(s, bytes, "signature"),
            Response.from_obj(r),
            ReadWriteSet.from_obj(rw),
            tuple(Endorsement.from_obj(e) for e in ends),
            extra,
        )

    @property
    def rwsets(self) -> tuple[ReadWriteSet, ...]:
        """Every namespace's read/write set: the called contract's first."""
        return (self.rwset, *self.extra_rwsets)

    def endorsement_digest(self) -> bytes:
        """What each endorsement of this transaction signs."""
        return endorsement_digest(self.proposal.hash(), self.response, self.rwset, self.extra_rwsets)

    def encode(self) -> bytes:
        return encode(self.to_obj())

    @classmethod
    def decode(cls, data: bytes) -> Transaction:
        return cls.from_obj(decode(data))

    @property
    def tx_id(self) -> bytes:
        return self.proposal.header.tx_id

    @property
    def channel(self) -> str:
        return self.proposal.header.channel

    def hash(self) -> bytes:
        """The Merkle leaf of this transaction in its block."""
        return digest(Tag.TRANSACTION, self.to_obj())


@dataclass(frozen=True, slots=True)
class BlockHeader:
    version: int
    channel: str
    number: int
    previous_hash: bytes  # hash of the previous block's header; GENESIS_PREVIOUS_HASH for block 0
    data_hash: bytes  # RFC 6962 Merkle root of the transactions' hashes
    timestamp_ms: int  # set by the ordering leader; the only time contracts ever see
    term: int  # Raft term of the entry that carried the block
    index: int  # Raft log index of that entry

    def to_obj(self) -> list[Any]:
        return [
            self.version,
            self.channel,
            self.number,
            self.previous_hash,
            self.data_hash,
            self.timestamp_ms,
            self.term,
            self.index,
        ]

    @classmethod
    def from_obj(cls, obj: Any) -> BlockHeader:
        v, ch, n, prev, dh, ts, term, idx = _seq(obj, 8, "block header")
        for x, name in ((v, "version"), (n, "number"), (ts, "timestamp"), (term, "term"), (idx, "index")):
            _typed(x, int, name)
        _check(type(prev) is bytes and len(prev) == 32, "previous hash: expected 32 bytes")
        _check(type(dh) is bytes and len(dh) == 32, "data hash: expected 32 bytes")
        return cls(v, _typed(ch, str, "channel"), n, prev, dh, ts, term, idx)

    def hash(self) -> bytes:
        return digest(Tag.BLOCK_HEADER, self.to_obj())


@dataclass(frozen=True, slots=True)
class Block:
    """A block as the orderer signed it. Validation codes are stored beside it, not in it."""

    header: BlockHeader
    transactions: tuple[Transaction, ...]
    orderer: bytes = b""  # DER X.509 certificate of the orderer that signed the header
    signature: bytes = b""  # orderer's signature over header.hash()

    def to_obj(self) -> list[Any]:
        return [self.header.to_obj(), [t.to_obj() for t in self.transactions], self.orderer, self.signature]

    @classmethod
    def from_obj(cls, obj: Any) -> Block:
        h, txs, o, s = _seq(obj, 4, "block")
        _check(isinstance(txs, (tuple, list)), "block transactions: expected an array")
        return cls(
            BlockHeader.from_obj(h),
            tuple(Transaction.from_obj(t) for t in txs),
            _typed(o, bytes, "orderer"),
            _typed(s, bytes, "orderer signature"),
        )

    def encode(self) -> bytes:
        return encode(self.to_obj())

    @classmethod
    def decode(cls, data: bytes) -> Block:
        return cls.from_obj(decode(data))

    @property
    def number(self) -> int:
        return self.header.number

    def hash(self) -> bytes:
        return self.header.hash()

    def tx_hashes(self) -> list[bytes]:
        return [t.hash() for t in self.transactions]

    def computed_data_hash(self) -> bytes:
        from crypto.merkle import merkle_root

        return merkle_root(self.tx_hashes())


# ---------------------------------------------------------------------------------------------
# Channel configuration. The genesis block holds one transaction to CONFIG_CONTRACT whose only
# argument is the channel's first ChannelConfig; later config blocks carry updates, each signed by
# enough channel admins (their signatures travel as the transaction's endorsements, over
# config_update_digest) to satisfy the current config's admin policy.
# ---------------------------------------------------------------------------------------------

CONFIG_CONTRACT = "_config"


@dataclass(frozen=True, slots=True)
class OrgConfig:
    """A member organisation: its MSP (root CA certificate and CRLs)."""

    name: str
    ca_cert: bytes  # DER
    crls: tuple[bytes, ...] = ()  # DER CRLs issued by ca_cert

    def to_obj(self) -> list[Any]:
        return [self.name, self.ca_cert, list(self.crls)]

    @classmethod
    def from_obj(cls, obj: Any) -> OrgConfig:
        n, ca, crls = _seq(obj, 3, "org")
        _check(isinstance(crls, (tuple, list)) and all(type(c) is bytes for c in crls), "crls: expected bytes")
        return cls(_typed(n, str, "org name"), _typed(ca, bytes, "ca cert"), tuple(crls))


@dataclass(frozen=True, slots=True)
class ChannelNode:
    """A node admitted to the channel: a peer, and a Raft voter when ``orderer`` is true."""

    name: str  # the CN of its node certificate; also its Raft id
    org: str
    address: str  # host:port of its P2P listener
    orderer: bool = False

    def to_obj(self) -> list[Any]:
        return [self.name, self.org, self.address, self.orderer]

    @classmethod
    def from_obj(cls, obj: Any) -> ChannelNode:
        n, o, a, orderer = _seq(obj, 4, "channel node")
        return cls(
            _typed(n, str, "name"), _typed(o, str, "org"), _typed(a, str, "address"), _typed(orderer, bool, "orderer")
        )


@dataclass(frozen=True, slots=True)
class BatchConfig:
    """Block cutting, as Fabric's BatchSize/BatchTimeout: whichever limit is hit first cuts."""

    max_tx_count: int = 500
    preferred_max_bytes: int = 2 * 1024 * 1024
    absolute_max_bytes: int = 10 * 1024 * 1024
    timeout_ms: int = 200

    def to_obj(self) -> list[Any]:
        return [self.max_tx_count, self.preferred_max_bytes, self.absolute_max_bytes, self.timeout_ms]

    @classmethod
    def from_obj(cls, obj: Any) -> BatchConfig:
        vals = _seq(obj, 4, "batch config")
        for v in vals:
            _check(type(v) is int and v > 0, "batch config: expected positive integers")
        return cls(*vals)


@dataclass(frozen=True, slots=True)
class ContractDefinition:
    """A contract defined on the channel.

    ``package_hash`` and ``sequence`` come from the contract lifecycle
    (:mod:`secprivnode.contracts.lifecycle`): the hash of the committed package whose code every
    node runs, and the definition sequence (1 for the first committed definition, one more for
    each change). Both are trailing optional fields, omitted from the encoding while empty, so
    configurations written before the lifecycle decode and re-encode to the same bytes.
    """

    name: str
    version: str
    policy: str  # endorsement policy expression, e.g. "OutOf(2, 'council.node', 'transport.node')"
    package_hash: bytes = b""  # b"": no package, the code is built into the node (system contracts)
    sequence: int = 0

    def to_obj(self) -> list[Any]:
        base: list[Any] = [self.name, self.version, self.policy]
        if self.package_hash or self.sequence:
            base += [self.package_hash, self.sequence]
        return base

    @classmethod
    def from_obj(cls, obj: Any) -> ContractDefinition:
        _check(isinstance(obj, (tuple, list)) and len(obj) in (3, 5), "contract definition: expected 3 or 5 fields")
        n, v, p = obj[:3]
        d = cls(_typed(n, str, "name"), _typed(v, str, "version"), _typed(p, str, "policy"))
        if len(obj) == 3:
            return d
        h, seq = obj[3:]
        _typed(h, bytes, "package hash")
        _check(type(seq) is int and seq >= 0, "definition sequence: expected a non-negative integer")
        _check(bool(h) or seq != 0, "contract definition: trailing fields must not both be empty")
        return cls(d.name, d.version, d.policy, h, seq)


@dataclass(frozen=True, slots=True)
class CollectionConfig:
    """A private-data collection of one contract (Fabric's collection definition).

    Plaintext of its private writes and blobs is kept only by nodes of ``member_orgs``. An endorser
    answers only once ``required_peers`` other member nodes have acknowledged the data, and pushes
    it to at most ``max_peers``. Private data committed in block ``b`` is purged once the ledger
    height exceeds ``b + block_to_live`` (0: kept forever).
    """

    contract: str
    name: str
    member_orgs: tuple[str, ...]
    required_peers: int = 0
    max_peers: int = 0
    block_to_live: int = 0

    def to_obj(self) -> list[Any]:
        return [
            self.contract,
            self.name,
            list(self.member_orgs),
            self.required_peers,
            self.max_peers,
            self.block_to_live,
        ]

    @classmethod
    def from_obj(cls, obj: Any) -> CollectionConfig:
        c, n, orgs, req, mx, btl = _seq(obj, 6, "collection")
        _check(isinstance(orgs, (tuple, list)) and all(type(o) is str for o in orgs), "member orgs: strings")
        for v, what in ((req, "required peers"), (mx, "max peers"), (btl, "block to live")):
            _check(type(v) is int and v >= 0, f"{what}: expected a non-negative integer")
        return cls(_typed(c, str, "collection contract"), _typed(n, str, "collection name"), tuple(orgs), req, mx, btl)


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """The channel's configuration. ``collections`` is a trailing optional field (omitted when
    empty) so configs written before collections existed decode and re-encode byte for byte."""

    channel: str
    sequence: int  # 0 in genesis; each accepted update increments it by one
    orgs: tuple[OrgConfig, ...]
    nodes: tuple[ChannelNode, ...]
    batch: BatchConfig
    contracts: tuple[ContractDefinition, ...]
    admin_policy: str  # policy over '<org>.admin' principals that config updates must satisfy
    collections: tuple[CollectionConfig, ...] = ()

    def to_obj(self) -> list[Any]:
        obj = [
            self.channel,
            self.sequence,
            [o.to_obj() for o in self.orgs],
            [n.to_obj() for n in self.nodes],
            self.batch.to_obj(),
            [c.to_obj() for c in self.contracts],
            self.admin_policy,
        ]
        if self.collections:
            obj.append([c.to_obj() for c in self.collections])
        return obj

    @classmethod
    def from_obj(cls, obj: Any) -> ChannelConfig:
        _check(isinstance(obj, (tuple, list)) and len(obj) in (7, 8), "channel config: expected an array of 7 or 8")
        ch, seq, orgs, nodes, batch, contracts, admin = obj[:7]
        for arr in (orgs, nodes, contracts):
            _check(isinstance(arr, (tuple, list)), "channel config: expected arrays")
        colls: tuple[CollectionConfig, ...] = ()
        if len(obj) == 8:
            _check(isinstance(obj[7], (tuple, list)) and len(obj[7]) > 0, "collections: a non-empty array")
            colls = tuple(CollectionConfig.from_obj(c) for c in obj[7])
        return cls(
            _typed(ch, str, "channel"),
            _typed(seq, int, "sequence"),
            tuple(OrgConfig.from_obj(o) for o in orgs),
            tuple(ChannelNode.from_obj(n) for n in nodes),
            BatchConfig.from_obj(batch),
            tuple(ContractDefinition.from_obj(c) for c in contracts),
            _typed(admin, str, "admin policy"),
            colls,
        )

    def org(self, name: str) -> OrgConfig | None:
        return next((o for o in self.orgs if o.name == name), None)

    def node(self, name: str) -> ChannelNode | None:
        return next((n for n in self.nodes if n.name == name), None)

    def contract(self, name: str) -> ContractDefinition | None:
        return next((c for c in self.contracts if c.name == name), None)

    def collection(self, contract: str, name: str) -> CollectionConfig | None:
        return next((c for c in self.collections if c.contract == contract and c.name == name), None)

    def orderers(self) -> tuple[ChannelNode, ...]:
        return tuple(n for n in self.nodes if n.orderer)


def config_update_digest(config: ChannelConfig) -> bytes:
    """What each channel admin signs to approve ``config`` as the channel's next configuration."""
    return digest(Tag.CONFIG_UPDATE, config.to_obj())
