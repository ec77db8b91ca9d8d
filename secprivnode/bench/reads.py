"""RPC read benchmark: the node's ``chain_getTransaction`` against a minimal
aiohttp JSON-RPC handler, with the same client and the same concurrency, in the same run.

The minimal handler is the floor of what any aiohttp JSON-RPC server costs: it parses the
request, looks the answer up in a dict and serialises it. Its answers are the node's own
responses to the same requests (fetched once beforehand), so both servers send identical bytes
and the ratio isolates what the node adds: parameter checks, the ledger read, decoding and
converting the record. Each server runs in its own process, as the node does; the client is
``READ_CLIENTS`` processes sharing the concurrency. This module never writes to a network.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import multiprocessing as mp
import socket
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp import web

__all__ = ["READ_CLIENTS", "compare", "minimal_server_main", "read_client_main"]

# Client processes for the read benchmark: two keep a single Python client from being what is
# measured, without taking more than the machine's cores.
READ_CLIENTS = 2
# Distinct requests cycled through: enough to defeat any single-entry cache, small enough to
# prefetch in a moment.
MAX_REQUESTS = 500


def _requests(channel: str, tx_ids: Sequence[str]) -> list[dict[str, Any]]:
    # Only open chain reads: state reads are signed with a fresh nonce each (docs/rpc.md, Signed
    # reads) and a replayed one is refused, so the same request bytes cannot go to both servers.
    return [
        {"method": "chain_getTransaction", "params": {"tx_id": tx_id, "channel": channel}}
        for tx_id in tx_ids[:MAX_REQUESTS]
    ]


def _canon_key(req: dict[str, Any]) -> str:
    return req["method"] + "|" + json.dumps(req["params"], sort_keys=True)


def minimal_server_main(port: int, answers: dict[str, Any], ready: Any) -> None:
    """Process entry: serve ``answers`` (request key -> result) as JSON-RPC on 127.0.0.1:port."""

    async def handle(request: web.Request) -> web.Response:
        msg = json.loads(await request.read())
        result = answers.get(_canon_key(msg))
        if result is None:
            body = {"jsonrpc": "2.0", "id": msg.get("id"), "error": {"code": -32001, "message": "not found"}}
        else:
            body = {"jsonrpc": "2.0", "id": msg.get("id"), "result": result}
        return web.Response(body=json.dumps(body, separators=(",", ":")).encode(), content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await asyncio.Event().wait()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:  # pragma: no cover
        asyncio.run(main())


async def _client(
    url: str, reqs: list[dict[str, Any]], concurrency: int, seconds: float, offset: int
) -> tuple[int, int]:
    done = errors = 0
    deadline = time.monotonic() + seconds
    counter = itertools.count(offset)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def loop() -> None:
            nonlocal done, errors
            while time.monotonic() < deadline:
                i = next(counter)
                body = {"jsonrpc": "2.0", "id": i, **reqs[i % len(reqs)]}
                async with session.post(url, data=json.dumps(body), headers={"Content-Type": "application/json"}) as r:
                    reply = json.loads(await r.read())
                if "result" in reply:
                    done += 1
                else:
                    errors += 1

        await asyncio.gather(*(loop() for _ in range(concurrency)))
    return done, errors


def read_client_main(
    url: str, reqs: list[dict[str, Any]], concurrency: int, seconds: float, offset: int, q: Any
) -> None:
    try:
        import uvloop

        q.put(uvloop.run(_client(url, reqs, concurrency, seconds, offset)))
    except ImportError:  # pragma: no cover
        q.put(asyncio.run(_client(url, reqs, concurrency, seconds, offset)))


def _measure(url: str, reqs: list[dict[str, Any]], concurrency: int, seconds: float) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    q: Any = ctx.Queue()
    per = max(1, concurrency // READ_CLIENTS)
    procs = [
        ctx.Process(target=read_client_main, args=(url, reqs, per, seconds, i * 10_000_000, q))
        for i in range(READ_CLIENTS)
    ]
    for p in procs:
        p.start()
    outs = [q.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join()
    done = sum(o[0] for o in outs)
    errors = sum(o[1] for o in outs)
    return {"requests_per_s": done / seconds, "errors": errors}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _prefetch(url: str, reqs: list[dict[str, Any]]) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with aiohttp.ClientSession() as session:
            for i, req in enumerate(reqs):
                async with session.post(url, json={"jsonrpc": "2.0", "id": i, **req}) as r:
                    reply = await r.json()
                if "result" in reply and reply["result"] is not None:
                    out[_canon_key(req)] = reply["result"]
        return out

    return asyncio.run(run())


def compare(url: str, channel: str, tx_ids: Sequence[str], seconds: float, concurrency: int) -> dict[str, Any]:
    """Reads/s of the node and of the minimal handler over the same requests; ``ratio`` = node ÷ minimal."""
    reqs = _requests(channel, tx_ids)
    answers = _prefetch(url, reqs)
    reqs = [r for r in reqs if _canon_key(r) in answers]  # only requests with a real answer
    if not reqs:
        raise RuntimeError("no readable transactions for the RPC read benchmark")
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    port = _free_port()
    server = ctx.Process(target=minimal_server_main, args=(port, answers, ready), name="bench-minimal-rpc")
    server.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("the minimal RPC handler did not start")
        node = _measure(url, reqs, concurrency, seconds)
        minimal = _measure(f"http://127.0.0.1:{port}/", reqs, concurrency, seconds)
    finally:
        server.terminate()
        server.join()
    ratio = node["requests_per_s"] / minimal["requests_per_s"] if minimal["requests_per_s"] else None
    return {
        "methods": sorted({r["method"] for r in reqs}),
        "distinct_requests": len(reqs),
        "concurrency": concurrency,
        "client_processes": READ_CLIENTS,
        "seconds": seconds,
        "node": node,
        "minimal": minimal,
        "ratio": None if ratio is None else round(ratio, 3),
    }
