"""Block verification: every way a block can be wrong is an InvalidBlock, never a crash."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto.signing import PublicKey, get_backend
from p2p.errors import RemoteProtocolError
from p2p.verify import InvalidBlock, VerifiedBlock, verify_block, verify_chain_segment
from storage.model import GENESIS_PREVIOUS_HASH
from storage.testing import ChainBuilder, Signer, make_tx

CH = "city"
RNG = random.Random(11)
BUILDER = ChainBuilder(CH, Signer.generate(RNG, label=b"orderer"))
CREATOR = Signer.generate(RNG)
BLOCKS = [BUILDER.block([make_tx(CH, CREATOR, [CREATOR], RNG, writes=[("k", b"v" * 20)]) for _ in range(3)])]
BLOCKS.append(BUILDER.block([]))  # an empty block is valid too
BLOCKS.append(BUILDER.block([make_tx(CH, CREATOR, [], RNG) for _ in range(17)]))  # array16 header
DATA = [b.encode() for b in BLOCKS]


def resolve(channel: str, cert: bytes) -> PublicKey | None:
    return BUILDER.resolver(cert)


def check(data: bytes, number: int = 0, prev: bytes | None = GENESIS_PREVIOUS_HASH, channel: str = CH) -> VerifiedBlock:
    return verify_block(data, channel=channel, number=number, previous_hash=prev, resolve_key=resolve)


def test_valid_chain() -> None:
    vbs = verify_chain_segment(DATA, channel=CH, start=0, previous_hash=GENESIS_PREVIOUS_HASH, resolve_key=resolve)
    assert [v.number for v in vbs] == [0, 1, 2]
    assert [v.hash for v in vbs] == [b.hash() for b in BLOCKS]
    assert [v.tx_count for v in vbs] == [3, 0, 17]
    assert vbs[2].to_block() == BLOCKS[2]


@pytest.mark.parametrize(
    "mutate, kwargs, match",
    [
        (lambda d: d, {"number": 1}, "header says number"),
        (lambda d: d, {"channel": "other"}, "channel"),
        (lambda d: d, {"prev": b"\x01" * 32}, "previous hash"),
        (lambda d: d + b"\x00", {}, "trailing"),
        (lambda d: d[:-1], {}, "does not parse"),
        (lambda d: b"\x95" + d[1:], {}, "does not parse"),
        (lambda d: b"\xdc\x00\x04" + d[1:], {}, "non-canonical"),  # array16 where fixarray is due
        (lambda d: replace(BLOCKS[0], signature=b"\x30\x06" + b"\x00" * 6).encode(), {}, "signature"),
        (lambda d: replace(BLOCKS[0], orderer=b"someone").encode(), {}, "unknown orderer"),
        (lambda d: replace(BLOCKS[0], transactions=BLOCKS[0].transactions[:2]).encode(), {}, "Merkle"),
    ],
)
def test_invalid_blocks(mutate: Callable[[bytes], bytes], kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidBlock, match=match):
        check(mutate(DATA[0]), **kwargs)


def test_signature_by_another_key_and_relinked_header() -> None:
    other = get_backend().sign(Signer.generate(RNG).key, BLOCKS[0].hash())
    with pytest.raises(InvalidBlock, match="signature"):
        check(replace(BLOCKS[0], signature=other).encode())
    header = replace(BLOCKS[1].header, previous_hash=b"\x02" * 32)
    resigned = replace(BLOCKS[1], header=header, signature=get_backend().sign(BUILDER.orderer.key, header.hash()))
    with pytest.raises(InvalidBlock, match="link"):
        verify_chain_segment([DATA[0], resigned.encode()], channel=CH, start=0, previous_hash=None, resolve_key=resolve)


@given(st.data())
def test_mutated_blocks_never_crash(data: st.DataObject) -> None:
    block = bytearray(data.draw(st.sampled_from(DATA)))
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(block) - 1))
        block[i] = data.draw(st.integers(0, 255))
    try:
        check(bytes(block), number=0, prev=None)
    except RemoteProtocolError:
        pass
