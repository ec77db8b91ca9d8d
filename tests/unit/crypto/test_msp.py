"""CA and MSP: chains, validity, CRLs, roles, unknown and foreign CAs, garbage input."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import crypto.msp as msp_mod
from crypto.ca import CertificateAuthority, Role, default_org_names
from crypto.msp import (
    MAX_CERT_BYTES,
    MSP,
    BadChain,
    Expired,
    Identity,
    IdentityError,
    MalformedCertificate,
    OrgMSP,
    Revoked,
    UnknownOrg,
    WrongRole,
)

NOW = 1_750_000_000  # injected clock: 2025-06-15
DAY = 86400


@pytest.fixture(scope="module")
def council() -> CertificateAuthority:
    return CertificateAuthority.create("council", now=NOW)


@pytest.fixture(scope="module")
def transport() -> CertificateAuthority:
    return CertificateAuthority.create("transport", now=NOW)


@pytest.fixture
def msp(council: CertificateAuthority, transport: CertificateAuthority) -> MSP:
    return MSP([OrgMSP.from_ca(council), OrgMSP.from_ca(transport)])


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize("role", list(Role))
def test_valid_chain_for_every_role(msp: MSP, council: CertificateAuthority, role: Role) -> None:
    key, pem = council.issue(f"someone-{role.value}", role, now=NOW)
    ident = msp.validate(pem, now=NOW + 10)
    assert (ident.org, ident.role, ident.name) == ("council", role, f"someone-{role.value}")
    assert ident.id == f"council/someone-{role.value}"
    assert ident.public_key == key.public
    assert ident.not_before == NOW and ident.not_after == NOW + 825 * DAY
    assert ident.serial == x509.load_pem_x509_certificate(pem).serial_number
    assert msp.validate(_der(pem), now=NOW) == ident  # DER as well as PEM
    assert Identity.from_cert(ident.to_pem()) == ident
    assert ident.cert_der == _der(pem)


def test_identity_from_cert_does_not_check_chain(council: CertificateAuthority) -> None:
    _, pem = council.issue("n1", Role.NODE, now=NOW)
    assert Identity.from_cert(pem).role is Role.NODE


def test_validity_window(msp: MSP, council: CertificateAuthority) -> None:
    _, pem = council.issue("short", Role.CLIENT, now=NOW, valid_days=1)
    msp.validate(pem, now=NOW)  # boundaries are inclusive (RFC 5280 §4.1.2.5)
    msp.validate(pem, now=NOW + DAY)
    with pytest.raises(Expired):
        msp.validate(pem, now=NOW - 1)  # not yet valid
    with pytest.raises(Expired):
        msp.validate(pem, now=NOW + DAY + 1)
    msp.validate(pem, now=NOW + 5)  # cached results still get the time check


def test_ca_validity_bounds_identities() -> None:
    ca = CertificateAuthority.create("council", now=NOW, valid_days=10)
    _, pem = ca.issue("late", Role.CLIENT, now=NOW + 9 * DAY)  # asks for 825 days
    ident = Identity.from_cert(pem)
    assert ident.not_after == NOW + 10 * DAY  # clipped to the CA's own validity
    m = MSP([OrgMSP.from_ca(ca)])
    m.validate(pem, now=NOW + 10 * DAY)
    with pytest.raises(Expired):
        m.validate(pem, now=NOW + 10 * DAY + 1)
    ca2 = CertificateAuthority.create("council", now=NOW + 100)
    _, early = ca2.issue("early", Role.CLIENT, now=NOW)  # leaf valid from before its CA
    with pytest.raises(Expired):
        MSP([OrgMSP.from_ca(ca2)]).validate(early, now=NOW + 50)


def test_roles(msp: MSP, council: CertificateAuthority) -> None:
    _, pem = council.issue("c1", Role.CLIENT, now=NOW)
    assert msp.validate(pem, now=NOW, roles={Role.CLIENT, Role.ADMIN}).role is Role.CLIENT
    with pytest.raises(WrongRole):
        msp.validate(pem, now=NOW, roles={Role.NODE})
    with pytest.raises(WrongRole):
        msp.validate(pem, now=NOW, roles=())


def test_crl_revocation(msp: MSP, council: CertificateAuthority, transport: CertificateAuthority) -> None:
    ca = CertificateAuthority.create("council", now=NOW)  # a private CA: revocation mutates it
    m = MSP([OrgMSP.from_ca(ca, now=NOW), OrgMSP.from_ca(transport)])
    _, bad = ca.issue("lost-phone", Role.CLIENT, now=NOW)
    _, good = ca.issue("kept-phone", Role.CLIENT, now=NOW)
    serial = m.validate(bad, now=NOW).serial  # cached as valid first
    crl_pem = ca.revoke(serial, now=NOW + 100)
    m2 = m.with_crl("council", crl_pem)
    with pytest.raises(Revoked):
        m2.validate(bad, now=NOW + 200)
    assert m2.validate(good, now=NOW + 200).name == "kept-phone"
    m.validate(bad, now=NOW + 200)  # the old MSP value is unchanged
    m3 = MSP([OrgMSP.from_pem(ca.cert_pem, [crl_pem]), OrgMSP.from_ca(transport)])
    with pytest.raises(Revoked):
        m3.validate(bad, now=NOW)
    assert len(m2.orgs["council"].crl_ders) == 2  # the initial empty CRL and the new one
    assert m2.with_crl("council", crl_pem).orgs["council"].crl_ders == m2.orgs["council"].crl_ders


def test_crl_from_another_ca_is_refused(msp: MSP, transport: CertificateAuthority) -> None:
    with pytest.raises(BadChain):
        msp.with_crl("council", transport.crl_pem(NOW))
    impostor = CertificateAuthority.create("council", now=NOW)
    with pytest.raises(BadChain):
        msp.with_crl("council", impostor.crl_pem(NOW))
    with pytest.raises(UnknownOrg):
        msp.with_crl("health", transport.crl_pem(NOW))
    with pytest.raises(MalformedCertificate):
        msp.with_crl("council", b"not a crl")


def test_unknown_org(msp: MSP) -> None:
    health = CertificateAuthority.create("health", now=NOW)
    _, pem = health.issue("nurse", Role.CLIENT, now=NOW)
    with pytest.raises(UnknownOrg):
        msp.validate(pem, now=NOW)


def test_foreign_ca_with_same_org_name(msp: MSP) -> None:
    impostor = CertificateAuthority.create("council", now=NOW)
    _, pem = impostor.issue("mayor", Role.ADMIN, now=NOW)
    with pytest.raises(BadChain):
        msp.validate(pem, now=NOW)


def test_cert_from_other_members_ca_claiming_this_org(
    msp: MSP, council: CertificateAuthority, transport: CertificateAuthority
) -> None:
    # transport's CA signs a certificate whose subject says O=council
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _builder(key.public_key(), org="council", ou="admin", issuer=transport.cert.subject).sign(
        transport.key.to_crypto(), hashes.SHA256()
    )
    with pytest.raises(BadChain):
        msp.validate(cert.public_bytes(serialization.Encoding.PEM), now=NOW)


def _builder(
    pub: ec.EllipticCurvePublicKey, *, org: str, ou: str | None, issuer: x509.Name, ca: bool = False
) -> x509.CertificateBuilder:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    if ou is not None:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, "x"))
    t = dt.datetime.fromtimestamp(NOW, tz=dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs))
        .issuer_name(issuer)
        .public_key(pub)
        .serial_number(12345)
        .not_valid_before(t)
        .not_valid_after(t + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )


def test_certificates_of_the_wrong_form(msp: MSP, council: CertificateAuthority) -> None:
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    ca_key = council.key.to_crypto()
    subject = council.cert.subject
    cases: list[tuple[bytes, type[IdentityError]]] = []
    for ou in (None, "peer", "Node"):  # no role, Fabric's OU, wrong case
        c = _builder(p256, org="council", ou=ou, issuer=subject).sign(ca_key, hashes.SHA256())
        cases.append((c.public_bytes(serialization.Encoding.PEM), MalformedCertificate))
    c = _builder(p256, org="council", ou="node", issuer=subject).sign(ca_key, hashes.SHA384())
    cases.append((c.public_bytes(serialization.Encoding.PEM), MalformedCertificate))  # not ecdsa-with-SHA256
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    c = _builder(p384, org="council", ou="node", issuer=subject).sign(ca_key, hashes.SHA256())
    cases.append((c.public_bytes(serialization.Encoding.PEM), MalformedCertificate))  # not P-256
    c = _builder(p256, org="council", ou="node", issuer=subject, ca=True).sign(ca_key, hashes.SHA256())
    cases.append((c.public_bytes(serialization.Encoding.PEM), BadChain))  # a sub-CA is not an identity
    c = _builder(p256, org="council/x", ou="node", issuer=subject).sign(ca_key, hashes.SHA256())
    cases.append((c.public_bytes(serialization.Encoding.PEM), MalformedCertificate))  # slash in org
    cases.append((council.cert_pem, MalformedCertificate))  # the root itself has no role
    for data, err in cases:
        with pytest.raises(err):
            msp.validate(data, now=NOW)


def test_garbage_input(msp: MSP, council: CertificateAuthority) -> None:
    _, pem = council.issue("n", Role.NODE, now=NOW)
    der = _der(pem)
    rnd = random.Random(11)
    garbage: list[object] = [
        b"",
        b"garbage",
        b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        pem[: len(pem) // 2],
        der[:-1],
        der + b"\x00",
        b"\x30" + b"\xff" * 40,
        b"\x00" * (MAX_CERT_BYTES + 1),
        "a string",
        None,
        12,
    ]
    garbage += [rnd.randbytes(rnd.randrange(1, 600)) for _ in range(50)]
    for i in range(0, len(der), 7):  # flip one bit at many positions of a valid DER certificate
        flipped = bytearray(der)
        flipped[i] ^= 0x10
        garbage.append(bytes(flipped))
    for g in garbage:
        try:
            msp.validate(g, now=NOW)  # type: ignore[arg-type]
        except IdentityError:
            continue
        # a flip inside an unsigned field is impossible: the signature covers all of tbsCertificate,
        # so anything that still validates must be byte-for-byte the original certificate
        assert g == der, "a mutated certificate validated"


def test_cache_is_bounded_and_skips_reparsing(
    msp: MSP, council: CertificateAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(msp_mod, "IDENTITY_CACHE_MAX", 3)
    pems = [council.issue(f"c{i}", Role.CLIENT, now=NOW)[1] for i in range(5)]
    for pem in pems:
        msp.validate(pem, now=NOW)
    assert len(msp._cache) == 3
    calls = 0
    real = msp_mod._parse_cert

    def counting(data: bytes) -> x509.Certificate:
        nonlocal calls
        calls += 1
        return real(data)

    monkeypatch.setattr(msp_mod, "_parse_cert", counting)
    msp.validate(pems[-1], now=NOW)  # cached
    assert calls == 0
    msp.validate(pems[0], now=NOW)  # evicted: parsed again
    assert calls == 1


def test_msp_construction_checks(council: CertificateAuthority, transport: CertificateAuthority) -> None:
    with pytest.raises(ValueError):
        MSP([OrgMSP.from_ca(council), OrgMSP.from_ca(council)])
    with pytest.raises(BadChain):  # CA cert names another org
        MSP([OrgMSP("transport", council.cert_der)])
    with pytest.raises(BadChain):  # CRL signed by someone else
        MSP(
            [
                OrgMSP(
                    "council",
                    council.cert_der,
                    (x509.load_pem_x509_crl(transport.crl_pem(NOW)).public_bytes(serialization.Encoding.DER),),
                )
            ]
        )
    _, leaf = council.issue("notaca", Role.NODE, now=NOW)
    with pytest.raises(BadChain):  # a leaf is not a root
        MSP([OrgMSP("council", _der(leaf))])
    m = MSP([OrgMSP.from_ca(council)])
    assert set(m.orgs) == {"council"}
    with pytest.raises(TypeError):
        m.orgs["x"] = OrgMSP.from_ca(council)  # type: ignore[index]


def test_issue_extensions(council: CertificateAuthority) -> None:
    _, pem = council.issue("council-node1", Role.NODE, now=NOW, hosts=["localhost"], ips=["127.0.0.1", "::1"])
    cert = x509.load_pem_x509_certificate(pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    cert.verify_directly_issued_by(council.cert)
    _, cpem = council.issue("client9", Role.CLIENT, now=NOW)
    ccert = x509.load_pem_x509_certificate(cpem)
    assert list(ccert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    with pytest.raises(x509.ExtensionNotFound):
        ccert.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_issue_with_given_key_and_bad_input(council: CertificateAuthority) -> None:
    from crypto.signing import get_backend

    key = get_backend().generate()
    got, pem = council.issue("k", Role.CLIENT, now=NOW, key=key)
    assert got is key and Identity.from_cert(pem).public_key == key.public
    for name in ("", "a/b", "with space", ".hidden", "x" * 65, "é"):
        with pytest.raises(ValueError):
            council.issue(name, Role.CLIENT, now=NOW)
    with pytest.raises(ValueError):
        council.issue("n", Role.NODE, now=NOW, ips=["300.1.1.1"])
    with pytest.raises(ValueError):
        council.issue("n", "peer", now=NOW)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        CertificateAuthority.create("bad/org", now=NOW)


def test_save_load_round_trip(tmp_path: Path) -> None:
    ca = CertificateAuthority.create("utilities", now=NOW)
    _, pem = ca.issue("meter", Role.CLIENT, now=NOW)
    serial, _ = ca.revoke_certificate(pem, now=NOW + 5)
    ca.save(tmp_path / "ca")
    assert (tmp_path / "ca" / "ca-key.pem").stat().st_mode & 0o777 == 0o600
    back = CertificateAuthority.load(tmp_path / "ca")
    assert back.org == "utilities" and back.cert_pem == ca.cert_pem and back.key == ca.key
    assert back.revoked == {serial: NOW + 5}
    crl = x509.load_pem_x509_crl(back.revoke(777, now=NOW + 9))
    assert {e.serial_number for e in crl} == {serial, 777}
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 3  # create, revoke, revoke
    m = MSP([OrgMSP.from_dir(tmp_path / "ca")])
    with pytest.raises(Revoked):
        m.validate(pem, now=NOW + 10)
    assert OrgMSP.from_dir(tmp_path) == OrgMSP.from_dir(tmp_path / "ca")  # org dir holding ca/


def test_load_rejects_mismatched_material(tmp_path: Path) -> None:
    a = CertificateAuthority.create("education", now=NOW)
    b = CertificateAuthority.create("education", now=NOW)
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    (tmp_path / "a" / "ca-key.pem").write_bytes((tmp_path / "b" / "ca-key.pem").read_bytes())
    with pytest.raises(ValueError):
        CertificateAuthority.load(tmp_path / "a")
    a.save(tmp_path / "a")
    (tmp_path / "a" / "crl.pem").write_bytes((tmp_path / "b" / "crl.pem").read_bytes())
    with pytest.raises(ValueError):
        CertificateAuthority.load(tmp_path / "a")
    with pytest.raises(ValueError):
        CertificateAuthority.load(tmp_path / "missing")
    with pytest.raises(ValueError):  # revoking someone else's certificate
        a.revoke_certificate(b.issue("x", Role.CLIENT, now=NOW)[1], now=NOW)
    with pytest.raises(ValueError):
        a.revoke_certificate(b"junk", now=NOW)


def test_default_org_names() -> None:
    assert default_org_names(3) == ["council", "transport", "health"]
    assert default_org_names(7)[4:] == ["education", "org6", "org7"]
