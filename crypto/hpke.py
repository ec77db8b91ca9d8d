"""Key wrapping with HPKE (RFC 9180) base mode: a data key sealed to a recipient's P-256 key.

Suite: DHKEM(P-256, HKDF-SHA256) (kem_id 0x0010), HKDF-SHA256 (kdf_id 0x0001), AES-256-GCM
(aead_id 0x0002), RFC 9180 §7. The wrapped form is the single-shot output ``enc ‖ ciphertext``
(65-byte encapsulated key, then the sealed key and its 16-byte tag).

The HPKE ``info`` (RFC 9180 §5.1, bound into the key schedule) is
``HPKE_WRAP_TAG ‖ encode({"record": record_id, "recipient": recipient_id})``: domain-separated
and canonically encoded, so a key wrapped for one record or one recipient cannot be unwrapped as
another's: the binding is checked by the AEAD itself, not by a comparison we could forget.

This module must never return a key that did not authenticate; every failure to unwrap raises
:class:`crypto.aead.DecryptionFailed`.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke as _hpke

from crypto.aead import DecryptionFailed
from crypto.encoding import encode
from crypto.hashing import register_tag
from crypto.signing import KeyError_, PrivateKey, PublicKey

__all__ = ["ENC_LEN", "HPKE_WRAP_TAG", "MAX_BINDING_LEN", "MAX_KEY_LEN", "unwrap_key", "wrap_key"]

HPKE_WRAP_TAG = register_tag("hpke-key-wrap/v1")
ENC_LEN = 65  # Nenc of DHKEM(P-256, HKDF-SHA256): an uncompressed SEC1 point (RFC 9180 §7.1)
_TAG_LEN = 16
# Keys wrapped here are symmetric data keys (32 bytes) or small key bundles; a bound keeps a
# wrapped blob small enough to travel in a QR code or a transaction.
MAX_KEY_LEN = 1024
# Record and recipient ids are hashes or short names; the bound keeps ``info`` small.
MAX_BINDING_LEN = 256

_SUITE = _hpke.Suite(_hpke.KEM.P256, _hpke.KDF.HKDF_SHA256, _hpke.AEAD.AES_256_GCM)


def _info(record_id: bytes, recipient_id: bytes) -> bytes:
    for name, value in (("record_id", record_id), ("recipient_id", recipient_id)):
        if not isinstance(value, bytes) or len(value) > MAX_BINDING_LEN:
            raise ValueError(f"{name} must be bytes of at most {MAX_BINDING_LEN}")
    return HPKE_WRAP_TAG + encode({"record": record_id, "recipient": recipient_id})


def wrap_key(recipient: PublicKey, key: bytes, *, record_id: bytes, recipient_id: bytes) -> bytes:
    """Seal ``key`` to ``recipient``, bound to ``record_id`` and ``recipient_id``."""
    if not isinstance(key, bytes) or not 0 < len(key) <= MAX_KEY_LEN:
        raise ValueError(f"key to wrap must be 1..{MAX_KEY_LEN} bytes")
    return _SUITE.encrypt(key, recipient.to_crypto(), info=_info(record_id, recipient_id))


def unwrap_key(recipient: PrivateKey, wrapped: bytes, *, record_id: bytes, recipient_id: bytes) -> bytes:
    """Open a blob from :func:`wrap_key`; :class:`DecryptionFailed` unless it is for exactly this binding."""
    info = _info(record_id, recipient_id)
    if not isinstance(wrapped, bytes) or not ENC_LEN + _TAG_LEN < len(wrapped) <= ENC_LEN + _TAG_LEN + MAX_KEY_LEN:
        raise DecryptionFailed("wrapped key has the wrong length")
    try:
        return _SUITE.decrypt(wrapped, recipient.to_crypto(), info=info)
    except (InvalidTag, ValueError, TypeError, KeyError_) as exc:
        raise DecryptionFailed("wrapped key does not open for this recipient and record") from exc
