"""Test support for the P2P tests: a throwaway PKI, free ports, polling waits, chain building.

Loaded by path from the P2P conftests (and run as a script's import by the multi-process entry
point), registered as the module ``p2p_harness``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from crypto.ca import CertificateAuthority, Role
from crypto.msp import MSP, Identity, OrgMSP
from crypto.signing import PrivateKey
from p2p.verify import VerifiedBlock

NOW = 1_767_225_600  # 2026-01-01T00:00:00Z: every certificate here is valid from then


@dataclass(frozen=True)
class NodeCreds:
    key: PrivateKey
    cert_pem: bytes
    identity: Identity

    @property
    def name(self) -> str:
        return self.identity.name

    @property
    def org(self) -> str:
        return self.identity.org


@dataclass
class Pki:
    """One CA per org; node certificates; CRLs that follow revocations."""

    now: int = NOW
    cas: dict[str, CertificateAuthority] = field(default_factory=dict)
    crls: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def create(cls, orgs: Iterable[str], now: int = NOW) -> Pki:
        pki = cls(now)
        for org in orgs:
            pki.cas[org] = CertificateAuthority.create(org, now=now - 3600)
        return pki

    def node(self, org: str, name: str, role: Role = Role.NODE) -> NodeCreds:
        key, pem = self.cas[org].issue(name, role, now=self.now - 3600, hosts=["localhost"], ips=["127.0.0.1"])
        return NodeCreds(key, pem, Identity.from_cert(pem))

    def revoke(self, creds: NodeCreds) -> None:
        self.crls[creds.org] = self.cas[creds.org].revoke(creds.identity.serial, now=self.now - 60)

    def msp(self) -> MSP:
        return MSP(
            OrgMSP.from_pem(ca.cert_pem, [self.crls[org]] if org in self.crls else []) for org, ca in self.cas.items()
        )


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_until_async(pred: Callable[[], Any], timeout_s: float = 10.0, what: str = "condition") -> Any:
    """Poll ``pred`` on the event loop until truthy; AssertionError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


def wait_until(pred: Callable[[], Any], timeout_s: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


class MemStore:
    def __init__(self) -> None:
        self.blocks: list[bytes] = []
        self.hashes: list[bytes] = []

    @property
    def height(self) -> int:
        return len(self.blocks)

    @property
    def tip_hash(self) -> bytes | None:
        return self.hashes[-1] if self.hashes else None

    def get_block_bytes(self, number: int) -> bytes:
        return self.blocks[number]

    def deliver(self, blocks: Sequence[VerifiedBlock]) -> None:
        for b in blocks:
            assert b.number == len(self.blocks), "delivered out of order"
            assert b.header.previous_hash == (self.tip_hash or b"\x00" * 32), "broken link delivered"
            self.blocks.append(b.data)
            self.hashes.append(b.hash)


class MemPrivate:
    def __init__(self) -> None:
        self.blobs: dict[bytes, tuple[str, bytes]] = {}

    def has(self, digest: bytes) -> bool:
        return digest in self.blobs

    def get(self, digest: bytes) -> bytes | None:
        item = self.blobs.get(digest)
        return item[1] if item else None

    def put(self, collection: str, digest: bytes, data: bytes) -> None:
        self.blobs[digest] = (collection, data)

    def digests(self, collection: str, after: bytes, limit: int) -> list[bytes]:
        return sorted(d for d, (c, _) in self.blobs.items() if c == collection and d > after)[:limit]
