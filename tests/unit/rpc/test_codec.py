"""Hex and JSON conversion at the RPC edge."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secprivnode.rpc.codec import CodecError, from_hex, header_from_json, header_to_json, to_hex, to_json
from storage.model import BlockHeader, Response, ValidationCode


@given(st.binary(max_size=64))
def test_hex_round_trip(data: bytes) -> None:
    s = to_hex(data)
    assert s == s.lower() and s.startswith("0x")
    assert from_hex(s, "x") == data


@pytest.mark.parametrize("bad", ["", "00", "0x0", "0xAB", "0X00", "0xgg", " 0x00", "0x00 ", 5, None, b"0x00"])
def test_malformed_hex_refused(bad: object) -> None:
    with pytest.raises(CodecError, match="field"):
        from_hex(bad, "field")


def test_hex_length_bounds() -> None:
    with pytest.raises(CodecError, match="expected 32 bytes"):
        from_hex("0x00", "h", length=32)
    with pytest.raises(CodecError, match="exceeds"):
        from_hex("0x0000", "h", max_bytes=1)


def test_to_json_domain_values() -> None:
    r = Response(200, "ok", b"\x01", (("ev", b"\x02"),))
    assert to_json({"code": ValidationCode.MVCC_READ_CONFLICT, "r": r, "xs": (b"", 1, None, True)}) == {
        "code": "MVCC_READ_CONFLICT",
        "r": {"status": 200, "message": "ok", "payload": "0x01", "events": [{"name": "ev", "payload": "0x02"}]},
        "xs": ["0x", 1, None, True],
    }
    with pytest.raises(TypeError):
        to_json({"f": float("nan")})
    with pytest.raises(TypeError):
        to_json({1: "non-string key"})
    with pytest.raises(TypeError):
        to_json(object())


def test_header_round_trip_and_strictness() -> None:
    h = BlockHeader(1, "city", 5, b"\x01" * 32, b"\x02" * 32, 123, 2, 9)
    j = header_to_json(h)
    assert header_from_json(j) == h
    for field, bad in (("number", -1), ("term", "2"), ("data_hash", "0x00"), ("channel", 3)):
        with pytest.raises(CodecError):
            header_from_json({**j, field: bad})
    with pytest.raises(CodecError, match="missing"):
        header_from_json({k: v for k, v in j.items() if k != "index"})
