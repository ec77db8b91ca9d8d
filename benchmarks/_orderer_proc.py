"""One orderer process of ``benchmarks/ordering_bench.py``: Raft over the mutual-TLS transport,
a fsync'd LevelDB Raft log and the ordering service, driven by the benchmark client.

Protocol with the parent (``ordering_bench.py``):

1. argv[1] is a JSON object: ``id``, ``dir`` (holding ``ca.pem`` and ``<id>/{key,cert}.pem``),
   ``voters``, ``channel``, ``batch`` (BatchConfig fields), ``verify_creator``,
   ``inspect_workers`` (OrdererConfig), ``profile``.
2. The process binds a free port on 127.0.0.1 and prints ``PORT <n>`` on stdout.
3. It reads one JSON line on stdin: ``{"peers": {id: "127.0.0.1:port", ...}}`` and dials them.
4. It serves the app requests below until stdin closes, then stops and exits 0.

App kinds (request/response unless noted): ``SUBMIT`` (a list of tx bytes -> ``[accepted,
admitted_total, [[i, reason], ...]]``), ``STATUS`` (-> ``[role, leader, term]``), ``SUBSCRIBE``
(the caller then receives one-way ``COMMITTED`` messages ``[delivered_tx_total, block_number]``
for each block this node delivers while it leads), ``STATS`` (-> counters and CPU seconds).

The committer here only counts delivered blocks: the benchmark measures ordering, not ledger
commit. Holds no asserts; never used outside the benchmark.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from consensus.orderer.blocks import BlockSigner
from consensus.orderer.errors import OrdererError
from consensus.orderer.service import DriverPort, LedgerTip, OrdererConfig, OrderingService, SystemClock
from consensus.orderer.txcheck import TX_ID, inspect_tx
from consensus.raft import Entry, Message, RaftConfig, RawNode, Snapshot
from consensus.raft.driver import RaftDriver
from consensus.raft.driver import SystemClock as RaftClock
from consensus.raft.leveldb_storage import LevelDBStorage
from crypto.batch import BatchVerifier
from crypto.msp import MSP, OrgMSP, Role
from crypto.signing import PrivateKey
from p2p.messages import AppMessage
from p2p.transport import Transport
from storage.kv import Database
from storage.model import GENESIS_PREVIOUS_HASH, BatchConfig

RAFT_KIND = 201
SUBMIT_KIND = 202
STATUS_KIND = 203
SUBSCRIBE_KIND = 204
COMMITTED_KIND = 205
STATS_KIND = 206

# Raft timing for a loaded 2-core host: ticks of 50 ms, elections after 1-2 s, so a follower
# starved of CPU for a few hundred ms does not start an election.
TICK_S = 0.05
ELECTION_TICKS = 20


def _children_cpu_ms() -> int:
    """CPU of this process's live children (structural-check and signature-check workers)."""
    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            t = child.cpu_times()
        except psutil.Error:  # exited meanwhile
            continue
        total += t.user + t.system
    return int(total * 1000)


def _mean_us(xs: list[float]) -> int:
    return round(sum(xs) / len(xs) * 1_000_000) if xs else 0  # integer microseconds: no floats on the wire


def _empty_ledger_tip() -> LedgerTip:
    """Each run starts from an empty chain (fresh directories)."""
    return LedgerTip(0, GENESIS_PREVIOUS_HASH, 0, 0)


class TimedPort(DriverPort):
    """Records when each block was proposed, became durable here, and was applied (leader side)."""

    def __init__(self, driver: RaftDriver) -> None:
        super().__init__(driver)
        self.proposed: dict[int, float] = {}
        self.to_durable: list[float] = []
        self.to_applied: list[float] = []

    async def propose(self, data: bytes) -> int:
        t0 = time.perf_counter()
        index = await super().propose(data)
        self.to_durable.append(time.perf_counter() - t0)
        self.proposed[index] = t0
        return index

    def applied(self, ents: list[Entry]) -> None:
        now = time.perf_counter()
        for e in ents:
            t0 = self.proposed.pop(e.index, None)
            if t0 is not None:
                self.to_applied.append(now - t0)


class OrdererProcess:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.id: str = cfg["id"]
        self.channel: str = cfg["channel"]
        base = Path(cfg["dir"])
        ca_pem = (base / "ca.pem").read_bytes()
        self.msp = MSP([OrgMSP.from_pem(ca_pem)])
        cert_pem = (base / self.id / "cert.pem").read_bytes()
        self.key = PrivateKey.from_pem((base / self.id / "key.pem").read_bytes())
        ident = self.msp.validate(cert_pem, now=int(time.time()), roles={Role.NODE})
        self.transport = Transport(
            identity=ident,
            key=self.key,
            cert_pem=cert_pem,
            msp_provider=lambda: self.msp,
            network_id="bench",
            channels=(self.channel,),
            rng=random.Random(hash(self.id) & 0xFFFF),
        )
        # Opened as the node opens its database (storage.kv: memtable and table sizes, Bloom
        # filters), so the Raft log's write and compaction behaviour is the node's.
        self.db = Database(base / self.id / "raft")
        storage = LevelDBStorage(self.db.raw, self.channel)
        node = RawNode(
            RaftConfig(self.id, tuple(cfg["voters"]), election_ticks=ELECTION_TICKS), storage, random.Random(7)
        )
        self.driver = RaftDriver(node, storage, self._send, self._apply, RaftClock(), TICK_S, restore=self._restore)
        self.port = TimedPort(self.driver)
        self.verifier = BatchVerifier() if cfg["verify_creator"] else None
        self.svc = OrderingService(
            channel=self.channel,
            node_id=self.id,
            signer=BlockSigner(ident.cert_der, self.key),
            batch=BatchConfig(*cfg["batch"]),
            msp_provider=lambda: self.msp,
            clock=SystemClock(),
            raft=self.port,
            forward=self._forward,
            ledger_tip=_empty_ledger_tip,
            config=OrdererConfig(verify_creator=cfg["verify_creator"], inspect_workers=cfg["inspect_workers"]),
            verifier=self.verifier,
        )
        self.subscribers: set[str] = set()
        self.admitted_total = 0
        self.delivered_txs = 0
        self.delivered_blocks = 0
        self.tip = b""  # hash of the last delivered block

    # Raft plumbing ------------------------------------------------------------------------
    def _send(self, msgs: list[Message]) -> None:
        for m in msgs:
            self.transport.send(m.dst, AppMessage(RAFT_KIND, m.to_wire()))

    def _on_raft(self, peer: str, payload: Any) -> None:
        self.driver.deliver(Message.from_wire(payload))

    async def _apply(self, ents: list[Entry]) -> None:
        self.port.applied(ents)
        await self.svc.apply(ents)

    async def _restore(self, snap: Snapshot) -> None:
        await self.svc.restore(snap)

    async def _forward(self, leader: str, data: bytes) -> bytes:
        res = await self.transport.request(leader, SUBMIT_KIND, [data], timeout_s=10.0)
        if res[2]:
            raise OrdererError(str(res[2][0][1]))
        return inspect_tx(data, self.channel, 1 << 30)[TX_ID]

    # App requests ------------------------------------------------------------------------
    async def _on_submit(self, peer: str, payload: Any) -> Any:
        results = await self.svc.submit_many(list(payload))
        errors = [[i, r.reason] for i, r in enumerate(results) if isinstance(r, OrdererError)]
        accepted = len(results) - len(errors)
        self.admitted_total += accepted
        return [accepted, self.admitted_total, errors]

    async def _on_status(self, peer: str, payload: Any) -> Any:
        st = self.svc.status()
        return [st.role.name, st.leader or "", st.term]

    async def _on_subscribe(self, peer: str, payload: Any) -> Any:
        self.subscribers.add(peer)
        return True

    async def _on_stats(self, peer: str, payload: Any) -> Any:
        m = self.svc.metrics
        return {
            "blocks_cut": m.blocks_cut,
            "txs_cut": m.txs_cut,
            "blocks_delivered": m.blocks_delivered,
            "txs_ordered": m.txs_ordered,
            "blocks_skipped": m.blocks_skipped,
            "txs_dropped": m.txs_dropped,
            "rejects": dict(m.rejects),
            "cpu_ms": int(time.process_time() * 1000),
            "workers_cpu_ms": _children_cpu_ms(),
            "height": self.delivered_blocks,
            "delivered_txs": self.delivered_txs,
            "tip": self.tip,
            "raft_dropped_messages": self.driver.dropped_messages,
            "propose_to_durable_us": _mean_us(self.port.to_durable),
            "propose_to_apply_us": _mean_us(self.port.to_applied),
        }

    async def _committer(self) -> None:
        async for block in self.svc.committed():
            self.delivered_blocks += 1
            self.delivered_txs += block.tx_count
            self.tip = block.hash
            if self.subscribers and self.svc.is_leader:
                msg = AppMessage(COMMITTED_KIND, [self.delivered_txs, block.number])
                for s in self.subscribers:
                    self.transport.send(s, msg)

    async def run(self) -> None:
        t = self.transport
        t.register_app_handler(RAFT_KIND, self._on_raft)
        t.register_request_handler(SUBMIT_KIND, self._on_submit)
        t.register_request_handler(STATUS_KIND, self._on_status)
        t.register_request_handler(SUBSCRIBE_KIND, self._on_subscribe)
        t.register_request_handler(STATS_KIND, self._on_stats)
        await t.start()
        print(f"PORT {t.listen_port}", flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        line = await reader.readline()
        for pid, addr in json.loads(line)["peers"].items():
            t.add_peer(pid, addr)
        if self.verifier is not None:
            self.verifier.warm_up()
        await self.svc.start()
        driver_task = asyncio.create_task(self.driver.run())
        committer = asyncio.create_task(self._committer())
        await reader.read()  # until the parent closes stdin
        committer.cancel()
        await self.driver.stop(transfer=False)
        await driver_task
        await self.svc.stop()
        await t.stop()
        if self.verifier is not None:
            self.verifier.close()
        self.db.close()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s {os.getpid()} %(name)s %(message)s")
    cfg = json.loads(sys.argv[1])
    proc = OrdererProcess(cfg)
    import uvloop  # a project dependency: the faster event loop, as the node uses

    runner = uvloop.run
    if cfg.get("profile"):
        prof = cProfile.Profile(time.process_time)  # CPU time: idle waits do not count
        prof.enable()
        runner(proc.run())
        prof.disable()
        prof.dump_stats(str(Path(cfg["dir"]) / f"{proc.id}.prof"))
    else:
        runner(proc.run())


if __name__ == "__main__":
    main()
