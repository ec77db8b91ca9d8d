"""The operations server: /healthz (200 / 503 naming failures) and /metrics from the node's own registry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from prometheus_client import REGISTRY

from secprivnode.metrics import NodeMetrics
from secprivnode.ops import create_ops_app
from secprivnode.rpc.server import run_rpc_server


@pytest.fixture
async def ops(fake: Any) -> AsyncIterator[tuple[str, NodeMetrics]]:
    metrics = NodeMetrics()
    runner, port = await run_rpc_server(create_ops_app(fake, metrics.registry), "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{port}", metrics
    finally:
        await runner.cleanup()


async def get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, resp.headers["Content-Type"], await resp.text()


async def test_healthz_ok_and_failing(ops: tuple[str, NodeMetrics], fake: Any) -> None:
    url, _ = ops
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/healthz") as resp:
            assert resp.status == 200
            body = await resp.json()
        assert body == {
            "status": "ok",
            "failing": [],
            "checks": {"storage": {"ok": True, "detail": "ok"}, "raft": {"ok": True, "detail": "leader n1"}},
        }
        fake.health_checks["raft"] = (False, "no leader for 3 election timeouts")
        fake.health_checks["disk"] = (False, "2% free")
        async with http.get(url + "/healthz") as resp:
            assert resp.status == 503
            body = await resp.json()
        assert body["status"] == "failing" and body["failing"] == ["disk", "raft"]
        assert body["checks"]["raft"] == {"ok": False, "detail": "no leader for 3 election timeouts"}
        assert body["checks"]["storage"]["ok"] is True


async def test_healthz_probe_error_is_a_failing_check(ops: tuple[str, NodeMetrics], fake: Any) -> None:
    async def broken() -> dict[str, tuple[bool, str]]:
        raise RuntimeError("secret detail")

    fake.health = broken
    status, _, text = await get(ops[0] + "/healthz")
    assert status == 503 and '"health"' in text and "secret" not in text


async def test_metrics_exposition(ops: tuple[str, NodeMetrics]) -> None:
    url, m = ops
    m.blocks_committed.labels("city").inc(3)
    m.transactions.labels("city", "VALID").inc(5)
    m.transactions.labels("city", "MVCC_READ_CONFLICT").inc()
    m.commit_latency.labels("city").observe(0.02)
    m.raft_term.labels("city").set(4)
    m.peers_connected.set(2)
    m.queue_depth.labels("orderer_pending").set(17)
    status, ctype, text = await get(url + "/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    assert 'secprivnode_blocks_committed_total{channel="city"} 3.0' in text
    assert 'secprivnode_transactions_total{channel="city",code="MVCC_READ_CONFLICT"} 1.0' in text
    assert 'secprivnode_commit_latency_seconds_bucket{channel="city",le="0.025"} 1.0' in text
    assert 'secprivnode_raft_term{channel="city"} 4.0' in text
    assert "secprivnode_peers_connected 2.0" in text
    assert 'secprivnode_queue_depth{queue="orderer_pending"} 17.0' in text


def test_registries_are_per_node() -> None:
    a, b = NodeMetrics(), NodeMetrics()  # a second node in the same process must not clash
    a.blocks_committed.labels("city").inc()
    assert a.registry.get_sample_value("secprivnode_blocks_committed_total", {"channel": "city"}) == 1.0
    assert b.registry.get_sample_value("secprivnode_blocks_committed_total", {"channel": "city"}) is None
    assert REGISTRY.get_sample_value("secprivnode_blocks_committed_total", {"channel": "city"}) is None


async def test_rpc_calls_are_counted(server: Any) -> None:
    await server.post(
        [{"jsonrpc": "2.0", "method": "chain_height", "id": 1}, {"jsonrpc": "2.0", "method": "x", "id": 2}]
    )
    reg = server.metrics.registry
    assert reg.get_sample_value("secprivnode_rpc_requests_total", {"method": "chain_height", "outcome": "ok"}) == 1.0
    assert reg.get_sample_value("secprivnode_rpc_requests_total", {"method": "unknown", "outcome": "-32601"}) == 1.0
