"""Disk full on one node (its data directory is a small tmpfs, filled to the last byte).

What an operator must see: ``/healthz`` failing its ``disk`` check while the node is idle; on the
first write the database refuses, one clear log line and the node's exit with code 74 (before
this test, the node's commit loop died silently, the node stayed "healthy" and stuck, and a write
retried on the same handle later made LevelDB refuse to reopen: "Corruption: checksum mismatch").
The others carry on; once space returns the restarted node catches up, and the history checker
(``ledger verify`` included) finds nothing lost or corrupt.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from framework import wait_until
from testbed.cluster import Testbed

pytestmark = [pytest.mark.functional, pytest.mark.usefixtures("netns_ok")]

ACKED_BEFORE = 12
ACKED_WHILE_FULL = 8
ACKED_AFTER = 4
EXIT_STORAGE_FAILED = 74  # secprivnode.node.EXIT_STORAGE_FAILED (EX_IOERR)


def test_disk_full_on_one_node(tmp_path: Path) -> None:
    history = tmp_path / "history.jsonl"
    with Testbed(tmp_path, disk_nodes=("council-node1", "transport-node1", "health-node1")) as bed:
        leader = bed.leader()
        victim = next(n for n in bed.nodes if n is not leader)
        others = [n.name for n in bed.nodes if n is not victim]
        bed.fill_disk(victim.name)

        def disk_check_fails() -> dict[str, object] | None:
            status, body = victim.ops_get("/healthz")
            doc = json.loads(body)
            return doc if status == 503 and "disk" in doc["failing"] else None

        doc = wait_until(disk_check_fails, 30, what=f"{victim.name} /healthz failing its disk check")
        bed.log.info("%s /healthz: %s", victim.name, doc["checks"]["disk"])

        # Clients of the stopped node retry it until their timeout; the others must keep committing.
        load = bed.start_workload(history, clients=4)
        code = victim.wait_exit(timeout_s=60)
        assert code == EXIT_STORAGE_FAILED, f"{victim.name} exited with {code}:\n{victim.log_tail()}"
        line = next(
            (json.loads(x) for x in victim.spec.log_file.read_text().splitlines() if "refused a write" in x), None
        )
        assert line is not None and line["level"] == "critical" and "No space left on device" in line["msg"], line
        bed.log.info("%s stopped (exit %d): %s", victim.name, code, line["msg"][:160])

        bed.wait_acked(history, ACKED_WHILE_FULL, timeout_s=90)
        bed.log.info("the others carry on: %s", bed.heights())

        bed.free_disk(victim.name)
        bed.restart(victim.name)
        bed.sync_blocks(timeout_s=90)
        bed.log.info("%s caught up after space returned", victim.name)
        assert set(others) <= set(bed.heights())
        bed.wait_acked(history, ACKED_AFTER, timeout_s=90)
        bed.finish(load, history)
