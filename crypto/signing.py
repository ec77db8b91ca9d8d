"""ECDSA P-256 with SHA-256 behind one interface, with a native and a pure-Python backend.

* ``native``: ``cryptography`` (OpenSSL). The hot path.
* ``pure``: the ``ecdsa`` package. A baseline for benchmarks and an independent cross-check.

The backend is chosen by :func:`get_backend` (argument, else ``SECPRIVNODE_CRYPTO_BACKEND``, else
``native``). Keys are backend-neutral values (:class:`PrivateKey` holds the scalar,
:class:`PublicKey` the SEC1 uncompressed point) so either backend verifies the other's signatures.

Signatures are DER ``ECDSA-Sig-Value`` (RFC 5480 §2.2.3 / SEC1 §C.5) with *low S*: ``s <= n/2``.
Signing always normalises; strict verification (the default) rejects high-S and non-DER
encodings, so a signature cannot be mauled into a second valid one (the malleability that hurt
Bitcoin's tx ids, BIP 62/146). ``strict=False`` exists for standard test vectors.

Malformed keys, points or signatures give ``False`` from ``verify`` or :class:`KeyError_`,
never another exception.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

import ecdsa as _ecdsa
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

__all__ = [
    "BACKEND_ENV",
    "CURVE_ORDER",
    "Backend",
    "KeyError_",
    "NativeBackend",
    "PrivateKey",
    "PublicKey",
    "PureBackend",
    "get_backend",
    "normalise_low_s",
    "sign",
    "verify",
]

BACKEND_ENV = "SECPRIVNODE_CRYPTO_BACKEND"
# Order n of the P-256 base point (FIPS 186-4 §D.1.2.3).
CURVE_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_HALF_ORDER = CURVE_ORDER // 2
_POINT_LEN = 65  # 0x04 ‖ X(32) ‖ Y(32)


class KeyError_(ValueError):
    """A key is malformed, not on P-256, or in an unsupported format."""


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A P-256 public key as its SEC1 uncompressed point (65 bytes)."""

    point: bytes

    def __post_init__(self) -> None:
        if len(self.point) != _POINT_LEN or self.point[0] != 4:
            raise KeyError_("public key must be a 65-byte SEC1 uncompressed P-256 point")

    @classmethod
    def from_der(cls, der: bytes) -> PublicKey:
        """From a DER SubjectPublicKeyInfo."""
        try:
            key = serialization.load_der_public_key(der)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise KeyError_(f"bad DER public key: {exc}") from exc
        return cls._from_crypto(key)

    @classmethod
    def from_pem(cls, pem: bytes | str) -> PublicKey:
        data = pem.encode() if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise KeyError_(f"bad PEM public key: {exc}") from exc
        return cls._from_crypto(key)

    @classmethod
    def _from_crypto(cls, key: Any) -> PublicKey:
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise KeyError_("not a P-256 public key")
        return cls(key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))

    def to_crypto(self) -> ec.EllipticCurvePublicKey:
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), self.point)
        except ValueError as exc:
            raise KeyError_(f"point is not on P-256: {exc}") from exc

    def to_der(self) -> bytes:
        return self.to_crypto().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def to_pem(self) -> bytes:
        return self.to_crypto().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def fingerprint(self) -> bytes:
        """SHA-256 of the point: a stable short identifier for the key."""
        return hashlib.sha256(self.point).digest()


@dataclass(frozen=True, slots=True)
class PrivateKey:
    """A P-256 private key as its scalar ``d`` (32 bytes, big-endian)."""

    scalar: bytes = field(repr=False)
    public: PublicKey = field(compare=False)

    @classmethod
    def from_scalar(cls, scalar: bytes) -> PrivateKey:
        d = int.from_bytes(scalar, "big")
        if len(scalar) != 32 or not 0 < d < CURVE_ORDER:
            raise KeyError_("private scalar must be 32 bytes in [1, n-1]")
        key = ec.derive_private_key(d, ec.SECP256R1())
        return cls._from_crypto(key)

    @classmethod
    def _from_crypto(cls, key: Any) -> PrivateKey:
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise KeyError_("not a P-256 private key")
        scalar = key.private_numbers().private_value.to_bytes(32, "big")
        return cls(scalar, PublicKey._from_crypto(key.public_key()))

    @classmethod
    def from_pem(cls, pem: bytes | str, password: bytes | None = None) -> PrivateKey:
        data = pem.encode() if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_private_key(data, password)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise KeyError_(f"bad PEM private key: {exc}") from exc
        return cls._from_crypto(key)

    @classmethod
    def from_der(cls, der: bytes, password: bytes | None = None) -> PrivateKey:
        try:
            key = serialization.load_der_private_key(der, password)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise KeyError_(f"bad DER private key: {exc}") from exc
        return cls._from_crypto(key)

    def to_crypto(self) -> ec.EllipticCurvePrivateKey:
        return ec.derive_private_key(int.from_bytes(self.scalar, "big"), ec.SECP256R1())

    def to_pem(self, password: bytes | None = None) -> bytes:
        enc: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        )
        return self.to_crypto().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)

    def to_der(self) -> bytes:
        return self.to_crypto().private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def normalise_low_s(signature: bytes) -> bytes:
    """Return the DER signature with ``s`` replaced by ``n - s`` when ``s > n/2``."""
    r, s = decode_dss_signature(signature)
    if s > _HALF_ORDER:
        s = CURVE_ORDER - s
    return encode_dss_signature(r, s)


def _strict_ok(signature: bytes) -> tuple[int, int] | None:
    """Parse a DER signature; ``None`` unless it is canonical DER with low S and r, s in range."""
    try:
        r, s = decode_dss_signature(signature)
    except (ValueError, TypeError):
        return None
    if not (0 < r < CURVE_ORDER and 0 < s <= _HALF_ORDER):
        return None
    if encode_dss_signature(r, s) != signature:
        return None
    return r, s


class Backend(Protocol):
    name: str

    def generate(self) -> PrivateKey: ...

    def sign(self, key: PrivateKey, data: bytes) -> bytes: ...

    def verify(self, key: PublicKey, signature: bytes, data: bytes, *, strict: bool = True) -> bool: ...


class _LRU:
    """A small bounded cache of backend key objects, keyed by the key bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._d: OrderedDict[bytes, Any] = OrderedDict()

    def get(self, k: bytes) -> Any:
        v = self._d.get(k)
        if v is not None:
            self._d.move_to_end(k)
        return v

    def put(self, k: bytes, v: Any) -> None:
        self._d[k] = v
        if len(self._d) > self.limit:
            self._d.popitem(last=False)


# Parsed key objects kept per backend. A city network has thousands of identities at most; the
# bound keeps a flood of one-off keys from growing memory.
KEY_CACHE_MAX = 4096


class NativeBackend:
    """ECDSA on OpenSSL through ``cryptography``."""

    name = "native"

    def __init__(self) -> None:
        self._pub = _LRU(KEY_CACHE_MAX)
        self._priv = _LRU(KEY_CACHE_MAX)
        self._sig_alg = ec.ECDSA(hashes.SHA256())

    def generate(self) -> PrivateKey:
        return PrivateKey._from_crypto(ec.generate_private_key(ec.SECP256R1()))

    def _priv_obj(self, key: PrivateKey) -> ec.EllipticCurvePrivateKey:
        obj = self._priv.get(key.scalar)
        if obj is None:
            obj = key.to_crypto()
            self._priv.put(key.scalar, obj)
        return obj

    def _pub_obj(self, key: PublicKey) -> ec.EllipticCurvePublicKey:
        obj = self._pub.get(key.point)
        if obj is None:
            obj = key.to_crypto()
            self._pub.put(key.point, obj)
        return obj

    def sign(self, key: PrivateKey, data: bytes) -> bytes:
        return normalise_low_s(self._priv_obj(key).sign(data, self._sig_alg))

    def verify(self, key: PublicKey, signature: bytes, data: bytes, *, strict: bool = True) -> bool:
        if strict and _strict_ok(signature) is None:
            return False
        try:
            self._pub_obj(key).verify(signature, data, self._sig_alg)
        except (InvalidSignature, KeyError_, ValueError, TypeError):
            return False
        return True


class PureBackend:
    """ECDSA in pure Python through the ``ecdsa`` package (RFC 6979 deterministic nonces)."""

    name = "pure"

    def __init__(self) -> None:
        self._pub = _LRU(KEY_CACHE_MAX)
        self._priv = _LRU(KEY_CACHE_MAX)

    def generate(self) -> PrivateKey:
        sk = _ecdsa.SigningKey.generate(curve=_ecdsa.NIST256p, hashfunc=hashlib.sha256)
        return PrivateKey.from_scalar(sk.to_string())

    def sign(self, key: PrivateKey, data: bytes) -> bytes:
        sk = self._priv.get(key.scalar)
        if sk is None:
            sk = _ecdsa.SigningKey.from_string(key.scalar, curve=_ecdsa.NIST256p, hashfunc=hashlib.sha256)
            self._priv.put(key.scalar, sk)
        sig = sk.sign_deterministic(data, hashfunc=hashlib.sha256, sigencode=_ecdsa.util.sigencode_der)
        return normalise_low_s(sig)

    def verify(self, key: PublicKey, signature: bytes, data: bytes, *, strict: bool = True) -> bool:
        if strict and _strict_ok(signature) is None:
            return False
        vk = self._pub.get(key.point)
        if vk is None:
            try:
                vk = _ecdsa.VerifyingKey.from_string(key.point, curve=_ecdsa.NIST256p, hashfunc=hashlib.sha256)
            except Exception:  # the ecdsa package raises assorted types for bad points
                return False
            self._pub.put(key.point, vk)
        try:
            return bool(vk.verify(signature, data, hashfunc=hashlib.sha256, sigdecode=_ecdsa.util.sigdecode_der))
        except Exception:  # BadSignatureError, UnexpectedDER and friends all mean "does not verify"
            return False


_BACKENDS: dict[str, Backend] = {}


def get_backend(name: str | None = None) -> Backend:
    """The backend called ``name``, else ``$SECPRIVNODE_CRYPTO_BACKEND``, else ``native``."""
    name = name or os.environ.get(BACKEND_ENV) or "native"
    backend = _BACKENDS.get(name)
    if backend is None:
        if name == "native":
            backend = NativeBackend()
        elif name == "pure":
            backend = PureBackend()
        else:
            raise ValueError(f"unknown crypto backend {name!r} (expected 'native' or 'pure')")
        _BACKENDS[name] = backend
    return backend


def sign(key: PrivateKey, data: bytes) -> bytes:
    """Sign with the default backend."""
    return get_backend().sign(key, data)


def verify(key: PublicKey, signature: bytes, data: bytes, *, strict: bool = True) -> bool:
    """Verify with the default backend."""
    return get_backend().verify(key, signature, data, strict=strict)
