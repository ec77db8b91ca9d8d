"""The fault workload: clients submit transactions and record every request and its outcome.

Run inside the clients' namespace (``ip netns exec <client-ns> python -m testbed.workload ...``):
``--clients`` threads, each with its own organisation's client identity, submit through the nodes
(client ``i`` starts at node ``i mod N`` and moves to the next node when its node refuses or cannot
be reached) a seeded mix of

* **rmw** — ``assets.update(acct-K, value)``: reads the asset, writes it back (MVCC-checked), and
* **write** — ``assets.put(w-K, value)``: a blind write (no read, never conflicts),

on a small key space, until SIGTERM / SIGINT or ``--ops`` operations per client. Before the
clients start, the ``acct-K`` assets are created (recorded like any operation).

The history is JSON lines (``docs/operations.md`` documents the format), written and flushed one
record at a time so that a killed workload leaves a readable prefix:

* ``{"type": "invoke", "op", "process", "f", "key", "value", "tx_id", "node", "time_ms"}``
* ``{"type": "ok", "op", "tx_id", "block", "index", "time_ms"}`` — committed VALID
* ``{"type": "fail", "op", "tx_id", "error", "code", "time_ms"}`` — definitely not committed as
  VALID: refused before ordering, or committed with a non-VALID ``code``
* ``{"type": "info", "op", "tx_id", "error", "time_ms"}`` — outcome unknown (timeout, lost link)

``time_ms`` counts from the workload's start (monotonic). This module never reads the ledger
behind the node's back: only what a client sees.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from secprivnode.client import (
    Client,
    ClientIdentity,
    ContractFailed,
    NotLeader,
    RpcError,
    TransportError,
    TxRejected,
)
from secprivnode.network import load_network

__all__ = ["History", "main"]

# Seconds one submission may wait for its commit before it is recorded as unknown ("info").
OP_TIMEOUT_S = 20.0
# Share of read-modify-write operations (the rest are blind writes).
RMW_SHARE = 0.5
# Pause after a refused or unanswered request before the next one, so that a client does not spin
# while there is no leader.
RETRY_PAUSE_S = 0.2
# Attempts to create each account before the workload starts (a leader may still be electing).
SETUP_ATTEMPTS = 30


class History:
    """Append-only JSON-lines history shared by the client threads."""

    def __init__(self, path: Path) -> None:
        self._f = path.open("a", buffering=1)
        self._lock = threading.Lock()
        self._ops = 0
        self._t0 = time.monotonic()

    def now_ms(self) -> int:
        return int((time.monotonic() - self._t0) * 1000)

    def next_op(self) -> int:
        with self._lock:
            self._ops += 1
            return self._ops

    def record(self, **rec: Any) -> None:
        rec["time_ms"] = self.now_ms()
        line = json.dumps(rec, sort_keys=True)
        with self._lock:
            self._f.write(line + "\n")

    def close(self) -> None:
        self._f.close()


def _outcome(hist: History, op: int, tx_id: str, client: Client, result: Any) -> bool:
    """Record a submission's result; True if it was VALID."""
    if result.code == "VALID":
        index = None
        try:
            index = int(client.get_tx(result.tx_id)["index"])
        except (RpcError, TransportError, KeyError, TypeError, ValueError):
            pass  # the checker finds the index in the ledger
        hist.record(type="ok", op=op, tx_id=tx_id, block=result.block_number, index=index)
        return True
    hist.record(type="fail", op=op, tx_id=tx_id, error="committed invalid", code=result.code)
    return False


def run_op(hist: History, proc: int, client: Client, node: str, f: str, fn: str, key: str, value: Any) -> str:
    """One operation; returns "ok", "fail" or "info"."""
    op = hist.next_op()
    try:
        prepared = client.prepare("assets", fn, *([key, value] if fn != "create" else [key, "fault-test", value]))
    except (RpcError, TransportError) as exc:  # the channel name could not be learnt: nothing sent
        hist.record(type="invoke", op=op, process=proc, f=f, key=key, value=repr(value), tx_id=None, node=node)
        hist.record(type="fail", op=op, tx_id=None, error=f"{type(exc).__name__}: {exc}", code=None)
        return "fail"
    tx_id = "0x" + prepared.tx_id.hex()
    hist.record(type="invoke", op=op, process=proc, f=f, key=key, value=repr(value), tx_id=tx_id, node=node)
    try:
        result = client.submit(prepared, timeout_s=OP_TIMEOUT_S)
    except (TxRejected, ContractFailed, NotLeader) as exc:
        # Refused before ordering: nothing of it may ever commit.
        hist.record(type="fail", op=op, tx_id=tx_id, error=f"{type(exc).__name__}: {exc}", code=None)
        return "fail"
    except (RpcError, TransportError) as exc:
        hist.record(type="info", op=op, tx_id=tx_id, error=f"{type(exc).__name__}: {exc}")
        return "info"
    return "ok" if _outcome(hist, op, tx_id, client, result) else "fail"


def _exists(client: Client, asset: str) -> bool:
    """Whether the asset is committed (as the node sees it); False when the node cannot say."""
    try:
        client.query("assets", "read", asset)
    except (RpcError, TransportError):
        return False
    return True


class Workload:
    def __init__(self, net_dir: Path, history: Path, *, clients: int, keys: int, seed: int) -> None:
        _, self.nodes = load_network(net_dir)
        self.net_dir = net_dir
        self.hist = History(history)
        self.clients = clients
        self.keys = keys
        self.seed = seed
        self.stop = threading.Event()
        self.counts: dict[str, int] = {"ok": 0, "fail": 0, "info": 0}
        self._lock = threading.Lock()

    def identity(self, proc: int) -> ClientIdentity:
        orgs = sorted({n.org for n in self.nodes})
        d = self.net_dir / "crypto" / orgs[proc % len(orgs)] / "users" / f"client{1 + (proc // len(orgs)) % 2}"
        return ClientIdentity.load(d / "cert.pem", d / "key.pem")

    def setup(self) -> None:
        """Create the accounts the rmw operations update (already existing ones are fine)."""
        me = self.identity(0)
        for k in range(self.keys):
            for attempt in range(SETUP_ATTEMPTS):
                node = self.nodes[attempt % len(self.nodes)]
                with Client(node.rpc_url, me, timeout_s=OP_TIMEOUT_S + 10) as c:
                    if _exists(c, f"acct-{k}"):
                        break
                    outcome = run_op(self.hist, 0, c, node.name, "create", "create", f"acct-{k}", 0)
                if outcome == "ok" or self.stop.is_set():
                    break
                self.stop.wait(RETRY_PAUSE_S)

    def client_loop(self, proc: int, max_ops: int) -> None:
        rng = random.Random(f"{self.seed}-{proc}")
        me = self.identity(proc)
        at = proc % len(self.nodes)
        clients: dict[str, Client] = {}
        try:
            done = 0
            while not self.stop.is_set() and (max_ops <= 0 or done < max_ops):
                node = self.nodes[at]
                c = clients.get(node.name)
                if c is None:
                    c = clients[node.name] = Client(node.rpc_url, me, timeout_s=OP_TIMEOUT_S + 10)
                if rng.random() < RMW_SHARE:
                    outcome = run_op(self.hist, proc, c, node.name, "rmw", "update",
                                     f"acct-{rng.randrange(self.keys)}", {"by": proc, "n": done})  # fmt: skip
                else:
                    outcome = run_op(self.hist, proc, c, node.name, "write", "put",
                                     f"w-{rng.randrange(self.keys)}", rng.randbytes(16))  # fmt: skip
                done += 1
                with self._lock:
                    self.counts[outcome] += 1
                if outcome != "ok":
                    at = (at + 1) % len(self.nodes)
                    self.stop.wait(RETRY_PAUSE_S)
        finally:
            for c in clients.values():
                c.close()

    def run(self, max_ops: int) -> dict[str, int]:
        self.setup()
        threads = [
            threading.Thread(target=self.client_loop, args=(p, max_ops), name=f"client-{p}")
            for p in range(1, self.clients + 1)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.hist.close()
        return self.counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.workload", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--net", required=True, type=Path, help="the network directory (network.yaml)")
    parser.add_argument("--history", required=True, type=Path)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--keys", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ops", type=int, default=0, help="operations per client (0: until SIGTERM)")
    args = parser.parse_args(argv)
    w = Workload(args.net, args.history, clients=args.clients, keys=args.keys, seed=args.seed)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: w.stop.set())
    counts = w.run(args.ops)
    print(json.dumps(counts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
