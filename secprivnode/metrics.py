"""The node's Prometheus metrics: one registry per node, and the named instruments components update.

Each node owns a :class:`NodeMetrics` with its own ``CollectorRegistry`` (never the process-wide
default), so several nodes in one test process or one benchmark never clash on metric names.
The operations server (:mod:`secprivnode.ops`) exposes ``metrics.registry`` at ``/metrics``.

Label values are kept to small, known sets (channel names, validation-code names, queue names,
RPC method names from the method table) so a hostile client can never grow the series count: an
unknown RPC method is counted under ``method="unknown"``.

This module only defines instruments; it never reads node state on its own. Every instrument is
fed: events by the components that see them, live values (Raft term and role, connected peers) at
scrape time by :mod:`secprivnode.metrics_feed`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["LATENCY_BUCKETS_S", "NodeMetrics"]

# Seconds. Endorsement is a local contract run plus a signature (sub-millisecond to tens of ms);
# ordering and commit wait for a Raft round and a block cut (BatchTimeout defaults to 200 ms), so
# the buckets span 0.5 ms .. 10 s on a roughly x2.5 grid.
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class NodeMetrics:
    """The instruments of one node, registered in ``self.registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        # Ledger
        self.blocks_committed = Counter(
            "secprivnode_blocks_committed", "Blocks committed to the ledger.", ["channel"], registry=r
        )
        self.transactions = Counter(
            "secprivnode_transactions",
            "Committed transactions by validation code name (VALID, MVCC_READ_CONFLICT, ...).",
            ["channel", "code"],
            registry=r,
        )
        self.block_height = Gauge("secprivnode_block_height", "Height of the local ledger.", ["channel"], registry=r)
        # Pipeline latencies
        self.endorse_latency = Histogram(
            "secprivnode_endorse_latency_seconds",
            "Time for this node to check, simulate and sign one proposal (successful endorsements).",
            ["channel"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.order_latency = Histogram(
            "secprivnode_order_latency_seconds",
            "Time from handing an endorsed transaction to ordering until its block is committed on this gateway "
            "node (Raft ordering, block cut, validation and commit; submissions that wait for the commit).",
            ["channel"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.commit_latency = Histogram(
            "secprivnode_commit_latency_seconds",
            "Time to validate and commit one block.",
            ["channel"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        # Consensus
        self.raft_term = Gauge("secprivnode_raft_term", "Current Raft term.", ["channel"], registry=r)
        self.raft_leader_changes = Counter(
            "secprivnode_raft_leader_changes", "Times this node saw the Raft leader change.", ["channel"], registry=r
        )
        self.raft_is_leader = Gauge(
            "secprivnode_raft_is_leader", "1 when this node is the Raft leader of the channel.", ["channel"], registry=r
        )
        # Network and queues
        self.peers_connected = Gauge("secprivnode_peers_connected", "Connected P2P peers.", registry=r)
        self.queue_depth = Gauge(
            "secprivnode_queue_depth", "Items waiting in a bounded internal queue.", ["queue"], registry=r
        )
        # RPC
        self.rpc_requests = Counter(
            "secprivnode_rpc_requests",
            "JSON-RPC calls by method and outcome (ok, or the JSON-RPC error code).",
            ["method", "outcome"],
            registry=r,
        )
        self.rpc_latency = Histogram(
            "secprivnode_rpc_latency_seconds",
            "Time to answer one JSON-RPC call.",
            ["method"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.rpc_rejected = Counter(
            "secprivnode_rpc_rejected",
            "HTTP requests refused before dispatch (body too large, server overloaded).",
            ["reason"],
            registry=r,
        )
        self.ws_connections = Gauge("secprivnode_ws_connections", "Open JSON-RPC WebSocket connections.", registry=r)
        self.ws_subscriptions = Gauge("secprivnode_ws_subscriptions", "Active event subscriptions.", registry=r)
        self.ws_slow_disconnects = Counter(
            "secprivnode_ws_slow_consumer_disconnects",
            "WebSocket connections closed because their outgoing queue was full.",
            registry=r,
        )
