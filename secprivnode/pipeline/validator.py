"""The block validator: one validation code per transaction, the same on every node.

Every input to a code is part of the block or of the committed ledger before it, so all honest
nodes compute the same codes: certificate validity is judged at the block's timestamp (set by the
ordering leader), never the local clock, and membership at the block's position (a config
transaction earlier in the same block changes the MSP and policies for the transactions after it).

``validate`` makes two passes over the block:

1. *Prepare* (no ledger reads): parse each creator and endorser certificate (cached), hash each
   proposal and endorsement payload once, and gather every signature in the block, with the
   orderer's, into one batch for :class:`crypto.batch.BatchVerifier` (which can fan out over
   processes), skipping those the :class:`~secprivnode.pipeline.sigcache.SigCache` has seen.
2. *Decide*, in block order, the first failing check of each transaction:

   ========================  ===============================================================
   BAD_CHANNEL               the proposal names another channel
   UNKNOWN_IDENTITY          the creator is not a current member (unknown org, bad chain,
                             malformed or expired certificate)
   REVOKED_IDENTITY          the creator's certificate is on its org's CRL
   BAD_CREATOR_SIGNATURE     the creator's signature over ``proposal.hash()`` does not verify
   DUPLICATE_TXID            the id is taken by a VALID transaction, committed or earlier in this block
   BAD_PAYLOAD               namespace is not the contract, error status, bad keys, oversized;
                             called contracts' read/write sets not sorted, repeated, in the
                             contract's own namespace, in the config namespace other than
                             reads of ``definition/<name>`` keys, or in a version 1 block; a private
                             collection the channel config does not define
   BAD_ENDORSEMENT_SIGNATURE an endorsement's certificate or signature is bad
   UNKNOWN_CONTRACT          the contract, or a called contract that was written, is not
                             defined in the channel config
   ENDORSEMENT_POLICY_FAILURE the valid endorsers (nodes of member orgs) do not satisfy the
                             contract's policy and that of every other namespace written
   INVALID_CONFIG            config tx: wrong sequence/channel, malformed config, contract
                             definitions breaking the lifecycle rules (``check_definitions``),
                             rwset not the config (and package) writes, or admins not
                             satisfying the current admin policy
   MVCC_READ_CONFLICT        a read's version (in any of the tx's namespaces) is not the
                             committed one, or an earlier VALID transaction of this block wrote
                             the key; this includes a contract definition read at endorsement
                             and changed (upgraded) since (hashed reads of
                             private collections alike, against the hashed private state)
   PHANTOM_READ_CONFLICT     a range scan, re-run now, differs (or an earlier VALID tx of the
                             block wrote into the range)
   ========================  ===============================================================

A block that does not extend the ledger, or whose header is not signed by an orderer node of the
channel, is not given codes: :class:`BlockRejected` is raised. Block 0 is the genesis: it is
checked for shape only and trusted (its config is the bootstrap).

This module never writes to the ledger and never reads the clock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from crypto.batch import BatchVerifier
from crypto.encoding import EncodingError
from crypto.msp import MSP, Identity, IdentityError, MalformedCertificate, Revoked, Role
from crypto.signing import PublicKey
from secprivnode.contracts.config_contract import (
    ConfigError,
    admin_policy,
    check_config,
    config_rwset,
    contract_policy,
    decode_config,
    msp_from_config,
)
from secprivnode.contracts.lifecycle import DEFINITION_KEY_PREFIX, LifecycleError, check_definitions
from secprivnode.contracts.policy import Policy
from secprivnode.contracts.stub import MAX_KEY_BYTES, MAX_NAMESPACES, MAX_RANGE_KEYS, MAX_READS, MAX_WRITES
from secprivnode.pipeline.errors import AlreadyCommitted, BlockRejected, GenesisError
from secprivnode.pipeline.membership import ConfigSource
from secprivnode.pipeline.sigcache import SigCache, Verifier
from storage.model import (
    CONFIG_CONTRACT,
    GENESIS_PREVIOUS_HASH,
    Block,
    ChannelConfig,
    ReadWriteSet,
    Transaction,
    ValidationCode,
    Version,
    config_update_digest,
    endorsement_digest,
)

__all__ = ["CERT_CACHE_MAX", "MAX_ENDORSEMENTS", "BlockValidator", "ValidatorLedger"]

V = ValidationCode

# Endorsements one transaction may carry. Policies name tens of orgs at most; the bound stops a
# transaction from making every node verify thousands of signatures.
MAX_ENDORSEMENTS = 64
# Parsed certificates (creator, endorser, orderer) kept across blocks: the same few hundred
# identities sign everything, and parsing X.509 costs more than verifying a signature.
CERT_CACHE_MAX = 4096

_NODE = frozenset({Role.NODE})
_ADMIN = frozenset({Role.ADMIN})


class ValidatorLedger(ConfigSource, Protocol):
    """What validation reads (``storage.ledger.ChannelLedger`` provides all of it)."""

    channel: str

    @property
    def height(self) -> int: ...

    @property
    def tip_hash(self) -> bytes | None: ...

    def tx_location(self, tx_id: bytes) -> tuple[int, int, ValidationCode] | None: ...

    def get_range(
        self, ns: str, start: str, end: str, limit: int | None = None
    ) -> list[tuple[str, bytes, Version]]: ...

    def get_hashed_version(self, ns: str, collection: str, key_hash: bytes) -> Version | None: ...


@dataclass(slots=True)
class _Prepared:
    """One transaction after the prepare pass."""

    tx: Transaction
    early: ValidationCode | None = None  # decided without the MSP (channel, unparsable creator)
    payload: ValidationCode | None = None  # applied after the creator and duplicate checks
    creator: Identity | None = None
    creator_sig: int = -1  # index of the creator's signature in the batch
    endorsers: list[tuple[Identity | None, int]] = field(default_factory=list)  # (identity, batch index)
    config: ChannelConfig | None = None  # the proposed config of a config transaction
    packages: tuple[bytes, ...] = ()  # contract package code a config transaction carries


@dataclass(slots=True)
class _BlockState:
    """What changes while deciding a block: the config in force and the writes of VALID txs."""

    config: ChannelConfig
    msp: MSP
    now_s: int
    policies: dict[str, Policy | None] = field(default_factory=dict)
    written: dict[str, set[str]] = field(default_factory=dict)  # namespace -> keys written
    hashed_written: set[tuple[str, str, bytes]] = field(default_factory=set)  # (ns, collection, key hash)
    seen: set[bytes] = field(default_factory=set)

    def set_config(self, cfg: ChannelConfig) -> None:
        self.config, self.msp = cfg, msp_from_config(cfg)
        self.policies.clear()

    def policy(self, contract: str) -> Policy | None:
        if contract not in self.policies:
            self.policies[contract] = contract_policy(self.config, contract)
        return self.policies[contract]


def _key_ok(key: str) -> bool:
    return 0 < len(key) <= MAX_KEY_BYTES and "\x00" not in key and len(key.encode("utf-8")) <= MAX_KEY_BYTES


def _rwset_ok(rw: ReadWriteSet) -> bool:
    if len(rw.reads) > MAX_READS or len(rw.writes) > MAX_WRITES:
        return False
    if not all(_key_ok(r.key) for r in rw.reads) or not all(_key_ok(w.key) for w in rw.writes):
        return False
    names = [c.collection for c in rw.collections]  # hashed private collections: sorted, non-empty
    if names != sorted(set(names)) or any(not c.reads and not c.writes for c in rw.collections):
        return False
    if sum(len(c.reads) for c in rw.collections) > MAX_READS or sum(len(c.writes) for c in rw.collections) > MAX_WRITES:
        return False
    return all(_key_ok(q.start) and (q.end == "" or _key_ok(q.end)) for q in rw.range_reads)


def _definition_reads_only(rw: ReadWriteSet) -> bool:
    """A ``_config`` read/write set an endorser adds: reads of contract definitions, nothing else."""
    return not rw.writes and not rw.range_reads and all(r.key.startswith(DEFINITION_KEY_PREFIX) for r in rw.reads)


def _payload_code(tx: Transaction, calls_allowed: bool) -> ValidationCode | None:
    """BAD_PAYLOAD unless the response and rwsets are what an honest endorser could have signed."""
    rw, p, extra = tx.rwset, tx.proposal, tx.extra_rwsets
    if rw.namespace != p.contract or tx.response.status >= 400:
        return V.BAD_PAYLOAD
    if extra:
        names = [x.namespace for x in extra]
        if not calls_allowed or len(extra) + 1 > MAX_NAMESPACES or names != sorted(set(names)):
            return V.BAD_PAYLOAD
        if p.contract in names or not all(_definition_reads_only(x) for x in extra if x.namespace == CONFIG_CONTRACT):
            return V.BAD_PAYLOAD
    if sum(len(q.reads) for x in tx.rwsets for q in x.range_reads) > MAX_RANGE_KEYS:
        return V.BAD_PAYLOAD
    if not all(_rwset_ok(x) for x in tx.rwsets):
        return V.BAD_PAYLOAD
    return None


class BlockValidator:
    """Computes validation codes for the next block of ``ledger``."""

    def __init__(
        self,
        ledger: ValidatorLedger,
        verifier: Verifier | None = None,
        *,
        sigcache: SigCache | None = None,
        check_orderer: bool = True,
    ) -> None:
        self.ledger = ledger
        self._own_verifier: BatchVerifier | None = None
        if verifier is None:
            verifier = self._own_verifier = BatchVerifier()
        self.verifier: Verifier = verifier
        self.sigcache = sigcache if sigcache is not None else SigCache()
        self.check_orderer = check_orderer
        self._certs: OrderedDict[bytes, Identity | None] = OrderedDict()

    def close(self) -> None:
        """Stop the verifier's worker processes if this validator created the verifier."""
        if self._own_verifier is not None:
            self._own_verifier.close()

    # ---- helpers ----------------------------------------------------------------------------

    def _parse(self, cert: bytes) -> Identity | None:
        if cert in self._certs:
            self._certs.move_to_end(cert)
            return self._certs[cert]
        try:
            ident: Identity | None = Identity.from_cert(cert)
        except MalformedCertificate:
            ident = None
        self._certs[cert] = ident
        if len(self._certs) > CERT_CACHE_MAX:
            self._certs.popitem(last=False)
        return ident

    def _check_position(self, block: Block) -> None:
        h, ledger = block.header, self.ledger
        if h.number < ledger.height:
            raise AlreadyCommitted(h.number, f"already committed (height {ledger.height})")
        if h.number > ledger.height:
            raise BlockRejected(h.number, f"does not extend height {ledger.height}")
        if h.channel != ledger.channel:
            raise BlockRejected(h.number, f"is for channel {h.channel!r}, not {ledger.channel!r}")
        expected = ledger.tip_hash if ledger.tip_hash is not None else GENESIS_PREVIOUS_HASH
        if h.previous_hash != expected:
            raise BlockRejected(h.number, "previous hash does not match the tip")

    # ---- pass 1 -----------------------------------------------------------------------------

    def _prepare(
        self, tx: Transaction, channel: str, items: list[tuple[PublicKey, bytes, bytes]], calls_allowed: bool
    ) -> _Prepared:
        t = _Prepared(tx)
        if tx.channel != channel:
            t.early = V.BAD_CHANNEL
            return t
        t.creator = self._parse(tx.proposal.header.creator)
        if t.creator is None:
            t.early = V.UNKNOWN_IDENTITY
            return t
        try:
            phash = tx.proposal.hash()
        except EncodingError:
            t.early = V.BAD_PAYLOAD
            return t
        t.creator_sig = len(items)
        items.append((t.creator.public_key, tx.signature, phash))
        if len(tx.endorsements) > MAX_ENDORSEMENTS:
            t.payload = V.BAD_PAYLOAD
            return t
        if tx.proposal.contract == CONFIG_CONTRACT:
            proposed = self._proposed_config(tx)
            if proposed is None:
                t.payload = V.INVALID_CONFIG
                return t
            t.config, t.packages = proposed
            msg = config_update_digest(t.config)
        else:
            t.payload = _payload_code(tx, calls_allowed)
            if t.payload is not None:
                return t
            msg = endorsement_digest(phash, tx.response, tx.rwset, tx.extra_rwsets)
        for e in tx.endorsements:
            ident = self._parse(e.endorser)
            if ident is None:
                t.endorsers.append((None, -1))
            else:
                t.endorsers.append((ident, len(items)))
                items.append((ident.public_key, e.signature, msg))
        return t

    @staticmethod
    def _proposed_config(tx: Transaction) -> tuple[ChannelConfig, tuple[bytes, ...]] | None:
        """The config (and carried package code) of ``_config.update(config_obj[, packages])``."""
        p = tx.proposal
        if p.function != "update" or not 1 <= len(p.args) <= 2:
            return None
        packages = p.args[1] if len(p.args) == 2 else ()
        if not isinstance(packages, (list, tuple)) or not all(type(x) is bytes for x in packages):
            return None
        try:
            return decode_config(p.args[0]), tuple(packages)
        except ConfigError:
            return None

    # ---- pass 2 -----------------------------------------------------------------------------

    def validate(self, block: Block) -> list[ValidationCode]:
        """The validation code of each transaction of ``block`` (the ledger's next block)."""
        if block.number == 0 and self.ledger.height == 0:
            return self._genesis(block)
        self._check_position(block)
        cfg = self.ledger.latest_config()
        if cfg is None:
            raise BlockRejected(block.number, "the ledger has no channel configuration")
        items: list[tuple[PublicKey, bytes, bytes]] = []
        calls_allowed = block.header.version >= 2  # version 1 blocks predate contract calls
        prepared = [self._prepare(tx, block.header.channel, items, calls_allowed) for tx in block.transactions]
        orderer = self._parse(block.orderer) if self.check_orderer else None
        if self.check_orderer:
            if orderer is None:
                raise BlockRejected(block.number, "orderer certificate is missing or malformed")
            items.append((orderer.public_key, block.signature, block.hash()))
        ok = self.sigcache.verify_many(self.verifier, items)
        st = _BlockState(cfg, msp_from_config(cfg), block.header.timestamp_ms // 1000)
        if orderer is not None:
            self._check_orderer(block, orderer, ok[-1], st)
        codes = []
        for t in prepared:
            tx_id = t.tx.tx_id
            loc = self.ledger.tx_location(tx_id)
            duplicate = tx_id in st.seen or (loc is not None and loc[2] is V.VALID)
            code = self._decide(t, duplicate, ok, st)
            if code is V.VALID:
                st.seen.add(tx_id)  # only a VALID transaction takes its id, as in the ledger's tx index
                for rw in t.tx.rwsets:
                    self._record_writes(rw, st)
                if t.config is not None:
                    st.set_config(t.config)
            codes.append(code)
        return codes

    def _check_orderer(self, block: Block, orderer: Identity, sig_ok: bool, st: _BlockState) -> None:
        if not sig_ok:
            raise BlockRejected(block.number, "orderer signature over the header is invalid")
        try:
            ident = st.msp.validate(orderer.cert_der, now=st.now_s, roles=_NODE)
        except IdentityError as exc:
            raise BlockRejected(block.number, f"orderer is not a member node: {exc}") from exc
        node = st.config.node(ident.name)
        if node is None or not node.orderer or node.org != ident.org:
            raise BlockRejected(block.number, f"{ident.id} is not an orderer of the channel")

    def _decide(self, t: _Prepared, duplicate: bool, ok: Sequence[bool], st: _BlockState) -> ValidationCode:
        if t.early is not None:
            return t.early
        assert t.creator is not None
        try:
            st.msp.validate(t.creator.cert_der, now=st.now_s)
        except Revoked:
            return V.REVOKED_IDENTITY
        except IdentityError:
            return V.UNKNOWN_IDENTITY
        if not ok[t.creator_sig]:
            return V.BAD_CREATOR_SIGNATURE
        if duplicate:
            return V.DUPLICATE_TXID
        if t.payload is not None:
            return t.payload
        if any(ident is None or not ok[i] for ident, i in t.endorsers):
            return V.BAD_ENDORSEMENT_SIGNATURE
        code = self._config_code(t, t.config, st) if t.config is not None else self._endorsement_code(t, st)
        if code is not None:
            return code
        for rw in t.tx.rwsets:
            code = self._mvcc(rw, st)
            if code is not V.VALID:
                return code
        return V.VALID

    def _members(self, t: _Prepared, st: _BlockState, roles: frozenset[Role]) -> list[Identity]:
        out = []
        for ident, _ in t.endorsers:
            assert ident is not None
            try:
                out.append(st.msp.validate(ident.cert_der, now=st.now_s, roles=roles))
            except IdentityError:
                continue  # a non-member's endorsement simply does not count towards the policy
        return out

    def _endorsement_code(self, t: _Prepared, st: _BlockState) -> ValidationCode | None:
        # The contract's own policy always; a called contract's where the transaction writes in
        # its namespace (its reads alone change nothing it guards). Each is judged on its own.
        names = [t.tx.proposal.contract, *(rw.namespace for rw in t.tx.extra_rwsets if rw.writes)]
        policies = [st.policy(n) for n in names]
        if any(p is None for p in policies):
            return V.UNKNOWN_CONTRACT
        members = self._members(t, st, _NODE)
        if not all(p is not None and p.evaluate(members) for p in policies):
            return V.ENDORSEMENT_POLICY_FAILURE
        return None

    def _config_code(self, t: _Prepared, new: ChannelConfig, st: _BlockState) -> ValidationCode | None:
        cur = st.config
        if new.channel != cur.channel or new.sequence != cur.sequence + 1 or t.tx.response.status != 200:
            return V.INVALID_CONFIG
        try:
            check_config(new, channel=cur.channel)
            check_definitions(cur, new, t.packages)
        except (ConfigError, LifecycleError):
            return V.INVALID_CONFIG
        rw = t.tx.rwset
        if len(rw.reads) != 1 or rw != config_rwset(new, rw.reads[0].version, t.packages, cur) or t.tx.extra_rwsets:
            return V.INVALID_CONFIG
        if not admin_policy(cur).evaluate(self._members(t, st, _ADMIN)):
            return V.INVALID_CONFIG
        return None

    def _mvcc(self, rw: ReadWriteSet, st: _BlockState) -> ValidationCode:
        ns = rw.namespace
        for c in rw.collections:
            if st.config.collection(ns, c.collection) is None:
                return V.BAD_PAYLOAD
            for h in c.reads:  # hashed reads: every node keeps the hashed private state
                hk = (ns, c.collection, h.key_hash)
                if hk in st.hashed_written or self.ledger.get_hashed_version(*hk) != h.version:
                    return V.MVCC_READ_CONFLICT
        written = st.written.get(ns, set())
        get_version = self.ledger.get_version
        for r in rw.reads:
            if r.key in written or get_version(ns, r.key) != r.version:
                return V.MVCC_READ_CONFLICT
        for q in rw.range_reads:
            if any(q.start <= k and (q.end == "" or k < q.end) for k in written):
                return V.PHANTOM_READ_CONFLICT
            rows = self.ledger.get_range(ns, q.start, q.end, len(q.reads) + 1)
            if len(rows) != len(q.reads):
                return V.PHANTOM_READ_CONFLICT
            for (key, _value, version), seen in zip(rows, q.reads, strict=True):
                if key != seen.key or version != seen.version:
                    return V.PHANTOM_READ_CONFLICT
        return V.VALID

    @staticmethod
    def _record_writes(rw: ReadWriteSet, st: _BlockState) -> None:
        if rw.writes:
            st.written.setdefault(rw.namespace, set()).update(w.key for w in rw.writes)
        for c in rw.collections:
            st.hashed_written.update((rw.namespace, c.collection, w.key_hash) for w in c.writes)

    # ---- genesis ----------------------------------------------------------------------------

    def _genesis(self, block: Block) -> list[ValidationCode]:
        """Block 0: one config tx of sequence 0 for this channel, well-formed; trusted otherwise."""
        n = block.number
        if block.header.channel != self.ledger.channel:
            raise GenesisError(n, f"is for channel {block.header.channel!r}, not {self.ledger.channel!r}")
        if block.header.previous_hash != GENESIS_PREVIOUS_HASH:
            raise GenesisError(n, "genesis previous hash must be all zeros")
        if len(block.transactions) != 1:
            raise GenesisError(n, f"genesis must hold exactly one config transaction, not {len(block.transactions)}")
        tx = block.transactions[0]
        if tx.proposal.contract != CONFIG_CONTRACT or tx.channel != self.ledger.channel:
            raise GenesisError(n, "the genesis transaction is not a config transaction of this channel")
        proposed = self._proposed_config(tx)
        if proposed is None:
            raise GenesisError(n, "the genesis transaction does not carry a channel config")
        cfg, packages = proposed
        if cfg.sequence != 0:
            raise GenesisError(n, f"genesis config sequence must be 0, not {cfg.sequence}")
        try:
            check_config(cfg, channel=self.ledger.channel)
            check_definitions(None, cfg, packages)
        except (ConfigError, LifecycleError) as exc:
            raise GenesisError(n, f"genesis config is invalid: {exc}") from exc
        if tx.rwset != config_rwset(cfg, None, packages) or tx.extra_rwsets:
            raise GenesisError(n, "the genesis transaction must write exactly the config and read nothing committed")
        return [V.VALID]
