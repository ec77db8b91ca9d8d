"""AES-256-GCM authenticated encryption of off-chain data and wrapped keys.

Blob format: ``nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)``. The nonce is random per call
(NIST SP 800-38D §8.2.2, the random-IV construction); with 96-bit random nonces one key stays
safe for up to 2**32 encryptions (SP 800-38D §8.3), far more than one data key ever sees here,
since every record gets a fresh key from :func:`new_key`.

Any failure to authenticate (wrong key, wrong ``aad``, a flipped bit, a truncated blob) raises
:class:`DecryptionFailed` and nothing else. This module must never return unauthenticated
plaintext and must never reuse a nonce on purpose.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["KEY_LEN", "NONCE_LEN", "TAG_LEN", "DecryptionFailed", "decrypt", "encrypt", "new_key"]

KEY_LEN = 32  # AES-256
NONCE_LEN = 12  # the 96-bit IV that GCM processes without GHASH (SP 800-38D §5.2.1.1)
TAG_LEN = 16  # full-length tag; shorter tags weaken forgery bounds (SP 800-38D Appendix C)


class DecryptionFailed(Exception):
    """The ciphertext did not authenticate under this key and associated data."""


def new_key() -> bytes:
    """A fresh random 256-bit key from the OS CSPRNG."""
    return os.urandom(KEY_LEN)


def _cipher(key: bytes) -> AESGCM:
    if not isinstance(key, bytes) or len(key) != KEY_LEN:
        raise ValueError(f"AES-256-GCM key must be {KEY_LEN} bytes")
    return AESGCM(key)


def encrypt(key: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    """``nonce ‖ AES-256-GCM(key, nonce, plaintext, aad)``."""
    nonce = os.urandom(NONCE_LEN)
    return nonce + _cipher(key).encrypt(nonce, plaintext, aad)


def decrypt(key: bytes, blob: bytes, aad: bytes = b"") -> bytes:
    """The plaintext of a blob from :func:`encrypt`; :class:`DecryptionFailed` if it does not authenticate."""
    cipher = _cipher(key)
    if not isinstance(blob, (bytes, bytearray, memoryview)) or len(blob) < NONCE_LEN + TAG_LEN:
        raise DecryptionFailed("ciphertext too short")
    blob = bytes(blob)
    try:
        return cipher.decrypt(blob[:NONCE_LEN], blob[NONCE_LEN:], aad)
    except (InvalidTag, ValueError, TypeError) as exc:
        raise DecryptionFailed("ciphertext does not authenticate") from exc
