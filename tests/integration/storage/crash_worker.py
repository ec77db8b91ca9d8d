"""Crash-test worker: commits blocks to a ledger in a loop until killed.

Usage: python crash_worker.py DB_DIR SEED MAX_BLOCKS

Prints ``ready HEIGHT`` once the ledger is open and its transactions are signed, then the number of
each block right after ``commit`` returned (so the parent knows which commits were acknowledged).
Every block's first transaction writes ``kv/last`` = the block number, so the parent can check that
state moved with the chain. Keys come from fixed scalars so the parent can verify signatures.
"""

from __future__ import annotations

import hashlib
import random
import sys

from crypto.signing import PrivateKey
from storage.kv import Database
from storage.ledger import ChannelLedger
from storage.model import GENESIS_PREVIOUS_HASH, ValidationCode
from storage.testing import ChainBuilder, Signer, make_tx

CHANNEL = "crash"
TXS_PER_BLOCK = 40
VALUE_BYTES = 200


def signer(label: bytes) -> Signer:
    return Signer(PrivateKey.from_scalar(hashlib.sha256(label).digest()), label + b"-cert")


CREATOR, ENDORSER, ORDERER = signer(b"creator"), signer(b"endorser"), signer(b"orderer")


def main() -> None:
    db_dir, seed, max_blocks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    db = Database(db_dir)
    ledger = ChannelLedger(db, CHANNEL)
    builder = ChainBuilder(CHANNEL, ORDERER, ledger.height, ledger.tip_hash or GENESIS_PREVIOUS_HASH)
    pool = [
        make_tx(CHANNEL, CREATOR, [ENDORSER], rng, writes=[(f"k{rng.randrange(1000)}", rng.randbytes(VALUE_BYTES))])
        for _ in range(TXS_PER_BLOCK * 8)
    ]
    print("ready", ledger.height, flush=True)
    for _ in range(max_blocks):
        n = builder.height
        first = make_tx(CHANNEL, CREATOR, [ENDORSER], rng, writes=[("last", str(n).encode())])
        txs = [first] + [pool[(n * 7 + j) % len(pool)] for j in range(TXS_PER_BLOCK - 1)]
        # pool txs repeat across blocks: the validator would mark repeats DUPLICATE_TXID; do the same
        codes = [
            ValidationCode.VALID if ledger.tx_location(t.tx_id) is None else ValidationCode.DUPLICATE_TXID for t in txs
        ]
        seen: set[bytes] = set()
        for i, t in enumerate(txs):
            if t.tx_id in seen:
                codes[i] = ValidationCode.DUPLICATE_TXID
            seen.add(t.tx_id)
        ledger.commit(builder.block(txs), codes)
        print(n, flush=True)
    db.close()


if __name__ == "__main__":
    main()
