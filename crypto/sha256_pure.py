"""SHA-256 in pure Python (FIPS 180-4 §6.2), written from the standard.

It exists as the benchmark baseline against ``hashlib`` and as an independent test oracle. It is
slow (hundreds of times slower than ``hashlib``) and must never be used on any hot path: the
ledger hashes with ``hashlib`` through :mod:`crypto.hashing`.
"""

from __future__ import annotations

import struct

__all__ = ["sha256"]

# FIPS 180-4 §4.2.2: the first 32 bits of the fractional parts of the cube roots of the first
# 64 primes.
_K = (
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4, 0xAB1C5ED5,
    0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE, 0x9BDC06A7, 0xC19BF174,
    0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F, 0x4A7484AA, 0x5CB0A9DC, 0x76F988DA,
    0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7, 0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967,
    0x27B70A85, 0x2E1B2138, 0x4D2C6DFC, 0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85,
    0xA2BFE8A1, 0xA81A664B, 0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070,
    0x19A4C116, 0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7, 0xC67178F2,
)  # fmt: skip

# FIPS 180-4 §5.3.3: the first 32 bits of the fractional parts of the square roots of the first
# 8 primes.
_H0 = (0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19)

_MASK = 0xFFFFFFFF
_BLOCK = struct.Struct(">16L")


def _pad(data: bytes) -> bytes:
    """FIPS 180-4 §5.1.1: append 1 bit, zeros to 448 mod 512 bits, then the 64-bit bit length."""
    bit_len = (len(data) * 8) & 0xFFFFFFFFFFFFFFFF
    zeros = (55 - len(data)) % 64
    return data + b"\x80" + b"\x00" * zeros + bit_len.to_bytes(8, "big")


def _compress(state: list[int], block: bytes) -> None:
    """FIPS 180-4 §6.2.2: one 512-bit block into the eight working variables."""
    w = list(_BLOCK.unpack(block))
    for t in range(16, 64):
        x = w[t - 15]
        s0 = ((x >> 7) | (x << 25)) ^ ((x >> 18) | (x << 14)) ^ (x >> 3)
        y = w[t - 2]
        s1 = ((y >> 17) | (y << 15)) ^ ((y >> 19) | (y << 13)) ^ (y >> 10)
        w.append((w[t - 16] + s0 + w[t - 7] + s1) & _MASK)
    a, b, c, d, e, f, g, h = state
    for t in range(64):
        big_s1 = ((e >> 6) | (e << 26)) ^ ((e >> 11) | (e << 21)) ^ ((e >> 25) | (e << 7))
        ch = (e & f) ^ (~e & g)
        t1 = (h + (big_s1 & _MASK) + ch + _K[t] + w[t]) & _MASK
        big_s0 = ((a >> 2) | (a << 30)) ^ ((a >> 13) | (a << 19)) ^ ((a >> 22) | (a << 10))
        maj = (a & b) ^ (a & c) ^ (b & c)
        t2 = ((big_s0 & _MASK) + maj) & _MASK
        h, g, f, e, d, c, b, a = g, f, e, (d + t1) & _MASK, c, b, a, (t1 + t2) & _MASK
    for i, v in enumerate((a, b, c, d, e, f, g, h)):
        state[i] = (state[i] + v) & _MASK


def sha256(data: bytes) -> bytes:
    """The SHA-256 digest of ``data`` (32 bytes)."""
    padded = _pad(bytes(data))
    state = list(_H0)
    for off in range(0, len(padded), 64):
        _compress(state, padded[off : off + 64])
    return struct.pack(">8L", *state)
