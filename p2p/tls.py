"""TLS 1.3 contexts for node-to-node links (mutual authentication with node certificates).

Both directions require a certificate (``CERT_REQUIRED``) chaining to one of the member orgs' CA
certificates, so a certificate from a foreign CA fails the TLS handshake itself (RFC 8446 §4.4.2).
Hostnames are not checked: peers are named by certificate CN, which the transport checks against
the MSP (with CRLs) and the signed hello right after the handshake.

This module only builds contexts; it holds no state and opens no sockets.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Iterable

from crypto.signing import PrivateKey

__all__ = ["make_context"]


def make_context(*, server: bool, cert_pem: bytes, key: PrivateKey, ca_ders: Iterable[bytes]) -> ssl.SSLContext:
    """A TLS 1.3-only context presenting ``cert_pem`` and trusting exactly ``ca_ders``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False  # peers are named by certificate CN, checked after the handshake
    ctx.verify_mode = ssl.CERT_REQUIRED
    cas = [ssl.DER_cert_to_PEM_cert(der) for der in ca_ders]
    if not cas:
        raise ValueError("no CA certificates: nothing to trust")
    ctx.load_verify_locations(cadata="".join(cas))
    # ssl loads a certificate chain only from files: write both to a private temporary directory,
    # load them, and remove the directory at once.
    with tempfile.TemporaryDirectory(prefix="secprivnode-tls-") as d:
        cert_path, key_path = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        with open(cert_path, "wb") as f:
            f.write(cert_pem)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.to_pem())
        ctx.load_cert_chain(cert_path, key_path)
    return ctx
