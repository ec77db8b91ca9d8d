"""ECDSA P-256: both backends agree, signatures are low-S and strict, bad input is handled."""

from __future__ import annotations

import base64
import random

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.signing import (
    CURVE_ORDER,
    KeyError_,
    NativeBackend,
    PrivateKey,
    PublicKey,
    PureBackend,
    get_backend,
    normalise_low_s,
    sign,
    verify,
)

NATIVE = get_backend("native")
PURE = get_backend("pure")
BACKENDS = [NATIVE, PURE]
HALF = CURVE_ORDER // 2

# Fixed keys, so the tests do not depend on the OS RNG for what they check.
KEY_A = PrivateKey.from_scalar((0x1234567890ABCDEF * 3**40 % CURVE_ORDER).to_bytes(32, "big"))
KEY_B = PrivateKey.from_scalar((0xFEDCBA987654321 * 5**50 % CURVE_ORDER).to_bytes(32, "big"))


def _high_s(sig: bytes) -> bytes:
    r, s = decode_dss_signature(sig)
    return encode_dss_signature(r, CURVE_ORDER - s)


@pytest.mark.parametrize("signer", BACKENDS, ids=lambda b: b.name)
@pytest.mark.parametrize("verifier", BACKENDS, ids=lambda b: b.name)
def test_cross_verify(signer: NativeBackend | PureBackend, verifier: NativeBackend | PureBackend) -> None:
    for i in range(10):
        msg = b"message %d" % i
        sig = signer.sign(KEY_A, msg)
        assert verifier.verify(KEY_A.public, sig, msg)
        assert not verifier.verify(KEY_A.public, sig, msg + b"!")
        assert not verifier.verify(KEY_B.public, sig, msg)


@settings(max_examples=30)
@given(msg=st.binary(max_size=200))
def test_cross_verify_random_messages(msg: bytes) -> None:
    assert PURE.verify(KEY_B.public, NATIVE.sign(KEY_B, msg), msg)
    assert NATIVE.verify(KEY_B.public, PURE.sign(KEY_B, msg), msg)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_signatures_are_low_s(backend: NativeBackend | PureBackend) -> None:
    for i in range(40):  # a random-k signer produces high S about half of the time before normalising
        _, s = decode_dss_signature(backend.sign(KEY_A, b"%d" % i))
        assert 0 < s <= HALF


def test_normalise_low_s() -> None:
    sig = NATIVE.sign(KEY_A, b"x")
    high = _high_s(sig)
    assert decode_dss_signature(high)[1] > HALF
    assert normalise_low_s(high) == sig
    assert normalise_low_s(sig) == sig


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_strict_rejects_high_s(backend: NativeBackend | PureBackend) -> None:
    sig = NATIVE.sign(KEY_A, b"pay 10")
    high = _high_s(sig)
    assert backend.verify(KEY_A.public, sig, b"pay 10")
    assert not backend.verify(KEY_A.public, high, b"pay 10")  # the mauled twin is not valid
    assert backend.verify(KEY_A.public, high, b"pay 10", strict=False)  # though it is ECDSA-valid


def _der_int(v: int, pad: int = 0) -> bytes:
    body = v.to_bytes((v.bit_length() + 8) // 8, "big")
    body = b"\x00" * pad + body
    return b"\x02" + bytes([len(body)]) + body


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_strict_rejects_non_canonical_der(backend: NativeBackend | PureBackend) -> None:
    sig = NATIVE.sign(KEY_A, b"m")
    r, s = decode_dss_signature(sig)
    inner = _der_int(r) + _der_int(s)
    assert b"\x30" + bytes([len(inner)]) + inner == sig  # our DER builder matches
    padded = _der_int(r, pad=1) + _der_int(s)
    variants = [
        b"\x30" + bytes([len(padded)]) + padded,  # non-minimal INTEGER
        b"\x30\x81" + bytes([len(inner)]) + inner,  # long-form length
        sig + b"\x00",  # trailing byte
        b"\x31" + sig[1:],  # SET instead of SEQUENCE
    ]
    for v in variants:
        assert not backend.verify(KEY_A.public, v, b"m"), v.hex()


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_malformed_signatures_are_false(backend: NativeBackend | PureBackend) -> None:
    rnd = random.Random(7)
    bad = [b"", b"\x30", b"\x30\x00", b"\x30\x06\x02\x01\x00\x02\x01\x00", encode_dss_signature(CURVE_ORDER, 1)]
    bad += [rnd.randbytes(rnd.randrange(1, 80)) for _ in range(30)]
    for sig in bad:
        assert backend.verify(KEY_A.public, sig, b"m") is False
        assert backend.verify(KEY_A.public, sig, b"m", strict=False) is False


def test_malformed_keys() -> None:
    with pytest.raises(KeyError_):
        PublicKey(b"\x04" + b"\x00" * 10)
    with pytest.raises(KeyError_):
        PublicKey(b"\x02" + b"\x00" * 64)  # compressed tag on an uncompressed length
    off_curve = PublicKey(b"\x04" + b"\x00" * 31 + b"\x01" + b"\x00" * 31 + b"\x01")
    sig = NATIVE.sign(KEY_A, b"m")
    for backend in BACKENDS:
        assert backend.verify(off_curve, sig, b"m") is False
    with pytest.raises(KeyError_):
        off_curve.to_der()
    for scalar in (b"\x00" * 32, CURVE_ORDER.to_bytes(32, "big"), b"\x01" * 31, b"\xff" * 32):
        with pytest.raises(KeyError_):
            PrivateKey.from_scalar(scalar)
    for blob in (b"", b"garbage", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"):
        with pytest.raises(KeyError_):
            PrivateKey.from_pem(blob)
        with pytest.raises(KeyError_):
            PrivateKey.from_der(blob)
        with pytest.raises(KeyError_):
            PublicKey.from_pem(blob)
        with pytest.raises(KeyError_):
            PublicKey.from_der(blob)


def test_other_curve_is_rejected() -> None:
    p384 = ec.derive_private_key(12345, ec.SECP384R1())
    pem = p384.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(KeyError_):
        PrivateKey.from_pem(pem)
    pub_der = p384.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(KeyError_):
        PublicKey.from_der(pub_der)


def test_pem_der_round_trips() -> None:
    assert PrivateKey.from_pem(KEY_A.to_pem()) == KEY_A
    assert PrivateKey.from_pem(KEY_A.to_pem().decode()) == KEY_A
    assert PrivateKey.from_der(KEY_A.to_der()) == KEY_A
    assert PrivateKey.from_pem(KEY_A.to_pem(b"pw"), b"pw") == KEY_A
    with pytest.raises(KeyError_):
        PrivateKey.from_pem(KEY_A.to_pem(b"pw"), b"wrong")
    with pytest.raises(KeyError_):
        PrivateKey.from_pem(KEY_A.to_pem(b"pw"))  # missing password
    pub = KEY_A.public
    assert PublicKey.from_pem(pub.to_pem()) == pub
    assert PublicKey.from_der(pub.to_der()) == pub
    assert PrivateKey.from_pem(KEY_A.to_pem()).public == pub
    assert len(pub.fingerprint()) == 32
    assert KEY_A.scalar.hex() not in repr(KEY_A)  # secrets stay out of logs


def test_generate_gives_usable_keys() -> None:
    for backend in BACKENDS:
        k = backend.generate()
        assert NATIVE.verify(k.public, PURE.sign(k, b"z"), b"z")


def test_default_backend_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECPRIVNODE_CRYPTO_BACKEND", raising=False)
    assert get_backend().name == "native"
    monkeypatch.setenv("SECPRIVNODE_CRYPTO_BACKEND", "pure")
    assert get_backend().name == "pure"
    assert verify(KEY_A.public, sign(KEY_A, b"q"), b"q")
    with pytest.raises(ValueError):
        get_backend("fast")


def test_unsupported_curve_oid_is_a_key_error() -> None:
    # An SPKI naming an unknown curve made the loaders raise UnsupportedAlgorithm, not KeyError_.
    der = bytearray(KEY_A.public.to_der())
    i = der.find(bytes.fromhex("2a8648ce3d030107"))  # prime256v1 OID (RFC 5480 §2.1.1.1)
    der[i + 7] = 0x09  # 1.2.840.10045.3.1.9: no such curve
    with pytest.raises(KeyError_):
        PublicKey.from_der(bytes(der))
    pem = b"-----BEGIN PUBLIC KEY-----\n" + base64.encodebytes(bytes(der)) + b"-----END PUBLIC KEY-----\n"
    with pytest.raises(KeyError_):
        PublicKey.from_pem(pem)
