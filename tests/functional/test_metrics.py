"""Every Prometheus metric a node declares is fed: after traffic, /metrics on every node has samples
for each one, and those that must move did (blocks, latencies, Raft term and leader, peers)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from framework import CityTest
from prometheus_client.parser import text_string_to_metric_families

from secprivnode.metrics import NodeMetrics

pytestmark = pytest.mark.functional

TXS = 4


def declared_metrics() -> set[str]:
    """Names of every family a node registers (read from a fresh NodeMetrics, not a list here)."""
    return {family.name for family in NodeMetrics().registry.collect()}


def scrape(text: str) -> dict[str, dict[str, float]]:
    """family name -> {sample name with labels: value}."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[family.name][f"{s.name}{{{labels}}}"] = s.value
    return out


def total(samples: dict[str, float], suffix: str) -> float:
    return sum(v for k, v in samples.items() if k.split("{", 1)[0].endswith(suffix))


class MetricsTest(CityTest):
    def run_test(self) -> None:
        gateway = self.nodes[0]
        self.log.info("commit %d transactions through %s", TXS, gateway.name)
        with gateway.client(self.identity("council")) as c:
            for i in range(TXS):
                assert c.invoke("assets", "put", f"m-{i}", bytes([i])).valid
        height, _ = self.sync_blocks()
        declared = declared_metrics()
        assert {
            "secprivnode_peers_connected",
            "secprivnode_raft_term",
            "secprivnode_endorse_latency_seconds",
        } <= declared

        scraped = {}
        for n in self.nodes:
            status, body = n.ops_get("/metrics")
            assert status == 200, n.name
            scraped[n.name] = got = scrape(body)
            missing = sorted(m for m in declared if not got.get(m))
            assert not missing, f"{n.name}: declared metrics without samples: {missing}"
            self.log.info("%s: all %d declared metrics have samples", n.name, len(declared))
            assert total(got["secprivnode_peers_connected"], "") == len(self.nodes) - 1, got[
                "secprivnode_peers_connected"
            ]
            assert total(got["secprivnode_raft_term"], "") >= 1
            assert total(got["secprivnode_raft_leader_changes"], "_total") >= 1
            assert total(got["secprivnode_block_height"], "") == height
            assert total(got["secprivnode_blocks_committed"], "_total") >= 1
            assert total(got["secprivnode_commit_latency_seconds"], "_count") >= 1

        leaders = sum(total(s["secprivnode_raft_is_leader"], "") for s in scraped.values())
        assert leaders == 1, f"exactly one node reports itself Raft leader, got {leaders}"
        at_gateway = scraped[gateway.name]
        assert total(at_gateway["secprivnode_endorse_latency_seconds"], "_count") >= TXS
        assert total(at_gateway["secprivnode_order_latency_seconds"], "_count") >= TXS
        assert total(at_gateway["secprivnode_rpc_requests"], "_total") >= TXS
        assert total(at_gateway["secprivnode_rpc_latency_seconds"], "_count") >= TXS
        valid = sum(v for k, v in at_gateway["secprivnode_transactions"].items() if "code=VALID" in k)
        assert valid >= TXS


def test_every_declared_metric_is_fed(tmp_path: Path) -> None:
    MetricsTest().main(tmp_path)
