"""TLS 1.3 contexts for node-to-node links (mutual authentication with node certificates).

Both directions require a certificate (``CERT_REQUIRED``) chaining to one of the member orgs' CA
certificates, so a certificate from a foreign CA fails the TLS handshake itself (RFC 8446 §4.4.2).
Hostnames are not checked: peers are named by certificate CN, which the transport checks against
the MSP (with CRLs) and the signed hello right after the handshake.

This module only builds contexts (with :func:`crypto.tls.build_context`); it holds no state and
opens no sockets.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable

from crypto.signing import PrivateKey
from crypto.tls import build_context, pem_bundle

__all__ = ["make_context"]


def make_context(*, server: bool, cert_pem: bytes, key: PrivateKey, ca_ders: Iterable[bytes]) -> ssl.SSLContext:
    """A TLS 1.3-only context presenting ``cert_pem`` and trusting exactly ``ca_ders``."""
    # Peers are named by certificate CN, checked after the handshake, not by host name.
    return build_context(
        server=server,
        cas_pem=pem_bundle(ca_ders),
        cert_pem=cert_pem,
        key=key,
        require_peer_cert=True,
        check_hostname=False,
        minimum=ssl.TLSVersion.TLSv1_3,
    )
