"""The endorser: checks a signed proposal, simulates it on committed state, signs the result.

``endorse`` runs these checks in order and raises :class:`ProposalRejected` with a
:class:`RejectCode` at the first that fails:

1. the proposal is for this ledger's channel, has a nonce of ``NONCE_BYTES`` and canonical args;
2. the channel has a configuration (genesis committed);
3. the creator's certificate validates against the channel MSP (any role may invoke) at ``now``;
4. the creator's strict (low-S) signature over ``proposal.hash()`` verifies;
5. no transaction with this id is committed (a replay);
6. the contract is defined in the channel config and its code is available: a packaged
   definition's code is loaded from the ledger (:class:`~secprivnode.contracts.lifecycle.LifecycleRegistry`,
   hash-checked and sandboxed), a definition without a package needs code installed here (same version).

It then simulates the contract (:func:`secprivnode.contracts.runtime.simulate`), adds a read of
``_config/definition/<name>`` for each packaged contract that ran (so a transaction simulated on a
definition that an upgrade replaced before it commits fails MVCC validation), and, if the
response status is below 400, signs ``endorsement_digest(proposal.hash(), response, rwset)``. A
status of 400 or more raises :class:`ContractRejected` carrying the response: the gateway tells the
client and nothing is ordered.

Config updates (``_config``) are approved by channel admins, not endorsed by nodes: ``endorse``
refuses them, ``evaluate`` can dry-run them. ``evaluate`` runs any function read-only and signs
nothing (queries).

``now`` (unix seconds) is the local clock for certificate expiry: endorsement is a local decision,
unlike validation, which uses block time. The contract sees only the latest block's timestamp.
This module never writes to the ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from crypto.batch import BatchVerifier
from crypto.encoding import EncodingError
from crypto.msp import MSP, Expired, Identity, IdentityError, Revoked
from crypto.signing import PrivateKey, get_backend
from secprivnode.contracts.lifecycle import ContractLoadError, LifecycleRegistry, definition_key
from secprivnode.contracts.runtime import Contract, ContractRegistry, Resolver, Simulated, simulate
from secprivnode.contracts.stub import Caller, ContractError, PrivateReader, StateReader
from secprivnode.pipeline.errors import ContractRejected, ProposalRejected, RejectCode
from secprivnode.pipeline.membership import ChannelView, ConfigSource
from secprivnode.pipeline.sigcache import SigCache
from storage.model import (
    CONFIG_CONTRACT,
    NONCE_BYTES,
    BlockHeader,
    Endorsement,
    KVRead,
    Proposal,
    ReadWriteSet,
    Response,
    ValidationCode,
    endorsement_digest,
)
from storage.privstate import WriteSet

__all__ = ["EndorsementResult", "Endorser", "EndorserLedger", "PrivateKeeper"]


class EndorserLedger(StateReader, ConfigSource, Protocol):
    """What the endorser reads (``storage.ledger.ChannelLedger`` provides all of it)."""

    channel: str

    @property
    def height(self) -> int: ...

    def get_header(self, number: int) -> BlockHeader: ...

    def tx_location(self, tx_id: bytes) -> tuple[int, int, ValidationCode] | None: ...


@dataclass(frozen=True, slots=True)
class EndorsementResult:
    response: Response
    rwset: ReadWriteSet
    endorsement: Endorsement
    extra_rwsets: tuple[ReadWriteSet, ...] = ()  # of the contracts the called contract called
    private: tuple[WriteSet, ...] = ()  # plaintext private writes: kept locally, never ordered


class PrivateKeeper(PrivateReader, Protocol):
    """Private data of the channel on this node (``secprivnode.pipeline.privdata``)."""

    def keep(self, write_sets: Sequence[WriteSet]) -> list[bytes]: ...


class Endorser:
    """Endorses proposals for one channel with this node's identity."""

    def __init__(
        self,
        ledger: EndorserLedger,
        msp_provider: Callable[[], MSP],
        contracts: ContractRegistry,
        identity: Identity,
        key: PrivateKey,
        now: Callable[[], int],
        *,
        sigcache: SigCache | None = None,
        verifier: BatchVerifier | None = None,
        private: PrivateKeeper | None = None,
    ) -> None:
        if identity.public_key != key.public:
            raise ValueError("the endorser's key does not match its certificate")
        self.ledger = ledger
        self.msp_provider = msp_provider
        self.contracts = contracts
        # Resolves contract names to code at the committed state this endorser simulates on.
        self.lifecycle = LifecycleRegistry(contracts, ledger)
        self.identity = identity
        self._key = key
        self._now = now
        self.private = private
        self._view = ChannelView(ledger)
        self.sigcache = sigcache if sigcache is not None else SigCache()
        # Inline verification only: one signature per proposal never warrants a process pool.
        self._verifier = verifier if verifier is not None else BatchVerifier(workers=1, inline_max=1 << 30)
        self._time_at: tuple[int, int] = (-1, 0)  # (height, timestamp of block height-1)

    # ---- checks -----------------------------------------------------------------------------

    def _block_time_ms(self) -> int:
        """Timestamp of the latest committed block: the only time a contract may see."""
        height = self.ledger.height
        if self._time_at[0] != height:
            ts = self.ledger.get_header(height - 1).timestamp_ms if height > 0 else 0
            self._time_at = (height, ts)
        return self._time_at[1]

    def _creator(self, proposal: Proposal, signature: bytes) -> tuple[Identity, bytes]:
        h = proposal.header
        if h.channel != self.ledger.channel:
            raise ProposalRejected(
                RejectCode.BAD_CHANNEL, f"proposal is for channel {h.channel!r}, this is {self.ledger.channel!r}"
            )
        if len(h.nonce) != NONCE_BYTES:
            raise ProposalRejected(RejectCode.BAD_PROPOSAL, f"nonce must be {NONCE_BYTES} bytes, got {len(h.nonce)}")
        try:
            phash = proposal.hash()
        except EncodingError as exc:
            raise ProposalRejected(RejectCode.BAD_PROPOSAL, f"proposal is not canonically encodable: {exc}") from exc
        self._view.require_config()
        try:
            creator = self.msp_provider().validate(h.creator, now=self._now())
        except Revoked as exc:
            raise ProposalRejected(RejectCode.REVOKED_IDENTITY, str(exc)) from exc
        except Expired as exc:
            raise ProposalRejected(RejectCode.EXPIRED_IDENTITY, str(exc)) from exc
        except IdentityError as exc:
            raise ProposalRejected(RejectCode.UNKNOWN_IDENTITY, str(exc)) from exc
        if not self.sigcache.verify_many(self._verifier, [(creator.public_key, signature, phash)])[0]:
            raise ProposalRejected(RejectCode.BAD_SIGNATURE, f"signature of {creator.id} over the proposal is invalid")
        return creator, phash

    def _contract(self, name: str) -> Contract:
        cfg = self._view.require_config()
        try:
            contract = self.lifecycle.resolve(name, cfg)
        except ContractLoadError as exc:
            raise ProposalRejected(RejectCode.UNKNOWN_CONTRACT, str(exc)) from exc
        if name == CONFIG_CONTRACT and contract is not None:
            return contract
        definition = cfg.contract(name)
        if definition is None:
            raise ProposalRejected(RejectCode.UNKNOWN_CONTRACT, f"contract {name!r} is not defined on this channel")
        if contract is None:
            raise ProposalRejected(RejectCode.UNKNOWN_CONTRACT, f"contract {name!r} is not installed on this node")
        installed = contract.version
        if not definition.package_hash and installed and installed != definition.version:
            raise ProposalRejected(
                RejectCode.UNKNOWN_CONTRACT,
                f"contract {name!r} version {definition.version} is defined, version {installed} is installed",
            )
        return contract

    def _callee(self, name: str) -> Contract:
        """The contract a contract calls (stub.invoke_contract): defined and installed, as for a proposal."""
        if name == CONFIG_CONTRACT:
            raise ContractError(f"contract {CONFIG_CONTRACT!r} cannot be called by a contract", 403)
        try:
            return self._contract(name)
        except ProposalRejected as exc:
            raise ContractError(exc.message, 404) from exc

    def _note_definition(self, name: str, reads: list[KVRead]) -> None:
        """Record the version of a packaged contract's definition, read before its code is resolved.

        The transaction then reads ``_config/definition/<name>``: if an upgrade commits before it
        does, MVCC refuses it, so no transaction simulated on old code commits after the upgrade.
        """
        definition = self._view.require_config().contract(name)
        key = definition_key(name)
        if definition is not None and definition.package_hash and all(r.key != key for r in reads):
            reads.append(KVRead(key, self.ledger.get_version(CONFIG_CONTRACT, key)))

    @staticmethod
    def _caller(ident: Identity) -> Caller:
        return Caller(ident.org, ident.role.value, ident.name, ident.cert_der)

    # ---- entry points -----------------------------------------------------------------------

    def endorse(self, proposal: Proposal, signature: bytes) -> EndorsementResult:
        """Check, simulate and sign; raise :class:`ProposalRejected` / :class:`ContractRejected`."""
        creator, phash = self._creator(proposal, signature)
        loc = self.ledger.tx_location(proposal.tx_id)
        if loc is not None and loc[2] is ValidationCode.VALID:
            raise ProposalRejected(
                RejectCode.DUPLICATE_TXID, f"transaction {proposal.tx_id.hex()} is already committed"
            )
        if proposal.contract == CONFIG_CONTRACT:
            raise ProposalRejected(
                RejectCode.UNAUTHORIZED, "config updates are approved by channel admins' signatures, not endorsed"
            )
        definitions: list[KVRead] = []
        self._note_definition(proposal.contract, definitions)
        contract = self._contract(proposal.contract)

        def callee(name: str) -> Contract:
            self._note_definition(name, definitions)
            return self._callee(name)

        sim = self._simulate(contract, proposal, creator, callee, read_only=False)
        response, rwset, extra = sim.response, sim.rwset, sim.extra_rwsets
        if response.status >= 400:
            raise ContractRejected(response)
        if sim.private and self.private is not None:
            self.private.keep(sim.private)  # before signing: the committer must find what we endorse
        extra = _with_definition_reads(extra, definitions)
        msg = endorsement_digest(phash, response, rwset, extra)
        sig = get_backend().sign(self._key, msg)
        self.sigcache.add(self.identity.public_key, sig, msg)  # validating our own endorsement is free
        return EndorsementResult(response, rwset, Endorsement(self.identity.cert_der, sig), extra, sim.private)

    def evaluate(self, proposal: Proposal, signature: bytes) -> Simulated:
        """Run the proposal read-only (a query, or a dry run of a config update); sign nothing."""
        creator, _ = self._creator(proposal, signature)
        contract = self._contract(proposal.contract)
        sim = self._simulate(contract, proposal, creator, self._callee, read_only=proposal.contract != CONFIG_CONTRACT)
        if sim.response.status >= 400:
            raise ContractRejected(sim.response)
        return sim

    def _simulate(
        self, contract: Contract, proposal: Proposal, creator: Identity, resolve: Resolver, *, read_only: bool
    ) -> Simulated:
        """Run ``proposal`` on committed state as ``creator``, at the latest block's time."""
        return simulate(
            contract,
            proposal,
            self.ledger,
            self._caller(creator),
            self._block_time_ms(),
            read_only=read_only,
            resolve=resolve,
            private=self.private,
        )


def _with_definition_reads(extra: tuple[ReadWriteSet, ...], reads: list[KVRead]) -> tuple[ReadWriteSet, ...]:
    """``extra`` plus a ``_config`` read/write set reading the definitions of the packaged
    contracts that ran (sorted by namespace, as the validator requires)."""
    if not reads:
        return extra
    definitions = ReadWriteSet(CONFIG_CONTRACT, tuple(sorted(reads, key=lambda r: r.key)))
    return tuple(sorted((*extra, definitions), key=lambda rw: rw.namespace))
