"""TLS contexts over the project's PKI: one builder for node-to-node links, the RPC and operations
listeners, and the client SDK.

A context presents a certificate chain (PEM certificate and its :class:`~crypto.signing.PrivateKey`)
and trusts exactly the CA certificates it is given, never the system store. ``ssl`` loads a
certificate chain only from files, so the pair is written to a private temporary directory (key
created 0600), loaded, and the directory removed at once.

This module only builds contexts; it holds no state, opens no sockets and never logs key material.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Iterable

from crypto.signing import PrivateKey

__all__ = ["TLS_VERSIONS", "build_context", "load_chain", "pem_bundle"]

# Protocol floors a configuration may name. TLS 1.0/1.1 are deprecated by RFC 8996.
TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def pem_bundle(ca_ders: Iterable[bytes]) -> str:
    """CA certificates (DER) as one PEM text, as ``SSLContext.load_verify_locations(cadata=)`` takes."""
    return "".join(ssl.DER_cert_to_PEM_cert(der) for der in ca_ders)


def load_chain(ctx: ssl.SSLContext, cert_pem: bytes, key: PrivateKey) -> None:
    """Make ``ctx`` present ``cert_pem`` with ``key`` (through a private, short-lived directory)."""
    with tempfile.TemporaryDirectory(prefix="secprivnode-tls-") as d:
        cert_path, key_path = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        with open(cert_path, "wb") as f:
            f.write(cert_pem)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.to_pem())
        ctx.load_cert_chain(cert_path, key_path)


def build_context(
    *,
    server: bool,
    cas_pem: str = "",
    cert_pem: bytes | None = None,
    key: PrivateKey | None = None,
    require_peer_cert: bool = True,
    check_hostname: bool = False,
    minimum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3,
) -> ssl.SSLContext:
    """A context trusting exactly ``cas_pem`` (PEM text of CA certificates) for its peer.

    Servers need ``cert_pem``/``key``; with ``require_peer_cert`` they ask for and verify a client
    certificate (mutual TLS), otherwise they ask for none (and ``cas_pem`` is unused). Clients
    always verify the server (``CERT_REQUIRED``) and present ``cert_pem``/``key`` when given.
    """
    verifies = not server or require_peer_cert
    if verifies and not cas_pem.strip():
        raise ValueError("no CA certificates: nothing to trust")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = minimum
    if server:
        ctx.verify_mode = ssl.CERT_REQUIRED if require_peer_cert else ssl.CERT_NONE
    else:
        ctx.check_hostname = check_hostname
        ctx.verify_mode = ssl.CERT_REQUIRED
    if verifies:
        ctx.load_verify_locations(cadata=cas_pem)
    if (cert_pem is None) != (key is None):
        raise ValueError("a certificate and its key go together")
    if cert_pem is not None and key is not None:
        load_chain(ctx, cert_pem, key)
    elif server:
        raise ValueError("a TLS server needs a certificate and key")
    return ctx
