"""Batch verification equals per-item verification, inline and across a process pool."""

from __future__ import annotations

import hashlib
import random

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from crypto.batch import BatchVerifier
from crypto.signing import CURVE_ORDER, PrivateKey, PublicKey, get_backend

NATIVE = get_backend("native")
KEYS = [PrivateKey.from_scalar(hashlib.sha256(b"key %d" % i).digest()) for i in range(8)]


def _items(n: int, seed: int) -> list[tuple[PublicKey, bytes, bytes]]:
    """n signed items, about a fifth of them broken in assorted ways."""
    rnd = random.Random(seed)
    items: list[tuple[PublicKey, bytes, bytes]] = []
    for i in range(n):
        key = KEYS[i % len(KEYS)]
        msg = b"tx %d" % i
        sig = NATIVE.sign(key, msg)
        kind = rnd.randrange(10)
        if kind == 0:
            msg += b"!"  # wrong message
        elif kind == 1:
            key = KEYS[(i + 1) % len(KEYS)]  # wrong key
        elif kind == 2:
            r, s = decode_dss_signature(sig)
            sig = encode_dss_signature(r, CURVE_ORDER - s)  # high-S twin: strict rejects
        elif kind == 3 and i % 2:
            sig = rnd.randbytes(rnd.randrange(0, 72))  # garbage signature
        items.append((key.public, sig, msg))
    return items


def _expected(items: list[tuple[PublicKey, bytes, bytes]], backend: str = "native") -> list[bool]:
    b = get_backend(backend)
    return [b.verify(k, s, m) for k, s, m in items]


def test_inline_matches_per_item() -> None:
    items = _items(200, seed=1)
    expected = _expected(items)
    assert 0 < expected.count(False) < len(items)
    with BatchVerifier(workers=2, inline_max=256) as bv:
        assert bv.verify_many(items) == expected
        assert bv._pool is None  # small batches never start processes
        assert bv.verify_many([]) == []


def test_pool_matches_per_item() -> None:
    items = _items(700, seed=2)
    expected = _expected(items)
    with BatchVerifier(workers=2, inline_max=64) as bv:
        assert bv.verify_many(items) == expected
        assert bv._pool is not None
        assert bv.verify_many(items[:65]) == expected[:65]  # just over inline_max: pool path
    assert bv._pool is None
    with pytest.raises(RuntimeError):
        bv.verify_many(items)  # closed


def test_pure_backend_and_malformed_items() -> None:
    items: list = _items(40, seed=3)
    expected = _expected(items, "pure")
    assert expected == _expected(items, "native")
    bad_point = PublicKey(b"\x04" + b"\x01" * 64)  # not on the curve
    extra = [(bad_point, items[0][1], items[0][2]), ("not a key", b"", b""), (KEYS[0].public, "sig", b"m"), (1, 2)]
    with BatchVerifier(workers=2, inline_max=10, backend="pure") as bv:
        assert bv.backend_name == "pure"
        assert bv.verify_many(items + extra) == [*expected, False, False, False, False]


def test_arguments() -> None:
    with pytest.raises(ValueError):
        BatchVerifier(workers=0)
    with pytest.raises(ValueError):
        BatchVerifier(inline_max=-1)
    with pytest.raises(ValueError):
        BatchVerifier(backend="quantum")
    bv = BatchVerifier()
    assert bv.workers >= 1
    bv.close()
    bv.close()  # idempotent
