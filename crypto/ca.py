"""An organisation's root certificate authority: issues identities, revokes them, publishes CRLs.

Every certificate is X.509 v3 on ECDSA P-256 with SHA-256 (RFC 5758 §3.2 ``ecdsa-with-SHA256``).
The subject carries the identity the way Fabric's NodeOUs do: ``O`` = organisation, ``OU`` = role
(:class:`Role`), ``CN`` = identity name. Node certificates also carry subjectAltName DNS/IP
entries and the serverAuth + clientAuth extended key usages (RFC 5280 §4.2.1.12), so one
certificate serves both ends of mutual TLS.

A CA directory holds ``ca.pem`` (the self-signed root), ``ca-key.pem`` (its PKCS#8 key, mode
0600) and ``crl.pem``. The CRL is the CA's record of what it revoked: :meth:`CertificateAuthority.load`
reads the revoked list back from it, so there is no second file to drift out of step.

Time is always injected (``now``, unix seconds); this module never reads the clock. It must
never issue a certificate with a name or role the MSP would not accept back.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from crypto.signing import PrivateKey, PublicKey, get_backend

__all__ = [
    "CA_CERT_FILE",
    "CA_KEY_FILE",
    "CRL_FILE",
    "CRL_VALIDITY_DAYS",
    "DEFAULT_ORG_NAMES",
    "NAME_RE",
    "CertificateAuthority",
    "Role",
    "check_name",
    "default_org_names",
    "generate_network",
    "write_identity",
    "write_private",
]

CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
CRL_FILE = "crl.pem"
# nextUpdate of each CRL. Nodes take revocations from the channel's MSP configuration and do not
# refuse a CRL past nextUpdate, so this only tells external tools (openssl) when to expect more.
CRL_VALIDITY_DAYS = 365
# Organisation and identity names: they become path components, subject attributes and the
# "org/name" identity id, so no slashes, spaces or control characters; 64 = the X.520 ub-name
# bound on CN/O/OU (RFC 5280 Appendix A.1).
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DAY = 86400


class Role(StrEnum):
    """What an identity may do; carried in the certificate subject's OU."""

    NODE = "node"
    ADMIN = "admin"
    CLIENT = "client"
    AUTHORITY = "authority"


def check_name(kind: str, name: str) -> str:
    """Return ``name`` if it is a valid org/identity name, else raise ``ValueError``."""
    if not isinstance(name, str) or NAME_RE.fullmatch(name) is None:
        raise ValueError(f"bad {kind} name {name!r}: use 1-64 of A-Z a-z 0-9 . _ - (not starting with . _ -)")
    return name


def _time(unix: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(unix, tz=dt.UTC)


def _serial() -> int:
    # RFC 5280 §4.1.2.2: positive, at most 20 octets; 159 random bits make serials unguessable.
    return x509.random_serial_number()


class CertificateAuthority:
    """A root CA for one organisation, with its key and its revoked list."""

    def __init__(
        self,
        org: str,
        key: PrivateKey,
        cert: x509.Certificate,
        revoked: dict[int, int] | None = None,
        crl: x509.CertificateRevocationList | None = None,
        crl_number: int = 0,
    ) -> None:
        self.org = check_name("org", org)
        self.key = key
        self._cert = cert
        self._revoked: dict[int, int] = dict(revoked or {})  # serial -> revocation time (unix s)
        self._crl = crl
        self._crl_number = crl_number
        if PublicKey._from_crypto(cert.public_key()) != key.public:
            raise ValueError("CA key does not match the CA certificate")

    # ---- creation and persistence ---------------------------------------------------------

    @classmethod
    def create(cls, org: str, *, now: int, valid_days: int = 3650) -> CertificateAuthority:
        """A fresh self-signed root for ``org`` valid from ``now``, with an empty CRL."""
        check_name("org", org)
        key = get_backend("native").generate()
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{org}-ca"),
            ]
        )
        pub = key.public.to_crypto()
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(pub)
            .serial_number(_serial())
            .not_valid_before(_time(now))
            .not_valid_after(_time(now + valid_days * _DAY))
            # RFC 5280 §4.2.1.9: a root that only signs end-entity certificates.
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
        )
        cert = builder.sign(key.to_crypto(), hashes.SHA256())
        ca = cls(org, key, cert)
        ca._make_crl(now)
        return ca

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write ``ca.pem``, ``ca-key.pem`` (mode 0600) and ``crl.pem`` into ``directory``."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        (path / CA_CERT_FILE).write_bytes(self.cert_pem)
        write_private(path / CA_KEY_FILE, self.key.to_pem())
        if self._crl is not None:
            (path / CRL_FILE).write_bytes(self._crl.public_bytes(serialization.Encoding.PEM))

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> CertificateAuthority:
        """Read a CA directory written by :meth:`save`; ``ValueError`` if anything does not fit."""
        path = Path(directory)
        try:
            cert = x509.load_pem_x509_certificate((path / CA_CERT_FILE).read_bytes())
            key = PrivateKey.from_pem((path / CA_KEY_FILE).read_bytes())
        except OSError as exc:
            raise ValueError(f"cannot read CA in {path}: {exc.strerror}: {exc.filename}") from exc
        orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        if len(orgs) != 1:
            raise ValueError("CA certificate subject must have exactly one O")
        revoked: dict[int, int] = {}
        crl = None
        number = 0
        crl_path = path / CRL_FILE
        if crl_path.exists():
            crl = x509.load_pem_x509_crl(crl_path.read_bytes())
            if not crl.is_signature_valid(cert.public_key()):  # type: ignore[arg-type]
                raise ValueError(f"{crl_path} is not signed by this CA")
            for entry in crl:
                revoked[entry.serial_number] = int(entry.revocation_date_utc.timestamp())
            try:
                number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
            except x509.ExtensionNotFound:
                number = 0
        return cls(str(orgs[0].value), key, cert, revoked, crl, number)

    # ---- accessors --------------------------------------------------------------------------

    @property
    def cert(self) -> x509.Certificate:
        return self._cert

    @property
    def cert_pem(self) -> bytes:
        return self._cert.public_bytes(serialization.Encoding.PEM)

    @property
    def cert_der(self) -> bytes:
        return self._cert.public_bytes(serialization.Encoding.DER)

    @property
    def revoked(self) -> dict[int, int]:
        """Revoked serial -> revocation time (unix seconds); a copy."""
        return dict(self._revoked)

    # ---- issuing and revoking ---------------------------------------------------------------

    def issue(
        self,
        name: str,
        role: Role,
        *,
        now: int,
        hosts: Sequence[str] = (),
        ips: Sequence[str] = (),
        valid_days: int = 825,
        key: PrivateKey | None = None,
    ) -> tuple[PrivateKey, bytes]:
        """Issue a certificate for ``name`` with ``role``; return ``(key, cert PEM)``.

        825 days is the longest end-entity validity the CA/Browser Forum allowed from 2018
        (Baseline Requirements §6.3.2), a common default for internal PKI too.
        """
        check_name("identity", name)
        role = Role(role)
        if key is None:
            key = get_backend("native").generate()
        pub = key.public.to_crypto()
        sans: list[x509.GeneralName] = [x509.DNSName(h) for h in hosts]
        try:
            sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        except ValueError as exc:
            raise ValueError(f"bad IP address: {exc}") from exc
        eku = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if role is Role.NODE:
            eku.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
        ca_ski = self._cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        # A certificate must not outlive its issuer: path validation would reject it then anyway.
        not_after = min(_time(now + valid_days * _DAY), self._cert.not_valid_after_utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.org),
                        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role.value),
                        x509.NameAttribute(NameOID.COMMON_NAME, name),
                    ]
                )
            )
            .issuer_name(self._cert.subject)
            .public_key(pub)
            .serial_number(_serial())
            .not_valid_before(_time(now))
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,  # ECDHE in TLS and the HPKE key wrap use the same key
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key.to_crypto(), hashes.SHA256())
        return key, cert.public_bytes(serialization.Encoding.PEM)

    def revoke(self, serial: int, *, now: int) -> bytes:
        """Add ``serial`` to the revoked list (idempotent) and return the new CRL as PEM."""
        if not isinstance(serial, int) or serial <= 0:
            raise ValueError("serial must be a positive integer")
        self._revoked.setdefault(serial, now)
        return self.crl_pem(now)

    def revoke_certificate(self, cert_pem: bytes, *, now: int) -> tuple[int, bytes]:
        """Revoke a certificate this CA issued; return ``(serial, new CRL PEM)``.

        ``ValueError`` if the bytes are not a certificate or were not signed by this CA.
        """
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
            cert.verify_directly_issued_by(self._cert)
        except InvalidSignature as exc:
            raise ValueError("certificate was not issued by this CA") from exc
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a certificate issued by this CA: {exc}") from exc
        return cert.serial_number, self.revoke(cert.serial_number, now=now)

    def crl_pem(self, now: int) -> bytes:
        """A freshly signed CRL (RFC 5280 §5) of everything revoked so far, issued at ``now``."""
        return self._make_crl(now).public_bytes(serialization.Encoding.PEM)

    def _make_crl(self, now: int) -> x509.CertificateRevocationList:
        self._crl_number += 1  # RFC 5280 §5.2.3: monotonically increasing
        ca_ski = self._cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self._cert.subject)
            .last_update(_time(now))
            .next_update(_time(now + CRL_VALIDITY_DAYS * _DAY))
            .add_extension(x509.CRLNumber(self._crl_number), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        )
        for serial, when in sorted(self._revoked.items()):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(_time(when)).build()
            )
        self._crl = builder.sign(self.key.to_crypto(), hashes.SHA256())
        return self._crl


def write_private(path: Path, data: bytes) -> None:
    """Write a private key readable by the owner only (created 0600, never world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def write_identity(directory: str | os.PathLike[str], key: PrivateKey, cert_pem: bytes) -> Path:
    """Write ``cert.pem`` and ``key.pem`` (0600) into ``directory``; refuse to overwrite either."""
    path = Path(directory)
    for f in ("cert.pem", "key.pem"):
        if (path / f).exists():
            raise ValueError(f"{path / f} already exists; not overwriting it")
    path.mkdir(parents=True, exist_ok=True)
    (path / "cert.pem").write_bytes(cert_pem)
    write_private(path / "key.pem", key.to_pem())
    return path


# The smart-city organisations of a default local network, in the order they are created.
DEFAULT_ORG_NAMES = ("council", "transport", "health", "utilities", "education")
# A local network is one machine's worth of processes; more orgs than this is a typo, not a plan.
MAX_ORGS = 64
MAX_NODES_PER_ORG = 64
MAX_CLIENTS_PER_ORG = 1024


def default_org_names(n: int) -> list[str]:
    """The first ``n`` default names, then ``org6``, ``org7``, ..."""
    return [DEFAULT_ORG_NAMES[i] if i < len(DEFAULT_ORG_NAMES) else f"org{i + 1}" for i in range(n)]


def generate_network(
    out: str | os.PathLike[str], org_names: Sequence[str], nodes_per_org: int, clients: int, *, now: int
) -> dict[str, list[str]]:
    """Write a complete PKI for a local network; return ``{org: [identity names]}``.

    Layout, per org::

        <out>/<org>/ca/{ca.pem,ca-key.pem,crl.pem}
        <out>/<org>/nodes/<org>-node<i>/{cert.pem,key.pem}    i = 1..nodes_per_org, SAN localhost, 127.0.0.1
        <out>/<org>/users/admin/{cert.pem,key.pem}
        <out>/<org>/users/authority/{cert.pem,key.pem}
        <out>/<org>/users/client<j>/{cert.pem,key.pem}       j = 1..clients
    """
    if not 1 <= len(org_names) <= MAX_ORGS:
        raise ValueError(f"need 1..{MAX_ORGS} organisations")
    if not 1 <= nodes_per_org <= MAX_NODES_PER_ORG:
        raise ValueError(f"nodes per org must be 1..{MAX_NODES_PER_ORG}")
    if not 0 <= clients <= MAX_CLIENTS_PER_ORG:
        raise ValueError(f"clients per org must be 0..{MAX_CLIENTS_PER_ORG}")
    if len(set(org_names)) != len(org_names):
        raise ValueError("organisation names must be distinct")
    for org in org_names:
        check_name("org", org)
    root = Path(out)
    for org in org_names:
        if (root / org).exists():
            raise ValueError(f"{root / org} already exists; not overwriting an existing PKI")
    summary: dict[str, list[str]] = {}
    for org in org_names:
        ca = CertificateAuthority.create(org, now=now)
        ca.save(root / org / "ca")
        names: list[str] = []
        for i in range(1, nodes_per_org + 1):
            node = f"{org}-node{i}"
            key, pem = ca.issue(node, Role.NODE, now=now, hosts=["localhost"], ips=["127.0.0.1"])
            write_identity(root / org / "nodes" / node, key, pem)
            names.append(node)
        users = [("admin", Role.ADMIN), ("authority", Role.AUTHORITY)]
        users += [(f"client{j}", Role.CLIENT) for j in range(1, clients + 1)]
        for user, role in users:
            key, pem = ca.issue(user, role, now=now)
            write_identity(root / org / "users" / user, key, pem)
            names.append(user)
        summary[org] = names
    return summary
