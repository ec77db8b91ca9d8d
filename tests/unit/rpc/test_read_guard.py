"""Signed state reads: the request format, and every way ReadGuard refuses one.

Real PKI (crypto.ca) and MSP, injected time; no node, no sockets.
"""

from __future__ import annotations

import dataclasses
import ssl

import pytest

from crypto.ca import CertificateAuthority, Role
from crypto.encoding import encode
from crypto.hashing import Tag, digest_bytes
from crypto.msp import MSP, OrgMSP
from secprivnode.client import ClientIdentity
from secprivnode.read_guard import (
    READ_WINDOW_MS,
    ReadDenied,
    ReadGuard,
    ReadRefused,
    ReplayCache,
    ReplayCacheFull,
)
from secprivnode.signed_read import READ_NONCE_BYTES, SignedRead, auth_to_json, sign_read

NOW = 1_767_000_000  # unix seconds inside every certificate's validity
NOW_MS = NOW * 1000
ORGS = ["council", "transport"]


class Pki:
    def __init__(self) -> None:
        self.cas = {org: CertificateAuthority.create(org, now=NOW - 3600) for org in ORGS}
        self.msp = MSP([OrgMSP.from_ca(ca) for ca in self.cas.values()])

    def identity(self, org: str, name: str, role: Role = Role.CLIENT) -> ClientIdentity:
        key, pem = self.cas[org].issue(name, role, now=NOW - 3600)
        return ClientIdentity.from_pem(pem, key.to_pem())


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


def read(ident: ClientIdentity, *, channel: str = "city", key: str = "asset/1", ts: int = NOW_MS) -> SignedRead:
    return sign_read(ident.cert_der, ident.sign, channel, "state_get", ("assets", key), timestamp_ms=ts)


def refused(guard: ReadGuard, r: SignedRead, msp: MSP, now_ms: int = NOW_MS, channel: str = "city") -> str:
    with pytest.raises(ReadRefused) as info:
        guard.authenticate(r, channel, msp, now_ms)
    return info.value.reason


def test_the_signed_bytes_are_the_documented_array(pki: Pki) -> None:
    alice = pki.identity("council", "alice")
    r = sign_read(alice.cert_der, alice.sign, "city", "state_getRange", ("assets", "a", "b", 100), timestamp_ms=5)
    req = r.request
    assert len(req.nonce) == READ_NONCE_BYTES
    expected = encode(["city", "state_getRange", ["assets", "a", "b", 100], alice.cert_der, req.nonce, 5])
    assert req.digest() == digest_bytes(b"secprivnode/read-request/v1\x00", expected)
    assert Tag.READ_REQUEST == b"secprivnode/read-request/v1\x00"
    auth = auth_to_json(r)
    assert set(auth) == {"channel", "creator", "nonce", "timestamp_ms", "signature"}
    assert auth["creator"] == "0x" + alice.cert_der.hex() and auth["timestamp_ms"] == 5
    with pytest.raises(ValueError, match="not a signed read"):
        sign_read(alice.cert_der, alice.sign, "city", "chain_height", ())


def test_a_member_client_reads(pki: Pki) -> None:
    guard = ReadGuard()
    alice = pki.identity("council", "alice")
    ident = guard.check(read(alice), "city", pki.msp, ORGS, NOW_MS + READ_WINDOW_MS)
    assert ident.id == "council/alice"


def test_forged_signature(pki: Pki) -> None:
    guard = ReadGuard()
    alice, mallory = pki.identity("council", "alice"), pki.identity("transport", "mallory")
    genuine = read(alice)
    assert refused(guard, SignedRead(genuine.request, mallory.sign(genuine.request.digest())), pki.msp) == (
        "bad_signature"
    )
    other_key = SignedRead(dataclasses.replace(genuine.request, params=("assets", "asset/2")), genuine.signature)
    assert refused(guard, other_key, pki.msp) == "bad_signature"
    assert refused(guard, SignedRead(genuine.request, b"\x30\x00"), pki.msp) == "bad_signature"


def test_unknown_identity(pki: Pki) -> None:
    guard = ReadGuard()
    for org in ("council", "rogue"):  # a CA of the same name is not the member's CA
        ca = CertificateAuthority.create(org, now=NOW - 3600)
        key, pem = ca.issue("mallory", Role.CLIENT, now=NOW - 3600)
        assert refused(guard, read(ClientIdentity.from_pem(pem, key.to_pem())), pki.msp) == "unknown_identity"
    r = read(pki.identity("council", "alice"))
    garbage = SignedRead(dataclasses.replace(r.request, creator=b"not a certificate"), r.signature)
    assert refused(guard, garbage, pki.msp) == "unknown_identity"


def test_revoked_identity(pki: Pki) -> None:
    guard = ReadGuard()
    bob = pki.identity("council", "bob")
    ca = pki.cas["council"]
    _, crl = ca.revoke_certificate(ssl.DER_cert_to_PEM_cert(bob.cert_der).encode(), now=NOW - 60)
    revoked_msp = pki.msp.with_crl("council", crl)
    assert refused(guard, read(bob), revoked_msp) == "revoked"
    assert guard.authenticate(read(bob), "city", pki.msp, NOW_MS).id == "council/bob", "before the CRL: a member"


def test_expired_identity(pki: Pki) -> None:
    key, pem = pki.cas["council"].issue("old", Role.CLIENT, now=NOW - 3600, valid_days=0)
    old = ClientIdentity.from_pem(pem, key.to_pem())
    assert refused(ReadGuard(), read(old), pki.msp) == "expired"


def test_replay_within_the_window(pki: Pki) -> None:
    guard = ReadGuard()
    r = read(pki.identity("council", "alice"))
    guard.authenticate(r, "city", pki.msp, NOW_MS)
    assert refused(guard, r, pki.msp, NOW_MS + READ_WINDOW_MS) == "replay"
    # Once the timestamp has left the window the stale check refuses it instead, for good.
    assert refused(guard, r, pki.msp, NOW_MS + READ_WINDOW_MS + 1) == "stale"
    # A fresh nonce is a new request.
    guard.authenticate(read(pki.identity("council", "alice")), "city", pki.msp, NOW_MS)


def test_stale_or_future_timestamp(pki: Pki) -> None:
    guard = ReadGuard()
    alice = pki.identity("council", "alice")
    assert refused(guard, read(alice, ts=NOW_MS - READ_WINDOW_MS - 1), pki.msp) == "stale"
    assert refused(guard, read(alice, ts=NOW_MS + READ_WINDOW_MS + 1), pki.msp) == "stale"
    assert refused(guard, read(alice, ts=0), pki.msp) == "stale"


def test_wrong_channel(pki: Pki) -> None:
    assert refused(ReadGuard(), read(pki.identity("council", "alice"), channel="lab"), pki.msp) == "wrong_channel"


def test_read_policies(pki: Pki) -> None:
    node = pki.identity("council", "council-node1", Role.NODE)
    admin = pki.identity("transport", "admin", Role.ADMIN)
    client = pki.identity("council", "carol")
    guard = ReadGuard({"records": "OR('transport.admin')"})
    for ident in (client, admin, pki.identity("transport", "auth", Role.AUTHORITY)):
        guard.check(read(ident), "city", pki.msp, ORGS, NOW_MS)
    with pytest.raises(ReadDenied, match="council/council-node1"):
        guard.check(read(node), "city", pki.msp, ORGS, NOW_MS)
    config_read = sign_read(node.cert_der, node.sign, "city", "state_get", ("_config", "channel"), timestamp_ms=NOW_MS)
    assert guard.check(config_read, "city", pki.msp, ORGS, NOW_MS).id == "council/council-node1"
    records = sign_read(client.cert_der, client.sign, "city", "state_get", ("records", "r1"), timestamp_ms=NOW_MS)
    with pytest.raises(ReadDenied, match="read policy"):
        guard.check(records, "city", pki.msp, ORGS, NOW_MS)
    records = sign_read(admin.cert_der, admin.sign, "city", "state_get", ("records", "r1"), timestamp_ms=NOW_MS)
    guard.check(records, "city", pki.msp, ORGS, NOW_MS)
    with pytest.raises(ValueError, match="read policy of 'x'"):
        ReadGuard({"x": "NOT A POLICY("})


def test_replay_cache_is_bounded_and_forgets_expired_entries() -> None:
    cache = ReplayCache(max_entries=2)
    assert cache.add(b"a", 100, 0) and cache.add(b"b", 50, 0)
    assert not cache.add(b"a", 100, 10)
    with pytest.raises(ReplayCacheFull):
        cache.add(b"c", 100, 10)
    assert cache.add(b"c", 200, 51) and len(cache) == 2, "b expired at 50"
    assert not cache.add(b"a", 100, 100), "a is remembered up to and including its expiry"
    assert cache.add(b"a", 300, 101)
    with pytest.raises(ValueError):
        ReplayCache(0)
