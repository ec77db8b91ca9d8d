"""Graceful shutdown and restart of a whole network.

A leader stopped alone with SIGTERM hands its leadership over and exits 0; the others carry on.
``secprivnode network down`` sends SIGTERM to every node; each must drain and exit with code 0
within the operator's timeout (``secprivnode.network.DOWN_TIMEOUT_S``), leaving a ledger that the
restarted network resumes from: same height, same tip, and new transactions commit on top.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from framework import CityTest

from secprivnode.network import DOWN_TIMEOUT_S

pytestmark = pytest.mark.functional

# Transactions committed before the shutdown (a few blocks' worth with the 200 ms batch timeout).
TXS_BEFORE = 6


class GracefulShutdownTest(CityTest):
    def run_test(self) -> None:
        self.log.info("commit %d transactions", TXS_BEFORE)
        acked = []
        for i in range(TXS_BEFORE):
            node = self.nodes[i % len(self.nodes)]
            with node.client(self.identity(node.org)) as c:
                r = c.invoke("assets", "create", f"pole-{i}", node.org, {"n": i})
            assert r.valid, r
            acked.append(r)
        self.sync_blocks()

        leader = self.leader()
        others = [n for n in self.nodes if n is not leader]
        self.log.info("SIGTERM the leader %s alone: it hands leadership over and exits 0", leader.name)
        t0 = time.monotonic()
        assert leader.stop() == 0
        successor = self.leader(among=others)
        self.log.info("%s stopped, %s leads (%.1fs)", leader.name, successor.name, time.monotonic() - t0)
        with others[0].client(self.identity(others[0].org)) as c:
            r = c.invoke("assets", "create", "pole-while-down", others[0].org)
        assert r.valid, r
        acked.append(r)
        leader.start()
        leader.wait_healthy()
        self.leader()  # every node, the restarted one included, follows the same leader
        height, tip = self.sync_blocks()
        self.log.info("height %d, tip %s; network down", height, tip)

        t0 = time.monotonic()
        down = subprocess.Popen(
            [sys.executable, "-m", "secprivnode", "network", "down", "--dir", str(self.dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # The CLI stops the nodes one after the other; reaping each here lets it see the exit.
            codes = {n.name: n.wait_exit(DOWN_TIMEOUT_S + 10) for n in self.nodes}
            out, err = down.communicate(timeout=60)
        finally:
            if down.poll() is None:
                down.kill()
                down.wait()
        elapsed = time.monotonic() - t0
        self.log.info("exit codes %s after %.1fs; CLI said %r", codes, elapsed, out.strip())
        assert codes == {n.name: 0 for n in self.nodes}, codes
        assert down.returncode == 0, err
        assert f"stopped {len(self.nodes)} node(s)" in out
        for n in self.nodes:
            assert not n.spec.pid_file.exists(), f"{n.name}: stale pid file"
            assert "stopped" in n.log_tail(5), n.log_tail(5)

        self.log.info("restart the network")
        self.start_nodes()
        assert {n.tip() for n in self.nodes} == {(height, tip)}, "a node lost or gained blocks across the restart"
        for node in self.nodes:
            for r in acked:
                tx = node.rpc.chain_getTransaction(tx_id="0x" + r.tx_id.hex())
                assert (tx["block"], tx["code"]) == (r.block_number, "VALID")

        self.log.info("new transactions commit on top")
        with self.nodes[2].client(self.identity("health")) as c:
            r = c.invoke("assets", "transfer", "pole-2", "council")  # pole-2 is health's (created by nodes[2])
            assert r.valid and r.block_number == height, r
            assert c.query("assets", "read", "pole-2")["status"] == 200
        new_height, new_tip = self.sync_blocks()
        assert new_height == height + 1
        self.assert_same_chain()
        self.log.info("height %d, tip %s", new_height, new_tip)


def test_network_down_and_up(tmp_path: Path) -> None:
    GracefulShutdownTest().main(tmp_path)
