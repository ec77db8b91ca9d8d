"""The pure-Python SHA-256 against FIPS 180 examples and hashlib."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto.sha256_pure import sha256

# FIPS 180-2 Appendix B (SHA-256 examples), also in the NIST "Cryptographic Standards and
# Guidelines: Examples with Intermediate Values" for FIPS 180-4.
FIPS_VECTORS = [
    (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    (
        b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",  # 448 bits: padding spills a block
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    ),
    (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
]


@pytest.mark.parametrize(("msg", "digest"), FIPS_VECTORS)
def test_fips_examples(msg: bytes, digest: str) -> None:
    assert sha256(msg).hex() == digest


def test_one_million_a() -> None:
    # FIPS 180-2 Appendix B.3: 1,000,000 repetitions of "a" (about 2 s in pure Python).
    assert sha256(b"a" * 1_000_000).hex() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"


@pytest.mark.parametrize("n", [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129])
def test_padding_boundaries(n: int) -> None:
    msg = bytes(range(256))[:n] if n <= 256 else b""
    assert sha256(msg) == hashlib.sha256(msg).digest()


@given(st.binary(max_size=300))
def test_matches_hashlib(data: bytes) -> None:
    assert sha256(data) == hashlib.sha256(data).digest()
