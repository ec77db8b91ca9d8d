"""Canonical encoding: golden bytes from the msgpack spec, round trips, and strict rejection."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.encoding import MAX_DECODE_BYTES, MAX_DEPTH, EncodingError, decode, encode

# Each expected encoding was worked out by hand from the format table of the msgpack spec
# (https://github.com/msgpack/msgpack/blob/master/spec.md), choosing the shortest form.
GOLDEN: list[tuple[Any, str]] = [
    (None, "c0"),
    (False, "c2"),
    (True, "c3"),
    (0, "00"),  # positive fixint 0xxxxxxx
    (127, "7f"),
    (128, "cc80"),  # uint 8
    (255, "ccff"),
    (256, "cd0100"),  # uint 16
    (65535, "cdffff"),
    (65536, "ce00010000"),  # uint 32
    (2**32 - 1, "ceffffffff"),
    (2**32, "cf0000000100000000"),  # uint 64
    (2**64 - 1, "cfffffffffffffffff"),
    (-1, "ff"),  # negative fixint 111xxxxx
    (-32, "e0"),
    (-33, "d0df"),  # int 8
    (-128, "d080"),
    (-129, "d1ff7f"),  # int 16
    (-32768, "d18000"),
    (-32769, "d2ffff7fff"),  # int 32
    (-(2**31), "d280000000"),
    (-(2**31) - 1, "d3ffffffff7fffffff"),  # int 64
    (-(2**63), "d38000000000000000"),
    ("", "a0"),  # fixstr 101xxxxx
    ("a", "a161"),
    ("é", "a2c3a9"),  # length counts UTF-8 bytes
    ("x" * 31, "bf" + "78" * 31),
    ("x" * 32, "d920" + "78" * 32),  # str 8
    ("x" * 256, "da0100" + "78" * 256),  # str 16
    (b"", "c400"),  # bin 8, even when empty
    (b"\x01", "c40101"),
    (b"\x00" * 256, "c50100" + "00" * 256),  # bin 16
    ([], "90"),  # fixarray 1001xxxx
    ([1, 2], "920102"),
    ((1, [2]), "92019102"),
    ([0] * 15, "9f" + "00" * 15),
    ([0] * 16, "dc0010" + "00" * 16),  # array 16
    ({}, "80"),  # fixmap 1000xxxx
    ({"b": 1, "a": 2}, "82a16102a16201"),  # keys sorted
    ({"a": 1, "aa": 2}, "82a16101a2616102"),  # a prefix sorts first
    ({"é": 1, "z": 2}, "82a17a02a2c3a901"),  # UTF-8 byte order: 0x7a < 0xc3
    ({f"k{i:02}": 0 for i in range(16)}, "de0010" + "".join(f"a36b3{i // 10}3{i % 10}00" for i in range(16))),
]


@pytest.mark.parametrize(("value", "hexbytes"), GOLDEN)
def test_golden_vectors(value: Any, hexbytes: str) -> None:
    assert encode(value).hex() == hexbytes
    assert encode(decode(bytes.fromhex(hexbytes))) == bytes.fromhex(hexbytes)


def test_large_headers() -> None:
    assert encode("x" * 65536)[:5].hex() == "db00010000"  # str 32
    assert encode(b"\x00" * 65536)[:5].hex() == "c600010000"  # bin 32
    assert encode([None] * 65536)[:5].hex() == "dd00010000"  # array 32
    big_map = {f"{i:05}": None for i in range(65536)}
    assert encode(big_map)[:5].hex() == "df00010000"  # map 32
    assert decode(encode(big_map)) == big_map


def test_decode_returns_tuples_and_dicts() -> None:
    assert decode(encode([1, [2, {"a": [3]}]])) == (1, (2, {"a": (3,)}))


REJECT = [
    ("0000", "trailing bytes"),
    ("c0c0", "trailing bytes"),
    ("cc05", "uint 8 for a fixint"),
    ("cd0080", "uint 16 for a uint 8"),
    ("ce0000ffff", "uint 32 for a uint 16"),
    ("cf00000000ffffffff", "uint 64 for a uint 32"),
    ("d005", "int 8 for a positive value"),
    ("d0e0", "int 8 for a negative fixint"),
    ("d1ff80", "int 16 for an int 8"),
    ("d2ffffff7f", "int 32 for an int 16"),
    ("d3ffffffff80000000", "int 64 for an int 32"),
    ("d90161", "str 8 for a fixstr"),
    ("da000161", "str 16 for a fixstr"),
    ("c5000101", "bin 16 for a bin 8"),
    ("dc000101", "array 16 for a fixarray"),
    ("dd0000000101", "array 32 for a fixarray"),
    ("de0001a16101", "map 16 for a fixmap"),
    ("82a16201a16102", "unsorted keys"),
    ("82a16101a16102", "duplicate keys"),
    ("ca3f800000", "float 32"),
    ("cb3ff0000000000000", "float 64"),
    ("d40100", "fixext 1"),
    ("c7010500", "ext 8"),
    ("d6ff00000000", "timestamp ext"),
    ("810101", "int key"),
    ("81c4016101", "bin key"),
    ("81c001", "nil key"),
    ("a1ff", "invalid UTF-8"),
    ("a2eda080", "UTF-8 surrogate"),
    ("c1", "reserved byte"),
    ("9201", "truncated array"),
    ("db0000000561", "truncated str 32"),
    ("", "empty input"),
]


@pytest.mark.parametrize(("hexbytes", "why"), REJECT)
def test_rejects_non_canonical(hexbytes: str, why: str) -> None:
    with pytest.raises(EncodingError):
        decode(bytes.fromhex(hexbytes))


def test_rejects_oversize_input() -> None:
    data = encode(b"\x00" * 100)
    assert decode(data, max_bytes=len(data)) == b"\x00" * 100
    with pytest.raises(EncodingError):
        decode(data, max_bytes=len(data) - 1)
    with pytest.raises(EncodingError):
        decode(b"\x00" * (MAX_DECODE_BYTES + 1))


def test_rejects_over_depth() -> None:
    ok = b"\x91" * (MAX_DEPTH - 1) + b"\xc0"
    decode(ok)
    with pytest.raises(EncodingError):
        decode(b"\x91" * (MAX_DEPTH + 1) + b"\xc0")
    with pytest.raises(EncodingError):  # far past the C unpacker's own stack
        decode(b"\x91" * 100_000 + b"\xc0")


def _nest(depth: int) -> Any:
    v: Any = None
    for _ in range(depth):
        v = [v]
    return v


@pytest.mark.parametrize(
    "value",
    [
        1.0,
        0.5,
        float("nan"),
        {1: 2},
        {b"a": 1},
        {("a",): 1},
        {1, 2},
        2**64,
        -(2**63) - 1,
        object(),
        _nest(MAX_DEPTH + 1),
    ],
    ids=repr,
)
def test_encode_rejects(value: Any) -> None:
    with pytest.raises(EncodingError):
        encode(value)


def test_decode_rejects_non_bytes() -> None:
    with pytest.raises(EncodingError):
        decode("c0")  # type: ignore[arg-type]


# ---- properties ---------------------------------------------------------------------------

_ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
# Sizes reach past each short header (fixstr 31, bin 8 at 255, fixarray/fixmap 15) so every
# header width up to 16 bits is exercised.
_scalars = st.none() | st.booleans() | _ints | st.binary(max_size=300) | st.text(max_size=40)
values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=20) | st.dictionaries(st.text(max_size=8), inner, max_size=20),
    max_leaves=40,
)


def _frozen(v: Any) -> Any:
    """What decode returns for v: lists become tuples."""
    if isinstance(v, list | tuple):
        return tuple(_frozen(x) for x in v)
    if isinstance(v, dict):
        return {k: _frozen(x) for k, x in v.items()}
    return v


@given(values)
def test_round_trip(value: Any) -> None:
    data = encode(value)
    back = decode(data)
    assert back == _frozen(value)
    assert encode(back) == data  # canonical: re-encoding is byte-identical


@given(st.dictionaries(st.text(max_size=8), _ints, max_size=8), st.randoms(use_true_random=False))
def test_map_order_independent(d: dict[str, int], rnd: Any) -> None:
    items = list(d.items())
    rnd.shuffle(items)
    assert encode(dict(items)) == encode(d)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(encode(draw(values)))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "append"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data.insert(pos, draw(st.integers(0, 255)))
        elif op == "delete" and data:
            del data[pos]
        elif op == "truncate":
            del data[pos:]
        else:
            data += draw(st.binary(min_size=1, max_size=4))
    return bytes(data)


@settings(max_examples=400)
@given(mutated())
def test_mutations_decode_canonically_or_raise_encoding_error(data: bytes) -> None:
    try:
        value = decode(data)
    except EncodingError:
        return
    assert encode(value) == data
