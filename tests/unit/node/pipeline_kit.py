"""Helpers shared by the pipeline tests: a throwaway PKI and a tiny in-memory committed state.

Imported by module name (``conftest.py`` puts this directory on ``sys.path``; pytest runs with
``--import-mode=importlib``, which does not).
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from crypto.batch import BatchVerifier
from crypto.ca import CertificateAuthority, Role
from crypto.merkle import merkle_root
from crypto.msp import Identity
from crypto.signing import PrivateKey, get_backend
from secprivnode.contracts.assets import AssetsContract
from secprivnode.contracts.config_contract import ConfigContract
from secprivnode.contracts.runtime import Contract, ContractRegistry
from secprivnode.contracts.stub import Caller
from secprivnode.genesis import admin_signature, config_transaction, genesis_block
from secprivnode.pipeline.committer import CommitResult, Committer
from secprivnode.pipeline.endorser import Endorser
from secprivnode.pipeline.membership import ChannelView
from secprivnode.pipeline.sigcache import SigCache
from secprivnode.pipeline.validator import BlockValidator
from storage.kv import Database
from storage.ledger import ChannelLedger
from storage.model import (
    BLOCK_VERSION,
    GENESIS_PREVIOUS_HASH,
    NONCE_BYTES,
    BatchConfig,
    Block,
    BlockHeader,
    ChannelConfig,
    ChannelNode,
    ContractDefinition,
    OrgConfig,
    Proposal,
    ProposalHeader,
    Transaction,
    ValidationCode,
    Version,
)

NOW = 1_700_000_000  # unix seconds: the tests' fixed "now"; certificates are valid from here on
ORGS = ("council", "transport", "health")


@dataclass(frozen=True)
class Member:
    identity: Identity
    key: PrivateKey

    @property
    def cert(self) -> bytes:
        return self.identity.cert_der

    @property
    def caller(self) -> Caller:
        i = self.identity
        return Caller(i.org, i.role.value, i.name, i.cert_der)


@dataclass
class Pki:
    cas: dict[str, CertificateAuthority]
    members: dict[str, Member] = field(default_factory=dict)

    def issue(self, org: str, name: str, role: Role) -> Member:
        key, pem = self.cas[org].issue(name, role, now=NOW)
        m = Member(Identity.from_cert(pem), key)
        self.members[f"{org}/{name}"] = m
        return m

    def __getitem__(self, ident: str) -> Member:
        return self.members[ident]

    def org_configs(self, crls: dict[str, bytes] | None = None) -> tuple[OrgConfig, ...]:
        crls = crls or {}
        return tuple(OrgConfig(o, ca.cert_der, (crls[o],) if o in crls else ()) for o, ca in self.cas.items())


def make_pki() -> Pki:
    """Three orgs, each with two nodes, an admin and a client; plus an outsider org's CA."""
    p = Pki({o: CertificateAuthority.create(o, now=NOW - 10) for o in ORGS})
    for o in ORGS:
        p.issue(o, f"{o}-node1", Role.NODE)
        p.issue(o, f"{o}-node2", Role.NODE)
        p.issue(o, "admin", Role.ADMIN)
        p.issue(o, "alice", Role.CLIENT)
    p.issue("council", "mallory", Role.CLIENT)  # revoked by the tests that need it
    outsider = CertificateAuthority.create("outsider", now=NOW - 10)
    key, pem = outsider.issue("eve", Role.CLIENT, now=NOW)
    p.members["outsider/eve"] = Member(Identity.from_cert(pem), key)
    return p


class FakeState:
    """Committed state for stub tests: the three reads a contract can make, nothing else."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], tuple[bytes, Version]] = {}
        self.history: dict[tuple[str, str], list[Any]] = {}
        self.calls = 0

    def set(self, ns: str, key: str, value: bytes, version: Version) -> None:
        self.data[(ns, key)] = (value, version)
        self.history.setdefault((ns, key), []).append((version, value))

    def get_state(self, ns: str, key: str) -> tuple[bytes, Version] | None:
        self.calls += 1
        return self.data.get((ns, key))

    def get_range(self, ns: str, start: str, end: str, limit: int | None = None) -> list[tuple[str, bytes, Version]]:
        self.calls += 1
        keys = sorted(k for n, k in self.data if n == ns)
        lo = bisect.bisect_left(keys, start)
        hi = bisect.bisect_left(keys, end) if end else len(keys)
        out = [(k, *self.data[(ns, k)]) for k in keys[lo:hi]]
        return out if limit is None else out[:limit]

    def get_history(self, ns: str, key: str, limit: int | None = None) -> list[Any]:
        return list(self.history.get((ns, key), []))[:limit]


# ---- a whole channel on a real ledger ---------------------------------------------------------

CHANNEL = "city"
ASSETS_POLICY = "OutOf(2, 'council.node', 'transport.node', 'health.node')"
ORDERER = "council/council-node1"
BLOCK_MS0 = (NOW + 60) * 1000  # genesis time; each later block is one second later


def channel_config(pki: Pki, sequence: int = 0, **changes: Any) -> ChannelConfig:
    base: dict[str, Any] = {
        "channel": CHANNEL,
        "sequence": sequence,
        "orgs": pki.org_configs(),
        "nodes": tuple(
            ChannelNode(f"{o}-node{k}", o, f"127.0.0.1:{7000 + 10 * i + k}", orderer=(o == "council" and k == 1))
            for i, o in enumerate(ORGS)
            for k in (1, 2)
        ),
        "batch": BatchConfig(),
        "contracts": (ContractDefinition("assets", "1.0", ASSETS_POLICY),),
        "admin_policy": "MAJORITY(admin)",
    }
    base.update(changes)
    return ChannelConfig(**base)


class Chain:
    """A channel on a real ChannelLedger with endorsers for every node, a validator and a committer."""

    def __init__(
        self,
        pki: Pki,
        path: Path,
        config: ChannelConfig | None = None,
        contracts: Sequence[Contract] = (),
        genesis: Block | None = None,
    ) -> None:
        self.pki = pki
        self.db = Database(path)
        self.ledger = ChannelLedger(self.db, CHANNEL)
        self.sigcache = SigCache()
        self.verifier = BatchVerifier(workers=1, inline_max=1 << 20)  # inline: tests stay in-process
        self.validator = BlockValidator(self.ledger, self.verifier, sigcache=self.sigcache)
        self.committer = Committer(self.ledger, self.validator)
        self.view = ChannelView(self.ledger)
        self.registry = ContractRegistry([AssetsContract(), ConfigContract(), *contracts])
        self.clock = NOW + 100
        self.endorsers = {
            ident: Endorser(
                self.ledger,
                self.view,
                self.registry,
                m.identity,
                m.key,
                lambda: self.clock,
                sigcache=self.sigcache,
                verifier=self.verifier,
            )
            for ident, m in pki.members.items()
            if m.identity.role is Role.NODE
        }
        self._nonce = 0
        self.config = config or channel_config(pki)
        admin = pki["council/admin"]
        if genesis is None:
            genesis = genesis_block(self.config, admin_cert_der=admin.cert, admin_key=admin.key, timestamp_ms=BLOCK_MS0)
        self.genesis = genesis
        self.committer.commit(genesis)

    def close(self) -> None:
        self.verifier.close()
        self.db.close()

    def nonce(self) -> bytes:
        self._nonce += 1
        return self._nonce.to_bytes(NONCE_BYTES, "big")

    def propose(
        self, who: str, contract: str, function: str, *args: Any, channel: str = CHANNEL
    ) -> tuple[Proposal, bytes]:
        m = self.pki[who]
        header = ProposalHeader(channel, m.cert, self.nonce(), 0)
        p = Proposal(header, contract, function, tuple(args))
        return p, get_backend().sign(m.key, p.hash())

    def endorse(self, p: Proposal, sig: bytes, nodes: Sequence[str]) -> Transaction:
        results = [self.endorsers[n].endorse(p, sig) for n in nodes]
        r0 = results[0]
        outcome = (r0.response, r0.rwset, r0.extra_rwsets)
        assert all((r.response, r.rwset, r.extra_rwsets) == outcome for r in results), "endorsers disagree"
        return Transaction(p, sig, r0.response, r0.rwset, tuple(r.endorsement for r in results), r0.extra_rwsets)

    def tx(self, who: str, function: str, *args: Any, nodes: Sequence[str] | None = None) -> Transaction:
        p, sig = self.propose(who, "assets", function, *args)
        return self.endorse(p, sig, nodes or ["council/council-node1", "transport/transport-node1"])

    def block(
        self, txs: Sequence[Transaction], *, orderer: str = ORDERER, ms: int | None = None, version: int = BLOCK_VERSION
    ) -> Block:
        h = self.ledger.height
        header = BlockHeader(
            version,
            CHANNEL,
            h,
            self.ledger.tip_hash or GENESIS_PREVIOUS_HASH,
            merkle_root([t.hash() for t in txs]),
            BLOCK_MS0 + 1000 * h if ms is None else ms,
            1,
            h,
        )
        o = self.pki[orderer]
        return Block(header, tuple(txs), o.cert, get_backend().sign(o.key, header.hash()))

    def commit(self, txs: Sequence[Transaction], **kw: Any) -> CommitResult:
        return self.committer.commit(self.block(txs, **kw))

    def codes(self, txs: Sequence[Transaction], **kw: Any) -> list[ValidationCode]:
        return list(self.commit(txs, **kw).codes)

    def config_tx(
        self,
        new: ChannelConfig,
        admins: Sequence[str],
        *,
        read_version: Version | None = None,
        packages: Sequence[bytes] = (),
    ) -> Transaction:
        creator = self.pki[admins[0]] if admins else self.pki["council/admin"]
        version = read_version if read_version is not None else self.ledger.get_version("_config", "channel")
        return config_transaction(
            new,
            creator_cert_der=creator.cert,
            creator_key=creator.key,
            approvals=[admin_signature(new, self.pki[a].cert, self.pki[a].key) for a in admins],
            current_version=version,
            timestamp_ms=0,
            nonce=self.nonce(),
            packages=packages,
            previous=self.ledger.latest_config(),
        )

    def revoke(self, who: str) -> ChannelConfig:
        """Commit a config update whose CRL for ``who``'s org revokes ``who``; return the new config."""
        m = self.pki[who]
        ca = self.pki.cas[m.identity.org]
        crl = x509.load_pem_x509_crl(ca.revoke(m.identity.serial, now=NOW + 50))
        der = crl.public_bytes(serialization.Encoding.DER)
        cur = self.ledger.latest_config()
        assert cur is not None
        new = dataclasses.replace(
            cur,
            sequence=cur.sequence + 1,
            orgs=tuple(dataclasses.replace(o, crls=(der,)) if o.name == ca.org else o for o in cur.orgs),
        )
        assert self.codes([self.config_tx(new, ["council/admin", "transport/admin"])]) == [ValidationCode.VALID]
        return new
