"""An in-memory NodeService for RPC and client tests, and throwaway X.509 identities.

The fake orders each submitted transaction into its own block at once, keeps a versioned key-value
state for one contract ("kv": put/get/fail/emit), verifies creator signatures with
crypto.signing.verify against the certificate in the proposal header, checks admin signatures on
config updates, and publishes block/tx/contract events to bounded subscriber queues.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from crypto.merkle import merkle_proof, merkle_root
from crypto.signing import PublicKey, get_backend, verify
from secprivnode.api import (
    BadRequest,
    ContractFailed,
    Event,
    NotFoundError,
    SubmitResult,
    TimeoutError_,
    TxRejected,
    Unauthenticated,
    Unauthorized,
    UnknownChannel,
)
from secprivnode.signed_read import SignedRead
from storage.blockstore import BlockSummary
from storage.model import (
    GENESIS_PREVIOUS_HASH,
    BatchConfig,
    Block,
    BlockHeader,
    ChannelConfig,
    KVRead,
    KVWrite,
    OrgConfig,
    Proposal,
    ReadWriteSet,
    Response,
    Transaction,
    ValidationCode,
    config_update_digest,
)

SUBSCRIBER_QUEUE_MAX = 10_000  # far above what any test publishes without reading


def load_sibling(name: str, path: Path) -> Any:
    """Import a test helper module by path (tests run with --import-mode=importlib)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def make_identity(directory: Path, org: str, role: str, name: str) -> tuple[Path, Path]:
    """A self-signed P-256 certificate (O=org, OU=role, CN=name) and key, written as PEM files."""
    key = get_backend("native").generate()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public.to_crypto())
        .serial_number(1000 + len(name))
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=3650))
        .sign(key.to_crypto(), hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}-cert.pem", directory / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.to_pem())
    return cert_path, key_path


def _subject(cert_der: bytes) -> tuple[PublicKey, str, str, str]:
    cert = x509.load_der_x509_certificate(cert_der)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def attr(oid: x509.ObjectIdentifier) -> str:
        a = cert.subject.get_attributes_for_oid(oid)
        return str(a[0].value) if a else ""

    return (
        PublicKey.from_der(spki),
        attr(NameOID.ORGANIZATION_NAME),
        attr(NameOID.ORGANIZATIONAL_UNIT_NAME),
        attr(NameOID.COMMON_NAME),
    )


class FakeNode:
    """A NodeService held in memory. ``default_channel`` is "city"; "lab" is a second channel."""

    def __init__(self) -> None:
        self.default_channel = "city"
        self.chains: dict[str, list[tuple[Block, list[ValidationCode]]]] = {"city": [], "lab": []}
        self.state: dict[tuple[str, str, str], tuple[bytes, tuple[int, int]]] = {}
        self.history: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        self.tx_index: dict[bytes, tuple[str, int, int]] = {}
        self.subscribers: list[tuple[str, frozenset[str], bytes | None, asyncio.Queue[Event]]] = []
        self.health_checks: dict[str, tuple[bool, str]] = {"storage": (True, "ok"), "raft": (True, "leader n1")}
        self.last_transient: dict[str, bytes] = {}
        self.verified_signatures = 0
        self.authorized_reads: list[SignedRead] = []
        self.explode = False  # node_peers raises a non-service exception (internal error path)
        self.config_updates: list[Any] = []
        self.hold_submit: asyncio.Event | None = None  # when set, tx_submit waits on it
        for ch in self.chains:
            self._cut(ch, [], [])

    # ---- helpers ----

    def _ch(self, channel: str | None) -> str:
        ch = self.default_channel if channel is None else channel
        if ch not in self.chains:
            raise UnknownChannel(f"unknown channel {ch!r}", {"channel": ch})
        return ch

    def _cut(self, ch: str, txs: list[Transaction], codes: list[ValidationCode]) -> Block:
        chain = self.chains[ch]
        number = len(chain)
        prev = chain[-1][0].hash() if chain else GENESIS_PREVIOUS_HASH
        header = BlockHeader(
            1, ch, number, prev, merkle_root([t.hash() for t in txs]), 1_700_000_000_000 + number, 1, number + 1
        )
        block = Block(header, tuple(txs))
        chain.append((block, codes))
        for i, t in enumerate(txs):
            self.tx_index[t.tx_id] = (ch, number, i)
        return block

    def publish(self, event: Event, tx_id: bytes | None = None) -> None:
        for ch, kinds, want_tx, q in list(self.subscribers):
            if ch == event.channel and event.kind in kinds and (want_tx is None or want_tx == tx_id):
                q.put_nowait(event)

    def _check_signature(self, proposal: Proposal, signature: bytes) -> tuple[str, str]:
        try:
            pub, org, _role, name = _subject(proposal.header.creator)
        except ValueError as exc:
            raise TxRejected(f"unknown creator: {exc}") from exc
        if not verify(pub, signature, proposal.hash()):
            raise TxRejected("bad creator signature")
        self.verified_signatures += 1
        return org, name

    def _simulate(self, ch: str, p: Proposal) -> tuple[Response, ReadWriteSet]:
        if p.contract != "kv":
            raise BadRequest(f"unknown contract {p.contract!r}")
        if p.function == "put":
            key, value = p.args
            return Response(200, "ok", b"", (("put", key.encode()),)), ReadWriteSet("kv", (), (KVWrite(key, value),))
        if p.function == "get":
            (key,) = p.args
            cur = self.state.get((ch, "kv", key))
            return Response(200, "", cur[0] if cur else b""), ReadWriteSet(
                "kv", (KVRead(key, cur[1] if cur else None),)
            )
        if p.function == "fail":
            raise ContractFailed("contract returned status 500: refused", {"status": 500})
        raise ContractFailed(f"no function {p.function!r}")

    # ---- NodeService ----

    async def node_status(self) -> dict[str, Any]:
        return {"name": "n1", "org": "council", "channels": sorted(self.chains), "cert": b"\x01\x02"}

    async def node_peers(self) -> list[dict[str, Any]]:
        if self.explode:
            raise RuntimeError("secret internal detail /etc/passwd")
        return [{"name": "n2", "address": "127.0.0.1:7002", "connected": True}]

    async def raft_status(self, channel: str | None) -> dict[str, Any]:
        self._ch(channel)
        return {
            "leader": "n1",
            "term": 3,
            "role": "leader",
            "commit": 7,
            "applied": 7,
            "voters": ["n1", "n2", "n3"],
            "learners": [],
        }

    async def chain_height(self, channel: str | None) -> int:
        return len(self.chains[self._ch(channel)])

    async def get_block(self, channel: str | None, number: int) -> tuple[BlockSummary, list[ValidationCode]]:
        chain = self.chains[self._ch(channel)]
        if number >= len(chain):
            raise NotFoundError(f"no block {number}")
        b, codes = chain[number]
        return BlockSummary.of(b), codes

    async def get_block_by_hash(
        self, channel: str | None, block_hash: bytes
    ) -> tuple[BlockSummary, list[ValidationCode]]:
        for b, codes in self.chains[self._ch(channel)]:
            if b.hash() == block_hash:
                return BlockSummary.of(b), codes
        raise NotFoundError("no block with that hash")

    def _locate(self, channel: str | None, tx_id: bytes) -> tuple[Block, int, ValidationCode]:
        ch = self._ch(channel)
        loc = self.tx_index.get(tx_id)
        if loc is None or loc[0] != ch:
            raise NotFoundError("unknown transaction", {"tx_id": tx_id})
        block, codes = self.chains[ch][loc[1]]
        return block, loc[2], codes[loc[2]]

    async def get_transaction(self, channel: str | None, tx_id: bytes) -> dict[str, Any]:
        block, i, code = self._locate(channel, tx_id)
        t = block.transactions[i]
        _pub, org, _role, name = _subject(t.proposal.header.creator)
        return {
            "tx_id": t.tx_id,
            "creator_org": org,
            "creator_name": name,
            "contract": t.proposal.contract,
            "function": t.proposal.function,
            "args": list(t.proposal.args),
            "response": t.response,
            "rwset": t.rwset,
            "block_number": block.number,
            "index": i,
            "code": code,
        }

    async def get_tx_proof(self, channel: str | None, tx_id: bytes) -> dict[str, Any]:
        block, i, _code = self._locate(channel, tx_id)
        hashes_ = block.tx_hashes()
        return {
            "block_hash": block.hash(),
            "header": block.header,
            "tx_id": tx_id,
            "tx_hash": hashes_[i],
            "index": i,
            "size": len(hashes_),
            "path": merkle_proof(hashes_, i),
        }

    async def authorize_read(self, read: SignedRead) -> str:
        """The fake's read check: a valid signature by the certificate's key (no MSP, no policy)."""
        self._ch(read.request.channel)
        try:
            pub, org, _role, name = _subject(read.request.creator)
        except ValueError as exc:
            raise Unauthenticated(f"unknown reader: {exc}", {"reason": "unknown_identity"}) from exc
        if not verify(pub, read.signature, read.request.digest()):
            raise Unauthenticated("bad read signature", {"reason": "bad_signature"})
        self.authorized_reads.append(read)
        return f"{org}/{name}"

    async def state_get(self, channel: str | None, contract: str, key: str) -> dict[str, Any] | None:
        cur = self.state.get((self._ch(channel), contract, key))
        return None if cur is None else {"value": cur[0], "version": list(cur[1])}

    async def state_get_range(
        self, channel: str | None, contract: str, start: str, end: str, limit: int
    ) -> list[dict[str, Any]]:
        ch = self._ch(channel)
        keys = sorted(k for c, n, k in self.state if c == ch and n == contract and start <= k and (not end or k < end))
        return [
            {"key": k, "value": self.state[(ch, contract, k)][0], "version": list(self.state[(ch, contract, k)][1])}
            for k in keys[:limit]
        ]

    async def state_get_history(self, channel: str | None, contract: str, key: str, limit: int) -> list[dict[str, Any]]:
        return list(reversed(self.history.get((self._ch(channel), contract, key), [])))[:limit]

    async def tx_submit(self, proposal: Proposal, signature: bytes) -> SubmitResult:
        if self.hold_submit is not None:
            await self.hold_submit.wait()
        ch = self._ch(proposal.header.channel)
        self._check_signature(proposal, signature)
        if proposal.tx_id in self.tx_index:
            raise TxRejected("duplicate transaction id")
        self.last_transient = dict(proposal.transient)
        response, rwset = self._simulate(ch, proposal)
        tx = Transaction(proposal, signature, response, rwset, ())
        number = len(self.chains[ch])
        for w in rwset.writes:
            assert w.value is not None
            self.state[(ch, "kv", w.key)] = (w.value, (number, 0))
            self.history.setdefault((ch, "kv", w.key), []).append(
                {"value": w.value, "version": [number, 0], "tx_id": tx.tx_id}
            )
        block = self._cut(ch, [tx], [ValidationCode.VALID])
        resp = {"status": response.status, "message": response.message, "payload": response.payload}
        self.publish(Event("block", ch, {"number": number, "hash": block.hash(), "tx_count": 1}))
        self.publish(
            Event("tx", ch, {"tx_id": tx.tx_id, "block_number": number, "code": ValidationCode.VALID}), tx.tx_id
        )
        for name, payload in response.events:
            self.publish(Event("contract", ch, {"name": name, "payload": payload, "tx_id": tx.tx_id}), tx.tx_id)
        return SubmitResult(tx.tx_id, number, ValidationCode.VALID, resp)

    async def tx_submit_and_wait(self, proposal: Proposal, signature: bytes, timeout_s: float) -> SubmitResult:
        if proposal.function == "slow":
            raise TimeoutError_(f"not committed within {timeout_s} s", {"tx_id": proposal.tx_id})
        return await self.tx_submit(proposal, signature)

    async def tx_query(self, proposal: Proposal, signature: bytes) -> dict[str, Any]:
        ch = self._ch(proposal.header.channel)
        self._check_signature(proposal, signature)
        self.last_transient = dict(proposal.transient)
        response, _rw = self._simulate(ch, proposal)
        return {"status": response.status, "message": response.message, "payload": response.payload}

    async def tx_status(self, channel: str | None, tx_id: bytes) -> dict[str, Any]:
        block, i, code = self._locate(channel, tx_id)
        return {"status": "committed", "block_number": block.number, "index": i, "code": code}

    async def contract_list(self, channel: str | None) -> list[dict[str, Any]]:
        self._ch(channel)
        return [{"name": "kv", "version": "1", "policy": "OutOf(1, 'council.node')"}]

    def channel_config(self, ch: str) -> ChannelConfig:
        return ChannelConfig(ch, len(self.config_updates), (OrgConfig("council", b"ca"),), (), BatchConfig(), (), "x")

    async def config_get(self, channel: str | None) -> dict[str, Any]:
        cfg = self.channel_config(self._ch(channel))
        return {"channel": cfg.channel, "sequence": cfg.sequence, "orgs": [o.name for o in cfg.orgs]}

    async def config_update(
        self,
        channel: str | None,
        config_obj: Any,
        signatures: list[tuple[bytes, bytes]],
        packages: Sequence[bytes] = (),
    ) -> SubmitResult:
        ch = self._ch(channel)
        cfg = ChannelConfig.from_obj(config_obj)
        d = config_update_digest(cfg)
        for cert, sig in signatures:
            pub, _org, role, _name = _subject(cert)
            if role != "admin":
                raise Unauthorized("config updates need admin identities")
            if not verify(pub, sig, d):
                raise Unauthorized("bad admin signature")
        self.config_updates.append(config_obj)
        block = self._cut(ch, [], [])
        return SubmitResult(d, block.number, ValidationCode.VALID, {"status": 200})

    def subscribe(self, channel: str | None, kinds: frozenset[str], tx_id: bytes | None = None) -> AsyncIterator[Event]:
        ch = self._ch(channel)
        q: asyncio.Queue[Event] = asyncio.Queue(SUBSCRIBER_QUEUE_MAX)
        entry = (ch, kinds, tx_id, q)
        self.subscribers.append(entry)

        async def gen() -> AsyncIterator[Event]:
            try:
                while True:
                    yield await q.get()
            finally:
                self.subscribers.remove(entry)

        return gen()

    async def health(self) -> dict[str, tuple[bool, str]]:
        return dict(self.health_checks)
