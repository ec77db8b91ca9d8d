"""How the client SDK speaks TLS to a node: which CAs it trusts, and the certificate it presents.

A node serving ``https://`` / ``wss://`` presents its node certificate, issued by its
organisation's root CA. A client trusts exactly the channel's organisations' root CAs (the PEM
files in a network directory, any bundle given with ``--cacert``, or a channel configuration it
already trusts), never the system store, and checks the host name against the certificate's
subjectAltName. When the node requires mutual TLS
the client presents an identity's certificate (client certificates carry the clientAuth usage).

This module builds contexts only; it never sends or logs a private key.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from crypto.tls import TLS_VERSIONS, build_context, pem_bundle
from storage.model import ChannelConfig

if TYPE_CHECKING:
    from secprivnode.client import ClientIdentity

__all__ = ["ClientTLS", "network_ca_files", "network_ca_pem"]


@dataclass(frozen=True)
class ClientTLS:
    """CA certificates to verify the node against (PEM text) and an optional client identity."""

    ca_pem: str
    identity: ClientIdentity | None = field(default=None, repr=False)
    check_hostname: bool = True
    min_version: str = "1.2"

    @classmethod
    def from_files(cls, paths: Iterable[str | os.PathLike[str]], identity: ClientIdentity | None = None) -> ClientTLS:
        """Trust the CA certificates in these PEM files (each may hold several)."""
        text = "".join(Path(p).read_text() for p in paths)
        if "-----BEGIN CERTIFICATE-----" not in text:
            raise ValueError("no PEM certificate in the CA file(s)")
        return cls(text, identity)

    @classmethod
    def from_channel_config(cls, config: ChannelConfig, identity: ClientIdentity | None = None) -> ClientTLS:
        """Trust the root CAs of the channel's member organisations, as a configuration the client
        already trusts lists them (e.g. decoded from the channel's genesis block)."""
        return cls(pem_bundle(o.ca_cert for o in config.orgs), identity)

    def with_identity(self, identity: ClientIdentity | None) -> ClientTLS:
        return ClientTLS(self.ca_pem, identity, self.check_hostname, self.min_version)

    def context(self) -> ssl.SSLContext:
        ident = self.identity
        cert_pem = ssl.DER_cert_to_PEM_cert(ident.cert_der).encode() if ident is not None else None
        return build_context(
            server=False,
            cas_pem=self.ca_pem,
            cert_pem=cert_pem,
            key=ident.key if ident is not None else None,
            check_hostname=self.check_hostname,
            minimum=TLS_VERSIONS[self.min_version],
        )


def network_ca_files(directory: Path) -> list[Path]:
    """The root CA certificate of every organisation in a network directory (``crypto/<org>/ca/ca.pem``)."""
    return sorted((directory / "crypto").glob("*/ca/ca.pem"))


def network_ca_pem(directory: Path) -> str:
    """Those CA certificates as one PEM bundle."""
    files = network_ca_files(directory)
    if not files:
        raise ValueError(f"no organisation CA certificates under {directory / 'crypto'}")
    return "".join(f.read_text() for f in files)
