"""Clients ride through a leader kill: 10 of 10 invokes in a row, right after SIGKILL of the leader.

Before, ``tx invoke --wait`` to a surviving node failed for 2 of 10 such invokes ("no leader is
known yet"). Now the gateway holds a submission through the election and the SDK (hence the CLI)
resubmits a refused or unanswered proposal with the same transaction id until its timeout: a
leader kill costs latency, not failures, and no transaction commits twice.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from framework import CityTest

pytestmark = pytest.mark.functional

INVOKES = 10
# Per-invoke budget: an election (1-2 s) plus a commit, with room for a loaded CI machine.
INVOKE_TIMEOUT_S = 30.0


class RideThroughTest(CityTest):
    def run_test(self) -> None:
        leader = self.leader()
        target = next(n for n in self.nodes if n is not leader)
        self.log.info("SIGKILL leader %s, then %d invokes in a row through %s", leader.name, INVOKES, target.name)
        leader.kill()
        tx_ids = []
        with target.client(self.identity("council"), timeout_s=INVOKE_TIMEOUT_S) as c:
            for i in range(INVOKES):
                t0 = time.monotonic()
                r = c.invoke("assets", "put", f"ride-{i}", bytes([i]), timeout_s=INVOKE_TIMEOUT_S)
                assert r.valid and r.block_number is not None, f"invoke {i}: {r}"
                tx_ids.append(r.tx_id)
                self.log.info("invoke %d: block %d in %.2fs", i, r.block_number, time.monotonic() - t0)

        self.log.info("restart %s; SIGKILL the new leader; the CLI invokes at once", leader.name)
        leader.start()
        leader.wait_healthy()
        self.sync_blocks()
        second = self.leader()
        survivor = next(n for n in self.nodes if n is not second)
        second.kill()
        for i in range(2):
            proc = self.cli(
                "tx", "invoke", "--dir", str(self.dir), "--node", survivor.name,
                "--identity", "transport/client1", "--contract", "assets", "--fn", "put",
                "--args", json.dumps([f"ride-cli-{i}", "0x01"]),
            )  # fmt: skip
            assert proc.returncode == 0, f"CLI invoke {i} failed:\n{proc.stdout}\n{proc.stderr}"

        second.start()
        second.wait_healthy()
        self.sync_blocks(timeout_s=90)
        self.assert_same_chain()
        for tx_id in tx_ids:  # each once, VALID (a resubmission never commits twice)
            tx = survivor.rpc.chain_getTransaction(tx_id="0x" + tx_id.hex())
            assert tx["code"] == "VALID", tx
        self.log.info("%d + 2 invokes committed, each once", INVOKES)


def test_ten_of_ten_invokes_right_after_killing_the_leader(tmp_path: Path) -> None:
    RideThroughTest().main(tmp_path)
