"""One load-generating worker: signs proposals, submits them in JSON-RPC batches, and learns of
commits from the node's block events.

How a worker keeps the client from being the bottleneck:

* proposals go out as ``tx_submit`` calls in JSON-RPC batches (one HTTP request carries up to
  ``batch`` transactions; the node runs a batch's calls concurrently), with several batches in
  flight, so many transactions are outstanding without one HTTP request each;
* commits are learned from one WebSocket subscription to ``block`` events: for each block the
  worker fetches ``chain_getBlockByNumber`` once and matches its ``tx_ids``/``validation_codes``
  against the transactions it is waiting for. Per-transaction ``tx`` events would cost the node a
  JSON message per transaction per subscriber; blocking ``tx_submitAndWait`` calls would hold an
  HTTP request (of the node's 64) per transaction for a whole commit latency.

Latency is measured from just before a batch is sent to the arrival of the block event, on the
machine-wide monotonic clock, so the parent can merge workers' timelines. Queries (``tx_query``)
finish when their response arrives. A worker runs in its own process (see :mod:`.runner`);
this module never starts or stops nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from secprivnode.bench.rate import RateControl
from secprivnode.bench.report import CONFLICT, FAIL, OK
from secprivnode.bench.workload import Op, Workload, WorkloadSpec
from secprivnode.client import ClientIdentity, build_proposal
from secprivnode.rpc.codec import proposal_to_hex, to_hex

__all__ = ["CONFLICT_CODES", "LoadWorker", "WorkerConfig", "WorkerResult", "worker_main"]

CONFLICT_CODES = frozenset({"MVCC_READ_CONFLICT", "PHANTOM_READ_CONFLICT"})
# How often the sender re-checks its rate controller when nothing completes: 5 ms keeps a fixed
# rate smooth (3000 tx/s is 15 tx per tick) without a busy loop.
TICK_S = 0.005
# Progress reports to the parent per second.
PROGRESS_EVERY_S = 0.5
# Transaction ids a worker keeps for the RPC read benchmark.
SAMPLE_TX_IDS_MAX = 2000
# Errors are grouped by message prefix so a flood of one error is one line in the report.
ERROR_KEY_CHARS = 80


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    index: int
    url: str
    cert_pem: bytes
    key_pem: bytes
    channel: str
    spec: WorkloadSpec
    control: RateControl
    start_at: float  # time.monotonic() at which the round starts
    duration_s: float | None = None
    txs: int | None = None  # this worker's share of a --txs run
    batch: int = 50
    max_requests: int = 16  # HTTP requests in flight from this worker
    drain_s: float = 30.0
    seed: int = 1
    ops: tuple[Op, ...] | None = None  # a fixed list (setup) instead of the workload stream
    timeout_s: float = 60.0


@dataclass(slots=True)
class WorkerResult:
    index: int
    submit: list[float] = field(default_factory=list)
    done: list[float] = field(default_factory=list)
    outcome: list[int] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    cpu_s: float = 0.0
    wall_s: float = 0.0
    block_txs: list[int] = field(default_factory=list)  # tx count of each block seen during the round
    tx_ids: list[str] = field(default_factory=list)  # committed VALID ids (a sample)


Progress = Callable[[int, int, int, int, int], None]  # (worker, sent, ok, conflicts, fail)


class LoadWorker:
    def __init__(self, cfg: WorkerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.clock = clock
        self.identity = ClientIdentity.from_pem(cfg.cert_pem, cfg.key_pem)
        self.res = WorkerResult(cfg.index)
        self.pending: dict[str, tuple[int, Op]] = {}  # tx id hex -> (sample index, op)
        self.queries = 0  # queries in flight
        self.requests = 0  # HTTP requests in flight
        self.sent = 0
        self.counts = [0, 0, 0]
        self._wake = asyncio.Event()
        self._ids = itertools.count(1)
        self._ops: Iterator[Op] = (
            iter(cfg.ops) if cfg.ops is not None else _stream(Workload(cfg.spec, cfg.index, cfg.seed))
        )
        self._limit = len(cfg.ops) if cfg.ops is not None else cfg.txs
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- bookkeeping -------------------------------------------------------------------------------

    def _new(self, op: Op) -> int:
        i = len(self.res.submit)
        self.res.submit.append(math.nan)
        self.res.done.append(math.nan)
        self.res.outcome.append(FAIL)
        self.sent += 1
        return i

    def _finish(self, i: int, t: float, outcome: int, error: str | None = None) -> None:
        self.res.done[i] = t
        self.res.outcome[i] = outcome
        self.counts[outcome] += 1
        if error is not None:
            self.res.errors[error[:ERROR_KEY_CHARS]] += 1
        self._wake.set()

    @property
    def outstanding(self) -> int:
        return len(self.pending) + self.queries

    # ---- JSON-RPC --------------------------------------------------------------------------------

    async def _post(self, session: aiohttp.ClientSession, body: Any) -> Any:
        data = json.dumps(body, separators=(",", ":"))
        async with session.post(self.cfg.url, data=data, headers={"Content-Type": "application/json"}) as resp:
            text = await resp.read()
        return json.loads(text)

    def _req(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}

    async def _send_batch(self, session: aiohttp.ClientSession, ops: list[Op]) -> None:
        ordered = ops[0].ordered
        reqs, slots = [], []
        for op in ops:
            proposal, sig = build_proposal(self.identity, self.cfg.channel, op.contract, op.fn, op.args)
            reqs.append(
                self._req(
                    "tx_submit" if ordered else "tx_query",
                    {"proposal": proposal_to_hex(proposal), "signature": to_hex(sig)},
                )
            )
            slots.append((self._new(op), "0x" + proposal.tx_id.hex(), op))
        t0 = self.clock()
        for i, tx_id, op in slots:
            self.res.submit[i] = t0
            if ordered:
                self.pending[tx_id] = (i, op)
        if not ordered:
            self.queries += len(slots)
        self.requests += 1
        try:
            replies = await self._post(session, reqs)
            err = None if isinstance(replies, list) else f"bad batch reply: {str(replies)[:60]}"
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            replies, err = [], f"transport: {type(exc).__name__}: {exc}"
        finally:
            self.requests -= 1
        now = self.clock()
        by_id = {r.get("id"): r for r in replies if isinstance(r, dict)} if err is None else {}
        for req, (i, tx_id, _op) in zip(reqs, slots, strict=True):
            r = by_id.get(req["id"])
            problem = err
            if problem is None and (r is None or "error" in r):
                e = (r or {}).get("error") or {}
                problem = f"[{e.get('code')}] {e.get('message')}"
            if ordered:
                if problem is not None and self.pending.pop(tx_id, None) is not None:
                    self._finish(i, now, FAIL, problem)
            else:
                self.queries -= 1
                self._finish(i, now, FAIL if problem else OK, problem)

    # ---- commits -------------------------------------------------------------------------------------

    async def _watch(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse, height: int) -> None:
        """Match every block from ``height`` on against the pending transactions."""
        next_block = height
        while True:
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise ConnectionError(f"block subscription closed (code {ws.close_code})")
            t = self.clock()
            data = json.loads(msg.data)
            ev = (data.get("params") or {}).get("result") or {}
            if ev.get("kind") != "block":
                continue
            number = int(ev["data"]["number"])
            while next_block <= number:
                await self._take_block(session, next_block, t)
                next_block += 1

    async def _take_block(self, session: aiohttp.ClientSession, number: int, t: float) -> None:
        reply = await self._post(
            session, self._req("chain_getBlockByNumber", {"number": number, "channel": self.cfg.channel})
        )
        if not isinstance(reply, dict) or not isinstance(reply.get("result"), dict):
            raise ConnectionError(f"chain_getBlockByNumber {number}: {str(reply)[:ERROR_KEY_CHARS]}")
        block = reply["result"]
        tx_ids, codes = block["tx_ids"], block["validation_codes"] or []
        mine = 0
        for tx_id, code in zip(tx_ids, codes, strict=True):
            item = self.pending.pop(tx_id, None)
            if item is None:
                continue
            mine += 1
            i, _ = item
            if code == "VALID":
                self._finish(i, t, OK)
                if len(self.res.tx_ids) < SAMPLE_TX_IDS_MAX:
                    self.res.tx_ids.append(tx_id)
            elif code in CONFLICT_CODES:
                self._finish(i, t, CONFLICT)
            else:
                self._finish(i, t, FAIL, f"invalidated: {code}")
        if mine:
            self.res.block_txs.append(len(tx_ids))

    # ---- sending -------------------------------------------------------------------------------------

    def _done_sending(self, elapsed: float) -> bool:
        if self._limit is not None and self.sent >= self._limit:
            return True
        return self.cfg.duration_s is not None and elapsed >= self.cfg.duration_s

    def _take_ops(self, n: int) -> list[Op]:
        if self._limit is not None:
            n = min(n, self._limit - self.sent)
        return list(itertools.islice(self._ops, max(0, n)))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_loop(self, session: aiohttp.ClientSession, progress: Progress | None) -> None:
        cfg = self.cfg
        last_report = 0.0
        while True:
            now = self.clock()
            elapsed = now - cfg.start_at
            if self._done_sending(elapsed):
                return
            if progress is not None and now - last_report >= PROGRESS_EVERY_S:
                last_report = now
                progress(cfg.index, self.sent, *self.counts)
            n = cfg.control.allowed(elapsed, self.sent, self.outstanding)
            while n > 0 and self.requests < cfg.max_requests:
                ops = self._take_ops(min(n, cfg.batch))
                if not ops:
                    break
                n -= len(ops)
                # One batch holds only ordered ops or only queries (they go to different methods).
                for group in _groups(ops):
                    self._spawn(self._send_batch(session, group))
                await asyncio.sleep(0)  # let the batch go out before signing the next
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK_S)

    async def run(self, progress: Progress | None = None) -> WorkerResult:
        cfg = self.cfg
        cpu0 = time.process_time()
        connector = aiohttp.TCPConnector(limit=cfg.max_requests + 2)
        timeout = aiohttp.ClientTimeout(total=cfg.timeout_s)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            ws_url = "ws" + cfg.url.rstrip("/").removeprefix("http") + "/ws"
            async with session.ws_connect(ws_url, max_msg_size=16 * 1024 * 1024) as ws:
                await ws.send_json(self._req("subscribe", {"kinds": ["block"], "channel": cfg.channel}))
                confirm = json.loads((await ws.receive(timeout=cfg.timeout_s)).data)
                if "error" in confirm:
                    raise ConnectionError(f"subscribe refused: {confirm['error']}")
                height = (await self._post(session, self._req("chain_height", {"channel": cfg.channel})))["result"]
                watcher = asyncio.create_task(self._watch(session, ws, int(height)))
                try:
                    await asyncio.sleep(max(0.0, cfg.start_at - self.clock()))
                    t_start = self.clock()
                    await self._send_loop(session, progress)
                    deadline = self.clock() + cfg.drain_s
                    while (self.outstanding or self._tasks) and self.clock() < deadline and not watcher.done():
                        if progress is not None:
                            progress(cfg.index, self.sent, *self.counts)
                        self._wake.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._wake.wait(), PROGRESS_EVERY_S)
                    if watcher.done() and watcher.exception() is not None:
                        self.res.errors[f"block watcher: {watcher.exception()}"[:ERROR_KEY_CHARS]] += 1
                    self.res.wall_s = self.clock() - t_start
                finally:
                    watcher.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await watcher
                    for t in list(self._tasks):
                        t.cancel()
        now = self.clock()
        for _tx_id, (i, _op) in self.pending.items():
            self._finish(i, now, FAIL, "not committed before the drain deadline")
        self.pending.clear()
        if progress is not None:
            progress(cfg.index, self.sent, *self.counts)
        self.res.cpu_s = time.process_time() - cpu0
        self.res.submit = [s - cfg.start_at for s in self.res.submit]
        self.res.done = [d - cfg.start_at for d in self.res.done]
        return self.res


def _stream(workload: Workload) -> Iterator[Op]:
    while True:
        yield workload.next_op()


def _groups(ops: list[Op]) -> list[list[Op]]:
    ordered = [o for o in ops if o.ordered]
    queries = [o for o in ops if not o.ordered]
    return [g for g in (ordered, queries) if g]


def worker_main(cfg: WorkerConfig, queue: Any) -> None:
    """Process entry point: run one worker, report progress and the result on ``queue``."""
    try:
        import uvloop

        runner: Callable[..., Any] = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency; plain asyncio still works
        runner = asyncio.run

    def progress(index: int, sent: int, ok: int, conflicts: int, fail: int) -> None:
        queue.put(("progress", index, sent, ok, conflicts, fail))

    try:
        result = runner(LoadWorker(cfg).run(progress))
    except Exception as exc:  # reported to the parent, which fails the run with this message
        queue.put(("error", cfg.index, f"{type(exc).__name__}: {exc}"))
        return
    queue.put(("result", cfg.index, result))
