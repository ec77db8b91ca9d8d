"""SIGKILL of the Raft leader (and of every node) under load: no acknowledged transaction is lost.

Background submitters send blind writes (``assets.put``, which never conflict) with
``tx_submitAndWait`` through the nodes that are not the leader, retrying with a fresh proposal on
NotLeader / Overloaded / timeouts / refused connections while a new leader is elected. The leader
is killed with SIGKILL mid-stream. Afterwards every transaction a client saw acknowledged as
committed (VALID, with a block number) must be in the same block on every surviving node — Raft's
guarantee that committed entries survive leader changes (Raft paper §5.4, Leader Completeness) —
the survivors' chains must be identical, and the killed node, restarted, must catch up to the
same chain and serve new transactions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from framework import CityTest, TestNode, wait_until

from secprivnode.client import ClientIdentity, RpcError, RpcTimeout, TransportError

pytestmark = pytest.mark.functional

# Acknowledged transactions wanted before the kill, and after it: enough that the kill lands
# mid-stream and that the new leader demonstrably orders blocks.
ACKED_BEFORE_KILL = 15
ACKED_AFTER_KILL = 15
# tx_submitAndWait budget per attempt: a commit takes ~one BatchTimeout (200 ms) when a leader is
# up; an election takes 1-2 s of ticks. A transaction stuck at the dead leader times out and is
# resubmitted as a new one.
SUBMIT_WAIT_S = 10.0
# Pause after a refused attempt before the next one, so a submitter does not spin while there is
# no leader.
RETRY_PAUSE_S = 0.2


@dataclass
class Load:
    """What the submitters saw; lists are appended under ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: list[tuple[bytes, int, str]] = field(default_factory=list)  # tx id, block, via node
    refusals: dict[str, int] = field(default_factory=dict)  # error class name -> count
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)  # tx ids (hex) whose commit was not seen in time

    def count(self) -> int:
        with self.lock:
            return len(self.acked)


def _submitter(load: Load, who: int, targets: list[TestNode], me: ClientIdentity) -> None:
    clients = {n.name: n.client(me, timeout_s=SUBMIT_WAIT_S + 30) for n in targets}
    try:
        seq = 0
        while not load.stop.is_set():
            node = targets[seq % len(targets)]
            seq += 1
            try:
                r = clients[node.name].invoke(
                    "assets", "put", f"load-{who}-{seq}", seq.to_bytes(8, "big"), timeout_s=SUBMIT_WAIT_S
                )
            except (RpcError, TransportError) as exc:
                with load.lock:
                    if isinstance(exc, RpcTimeout):
                        load.timed_out.append(exc.data["tx_id"])
                    load.refusals[type(exc).__name__] = load.refusals.get(type(exc).__name__, 0) + 1
                load.stop.wait(RETRY_PAUSE_S)
                continue
            if r.code == "VALID" and r.block_number is not None:
                with load.lock:
                    load.acked.append((r.tx_id, r.block_number, node.name))
            else:  # blind writes cannot conflict: any other code is a finding
                with load.lock:
                    load.errors.append(AssertionError(f"{r.tx_id.hex()} committed as {r.code}"))
    except BaseException as exc:  # reported by the main thread
        with load.lock:
            load.errors.append(exc)
    finally:
        for c in clients.values():
            c.close()


@contextmanager
def running_load(test: CityTest, targets: list[TestNode]) -> Iterator[Load]:
    """Two submitters (council and transport clients) sending through ``targets`` until the block ends."""
    load = Load()
    threads = [
        threading.Thread(
            target=_submitter, args=(load, i, targets, test.identity(org)), name=f"submitter-{i}", daemon=True
        )
        for i, org in enumerate(("council", "transport"))
    ]
    for t in threads:
        t.start()
    try:
        yield load
    finally:
        load.stop.set()
        for t in threads:
            t.join(SUBMIT_WAIT_S + 60)
    assert not any(t.is_alive() for t in threads), "a submitter did not stop"
    assert not load.errors, load.errors
    test.log.info("%d acknowledged, refusals along the way: %s", load.count(), load.refusals)


def wait_acked(load: Load, count: int, what: str, timeout_s: float = 120.0) -> None:
    wait_until(lambda: load.count() >= count or load.errors, timeout_s=timeout_s, what=what)
    assert not load.errors, load.errors


def check_acked(test: CityTest, load: Load, nodes: list[TestNode]) -> None:
    """Every acknowledged transaction is VALID in the block it was acknowledged in, on every node."""
    t0 = time.monotonic()
    for node in nodes:
        for tx_id, block, via in load.acked:
            tx = node.rpc.chain_getTransaction(tx_id="0x" + tx_id.hex())
            assert (tx["block"], tx["code"]) == (block, "VALID"), (
                f"{node.name}: tx {tx_id.hex()} acknowledged by {via} in block {block} is {tx}"
            )
    test.log.info(
        "%d acknowledged transactions present on %s (%.1fs)",
        len(load.acked),
        ", ".join(n.name for n in nodes),
        time.monotonic() - t0,
    )


def log_timed_out(test: CityTest, load: Load, node: TestNode) -> None:
    for tx_id in load.timed_out:  # lost with a dead leader, or committed later: both are allowed
        test.log.info("timed-out %s: %s", tx_id[:18], node.rpc.tx_status(tx_id=tx_id)["status"])


class LeaderFailoverTest(CityTest):
    def run_test(self) -> None:
        leader = self.leader()
        followers = [n for n in self.nodes if n is not leader]
        self.log.info("leader %s; load goes through %s", leader.name, ", ".join(n.name for n in followers))
        with running_load(self, followers) as load:
            wait_acked(load, ACKED_BEFORE_KILL, "load before the kill")
            before = load.count()
            self.log.info("%d transactions acknowledged; SIGKILL %s", before, leader.name)
            leader.kill()
            new_leader = self.leader(among=followers, timeout_s=90)
            assert new_leader is not leader
            self.log.info("new leader %s", new_leader.name)
            wait_acked(load, before + ACKED_AFTER_KILL, "transactions committed under the new leader")

        survivors = followers
        height, tip = self.sync_blocks(survivors)
        self.log.info("survivors agree on height %d, tip %s", height, tip)
        self.assert_same_chain(survivors)
        check_acked(self, load, survivors)
        log_timed_out(self, load, survivors[0])

        self.log.info("restart %s", leader.name)
        leader.start()
        leader.wait_healthy()
        height, tip = self.sync_blocks(timeout_s=90)
        self.log.info("all three at height %d, tip %s", height, tip)
        self.assert_same_chain()
        check_acked(self, load, [leader])

        self.log.info("the restarted node serves new transactions once it knows the leader (%s)", self.leader().name)
        with leader.client(self.identity("health")) as c:
            r = c.invoke("assets", "put", "after-restart", b"\x01", timeout_s=60)
        assert r.valid and r.block_number is not None and r.block_number >= height
        self.sync_blocks()
        self.assert_same_chain()


class CrashRecoveryTest(CityTest):
    """Every node SIGKILLed under load (a power cut): the network restarts on its own, nothing acknowledged is lost."""

    def run_test(self) -> None:
        with running_load(self, self.nodes) as load:
            wait_acked(load, ACKED_BEFORE_KILL, "load before the crash")
            self.log.info("%d transactions acknowledged; SIGKILL every node", load.count())
            for n in self.nodes:
                n.kill()
        self.log.info("restart every node")
        self.start_nodes()
        height, tip = self.sync_blocks(timeout_s=90)
        self.log.info("all three at height %d, tip %s", height, tip)
        self.assert_same_chain()
        check_acked(self, load, self.nodes)
        log_timed_out(self, load, self.nodes[0])
        self.log.info("the network takes new transactions")
        with self.nodes[1].client(self.identity("transport")) as c:
            r = c.invoke("assets", "put", "after-crash", b"\x02", timeout_s=60)
        assert r.valid and r.block_number is not None and r.block_number >= height
        self.sync_blocks()
        self.assert_same_chain()


def test_sigkill_leader_under_load(tmp_path: Path) -> None:
    LeaderFailoverTest().main(tmp_path)


def test_sigkill_every_node_under_load(tmp_path: Path) -> None:
    CrashRecoveryTest().main(tmp_path)
