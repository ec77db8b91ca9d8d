"""Ledger storage benchmark: ChannelLedger.commit against raw LevelDB, and how it scales.

1. Commit blocks of 500 transactions (each: ~200-byte value, one read and one write, an X.509
   creator certificate and one endorsement with its certificate, as a CA of this project issues
   them) with synchronous writes, interleaved block by block with a raw plyvel
   ``write_batch(sync=True)`` (to a database opened with the ledger's own LevelDB options) of
   exactly the same keys and values (``ChannelLedger.planned_writes``,
   precomputed, so the raw side does no hashing or encoding). Three commit paths are timed: with
   the block bytes the node already holds (``block_bytes=``) after the validator's duplicate check
   (``tx_location`` per tx), which is the node's path; the same without that prior check; and
   re-encoding the block. Rates are medians of per-block times.
   Then sustained rates, in runs of consecutive blocks written back to back (so LevelDB's
   memtable flushes and compactions are part of every side's cost): the raw batches, ``commit``
   one block at a time (``commit_sustained_vs_raw``), and the node's pipelined path
   (``commit_pipelined_vs_raw``): each block's synchronous write on a writer thread (LevelDB
   releases the GIL while it syncs) while the next block is checked (``check_block``: hashing,
   Merkle root), then ``stage`` (tx-id lookups, batch) once the write has returned, as
   ``secprivnode.channel`` commits. Ratios are medians of the runs' ratios.
2. Commit rate and point-read latency (get_version, get_state, get_tx) with 0, 100k and 1M
   transactions already in the chain, measured once LevelDB's background compactions of the
   prefix have gone idle, interleaved block by block with commits to a fresh empty ledger (so
   ``rate_at_1m_vs_0`` compares the two under the same machine load); the sustained rate while
   filling (compactions included) is printed too.
   The prefix is built with pre-built blocks that still go through ``commit``; their transactions
   reuse one real creator signature and one real endorsement signature (storage never verifies
   them), which makes building 1M transactions fast.
3. Bytes on disk per transaction at each point.

    python benchmarks/store_bench.py [--quick] [--json PATH] [--dir DIR] [--profile]

Prints what it measured and on what machine; it asserts nothing. Sync-write figures depend on the
disk's fsync latency and are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import random
import shutil
import statistics
import struct
import sys
import tempfile
import time
from concurrent.futures import Future
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import msgpack
import plyvel
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from crypto.ca import CertificateAuthority, Role
from crypto.encoding import encode
from crypto.hashing import Tag, digest_bytes
from crypto.merkle import merkle_root
from crypto.native import describe as native_describe
from crypto.signing import PrivateKey, get_backend
from storage.codec import slice_block
from storage.kv import Database
from storage.ledger import ChannelLedger
from storage.model import (
    BLOCK_VERSION,
    GENESIS_PREVIOUS_HASH,
    Block,
    BlockHeader,
    Endorsement,
    KVRead,
    KVWrite,
    Proposal,
    ProposalHeader,
    ReadWriteSet,
    Response,
    Transaction,
    ValidationCode,
    endorsement_digest,
)
from storage.writer import SyncWriter

CHANNEL = "city"
TXS_PER_BLOCK = 500
VALUE_BYTES = 200
KEYSPACE = 1_000_000  # accounts the workload writes to, uniformly at random
SAMPLE_EVERY = 97  # keep every 97th key / tx id for the point-read samples
NOW = 1_763_700_000


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


@dataclass
class Identities:
    creator_key: PrivateKey
    creator_cert: bytes
    endorser_key: PrivateKey
    endorser_cert: bytes
    orderer_key: PrivateKey
    orderer_cert: bytes

    @classmethod
    def create(cls) -> Identities:
        ca = CertificateAuthority.create("council", now=NOW)
        ck, cp = ca.issue("scanner-0001", Role.CLIENT, now=NOW)
        ek, ep = ca.issue("peer0", Role.NODE, now=NOW, hosts=["peer0.council.city.example"])
        ok, op = ca.issue("orderer0", Role.NODE, now=NOW, hosts=["orderer0.council.city.example"])
        return cls(ck, _der(cp), ek, _der(ep), ok, _der(op))


class Workload:
    """Builds the chain's blocks and their canonical bytes quickly and reproducibly."""

    def __init__(self, ids: Identities, seed: int) -> None:
        self.ids = ids
        self.rng = random.Random(seed)
        self.height = 0
        self.tip = GENESIS_PREVIOUS_HASH
        self.tx_counter = 0
        self.sample_keys: list[str] = []
        self.sample_txs: list[bytes] = []
        backend = get_backend()
        first = self._tx("acct0000000", b"\x00" * VALUE_BYTES, None)
        ph = first.proposal.hash()
        self.creator_sig = backend.sign(ids.creator_key, ph)
        self.endorsement = Endorsement(
            ids.endorser_cert,
            backend.sign(ids.endorser_key, endorsement_digest(ph, first.response, first.rwset)),
        )
        self.response = Response(200, "", b"")
        self.fast_encoding = self._check_fast_encoding()

    def _tx(self, key: str, value: bytes, read: tuple[int, int] | None) -> Transaction:
        self.tx_counter += 1
        nonce = struct.pack(">Q", self.tx_counter) + b"\x5a" * 16
        header = ProposalHeader(CHANNEL, self.ids.creator_cert, nonce, NOW * 1000 + self.tx_counter)
        proposal = Proposal(header, "kv", "put", (key,))
        rwset = ReadWriteSet("kv", (KVRead(key, read),), (KVWrite(key, value),))
        sig = getattr(self, "creator_sig", b"")
        ends = (self.endorsement,) if hasattr(self, "endorsement") else ()
        return Transaction(proposal, sig, Response(200, "", b""), rwset, ends)

    def _check_fast_encoding(self) -> bool:
        """msgpack.packb of to_obj() is canonical for these all-array objects; use it if it agrees."""
        tx = self._tx("acct0000001", b"\x01" * VALUE_BYTES, (3, 4))
        return bool(msgpack.packb(tx.to_obj(), use_bin_type=True) == encode(tx.to_obj()))

    def _enc(self, obj: Any) -> bytes:
        return msgpack.packb(obj, use_bin_type=True) if self.fast_encoding else encode(obj)

    def next_block(self) -> tuple[Block, bytes]:
        rng, n = self.rng, self.height
        txs, raw_txs = [], []
        for i in range(TXS_PER_BLOCK):
            key = f"acct{rng.randrange(KEYSPACE):07d}"
            tx = self._tx(key, rng.randbytes(VALUE_BYTES), (max(0, n - 1), i))
            txs.append(tx)
            raw_txs.append(self._enc(tx.to_obj()))
            if self.tx_counter % SAMPLE_EVERY == 0:
                self.sample_keys.append(key)
                self.sample_txs.append(tx.tx_id)
        leaves = [digest_bytes(Tag.TRANSACTION, b) for b in raw_txs]
        header = BlockHeader(BLOCK_VERSION, CHANNEL, n, self.tip, merkle_root(leaves), NOW * 1000 + n, 1, n + 1)
        h = header.hash()
        sig = get_backend().sign(self.ids.orderer_key, h)
        packer = msgpack.Packer(use_bin_type=True)
        data = b"".join(
            [
                packer.pack_array_header(4),
                self._enc(header.to_obj()),
                packer.pack_array_header(len(raw_txs)),
                *raw_txs,
                packer.pack(self.ids.orderer_cert),
                packer.pack(sig),
            ]
        )
        self.height, self.tip = n + 1, h
        return Block(header, tuple(txs), self.ids.orderer_cert, sig), data


VALID = [ValidationCode.VALID] * TXS_PER_BLOCK


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def raw_write(db: Any, ops: list[tuple[bytes, bytes | None]]) -> None:
    wb = db.write_batch(sync=True)
    put, delete = wb.put, wb.delete
    for k, v in ops:
        if v is None:
            delete(k)
        else:
            put(k, v)
    wb.write()


def validate(ledger: ChannelLedger, data: bytes) -> float:
    """The validator's duplicate check (tx_location per tx), as the node runs it before commit;
    returns its wall time."""
    ids = slice_block(data).tx_ids
    t0 = time.perf_counter()
    for tx_id in ids:
        ledger.tx_location(tx_id)
    return time.perf_counter() - t0


def commit_vs_raw(root: Path, ids: Identities, blocks: int, seed: int) -> dict[str, float]:
    """Per-block times, interleaved block by block with raw batches of the same operations, in two
    passes over the same blocks: first commit(block_bytes=) after the validator's lookups (the
    node's path: ``commit_vs_raw``), then, against raw batches of their own, the same without prior
    lookups and commit re-encoding the block. Separate passes, because LevelDB compacts every
    database of a process on one background thread: with four databases written at once, the
    others' compactions would take the second core from the two being compared."""
    med, best, size = _interleaved(root / "node-pass", ids, blocks, seed, ("node",))
    med2, _, _ = _interleaved(root / "variants-pass", ids, blocks, seed, ("cold", "reencode"))
    return {
        "commit_vs_raw_best": best["raw"] / best["node"],  # fastest block of each: least disturbed
        "raw_blocks_per_s": 1 / med["raw"],
        "commit_blocks_per_s": 1 / med["node"],
        "commit_cold_blocks_per_s": 1 / med2["cold"],
        "commit_reencode_blocks_per_s": 1 / med2["reencode"],
        "commit_vs_raw": med["raw"] / med["node"],
        "commit_cold_vs_raw": med2["raw"] / med2["cold"],
        "commit_reencode_vs_raw": med2["raw"] / med2["reencode"],
        "bytes_per_block": float(size),
    }


def _interleaved(
    root: Path, ids: Identities, blocks: int, seed: int, sides: tuple[str, ...]
) -> tuple[dict[str, float], dict[str, float], int]:
    """Median and fastest per-block time of the raw batch and of each side's commit; the block size."""
    wl = Workload(ids, seed)
    raw_db = Database(root / "raw")  # the ledger's LevelDB options (memtable, cache, filters)
    dbs = {side: Database(root / side) for side in sides}
    ledgers = {side: ChannelLedger(db, CHANNEL) for side, db in dbs.items()}
    planner = ledgers[sides[0]]
    t: dict[str, list[float]] = {k: [] for k in ("raw", *sides)}
    size = 0
    for _ in range(blocks):
        block, data = wl.next_block()
        size = len(data)
        ops = planner.planned_writes(block, VALID, block_bytes=data)
        t0 = time.perf_counter()
        raw_write(raw_db.raw, ops)
        t["raw"].append(time.perf_counter() - t0)
        for side, ledger in ledgers.items():
            if side == "node":
                validate(ledger, data)
            t0 = time.perf_counter()
            if side == "reencode":
                ledger.commit(block, VALID)
            else:
                ledger.commit(block, VALID, block_bytes=data)
            t[side].append(time.perf_counter() - t0)
    raw_db.close()
    for db in dbs.values():
        db.close()
    # Medians of per-block times: robust to another process's CPU burst landing on one block.
    return {k: statistics.median(v) for k, v in t.items()}, {k: min(v) for k, v in t.items()}, size


def pipelined_vs_raw(root: Path, ids: Identities, runs: int, blocks_per_run: int, seed: int) -> dict[str, float]:
    """Sustained rates: runs of ``blocks_per_run`` consecutive blocks written back to back as raw
    batches, committed one at a time, and committed through the node's pipeline (the order of the
    three rotating run by run). Back to back, LevelDB's memtable flushes and compactions are part
    of every side's cost, as they are for a node receiving a stream of blocks."""
    wl = Workload(ids, seed + 1)
    raw_db = Database(root / "raw-pipe")
    raw = raw_db.raw
    dbs = [Database(root / name) for name in ("pipe", "seq", "shadow")]
    pipe, seq, shadow = (ChannelLedger(db, CHANNEL) for db in dbs)
    rates: dict[str, list[float]] = {"raw": [], "seq": [], "pipe": []}
    ratios: dict[str, list[float]] = {"seq": [], "pipe": []}
    sides = ("raw", "seq", "pipe")
    with SyncWriter("ledger-writer") as writer:
        for r in range(runs):
            run = []
            for _ in range(blocks_per_run):
                block, data = wl.next_block()
                run.append((block, data, shadow.planned_writes(block, VALID, block_bytes=data)))
                shadow.commit(block, VALID, block_bytes=data)
            times = {}
            for side in sides[r % 3 :] + sides[: r % 3]:
                t0 = time.perf_counter()
                if side == "raw":
                    for _, _, ops in run:
                        raw_write(raw, ops)
                elif side == "seq":
                    for block, data, _ in run:
                        seq.commit(block, VALID, block_bytes=data)
                else:
                    pipelined_commit(pipe, writer, run)
                times[side] = time.perf_counter() - t0
            for side in sides:
                rates[side].append(blocks_per_run / times[side])
            for side in ratios:
                ratios[side].append(times["raw"] / times[side])
    if not pipe.tip_hash == seq.tip_hash == shadow.tip_hash:
        raise RuntimeError("the pipelined ledger's chain differs from the sequential one")
    raw_db.close()
    for db in dbs:
        db.close()
    return {
        "commit_pipelined_vs_raw": statistics.median(ratios["pipe"]),
        "commit_sustained_vs_raw": statistics.median(ratios["seq"]),
        "commit_pipelined_blocks_per_s": statistics.median(rates["pipe"]),
        "commit_sustained_blocks_per_s": statistics.median(rates["seq"]),
        "raw_sustained_blocks_per_s": statistics.median(rates["raw"]),
        "sustained_runs": float(runs),
        "sustained_blocks_per_run": float(blocks_per_run),
    }


def pipelined_commit(ledger: ChannelLedger, writer: SyncWriter, run: list[tuple[Any, bytes, Any]]) -> None:
    """The ledger's part of the node's commit loop: write block n on the writer thread while
    block n+1 is checked, then stage n+1 once n is in. No validator runs here, so ``stage`` looks
    every tx id up itself (the duplicate check), as ``commit`` without prior lookups does."""
    pending: Future[None] | None = None
    checked = ledger.check_block(run[0][0], run[0][1])
    for i in range(len(run)):
        if pending is not None:
            pending.result()
        pending = writer.submit(ledger.stage(checked, VALID).write)
        if i + 1 < len(run):
            checked = ledger.check_block(run[i + 1][0], run[i + 1][1])
    if pending is not None:
        pending.result()


def fill(ledger: ChannelLedger, wl: Workload, target_tx: int) -> None:
    while wl.height * TXS_PER_BLOCK < target_tx:
        block, data = wl.next_block()
        validate(ledger, data)
        ledger.commit(block, VALID, block_bytes=data)


def latency_us(fn: Any, args: list[Any]) -> dict[str, float]:
    samples = []
    for a in args:
        t0 = time.perf_counter()
        fn(*a)
        samples.append((time.perf_counter() - t0) * 1e6)
    samples.sort()
    return {
        "p50": statistics.median(samples),
        "p99": samples[max(0, int(len(samples) * 0.99) - 1)],
        "mean": statistics.fmean(samples),
    }


SETTLE_TIMEOUT_S = 600.0


def settle(db: Database, poll_s: float) -> float:
    """Pay the prefix's compaction debt: a manual compaction of the whole key space (which also
    flushes the memtable), then wait until no background compaction runs (statistics unchanged
    over three polls, fewer than 4 level-0 files: LevelDB's trigger). Returns the time taken."""
    t0 = time.perf_counter()
    db.raw.compact_range(start=b"\x00", stop=b"\xff")  # every key of the database lies in this range
    last, stable = b"", 0
    while stable < 3 and time.perf_counter() - t0 < SETTLE_TIMEOUT_S:
        time.sleep(poll_s)
        stats = db.raw.get_property(b"leveldb.stats")
        l0 = int(db.raw.get_property(b"leveldb.num-files-at-level0"))
        stable = stable + 1 if stats == last and l0 < 4 else 0
        last = stats
    return time.perf_counter() - t0


def measure_point(
    root: Path, db: Database, ledger: ChannelLedger, wl: Workload, blocks: int, reads: int
) -> dict[str, Any]:
    """Commit rate and read latencies after the prefix's compactions have settled.

    The commits are interleaved block by block with commits to a fresh, empty ledger, so the
    ratio of the two rates compares the prefix's ledger with an empty one under the same load.
    """
    prefix = wl.height * TXS_PER_BLOCK
    settle_s = settle(db, 0.2 if blocks < 10 else 0.5)
    times: list[float] = []
    ref_times: list[float] = []
    t_val = 0.0
    ref_wl = Workload(wl.ids, prefix + 1)
    with Database(root / f"empty-{prefix}") as ref_db:
        ref = ChannelLedger(ref_db, CHANNEL)
        for _ in range(blocks):
            block, data = wl.next_block()
            ref_block, ref_data = ref_wl.next_block()
            t_val += validate(ledger, data)
            validate(ref, ref_data)
            t0 = time.perf_counter()
            ledger.commit(block, VALID, block_bytes=data)
            t1 = time.perf_counter()
            ref.commit(ref_block, VALID, block_bytes=ref_data)
            times.append(t1 - t0)
            ref_times.append(time.perf_counter() - t1)
    t = statistics.median(times)  # per block; see commit_vs_raw
    t_ref = statistics.median(ref_times)
    rng = random.Random(prefix)
    keys = [("kv", rng.choice(wl.sample_keys)) for _ in range(reads)]
    txs = [(rng.choice(wl.sample_txs),) for _ in range(reads)]
    return {
        "prefix_tx": prefix,
        "settle_s": settle_s,
        "blocks_per_s": 1 / t,
        "tx_per_s": TXS_PER_BLOCK / t,
        "empty_ledger_blocks_per_s": 1 / t_ref,
        "rate_vs_empty": t_ref / t,
        "validator_lookup_us_per_tx": t_val / (blocks * TXS_PER_BLOCK) * 1e6,
        "get_version_us": latency_us(ledger.get_version, keys),
        "get_state_us": latency_us(ledger.get_state, keys),
        "get_tx_us": latency_us(ledger.get_tx, txs),
        "bytes_on_disk_per_tx": dir_bytes(root / "scale") / (wl.height * TXS_PER_BLOCK),
    }


def scaling(root: Path, ids: Identities, points: list[int], blocks: int, reads: int, seed: int) -> list[dict[str, Any]]:
    wl = Workload(ids, seed + 1)
    path = root / "scale"
    out = []
    with Database(path) as db:
        ledger = ChannelLedger(db, CHANNEL)
        for p in points:
            start_tx = wl.height * TXS_PER_BLOCK
            t0 = time.perf_counter()
            fill(ledger, wl, p)
            fill_s = time.perf_counter() - t0
            res = measure_point(root, db, ledger, wl, blocks, reads)
            res["fill_s"] = fill_s
            # sustained: building the blocks, validator lookups, commits and LevelDB's compactions
            res["fill_tx_per_s"] = (p - start_tx) / fill_s if p > start_tx else None
            out.append(res)
            sustained = f", sustained fill {res['fill_tx_per_s']:,.0f} tx/s" if res["fill_tx_per_s"] else ""
            print(
                f"  prefix {res['prefix_tx']:>9,} tx: commit {res['blocks_per_s']:6.1f} blocks/s"
                f" {res['tx_per_s']:9,.0f} tx/s = {res['rate_vs_empty']:.2f} of an empty ledger's"
                f" | validator lookup {res['validator_lookup_us_per_tx']:.1f} µs/tx"
                f" | p50/p99 get_version {res['get_version_us']['p50']:.1f}/{res['get_version_us']['p99']:.1f} µs,"
                f" get_state {res['get_state_us']['p50']:.1f}/{res['get_state_us']['p99']:.1f} µs,"
                f" get_tx {res['get_tx_us']['p50']:.0f}/{res['get_tx_us']['p99']:.0f} µs"
                f" | {res['bytes_on_disk_per_tx']:.0f} B/tx on disk"
                f" (fill {fill_s:.1f}s{sustained}, settle {res['settle_s']:.1f}s)",
                flush=True,
            )
    return out


def profile_commit(root: Path, ids: Identities, blocks: int) -> None:
    wl = Workload(ids, 99)
    built = [wl.next_block() for _ in range(blocks)]
    with Database(root / "profile") as db:
        ledger = ChannelLedger(db, CHANNEL)
        prof = cProfile.Profile()
        prof.enable()
        for block, data in built:
            validate(ledger, data)
            ledger.commit(block, VALID, block_bytes=data)
        prof.disable()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(18)


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "plyvel": version("plyvel"),
        "leveldb": plyvel.__leveldb_version__,
        "msgpack": version("msgpack"),
        "cryptography": version("cryptography"),
        "batch hashing": native_describe(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, no 1M point: runs in seconds")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--dir", type=Path, help="work directory (default: a temp dir, removed afterwards)")
    ap.add_argument("--profile", action="store_true", help="cProfile the commit path and print the top entries")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="store-bench-", dir=args.dir))
    info = machine()
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print("machine:", ", ".join(f"{k} {v}" for k, v in info.items()))
    print("work dir:", work)
    try:
        ids = Identities.create()
        print(
            f"tx shape: creator cert {len(ids.creator_cert)} B, endorser cert {len(ids.endorser_cert)} B,"
            f" value {VALUE_BYTES} B, 1 read + 1 write, 1 endorsement; {TXS_PER_BLOCK} tx/block"
        )
        if args.profile:
            profile_commit(work, ids, 5 if args.quick else 20)
        n_vs = 5 if args.quick else 40
        vs = commit_vs_raw(work, ids, n_vs, args.seed)
        runs, per_run = (6, 8) if args.quick else (12, 20)
        vs.update(pipelined_vs_raw(work, ids, runs, per_run, args.seed))
        print(
            f"commit vs raw, one block at a time (median per block over {n_vs} blocks of"
            f" {vs['bytes_per_block'] / 1024:.0f} KiB, sync):"
            f" raw {vs['raw_blocks_per_s']:.1f} blocks/s ({vs['raw_blocks_per_s'] * TXS_PER_BLOCK:,.0f} tx/s),"
            f" commit(block_bytes=) {vs['commit_blocks_per_s']:.1f} blocks/s"
            f" ({vs['commit_blocks_per_s'] * TXS_PER_BLOCK:,.0f} tx/s) = commit_vs_raw {vs['commit_vs_raw']:.2f}"
            f" [after the validator's tx_location lookups, as in the node];"
            f" without prior lookups {vs['commit_cold_blocks_per_s']:.1f} blocks/s = {vs['commit_cold_vs_raw']:.2f};"
            f" re-encoding the block {vs['commit_reencode_blocks_per_s']:.1f} blocks/s"
            f" = {vs['commit_reencode_vs_raw']:.2f}; fastest block of each:"
            f" commit {vs['commit_vs_raw_best']:.2f} of raw"
        )
        print(
            f"sustained ({runs} runs of {per_run} blocks back to back, rotating with runs of the raw batches):"
            f" raw {vs['raw_sustained_blocks_per_s']:.1f} blocks/s;"
            f" commit one block at a time {vs['commit_sustained_blocks_per_s']:.1f} blocks/s"
            f" = {vs['commit_sustained_vs_raw']:.2f} of raw;"
            f" commit pipelined as the node commits (write n on a writer thread while n+1 is checked)"
            f" {vs['commit_pipelined_blocks_per_s']:.1f} blocks/s"
            f" ({vs['commit_pipelined_blocks_per_s'] * TXS_PER_BLOCK:,.0f} tx/s)"
            f" = {vs['commit_pipelined_vs_raw']:.2f} of raw"
        )
        points = [0, 10_000, 50_000] if args.quick else [0, 100_000, 1_000_000]
        print(
            "scaling (median commit rate over",
            5 if args.quick else 20,
            "blocks once the prefix's compactions have settled; reads of random sampled keys/txs):",
        )
        sc = scaling(work, ids, points, 5 if args.quick else 20, 500 if args.quick else 2000, args.seed)
        ratio = sc[-1]["rate_vs_empty"]
        print(
            f"commit rate with {points[-1]:,} tx in the chain vs an empty ledger, interleaved: {ratio:.2f}"
            f" (vs the first point measured separately: {sc[-1]['tx_per_s'] / sc[0]['tx_per_s']:.2f})"
        )
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "command": sys.argv,
                        "machine": info,
                        "quick": args.quick,
                        "txs_per_block": TXS_PER_BLOCK,
                        **vs,
                        "commit_tx_per_s": vs["commit_blocks_per_s"] * TXS_PER_BLOCK,
                        "raw_tx_per_s": vs["raw_blocks_per_s"] * TXS_PER_BLOCK,
                        "scaling": sc,
                        "rate_at_1m_vs_0": ratio,
                        "rate_ratio_prefix_tx": points[-1],
                    },
                    indent=2,
                )
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
