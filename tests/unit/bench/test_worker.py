"""The load worker's bookkeeping: matching committed blocks to pending transactions, and the
replies of batched submissions, with a scripted JSON-RPC transport (no network, no clock)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from crypto.ca import CertificateAuthority, Role
from secprivnode.bench.rate import FixedOutstanding
from secprivnode.bench.report import CONFLICT, FAIL, OK
from secprivnode.bench.runner import free_base_port
from secprivnode.bench.worker import LoadWorker, WorkerConfig
from secprivnode.bench.workload import Op, WorkloadSpec


@pytest.fixture(scope="module")
def identity() -> tuple[bytes, bytes]:
    ca = CertificateAuthority.create("org1", now=1_700_000_000)
    key, cert = ca.issue("client1", Role.CLIENT, now=1_700_000_000)
    return cert, key.to_pem()


def _worker(identity: tuple[bytes, bytes]) -> LoadWorker:
    cfg = WorkerConfig(
        0, "http://127.0.0.1:1/", identity[0], identity[1], "city", WorkloadSpec(), FixedOutstanding(10), 0.0
    )
    return LoadWorker(cfg, clock=lambda: 5.0)


async def test_block_outcomes_are_matched_by_tx_id(identity: tuple[bytes, bytes]) -> None:
    w = _worker(identity)
    op = Op("write", "assets", "put", ("k", b"v"))
    for tx in ("0xa", "0xb", "0xc"):
        w.pending[tx] = (w._new(op), op)
    block = {
        "tx_ids": ["0xz", "0xa", "0xb", "0xc"],
        "validation_codes": ["VALID", "VALID", "MVCC_READ_CONFLICT", "BAD_PAYLOAD"],
    }

    async def post(session: Any, body: Any) -> Any:
        assert body["method"] == "chain_getBlockByNumber" and body["params"]["number"] == 9
        return {"result": block}

    w._post = post  # type: ignore[method-assign]
    await w._take_block(None, 9, 4.0)  # type: ignore[arg-type]
    assert w.res.outcome == [OK, CONFLICT, FAIL]
    assert w.res.done == [4.0, 4.0, 4.0]
    assert w.res.errors == {"invalidated: BAD_PAYLOAD": 1}
    assert w.res.block_txs == [4] and w.res.tx_ids == ["0xa"]
    assert not w.pending and w.counts == [1, 1, 1]


async def test_refused_submissions_fail_and_leave_the_pending_set(identity: tuple[bytes, bytes]) -> None:
    w = _worker(identity)
    ops = [Op("write", "assets", "put", (f"k{i}", b"v")) for i in range(3)]

    async def post(session: Any, body: Any) -> Any:
        assert [r["method"] for r in body] == ["tx_submit"] * 3
        return [
            {"id": body[0]["id"], "result": "0x00"},
            {"id": body[1]["id"], "error": {"code": -32006, "message": "Overloaded"}},
            {"id": body[2]["id"], "result": "0x00"},
        ]

    w._post = post  # type: ignore[method-assign]
    await w._send_batch(None, ops)  # type: ignore[arg-type]
    assert w.sent == 3 and len(w.pending) == 2 and w.outstanding == 2
    assert w.res.outcome[1] == FAIL and w.res.errors == {"[-32006] Overloaded": 1}
    assert w.res.submit == [5.0, 5.0, 5.0] and math.isnan(w.res.done[0])


async def test_queries_finish_on_their_reply(identity: tuple[bytes, bytes]) -> None:
    w = _worker(identity)

    async def post(session: Any, body: Any) -> Any:
        return [{"id": r["id"], "result": {"status": 200}} for r in body]

    w._post = post  # type: ignore[method-assign]
    await w._send_batch(None, [Op("query", "assets", "read", ("a",))] * 2)  # type: ignore[arg-type]
    assert w.res.outcome == [OK, OK] and w.outstanding == 0 and not w.pending


def test_free_base_port_refuses_ranges_with_a_taken_port() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        taken = s.getsockname()[1]
        # Both candidate ranges contain the bound port (as P2P, or as RPC at +1000).
        with pytest.raises(RuntimeError):
            free_base_port(1, candidates=[taken, taken - 1000])


async def test_a_block_the_node_will_not_return_stops_the_watcher(identity: tuple[bytes, bytes]) -> None:
    w = _worker(identity)

    async def post(session: Any, body: Any) -> Any:
        return {"error": {"code": -32001, "message": "NotFound"}}

    w._post = post  # type: ignore[method-assign]
    with pytest.raises(ConnectionError, match="chain_getBlockByNumber 3"):
        await w._take_block(None, 3, 1.0)  # type: ignore[arg-type]
