"""Gossip catch-up benchmark: a fresh node pulls a whole chain from 3 peers over mutual TLS.

Setup (not timed): a throwaway PKI, an orderer identity, and a chain of ``--txs`` transactions
(default 100,000) in blocks of 500, each transaction signed and endorsed with a ~200-byte
payload, each block orderer-signed; the chain is written to a LevelDB block store. A child
process serves that store as three peers (three TLS transports with gossip, one event loop).

Timed: a fresh node (this process) starts its transport and gossip, connects to the three
peers, and state-transfers every block: frames decoded once, each block's hash link, RFC 6962
Merkle root and orderer signature checked (per-transaction signatures are the committer's job and
benchmarked elsewhere), and each delivered batch written to its own LevelDB store in one
synchronous write batch (on a writer thread, overlapping the next batch's checks; the clock stops
when the last batch is synced). Reported: blocks/s, tx/s and the time from start to the last block,
and the CPU seconds the fresh node and the serving peers spent (less sensitive to other load on a
shared machine than wall-clock rates).

    python benchmarks/gossip_bench.py [--quick] [--txs N] [--loop uvloop|asyncio] [--json PATH] [--profile]

Prints what it measured and on what machine; asserts nothing. Figures on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import platform
import pstats
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import plyvel
import psutil

from crypto.ca import CertificateAuthority, Role
from crypto.msp import MSP, Identity, OrgMSP
from crypto.signing import PrivateKey, PublicKey
from p2p.clock import SystemClock
from p2p.gossip.common import GossipConfig
from p2p.gossip.core import GossipCore
from p2p.gossip.service import GossipService
from p2p.transport import Transport
from p2p.verify import VerifiedBlock
from storage.testing import ChainBuilder, Signer, make_tx

CH = "city"
NOW = 1_767_225_600
TXS_PER_BLOCK = 500
PAYLOAD_BYTES = 200
_U64 = struct.Struct(">Q")


class LevelBlocks:
    """A minimal LevelDB block store: block bytes by number, plus (height, tip) in one key.

    ``deliver`` hands each verified batch to one writer thread (plyvel releases the GIL while
    LevelDB writes), so verifying the next batch overlaps syncing the previous one; writes stay in
    order because there is a single writer. ``durable_height`` counts what is synced to disk.
    """

    def __init__(self, path: Path, *, writer: bool = False) -> None:
        # Payloads are random bytes: snappy would spend CPU for nothing.
        self.db = plyvel.DB(str(path), create_if_missing=True, compression=None)
        meta = self.db.get(b"m")
        self._height: int = 0 if meta is None else _U64.unpack(meta[:8])[0]
        self._tip: bytes | None = None if meta is None else meta[8:]
        self.durable_height = self._height
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="blocks-writer") if writer else None
        self._writes: list[Future[None]] = []

    @property
    def height(self) -> int:
        return self._height

    @property
    def tip_hash(self) -> bytes | None:
        return self._tip

    def get_block_bytes(self, number: int) -> bytes:
        data = self.db.get(b"b" + _U64.pack(number))
        if data is None:
            raise KeyError(number)
        return data

    def _write(self, items: list[tuple[int, bytes, bytes]]) -> None:
        with self.db.write_batch(sync=True) as wb:
            for number, data, _ in items:
                wb.put(b"b" + _U64.pack(number), data)
            last_number, _, last_hash = items[-1]
            wb.put(b"m", _U64.pack(last_number + 1) + last_hash)
        self.durable_height = last_number + 1

    def deliver(self, blocks: Sequence[VerifiedBlock]) -> None:
        items = [(vb.number, vb.data, vb.hash) for vb in blocks]
        if self._pool is None:
            self._write(items)
        else:
            self._writes = [f for f in self._writes if not f.done()]
            self._writes.append(self._pool.submit(self._write, items))
        self._height = blocks[-1].number + 1
        self._tip = blocks[-1].hash

    def append_raw(self, number: int, data: bytes, block_hash: bytes) -> None:
        with self.db.write_batch() as wb:
            wb.put(b"b" + _U64.pack(number), data)
            wb.put(b"m", _U64.pack(number + 1) + block_hash)
        self._height, self._tip = number + 1, block_hash
        self.durable_height = self._height

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for f in self._writes:
            f.result()  # surface a failed write
        self.db.close()


def build_network(d: Path) -> None:
    """PKI material for the orderer, three serving peers and the fresh node."""
    cas = {org: CertificateAuthority.create(org, now=NOW - 3600) for org in ("council", "transport")}
    (d / "orgs").mkdir()
    for org, ca in cas.items():
        (d / "orgs" / f"{org}.pem").write_bytes(ca.cert_pem)
    for name, org in [("orderer1", "council"), ("s1", "council"), ("s2", "transport"), ("s3", "council")]:
        key, pem = cas[org].issue(name, Role.NODE, now=NOW - 3600)
        (d / f"{name}.cert.pem").write_bytes(pem)
        (d / f"{name}.key.pem").write_bytes(key.to_pem())
    key, pem = cas["transport"].issue("fresh", Role.NODE, now=NOW - 3600)
    (d / "fresh.cert.pem").write_bytes(pem)
    (d / "fresh.key.pem").write_bytes(key.to_pem())


def load_msp(d: Path) -> MSP:
    return MSP(OrgMSP.from_pem(p.read_bytes()) for p in sorted((d / "orgs").glob("*.pem")))


def build_chain(d: Path, txs: int) -> tuple[int, int]:
    """Write the chain to ``d/served.db``; return (blocks, total bytes)."""
    rng = random.Random(42)
    orderer_ident = Identity.from_cert((d / "orderer1.cert.pem").read_bytes())
    orderer = Signer(PrivateKey.from_pem((d / "orderer1.key.pem").read_bytes()), orderer_ident.cert_der)
    creator, endorser = Signer.generate(rng, cert_bytes=600), Signer.generate(rng, cert_bytes=600)
    builder = ChainBuilder(CH, orderer)
    store = LevelBlocks(d / "served.db")
    n_blocks = max(1, txs // TXS_PER_BLOCK)
    total = 0
    for _ in range(n_blocks):
        batch = [
            make_tx(CH, creator, [endorser], rng, writes=[(f"k{rng.getrandbits(40)}", rng.randbytes(PAYLOAD_BYTES))])
            for _ in range(TXS_PER_BLOCK)
        ]
        block = builder.block(batch, timestamp_ms=NOW * 1000)
        data = block.encode()
        store.append_raw(block.number, data, block.hash())
        total += len(data)
    store.close()
    return n_blocks, total


def _resolver(d: Path) -> Any:
    ident = Identity.from_cert((d / "orderer1.cert.pem").read_bytes())

    def resolve(channel: str, cert: bytes) -> PublicKey | None:
        return ident.public_key if channel == CH and cert == ident.cert_der else None

    return resolve


class _PkiTime(SystemClock):
    """Real monotonic time for the links; the bench PKI's fixed time for certificate validity."""

    def now_ms(self) -> int:
        return NOW * 1000


def _node(d: Path, name: str, store: Any, msp: MSP, seed: int) -> tuple[Transport, GossipService]:
    cert_pem = (d / f"{name}.cert.pem").read_bytes()
    key = PrivateKey.from_pem((d / f"{name}.key.pem").read_bytes())
    ident = Identity.from_cert(cert_pem)
    transport = Transport(
        identity=ident,
        key=key,
        cert_pem=cert_pem,
        msp_provider=lambda: msp,
        network_id="bench",
        channels=(CH,),
        rng=random.Random(seed),
        clock=_PkiTime(),
    )
    core = GossipCore(
        node_id=name,
        org=ident.org,
        address="",
        cert_der=ident.cert_der,
        key=key,
        incarnation=1,
        stores={CH: store},
        resolve_key=_resolver(d),
        validate_cert=lambda cert, now_s: msp.validate(cert, now=NOW, roles={Role.NODE}),
        rng=random.Random(seed + 1),
        config=GossipConfig(anti_entropy_interval_ms=100),
    )
    return transport, GossipService(transport, core, tick_interval_s=0.01, connect_discovered=False)


async def serve(d: Path) -> None:
    """Child process: three peers sharing one read-only view of the served chain."""
    msp = load_msp(d)
    store = LevelBlocks(d / "served.db")
    nodes = [_node(d, name, store, msp, i) for i, name in enumerate(("s1", "s2", "s3"))]
    for t, g in nodes:
        await t.start()
        await g.start()
    print(json.dumps({t.node_id: t.listen_port for t, _ in nodes}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    for t, g in nodes:
        await g.stop()
        await t.stop()
    store.close()


async def catch_up(d: Path, ports: dict[str, int], n_blocks: int) -> float:
    msp = load_msp(d)
    store = LevelBlocks(d / "fresh.db", writer=True)
    transport, gossip = _node(d, "fresh", store, msp, 99)
    start = time.perf_counter()
    await transport.start()
    await gossip.start()
    for name, port in ports.items():
        transport.add_peer(name, f"127.0.0.1:{port}")
    while store.durable_height < n_blocks:  # every block verified and synced to LevelDB
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - start
    await gossip.stop()
    await transport.stop()
    store.close()
    return elapsed


def machine() -> dict[str, Any]:
    def ver(p: str) -> str:
        try:
            return version(p)
        except PackageNotFoundError:
            return "-"

    return {
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": {p: ver(p) for p in ("cryptography", "msgpack", "plyvel", "uvloop")},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--txs", type=int, default=100_000, help="transactions in the chain (blocks of 500)")
    ap.add_argument("--quick", action="store_true", help="a 10,000-transaction chain: runs in seconds")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--profile", action="store_true", help="print the catch-up's top functions (cProfile)")
    ap.add_argument(
        "--loop", choices=("uvloop", "asyncio"), default="uvloop", help="event loop (the node runs on uvloop)"
    )
    ap.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # child-process mode
    args = ap.parse_args()
    if args.loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if args.serve:
        asyncio.run(serve(args.serve))
        return
    txs = 10_000 if args.quick else args.txs
    info = machine()
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print("machine:", json.dumps(info))
    d = Path(tempfile.mkdtemp(prefix="gossip-bench-"))
    child: subprocess.Popen[str] | None = None
    try:
        build_network(d)
        t0 = time.perf_counter()
        n_blocks, total_bytes = build_chain(d, txs)
        print(
            f"chain: {n_blocks} blocks, {n_blocks * TXS_PER_BLOCK} txs, {total_bytes / 1e6:.1f} MB "
            f"(built in {time.perf_counter() - t0:.1f} s)"
        )
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(d), "--loop", args.loop],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        ports = json.loads(child.stdout.readline())
        prof = cProfile.Profile() if args.profile else None
        if prof:
            prof.enable()
        server = psutil.Process(child.pid)
        server_cpu0, cpu0 = sum(server.cpu_times()[:2]), time.process_time()
        elapsed = asyncio.run(catch_up(d, ports, n_blocks))
        # CPU seconds are less sensitive than wall time to other load on a shared machine.
        fresh_cpu, server_cpu = time.process_time() - cpu0, sum(server.cpu_times()[:2]) - server_cpu0
        if prof:
            prof.disable()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        n_txs = n_blocks * TXS_PER_BLOCK
        result = {
            "catchup_tx_per_s": round(n_txs / elapsed),
            "catchup_blocks_per_s": round(n_blocks / elapsed, 1),
            "catchup_mb_per_s": round(total_bytes / elapsed / 1e6, 1),
            "join_time_s": round(elapsed, 3),
            "fresh_node_cpu_s": round(fresh_cpu, 3),
            "serving_peers_cpu_s": round(server_cpu, 3),
            "tx_per_fresh_node_cpu_s": round(n_txs / fresh_cpu) if fresh_cpu > 0 else None,
            "blocks": n_blocks,
            "txs": n_txs,
            "txs_per_block": TXS_PER_BLOCK,
            "chain_bytes": total_bytes,
            "peers": len(ports),
            "loop": args.loop,
            "machine": info,
        }
        print(
            f"catch-up from {len(ports)} peers over TLS: {n_blocks} blocks in {elapsed:.2f} s = "
            f"{result['catchup_blocks_per_s']} blocks/s, {result['catchup_tx_per_s']} tx/s, "
            f"{result['catchup_mb_per_s']} MB/s; CPU: fresh node {fresh_cpu:.2f} s "
            f"({result['tx_per_fresh_node_cpu_s']} tx per CPU-second), serving peers {server_cpu:.2f} s"
        )
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        if child is not None:
            assert child.stdin is not None
            child.stdin.close()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
