"""Membership service provider: who is a member of the network, with which role.

An MSP lists each organisation's root CA certificate and CRLs (as a channel configuration does in
Fabric). :meth:`MSP.validate` turns certificate bytes into an :class:`Identity` after checking,
in order: it parses as an X.509 v3 ECDSA P-256/SHA-256 end-entity certificate whose subject has
exactly one ``O`` (org), one ``OU`` (a :class:`Role`) and one ``CN`` (name); the org is known; it
is signed by that org's CA (RFC 5280 §6.1, a path of length one); its serial is not on the org's
CRLs; ``now`` lies within its validity and the CA's; its role is one of those allowed.

Parsing and chain checking are cached (bounded, keyed by the exact certificate bytes) because the
same few hundred identities sign everything; revocation, time and role are checked on every call.

This module never reads the clock (``now`` is injected) and never lets an exception other than
:class:`IdentityError` escape for bad certificate input.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from crypto.ca import CA_CERT_FILE, CRL_FILE, NAME_RE, CertificateAuthority, Role
from crypto.signing import KeyError_, PublicKey

__all__ = [
    "IDENTITY_CACHE_MAX",
    "MAX_CERT_BYTES",
    "MSP",
    "BadChain",
    "CertificateAuthority",
    "Expired",
    "Identity",
    "IdentityError",
    "MalformedCertificate",
    "OrgMSP",
    "Revoked",
    "Role",
    "UnknownOrg",
    "WrongRole",
]

# Certificates issued here are under 1 KiB; 16 KiB leaves room for other CAs' extensions while
# refusing to feed megabytes of garbage to the ASN.1 parser.
MAX_CERT_BYTES = 16 * 1024
# Validated identities kept per MSP. A city network has hundreds to a few thousand identities;
# past this bound the least recently used are parsed and chain-checked again.
IDENTITY_CACHE_MAX = 4096


class IdentityError(Exception):
    """A certificate does not identify a member with the required role."""


class UnknownOrg(IdentityError):
    """The certificate's organisation is not in this MSP."""


class BadChain(IdentityError):
    """The certificate is not signed by its organisation's CA (or is not an end-entity cert)."""


class Expired(IdentityError):
    """``now`` is outside the certificate's validity period."""


class Revoked(IdentityError):
    """The certificate's serial is on its organisation's CRL."""


class WrongRole(IdentityError):
    """The identity's role is not among those allowed here."""


class MalformedCertificate(IdentityError):
    """The bytes are not a certificate of the form this network issues."""


def _to_der(data: bytes, kind: str) -> tuple[bytes, bool]:
    """DER bytes of a PEM or DER object, and whether the input was PEM."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedCertificate(f"{kind} must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_CERT_BYTES:
        raise MalformedCertificate(f"{kind} of {len(data)} bytes exceeds {MAX_CERT_BYTES}")
    return data, data.lstrip().startswith(b"-----BEGIN")


def _parse_cert(data: bytes) -> x509.Certificate:
    raw, is_pem = _to_der(data, "certificate")
    try:
        return x509.load_pem_x509_certificate(raw) if is_pem else x509.load_der_x509_certificate(raw)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise MalformedCertificate(f"not an X.509 certificate: {exc}") from exc


def _one(name: x509.Name, oid: x509.ObjectIdentifier, label: str) -> str:
    attrs = name.get_attributes_for_oid(oid)
    if len(attrs) != 1 or not isinstance(attrs[0].value, str):
        raise MalformedCertificate(f"subject must have exactly one {label}")
    return attrs[0].value


@dataclass(frozen=True, slots=True)
class Identity:
    """A member identity as its certificate states it (not by itself proof of membership)."""

    org: str
    role: Role
    name: str
    cert_der: bytes = field(repr=False)
    public_key: PublicKey = field(repr=False)
    serial: int
    not_before: int
    not_after: int

    @property
    def id(self) -> str:
        """``"org/name"``: unique within a network, since names are unique per org."""
        return f"{self.org}/{self.name}"

    def to_pem(self) -> bytes:
        return x509.load_der_x509_certificate(self.cert_der).public_bytes(serialization.Encoding.PEM)

    @classmethod
    def from_cert(cls, pem_or_der: bytes) -> Identity:
        """Parse a certificate (no chain, time or revocation checks); :class:`MalformedCertificate` if unusable."""
        return _identity(_parse_cert(pem_or_der))


def _identity(cert: x509.Certificate) -> Identity:
    try:
        if cert.version is not x509.Version.v3:
            raise MalformedCertificate("certificate must be X.509 v3")
        if cert.signature_algorithm_oid != SignatureAlgorithmOID.ECDSA_WITH_SHA256:
            raise MalformedCertificate("certificate must be signed with ecdsa-with-SHA256")
        subject = cert.subject
        org = _one(subject, NameOID.ORGANIZATION_NAME, "O")
        ou = _one(subject, NameOID.ORGANIZATIONAL_UNIT_NAME, "OU")
        name = _one(subject, NameOID.COMMON_NAME, "CN")
        if NAME_RE.fullmatch(org) is None or NAME_RE.fullmatch(name) is None:
            raise MalformedCertificate("organisation or identity name has characters this network does not use")
        try:
            role = Role(ou)
        except ValueError as exc:
            raise MalformedCertificate(f"OU {ou!r} is not a role ({', '.join(Role)})") from exc
        key = PublicKey._from_crypto(cert.public_key())
        return Identity(
            org=org,
            role=role,
            name=name,
            cert_der=cert.public_bytes(serialization.Encoding.DER),
            public_key=key,
            serial=cert.serial_number,
            not_before=int(cert.not_valid_before_utc.timestamp()),
            not_after=int(cert.not_valid_after_utc.timestamp()),
        )
    except MalformedCertificate:
        raise
    except (KeyError_, ValueError, TypeError, UnsupportedAlgorithm) as exc:  # the parser is lazy
        raise MalformedCertificate(f"unusable certificate: {exc}") from exc


@dataclass(frozen=True)
class OrgMSP:
    """One organisation's membership material: its root CA certificate and CRLs (DER)."""

    name: str
    ca_cert_der: bytes
    crl_ders: tuple[bytes, ...] = ()

    @classmethod
    def from_pem(cls, ca_pem: bytes, crl_pems: Iterable[bytes] = ()) -> OrgMSP:
        """From PEM (or DER) CA certificate and CRLs; the org name is the CA subject's ``O``."""
        cert = _parse_cert(ca_pem)
        name = _one(cert.subject, NameOID.ORGANIZATION_NAME, "O")
        return cls(name, cert.public_bytes(serialization.Encoding.DER), tuple(_crl_der(c) for c in crl_pems))

    @classmethod
    def from_ca(cls, ca: CertificateAuthority, *, now: int | None = None) -> OrgMSP:
        """From a live CA, with its current CRL issued at ``now`` when given."""
        crls = (_crl_der(ca.crl_pem(now)),) if now is not None else ()
        return cls(ca.org, ca.cert_der, crls)

    @classmethod
    def from_dir(cls, path: str | os.PathLike[str]) -> OrgMSP:
        """From a CA directory (``ca.pem`` and optional ``crl.pem``) or an org directory holding ``ca/``."""
        p = Path(path)
        if not (p / CA_CERT_FILE).exists() and (p / "ca" / CA_CERT_FILE).exists():
            p = p / "ca"
        try:
            ca_pem = (p / CA_CERT_FILE).read_bytes()
            crl_path = p / CRL_FILE
            crls = [crl_path.read_bytes()] if crl_path.exists() else []
        except OSError as exc:
            raise MalformedCertificate(f"cannot read MSP material in {p}: {exc.strerror}") from exc
        return cls.from_pem(ca_pem, crls)


def _crl_der(data: bytes) -> bytes:
    raw, is_pem = _to_der(data, "CRL")
    try:
        crl = x509.load_pem_x509_crl(raw) if is_pem else x509.load_der_x509_crl(raw)
    except (ValueError, TypeError) as exc:
        raise MalformedCertificate(f"not a CRL: {exc}") from exc
    return crl.public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True, slots=True)
class _Org:
    msp: OrgMSP
    ca_cert: x509.Certificate
    revoked: frozenset[int]
    ca_not_before: int  # RFC 5280 §6.1.3: every certificate on the path must be valid at ``now``
    ca_not_after: int


def _load_org(org: OrgMSP) -> _Org:
    """Check an org's material once, when the MSP is built: a self-signed P-256 CA named ``org.name``."""
    ca = _parse_cert(org.ca_cert_der)
    if _one(ca.subject, NameOID.ORGANIZATION_NAME, "O") != org.name:
        raise BadChain(f"CA certificate of {org.name!r} names another organisation")
    try:
        bc = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
        ca.verify_directly_issued_by(ca)
    except (x509.ExtensionNotFound, ValueError, TypeError, InvalidSignature) as exc:
        raise BadChain(f"CA certificate of {org.name!r} is not a valid self-signed root: {exc}") from exc
    if not bc.ca:
        raise BadChain(f"CA certificate of {org.name!r} is not a CA")
    revoked: set[int] = set()
    for der in org.crl_ders:
        try:
            crl = x509.load_der_x509_crl(der)
            ok = crl.issuer == ca.subject and crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
        except (ValueError, TypeError) as exc:
            raise MalformedCertificate(f"CRL of {org.name!r} is malformed: {exc}") from exc
        if not ok:
            raise BadChain(f"CRL of {org.name!r} is not signed by its CA")
        revoked.update(entry.serial_number for entry in crl)
    return _Org(
        org,
        ca,
        frozenset(revoked),
        int(ca.not_valid_before_utc.timestamp()),
        int(ca.not_valid_after_utc.timestamp()),
    )


class MSP:
    """The set of member organisations; validates certificates into identities."""

    def __init__(self, orgs: Iterable[OrgMSP], *, _cache: OrderedDict[bytes, Identity] | None = None) -> None:
        loaded: dict[str, _Org] = {}
        for org in orgs:
            if org.name in loaded:
                raise ValueError(f"organisation {org.name!r} listed twice")
            loaded[org.name] = _load_org(org)
        self._orgs = loaded
        self._orgs_view: Mapping[str, OrgMSP] = MappingProxyType({n: o.msp for n, o in loaded.items()})
        # Parse + chain results only: they depend on the CA certificates alone, so an MSP derived
        # by with_crl (same CAs) may share them.
        self._cache: OrderedDict[bytes, Identity] = _cache if _cache is not None else OrderedDict()

    @property
    def orgs(self) -> Mapping[str, OrgMSP]:
        return self._orgs_view

    def with_crl(self, org: str, crl_der: bytes) -> MSP:
        """A new MSP where ``org`` also has this CRL (PEM or DER); the CRL must be signed by its CA."""
        if org not in self._orgs:
            raise UnknownOrg(f"unknown organisation {org!r}")
        der = _crl_der(crl_der)
        updated = []
        for name, o in self._orgs.items():
            if name == org and der not in o.msp.crl_ders:
                updated.append(OrgMSP(o.msp.name, o.msp.ca_cert_der, (*o.msp.crl_ders, der)))
            else:
                updated.append(o.msp)
        return MSP(updated, _cache=self._cache)

    def _chain(self, cert: bytes) -> Identity:
        """Parse and check the signature chain (cached by exact bytes)."""
        key = bytes(cert) if isinstance(cert, (bytes, bytearray, memoryview)) else None
        if key is not None:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        parsed = _parse_cert(cert)
        ident = _identity(parsed)
        org = self._orgs.get(ident.org)
        if org is None:
            raise UnknownOrg(f"organisation {ident.org!r} is not a member")
        try:
            parsed.verify_directly_issued_by(org.ca_cert)
            bc = parsed.extensions.get_extension_for_class(x509.BasicConstraints).value
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as exc:
            raise BadChain(f"{ident.id} is not signed by the CA of {ident.org!r}") from exc
        except x509.ExtensionNotFound as exc:
            raise BadChain(f"{ident.id} has no basicConstraints") from exc
        if bc.ca:
            raise BadChain(f"{ident.id} is a CA certificate, not an identity")
        assert key is not None
        self._cache[key] = ident
        if len(self._cache) > IDENTITY_CACHE_MAX:
            self._cache.popitem(last=False)
        return ident

    def validate(self, cert: bytes, *, now: int, roles: Collection[Role] | None = None) -> Identity:
        """The identity in ``cert`` (PEM or DER) if it is a current, unrevoked member in one of ``roles``."""
        ident = self._chain(cert)
        org = self._orgs[ident.org]
        if ident.serial in org.revoked:
            raise Revoked(f"{ident.id} (serial {ident.serial:x}) is revoked")
        if not ident.not_before <= now <= ident.not_after:
            raise Expired(f"{ident.id} is valid from {ident.not_before} to {ident.not_after}, not at {now}")
        if not org.ca_not_before <= now <= org.ca_not_after:
            raise Expired(
                f"the CA of {ident.org!r} is valid from {org.ca_not_before} to {org.ca_not_after}, not at {now}"
            )
        if roles is not None and ident.role not in roles:
            raise WrongRole(f"{ident.id} is a {ident.role.value}, expected one of {sorted(r.value for r in roles)}")
        return ident
