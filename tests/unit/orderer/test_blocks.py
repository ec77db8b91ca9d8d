"""Block assembly by concatenation equals the model's encoding; the header signature verifies."""

from __future__ import annotations

import pytest

from consensus.orderer.blocks import (
    BlockSigner,
    array_header,
    assemble_block,
    block_tx_ids,
    read_header,
    verify_block_signature,
)
from consensus.orderer.txcheck import inspect_tx
from crypto.encoding import encode
from crypto.signing import PrivateKey, get_backend
from storage.model import BLOCK_VERSION, GENESIS_PREVIOUS_HASH, Block, BlockHeader, MalformedError

from .conftest import CHANNEL, Network, TxFactory


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 300])
def test_assembled_bytes_equal_model_encoding(network: Network, make_tx: TxFactory, n: int) -> None:
    txs = [make_tx(i) for i in range(n)]
    infos = [inspect_tx(t.encode(), CHANNEL, 1 << 20) for t in txs]
    signer = BlockSigner(network.orderer_cert, network.orderer_key)
    ab = assemble_block(
        channel=CHANNEL,
        number=5,
        previous_hash=b"p" * 32,
        txs=infos,
        timestamp_ms=1234,
        term=3,
        index=42,
        signer=signer,
    )
    header = BlockHeader(BLOCK_VERSION, CHANNEL, 5, b"p" * 32, ab.header.data_hash, 1234, 3, 42)
    block = Block(header, tuple(txs), network.orderer_cert, Block.decode(ab.data).signature)
    assert ab.data == block.encode()
    assert ab.header == header and ab.hash == header.hash()
    assert ab.header.data_hash == block.computed_data_hash()
    assert ab.tx_ids == tuple(t.tx_id for t in txs)
    assert verify_block_signature(header, block.signature, network.orderer_key.public)
    parsed = read_header(ab.data)
    assert parsed.header == header and parsed.hash == ab.hash and parsed.tx_count == n
    assert block_tx_ids(ab.data) == [t.tx_id for t in txs]


def test_signature_binds_header(network: Network, make_tx: TxFactory) -> None:
    signer = BlockSigner(network.orderer_cert, network.orderer_key)
    info = inspect_tx(make_tx(0).encode(), CHANNEL, 1 << 20)
    ab = assemble_block(
        channel=CHANNEL,
        number=0,
        previous_hash=GENESIS_PREVIOUS_HASH,
        txs=[info],
        timestamp_ms=1,
        term=1,
        index=2,
        signer=signer,
    )
    sig = Block.decode(ab.data).signature
    other = BlockHeader(BLOCK_VERSION, CHANNEL, 1, GENESIS_PREVIOUS_HASH, ab.header.data_hash, 1, 1, 2)
    assert not verify_block_signature(other, sig, network.orderer_key.public)
    stranger = PrivateKey.from_scalar((7).to_bytes(32, "big"))
    assert not verify_block_signature(ab.header, sig, stranger.public)
    assert get_backend("pure").verify(network.orderer_key.public, sig, ab.hash)  # either backend verifies


@pytest.mark.parametrize("n", [0, 1, 15, 16, 65535, 65536])
def test_array_header_is_shortest(n: int) -> None:
    assert array_header(n) == encode([None] * n)[: len(array_header(n))]
    assert len(encode([None] * n)) == len(array_header(n)) + n


def test_read_header_rejects_garbage() -> None:
    for data in (b"", b"\x93\x01\x02\x03", b"\x94\x01", encode([[1, 2], [], b"", b""])):
        with pytest.raises(MalformedError):
            read_header(data)
