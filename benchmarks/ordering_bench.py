"""Ordering throughput and latency: three orderer processes on 127.0.0.1 (mutual-TLS transport,
fsync'd LevelDB Raft logs) and one client submitting transactions in batches.

What it measures, per mode (orderer creator-signature check off, then on):

* ordered tx/s and blocks/s: transactions (blocks) committed at the leader during the
  measurement window, divided by the window;
* latency from submission to commit at the leader: the client stamps each submit batch when it
  sends it; the leader notifies the client of every block it delivers (its running count of
  delivered transactions), and a batch is committed once that count passes the leader's
  admission count for the batch (the leader orders admitted transactions first in, first out).
  Every transaction of a batch is given the batch's latency, so the percentiles are of
  transactions, and conservative (a batch is done when its last transaction is).

The client keeps at most ``--outstanding`` batches of ``--batch`` transactions submitted but not
yet committed, so the numbers describe a loaded but not overloaded service. Transactions are
canonical ``Transaction`` encodings of ``--tx-bytes`` bytes when the check is off (a short
placeholder creator); with the check on, the creator is a real client certificate, so each
transaction carries it and is larger (the size is printed).

Usage::

    .venv/bin/python benchmarks/ordering_bench.py [--quick] [--json PATH] [--profile]

Holds no asserts: it prints what it measured, the machine and the command.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import importlib.metadata
import json
import os
import platform
import pstats
import random
import shlex
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from crypto.ca import CertificateAuthority  # noqa: E402
from crypto.msp import MSP, OrgMSP, Role  # noqa: E402
from crypto.native import describe as describe_native_hashing  # noqa: E402
from crypto.signing import PrivateKey, get_backend  # noqa: E402
from p2p.transport import Transport  # noqa: E402
from storage.model import Proposal, ProposalHeader, ReadWriteSet, Response, Transaction  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _orderer_proc import COMMITTED_KIND, STATS_KIND, STATUS_KIND, SUBMIT_KIND, SUBSCRIBE_KIND  # noqa: E402

CHANNEL = "bench"
ORDERERS = ("orderer0", "orderer1", "orderer2")
CLIENT = "bench-client"
# BatchSize as Fabric's defaults scale it for small transactions: 500 per block.
BATCH = (500, 2 * 1024 * 1024, 10 * 1024 * 1024, 200)
NONCE_LEN = 24
# Shortest stretch of leader notifications a rate is computed over; anything shorter says more
# about scheduling noise than about throughput.
MIN_SPAN_S = 0.5


def machine_info() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for pkg in ("msgpack", "cryptography", "plyvel", "uvloop"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = "absent"
    return {
        # Other work on the machine at the start: the figures depend on it (shared cores).
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "cores": os.cpu_count(),
        "cpu": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "batch_hashing": describe_native_hashing(),
    }


# --------------------------------------------------------------------------- PKI and txs
@dataclass
class Pki:
    dir: Path
    client_key: PrivateKey
    client_cert_pem: bytes
    user_key: PrivateKey
    user_cert_der: bytes
    msp: MSP


def make_pki(base: Path) -> Pki:
    now = int(time.time())
    ca = CertificateAuthority.create("bench", now=now - 3600)
    (base / "ca.pem").write_bytes(ca.cert_pem)
    for oid in ORDERERS:
        key, pem = ca.issue(oid, Role.NODE, now=now - 60)
        (base / oid).mkdir()
        (base / oid / "key.pem").write_bytes(key.to_pem())
        (base / oid / "cert.pem").write_bytes(pem)
    ckey, cpem = ca.issue(CLIENT, Role.NODE, now=now - 60)
    ukey, upem = ca.issue("bench-user", Role.CLIENT, now=now - 60)
    uder = x509.load_pem_x509_certificate(upem).public_bytes(serialization.Encoding.DER)
    return Pki(base, ckey, cpem, ukey, uder, MSP([OrgMSP.from_pem(ca.cert_pem)]))


class TxSource:
    """Unique canonical transactions: one template, a counter written into the nonce."""

    def __init__(self, tx_bytes: int, creator: bytes, signer: PrivateKey | None, seed: int) -> None:
        self.creator = creator
        self.signer = signer
        self.prefix = random.Random(seed).randbytes(8)
        self.n = 0
        payload = b""
        tx = self._tx(0, payload)
        # Grow the payload until the encoding reaches the requested size (headers may grow too).
        while len(tx.encode()) < tx_bytes:
            payload += b"x" * max(1, tx_bytes - len(tx.encode()))
            tx = self._tx(0, payload)
        self.payload = payload
        self.template = tx.encode()
        self.size = len(self.template)
        self.offset = self.template.index(self._nonce(0))

    def _nonce(self, i: int) -> bytes:
        return self.prefix + i.to_bytes(NONCE_LEN - 8, "big")

    def _tx(self, i: int, payload: bytes) -> Transaction:
        header = ProposalHeader(CHANNEL, self.creator, self._nonce(i), 1_700_000_000_000)
        proposal = Proposal(header, "bench", "put", (payload,))
        sig = get_backend().sign(self.signer, proposal.hash()) if self.signer else b"\x30" * 70
        return Transaction(proposal, sig, Response(200), ReadWriteSet("bench"), ())

    def signed_range(self, lo: int, hi: int) -> list[bytes]:
        """Transactions ``lo..hi-1``, each signed (for a worker process)."""
        return [self._tx(i, self.payload).encode() for i in range(lo, hi)]

    def take(self, count: int) -> list[bytes]:
        out = []
        for _ in range(count):
            self.n += 1
            if self.signer is None:
                t, o = self.template, self.offset
                out.append(t[:o] + self._nonce(self.n) + t[o + NONCE_LEN :])
            else:
                out.append(self._tx(self.n, self.payload).encode())
        return out


# ----------------------------------------------------------------------------- processes
@dataclass
class Cluster:
    pki: Pki
    procs: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    async def start(self, verify: bool, profile: bool, inspect_workers: int = 0) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        for oid in ORDERERS:
            cfg = {
                "id": oid,
                "dir": str(self.pki.dir),
                "voters": list(ORDERERS),
                "channel": CHANNEL,
                "batch": list(BATCH),
                "verify_creator": verify,
                "inspect_workers": inspect_workers,
                "profile": profile,
            }
            with open(self.pki.dir / f"{oid}.log", "wb") as log_file:  # the child keeps its own handle
                p = await asyncio.create_subprocess_exec(
                    sys.executable,
                    str(Path(__file__).resolve().parent / "_orderer_proc.py"),
                    json.dumps(cfg),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=log_file,
                    env=env,
                    cwd=str(REPO),
                )
            self.procs[oid] = p
        for oid, p in self.procs.items():
            assert p.stdout is not None
            line = (await asyncio.wait_for(p.stdout.readline(), 30)).decode().split()
            self.ports[oid] = int(line[1])
        peers = {oid: f"127.0.0.1:{port}" for oid, port in self.ports.items()}
        for p in self.procs.values():
            assert p.stdin is not None
            p.stdin.write((json.dumps({"peers": peers}) + "\n").encode())
            await p.stdin.drain()

    async def stop(self) -> None:
        for p in self.procs.values():
            if p.stdin is not None:
                p.stdin.close()
        for oid, p in self.procs.items():
            try:
                await asyncio.wait_for(p.wait(), 20)
            except TimeoutError:
                p.kill()
                await p.wait()
            if p.returncode != 0:
                tail = (self.pki.dir / f"{oid}.log").read_text(errors="replace")[-3000:]
                print(f"  {oid} exited with {p.returncode}; end of its log:\n{tail}", flush=True)


# --------------------------------------------------------------------------------- client
@dataclass
class Load:
    sent_at: dict[int, float] = field(default_factory=dict)
    waiting: list[tuple[int, int, float, int]] = field(default_factory=list)  # (target, seq, t0, n)
    latencies: list[tuple[float, int]] = field(default_factory=list)  # (seconds, tx count)
    delivered: int = 0  # the leader's delivered-tx count in the newest notification
    committed_txs: int = 0
    # (time, delivered txs, block number) of the first and last leader notification in the window
    first: tuple[float, int, int] | None = None
    last: tuple[float, int, int] | None = None
    rejected: int = 0
    window: tuple[float, float] = (0.0, 0.0)


async def run_mode(pki: Pki, verify: bool, args: argparse.Namespace) -> dict[str, Any]:
    source = TxSource(args.tx_bytes, pki.user_cert_der if verify else b"bench-creator-00", None, seed=1)
    signed: list[bytes] = []
    if verify:
        source = TxSource(args.tx_bytes, pki.user_cert_der, pki.user_key, seed=2)
        t0 = time.perf_counter()
        step = 2000
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            chunks = pool.map(
                source.signed_range,
                range(1, args.signed_txs + 1, step),
                [min(i + step, args.signed_txs + 1) for i in range(1, args.signed_txs + 1, step)],
            )
            signed = [tx for chunk in chunks for tx in chunk]
        print(f"  pre-signed {len(signed)} transactions in {time.perf_counter() - t0:.1f} s", flush=True)
    cluster = Cluster(pki)
    await cluster.start(verify, args.profile, args.inspect_workers)
    ident = pki.msp.validate(pki.client_cert_pem, now=int(time.time()), roles={Role.NODE})
    client = Transport(
        identity=ident,
        key=pki.client_key,
        cert_pem=pki.client_cert_pem,
        msp_provider=lambda: pki.msp,
        network_id="bench",
        channels=(CHANNEL,),
        rng=random.Random(3),
    )
    load = Load()
    sem = asyncio.Semaphore(args.outstanding_on if verify else args.outstanding)

    def on_committed(peer: str, payload: Any) -> None:
        delivered, number = payload
        now = time.perf_counter()
        load.delivered = max(load.delivered, delivered)
        if load.window[0] <= now <= load.window[1]:
            if load.first is None:
                load.first = (now, delivered, number)
            load.last = (now, delivered, number)
        settle(now)

    def settle(now: float) -> None:
        delivered = load.delivered
        lo, hi = load.window
        while load.waiting and load.waiting[0][0] <= delivered:
            _, _, t0, n = heapq.heappop(load.waiting)
            load.committed_txs += n
            if lo <= t0 <= hi:
                load.latencies.append((now - t0, n))
            sem.release()

    client.register_app_handler(COMMITTED_KIND, on_committed)
    try:
        await client.start()
        for oid, port in cluster.ports.items():
            client.add_peer(oid, f"127.0.0.1:{port}")
        leader = await find_leader(client)
        await client.request(leader, SUBSCRIBE_KIND, True, timeout_s=10)
        stats0 = {oid: await client.request(oid, STATS_KIND, True, timeout_s=10) for oid in ORDERERS}
        cpu0 = time.process_time()
        start = time.perf_counter()
        load.window = (start + args.warmup, start + args.warmup + args.duration)
        seq = 0
        pos = 0
        tasks: set[asyncio.Task[None]] = set()

        async def submit(batch: list[bytes], t0: float, seq: int) -> None:
            accepted, target, errors = await client.request(leader, SUBMIT_KIND, batch, timeout_s=30)
            load.rejected += len(errors)
            if accepted:
                heapq.heappush(load.waiting, (target, seq, t0, accepted))
                settle(time.perf_counter())  # its block may have been announced before this answer
            else:
                sem.release()

        while time.perf_counter() < load.window[1]:
            await sem.acquire()
            if verify:
                batch = signed[pos : pos + args.batch]
                pos += len(batch)
                if not batch:
                    load.window = (load.window[0], time.perf_counter())
                    print(f"  pre-signed transactions ran out after {load.window[1] - start:.1f} s", flush=True)
                    break
            else:
                batch = source.take(args.batch)
            seq += 1
            t = asyncio.create_task(submit(batch, time.perf_counter(), seq))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        # Let what was sent inside the window be answered and commit.
        if tasks:
            done, pending = await asyncio.wait(set(tasks), timeout=30)
            for t in pending:
                t.cancel()
            failed = [t.exception() for t in done if not t.cancelled() and t.exception() is not None]
            if failed:
                print(f"  {len(failed)} submit request(s) failed: {failed[0]!r}", flush=True)
        deadline = time.perf_counter() + 10
        while load.waiting and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        client_cpu = time.process_time() - cpu0
        stats1 = {oid: await client.request(oid, STATS_KIND, True, timeout_s=10) for oid in ORDERERS}
    finally:
        await client.stop()
        await cluster.stop()
    # Rates at the leader: its delivered-tx count and block number between the first and the last
    # notification inside the window.
    if load.first is not None and load.last is not None and load.last[0] - load.first[0] >= MIN_SPAN_S:
        span = load.last[0] - load.first[0]
        tx_rate = (load.last[1] - load.first[1]) / span
        block_rate = (load.last[2] - load.first[2]) / span
    else:
        span, tx_rate, block_rate = 0.0, 0.0, 0.0
    lats = sorted(load.latencies)
    total = sum(n for _, n in lats)

    def pct(q: float) -> float:
        if not lats:
            return float("nan")
        acc = 0
        for s, n in lats:
            acc += n
            if acc >= q * total:
                return s * 1000
        return lats[-1][0] * 1000

    wall = time.perf_counter() - start
    return {
        "verify_creator": verify,
        "tx_bytes": source.size,
        "ordered_tx_per_s": tx_rate,
        "blocks_per_s": block_rate,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "window_s": span,
        "rejected": load.rejected,
        "leader": leader,
        "cpu_share": {
            **{oid: (stats1[oid]["cpu_ms"] - stats0[oid]["cpu_ms"]) / 1000 / wall for oid in ORDERERS},
            "client": client_cpu / wall,
        },
        # Leader CPU per ordered transaction over the whole load: how much one core could order
        # if the leader had it to itself (independent of what else runs on the machine).
        "leader_cpu_us_per_tx": (stats1[leader]["cpu_ms"] - stats0[leader]["cpu_ms"])
        * 1000
        / max(stats1[leader]["delivered_txs"] - stats0[leader]["delivered_txs"], 1),
        "leader_workers_cpu_us_per_tx": (stats1[leader]["workers_cpu_ms"] - stats0[leader]["workers_cpu_ms"])
        * 1000
        / max(stats1[leader]["delivered_txs"] - stats0[leader]["delivered_txs"], 1),
        "mean_block_txs": stats1[leader]["txs_ordered"] / max(stats1[leader]["blocks_delivered"], 1),
        "skipped_blocks": sum(s["blocks_skipped"] for s in stats1.values()),
        "dropped_txs": sum(s["txs_dropped"] for s in stats1.values()),
        "leader_rejects": stats1[leader]["rejects"],
        "leader_propose_to_durable_ms": stats1[leader]["propose_to_durable_us"] / 1000,
        "leader_propose_to_apply_ms": stats1[leader]["propose_to_apply_us"] / 1000,
    }


async def find_leader(client: Transport) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if set(client.connected_peers()) >= set(ORDERERS):
            views = [await client.request(oid, STATUS_KIND, True, timeout_s=5) for oid in ORDERERS]
            leaders = {v[1] for v in views}
            if len(leaders) == 1 and "" not in leaders and any(v[0] == "LEADER" for v in views):
                return leaders.pop()
        await asyncio.sleep(0.1)
    raise RuntimeError("no leader elected within 60 s")


def print_profile(pki_dir: Path, leader: str) -> None:
    path = pki_dir / f"{leader}.prof"
    if path.exists():
        print(f"  profile of the leader ({leader}), top functions by own time:")
        pstats.Stats(str(path)).sort_stats(os.environ.get("BENCH_PROFILE_SORT", "tottime")).print_stats(30)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for mode in args.modes.split(","):
        verify = mode == "on"
        with tempfile.TemporaryDirectory(prefix="ordering-bench-") as tmp:
            pki = make_pki(Path(tmp))
            print(f"mode: creator signature check {mode}", flush=True)
            res = await run_mode(pki, verify, args)
            if args.profile:
                print_profile(Path(tmp), res["leader"])
        results[mode] = res
        print(
            f"  {res['ordered_tx_per_s']:,.0f} tx/s ordered, {res['blocks_per_s']:.1f} blocks/s, "
            f"latency p50 {res['p50_ms']:.1f} ms p99 {res['p99_ms']:.1f} ms, "
            f"{res['mean_block_txs']:.0f} txs per block "
            f"({res['tx_bytes']}-byte txs, {res['window_s']:.1f} s window, {res['rejected']} rejected, "
            f"{res['skipped_blocks']} skipped blocks, {res['dropped_txs']} dropped txs)",
            flush=True,
        )
        share = ", ".join(f"{k} {v:.0%}" for k, v in res["cpu_share"].items())
        print(
            f"  CPU per process (share of one core): {share}; "
            f"leader CPU per ordered tx {res['leader_cpu_us_per_tx']:.1f} us "
            f"+ {res['leader_workers_cpu_us_per_tx']:.1f} us in its worker processes",
            flush=True,
        )
        print(
            f"  leader Raft: propose -> durable {res['leader_propose_to_durable_ms']} ms, "
            f"propose -> applied {res['leader_propose_to_apply_ms']} ms (means)",
            flush=True,
        )
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a few seconds in total")
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON")
    ap.add_argument("--profile", action="store_true", help="cProfile the orderers; print the leader's top")
    ap.add_argument("--modes", default="off,on", help="creator check modes to run: off,on")
    ap.add_argument("--duration", type=float, default=10.0, help="measurement window per mode (s)")
    ap.add_argument("--warmup", type=float, default=2.0, help="load before the window opens (s)")
    ap.add_argument("--batch", type=int, default=1000, help="transactions per submit request")
    ap.add_argument("--outstanding", type=int, default=10, help="submitted, uncommitted batches at most")
    ap.add_argument("--outstanding-on", type=int, default=4, help="the same, with the creator check on")
    ap.add_argument(
        "--inspect-workers",
        type=int,
        default=1,
        help="orderer worker processes for the tx structural check and tx hashes (0: on the event loop)",
    )
    ap.add_argument("--tx-bytes", type=int, default=200, help="transaction size with the check off")
    ap.add_argument("--signed-txs", type=int, default=150_000, help="pre-signed txs for the check-on mode")
    args = ap.parse_args()
    if args.quick:
        args.duration, args.warmup, args.signed_txs = 2.0, 0.5, 20_000
    info = machine_info()
    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    print(f"command: {command}")
    print(
        f"machine: {info['cores']} cores, {info['cpu']}, {info['platform']}, Python {info['python']}, "
        f"load average {info['load_avg_1m']} at start"
    )
    print(f"packages: {info['packages']}")
    print(
        f"setup: 3 orderer processes + 1 client on 127.0.0.1, mutual TLS, fsync'd LevelDB Raft logs, "
        f"BatchSize {BATCH[0]} txs / {BATCH[1]} B, timeout {BATCH[3]} ms; client batches of {args.batch}, "
        f"at most {args.outstanding} uncommitted ({args.outstanding_on} with the creator check on); "
        f"{args.inspect_workers} structural-check worker(s) per orderer",
        flush=True,
    )
    results = asyncio.run(main_async(args))
    if args.json:
        off = results.get("off") or next(iter(results.values()))
        out = {
            "ordered_tx_per_s": off["ordered_tx_per_s"],
            "p99_ms": off["p99_ms"],
            "p50_ms": off["p50_ms"],
            "blocks_per_s": off["blocks_per_s"],
            "modes": results,
            "machine": info,
            "command": command,
        }
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
