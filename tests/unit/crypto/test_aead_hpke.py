"""AES-256-GCM blobs and HPKE key wrapping: round trips, tampering, wrong bindings, interop."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import cryptography_vectors
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto import aead, hpke
from crypto.encoding import encode
from crypto.signing import PrivateKey, get_backend

KEY = bytes(range(32))


@settings(max_examples=40)
@given(st.binary(max_size=2000), st.binary(max_size=64))
def test_aead_round_trip(plaintext: bytes, aad: bytes) -> None:
    blob = aead.encrypt(KEY, plaintext, aad)
    assert len(blob) == aead.NONCE_LEN + len(plaintext) + aead.TAG_LEN
    assert aead.decrypt(KEY, blob, aad) == plaintext


def test_aead_nonces_differ() -> None:
    blobs = {aead.encrypt(KEY, b"same")[: aead.NONCE_LEN] for _ in range(50)}
    assert len(blobs) == 50


def test_aead_tampering() -> None:
    blob = aead.encrypt(KEY, b"scanner reading 42", b"record-1")
    for i in range(len(blob)):  # every single-bit flip, in nonce, ciphertext and tag
        bad = bytearray(blob)
        bad[i] ^= 0x01
        with pytest.raises(aead.DecryptionFailed):
            aead.decrypt(KEY, bytes(bad), b"record-1")
    with pytest.raises(aead.DecryptionFailed):
        aead.decrypt(KEY, blob, b"record-2")  # wrong associated data
    with pytest.raises(aead.DecryptionFailed):
        aead.decrypt(aead.new_key(), blob, b"record-1")  # wrong key
    for short in (b"", blob[:10], blob[: aead.NONCE_LEN + aead.TAG_LEN - 1], blob[:-1]):
        with pytest.raises(aead.DecryptionFailed):
            aead.decrypt(KEY, short, b"record-1")
    with pytest.raises(ValueError):
        aead.encrypt(b"short key", b"x")
    assert len(aead.new_key()) == 32 and aead.new_key() != aead.new_key()


RECIPIENT = PrivateKey.from_scalar(hashlib.sha256(b"recipient").digest())
OTHER = PrivateKey.from_scalar(hashlib.sha256(b"other").digest())


def test_hpke_round_trip() -> None:
    data_key = aead.new_key()
    wrapped = hpke.wrap_key(RECIPIENT.public, data_key, record_id=b"rec-1", recipient_id=b"health/dr-a")
    assert len(wrapped) == hpke.ENC_LEN + 32 + 16
    assert hpke.unwrap_key(RECIPIENT, wrapped, record_id=b"rec-1", recipient_id=b"health/dr-a") == data_key
    again = hpke.wrap_key(RECIPIENT.public, data_key, record_id=b"rec-1", recipient_id=b"health/dr-a")
    assert again != wrapped  # a fresh ephemeral key every time


def test_hpke_wrong_binding_or_key_or_tamper() -> None:
    wrapped = hpke.wrap_key(RECIPIENT.public, KEY, record_id=b"rec-1", recipient_id=b"alice")
    wrong = [
        (RECIPIENT, wrapped, b"rec-2", b"alice"),  # another record
        (RECIPIENT, wrapped, b"rec-1", b"bob"),  # another recipient
        (RECIPIENT, wrapped, b"alice", b"rec-1"),  # fields swapped
        (RECIPIENT, wrapped, b"rec-1alice", b""),  # concatenation ambiguity is excluded by the encoding
        (OTHER, wrapped, b"rec-1", b"alice"),  # another private key
        (RECIPIENT, wrapped[:-1], b"rec-1", b"alice"),
        (RECIPIENT, wrapped + b"\x00", b"rec-1", b"alice"),
        (RECIPIENT, b"", b"rec-1", b"alice"),
        (RECIPIENT, b"\x00" * len(wrapped), b"rec-1", b"alice"),  # enc is not a point
    ]
    for i in range(0, len(wrapped), 5):
        bad = bytearray(wrapped)
        bad[i] ^= 0x80
        wrong.append((RECIPIENT, bytes(bad), b"rec-1", b"alice"))
    for key, blob, record, recipient in wrong:
        with pytest.raises(aead.DecryptionFailed):
            hpke.unwrap_key(key, blob, record_id=record, recipient_id=recipient)


def test_hpke_input_limits() -> None:
    with pytest.raises(ValueError):
        hpke.wrap_key(RECIPIENT.public, b"", record_id=b"r", recipient_id=b"x")
    with pytest.raises(ValueError):
        hpke.wrap_key(RECIPIENT.public, b"k" * (hpke.MAX_KEY_LEN + 1), record_id=b"r", recipient_id=b"x")
    with pytest.raises(ValueError):
        hpke.wrap_key(RECIPIENT.public, KEY, record_id=b"r" * 257, recipient_id=b"x")
    with pytest.raises(ValueError):
        hpke.wrap_key(RECIPIENT.public, KEY, record_id="r", recipient_id=b"x")  # type: ignore[arg-type]


# ---- an independent RFC 9180 base-mode opener, checked against the RFC's own test vector ----

_KEM, _KDF, _AEAD = 0x0010, 0x0001, 0x0002  # DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-256-GCM


def _extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt or b"\x00" * 32, ikm, hashlib.sha256).digest()


def _labeled_extract(suite: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return _extract(salt, b"HPKE-v1" + suite + label + ikm)  # RFC 9180 §4


def _labeled_expand(suite: bytes, prk: bytes, label: bytes, info: bytes, n: int) -> bytes:
    labeled = n.to_bytes(2, "big") + b"HPKE-v1" + suite + label + info
    return HKDFExpand(hashes.SHA256(), n, labeled).derive(prk)


def rfc9180_open(sk_r: bytes, blob: bytes, info: bytes, aad: bytes = b"") -> bytes:
    enc, ct = blob[:65], blob[65:]
    priv = ec.derive_private_key(int.from_bytes(sk_r, "big"), ec.SECP256R1())
    dh = priv.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), enc))
    kem_suite = b"KEM" + _KEM.to_bytes(2, "big")
    pk_rm = PrivateKey.from_scalar(sk_r).public.point
    eae_prk = _labeled_extract(kem_suite, b"", b"eae_prk", dh)  # RFC 9180 §4.1 ExtractAndExpand
    shared = _labeled_expand(kem_suite, eae_prk, b"shared_secret", enc + pk_rm, 32)
    suite = b"HPKE" + _KEM.to_bytes(2, "big") + _KDF.to_bytes(2, "big") + _AEAD.to_bytes(2, "big")
    psk_id_hash = _labeled_extract(suite, b"", b"psk_id_hash", b"")  # RFC 9180 §5.1 KeySchedule
    info_hash = _labeled_extract(suite, b"", b"info_hash", info)
    context = b"\x00" + psk_id_hash + info_hash
    secret = _labeled_extract(suite, shared, b"secret", b"")
    key = _labeled_expand(suite, secret, b"key", context, 32)
    nonce = _labeled_expand(suite, secret, b"base_nonce", context, 12)
    return AESGCM(key).decrypt(nonce, ct, aad)  # sequence number 0


def test_oracle_matches_rfc9180_vector() -> None:
    path = Path(cryptography_vectors.__file__).parent / "HPKE" / "test-vectors.json"
    vectors = json.loads(path.read_text())
    (v,) = [x for x in vectors if (x["mode"], x["kem_id"], x["kdf_id"], x["aead_id"]) == (0, _KEM, _KDF, _AEAD)]
    e = v["encryptions"][0]
    blob = bytes.fromhex(v["enc"]) + bytes.fromhex(e["ct"])
    pt = rfc9180_open(bytes.fromhex(v["skRm"]), blob, bytes.fromhex(v["info"]), bytes.fromhex(e["aad"]))
    assert pt == bytes.fromhex(e["pt"])


def test_wrap_is_rfc9180_with_documented_info() -> None:
    wrapped = hpke.wrap_key(RECIPIENT.public, KEY, record_id=b"rec-9", recipient_id=b"council/admin")
    info = hpke.HPKE_WRAP_TAG + encode({"record": b"rec-9", "recipient": b"council/admin"})
    assert rfc9180_open(RECIPIENT.scalar, wrapped, info) == KEY


def test_wrap_to_fresh_keys() -> None:
    k = get_backend().generate()
    w = hpke.wrap_key(k.public, b"\x07" * 16, record_id=b"", recipient_id=b"")
    assert hpke.unwrap_key(k, w, record_id=b"", recipient_id=b"") == b"\x07" * 16
