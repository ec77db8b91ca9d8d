"""Feeds the node's Prometheus gauges that mirror live state, and counts Raft leader changes.

Gauges whose value already lives somewhere (the Raft status of a channel, the transport's peer
set) are read when ``/metrics`` is scraped (``Gauge.set_function``), so they can never go stale or
drift from what ``/healthz`` and ``raft_status`` report. Counters of events (leader changes) are
incremented by a callback the Raft driver calls.

Labelled series that only move on rare events (``rpc_rejected``) are created at zero up front, so
a scrape shows every declared metric with a sample from the start.

This module only reads node state through the callables it is given; it never changes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from secprivnode.metrics import NodeMetrics

__all__ = ["LeaderChanges", "feed_channel", "feed_node"]

# The reasons the RPC server counts in secprivnode_rpc_rejected (secprivnode/rpc/server.py).
RPC_REJECT_REASONS = ("too_large", "overloaded")


def feed_node(metrics: NodeMetrics, connected_peers: Callable[[], list[str]]) -> None:
    """Node-wide series: connected peers (read at scrape time), zeroed rejection counters."""
    metrics.peers_connected.set_function(lambda: len(connected_peers()))
    for reason in RPC_REJECT_REASONS:
        metrics.rpc_rejected.labels(reason)


def feed_channel(metrics: NodeMetrics, channel: str, raft_status: Callable[[], Mapping[str, Any]]) -> None:
    """Per-channel Raft gauges read at scrape time (0 on a node that does not order the channel)."""

    def term() -> float:
        return float(raft_status()["term"])

    def is_leader() -> float:
        return 1.0 if raft_status()["role"] == "leader" else 0.0

    metrics.raft_term.labels(channel=channel).set_function(term)
    metrics.raft_is_leader.labels(channel=channel).set_function(is_leader)
    metrics.raft_leader_changes.labels(channel=channel)
    for which in (metrics.endorse_latency, metrics.order_latency, metrics.commit_latency):
        which.labels(channel=channel)
    metrics.blocks_committed.labels(channel=channel)


class LeaderChanges:
    """``on_leader`` callback of a channel's Raft driver: counts each newly known leader.

    A change to "no leader known" (an election under way) is not counted; the leader that
    emerges is, also when it is the same node as before the election.
    """

    def __init__(self, metrics: NodeMetrics, channel: str) -> None:
        self._counter = metrics.raft_leader_changes.labels(channel=channel)

    def __call__(self, leader: str | None) -> None:
        if leader is not None:
            self._counter.inc()
