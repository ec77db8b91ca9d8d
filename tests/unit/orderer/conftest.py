"""Fixtures of the ordering-service tests: a throwaway CA, a channel MSP and a transaction factory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from crypto.msp import MSP, CertificateAuthority, OrgMSP, Role
from crypto.signing import PrivateKey, get_backend
from storage.model import (
    KVWrite,
    Proposal,
    ProposalHeader,
    ReadWriteSet,
    Response,
    Transaction,
)

CHANNEL = "city"
NOW_S = 1_700_000_000  # fixed "current time" of the tests (unix seconds)


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


@dataclass
class Network:
    ca: CertificateAuthority
    msp: MSP
    client_key: PrivateKey
    client_cert: bytes
    orderer_key: PrivateKey
    orderer_cert: bytes


@pytest.fixture(scope="session")
def network() -> Network:
    ca = CertificateAuthority.create("council", now=NOW_S - 86400)
    ck, cpem = ca.issue("alice", Role.CLIENT, now=NOW_S - 3600)
    ok, opem = ca.issue("orderer0", Role.NODE, now=NOW_S - 3600)
    return Network(ca, MSP([OrgMSP.from_ca(ca)]), ck, _der(cpem), ok, _der(opem))


TxFactory = Callable[..., Transaction]


@pytest.fixture()
def make_tx(network: Network) -> TxFactory:
    """``make_tx(i)``: a correctly signed transaction numbered ``i``; the same ``i`` gives the
    same tx id (the ECDSA signature itself is randomised, so the bytes may differ)."""

    def make(i: int, *, channel: str = CHANNEL, payload: bytes = b"v" * 40, sign: bool = True) -> Transaction:
        nonce = b"test-tx-" + i.to_bytes(16, "big")
        header = ProposalHeader(channel, network.client_cert, nonce, 1_700_000_000_000 + i)
        proposal = Proposal(header, "registry", "put", (f"key{i}", payload))
        sig = get_backend().sign(network.client_key, proposal.hash()) if sign else b"\x30\x00"
        rwset = ReadWriteSet("registry", (), (KVWrite(f"key{i}", payload),), ())
        return Transaction(proposal, sig, Response(200), rwset, ())

    return make
