"""Partitions on the namespace test bed: the leader cut off from the majority, one-way links.

Each test runs a city network with one node per namespace and the clients in a namespace of their
own, injects the fault under load, heals, and hands the recorded history and the stopped nodes'
ledgers to the checker (``testbed.checker``): nothing acknowledged lost, one chain, replay equal
to state, no lost update.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest
from framework import wait_until
from testbed.checker import check
from testbed.cluster import Testbed

pytestmark = [pytest.mark.functional, pytest.mark.usefixtures("netns_ok")]

# Acknowledged operations wanted before the fault (the creates of the accounts and some load), and
# during and after it: enough that the fault lands mid-stream and the healed network takes load.
ACKED_BEFORE = 12
ACKED_DURING = 6
# Blocks the majority must commit while the old leader is cut off: proof that it elected a leader
# and orders without the minority.
MAJORITY_BLOCKS = 3
# Flapping partitions: seconds of flapping (scripts/faults sets a minute) and seconds per state.
FLAP_TOTAL_S = float(os.environ.get("SECPRIVNODE_FAULT_FLAP_S", "8"))
FLAP_S = 2.0
SEED = int(os.environ.get("SECPRIVNODE_TEST_SEED", "1"))
# Seconds the minority is watched for a commit it must not make: longer than an election
# timeout (1 s) plus one tick, so a leader that kept committing alone would be seen.
MINORITY_WATCH_S = 3.0


def test_leader_partitioned_from_majority(tmp_path: Path) -> None:
    history = tmp_path / "history.jsonl"
    with Testbed(tmp_path) as bed:
        old = bed.leader()
        majority = [n.name for n in bed.nodes if n is not old]
        load = bed.start_workload(history)
        bed.wait_acked(history, ACKED_BEFORE)
        bed.log.info("partition: %s | %s", old.name, " ".join(majority))
        bed.net.partition([old.name], majority)
        new = bed.new_leader(majority, old.name)
        bed.log.info("majority elected %s", new.name)
        bed.wait_commits(majority, MAJORITY_BLOCKS)
        bed.wait_acked(history, ACKED_DURING)
        # The old leader has lost its quorum: it must not commit (it may still have the blocks the
        # majority committed before the cut reached it; from here its height stays put).
        wait_until(lambda: old.rpc.raft_status().get("leader") != old.name, 10, what="old leader steps down")
        assert bed.stalled(old.name, MINORITY_WATCH_S), f"{old.name} kept committing without a quorum"
        bed.net.heal()
        bed.log.info("healed; %s must converge", old.name)
        bed.sync_blocks(timeout_s=60)
        bed.wait_acked(history, ACKED_DURING)
        bed.finish(load, history)


def test_one_way_partition_converges(tmp_path: Path) -> None:
    """A node that hears the others but cannot reach them: the cluster commits; it converges after heal."""
    history = tmp_path / "history.jsonl"
    with Testbed(tmp_path) as bed:
        leader = bed.leader()
        follower = next(n for n in bed.nodes if n is not leader)
        load = bed.start_workload(history, clients=2)
        bed.wait_acked(history, ACKED_BEFORE)
        for other in bed.nodes:
            if other is not follower:
                bed.net.block(follower.name, other.name)
        t0 = time.monotonic()
        bed.wait_commits([leader.name], MAJORITY_BLOCKS, timeout_s=60)
        bed.log.info("%d blocks committed in %.1fs with %s unable to send", MAJORITY_BLOCKS,
                     time.monotonic() - t0, follower.name)  # fmt: skip
        bed.wait_acked(history, ACKED_DURING)
        bed.net.heal()
        bed.sync_blocks(timeout_s=60)
        bed.finish(load, history)
        _checker_catches_doctored_history(bed, history)


def _checker_catches_doctored_history(bed: Testbed, history: Path) -> None:
    """The same ledgers against a history that lies: the checker must name each lie."""
    ops = [json.loads(line) for line in history.read_text().splitlines()]
    acked = [r for r in ops if r["type"] == "ok"]
    lie = history.with_name("doctored.jsonl")
    lines = history.read_text().splitlines()
    # 1: an acknowledged transaction that no node has; 2: a committed one reported as refused;
    # 3: an acknowledgement at the wrong block.
    lines.append(json.dumps({"type": "invoke", "op": 10**6, "process": 9, "f": "write", "key": "w-0", "value": "",
                             "tx_id": "0x" + "ab" * 32, "node": "x", "time_ms": 0}))  # fmt: skip
    lines.append(json.dumps({"type": "ok", "op": 10**6, "tx_id": "0x" + "ab" * 32, "block": 1, "index": 0,
                             "time_ms": 1}))  # fmt: skip
    lines.append(json.dumps({**acked[0], "type": "fail", "error": "doctored", "code": None}))
    lines.append(json.dumps({**acked[1], "block": acked[1]["block"] + 1}))
    lie.write_text("\n".join(lines) + "\n")
    report = check(lie, {n.name: n.spec.dir / "data" for n in bed.nodes}, bed.channel)
    assert not report.ok
    lost = report.findings["every acknowledged transaction committed once, where the client was told"]
    assert sum("0x" + "ab" * 32 in f for f in lost) == len(bed.nodes), lost
    assert sum(acked[1]["tx_id"] in f for f in lost) == len(bed.nodes), lost
    trace = report.findings["failed requests left no trace"]
    assert len(trace) == len(bed.nodes) and acked[0]["tx_id"] in trace[0], trace


def test_flapping_partitions_under_load(tmp_path: Path) -> None:
    """A random split (or a one-way cut) every FLAP_S seconds, healed in between, under load."""
    rng = random.Random(SEED)
    history = tmp_path / "history.jsonl"
    with Testbed(tmp_path) as bed:
        names = [n.name for n in bed.nodes]
        load = bed.start_workload(history, clients=3, seed=SEED)
        bed.wait_acked(history, ACKED_BEFORE)
        end = time.monotonic() + FLAP_TOTAL_S
        flaps = 0
        while time.monotonic() < end:
            alone = rng.choice(names)
            rest = [n for n in names if n != alone]
            one_way = rng.random() < 0.3
            bed.log.info("flap %d: %s %s %s", flaps + 1, alone, "-/->" if one_way else "|", " ".join(rest))
            bed.net.partition([alone], rest, one_way=one_way)
            time.sleep(FLAP_S)  # the fault's duration is the point: nothing to wait for
            bed.net.heal()
            time.sleep(FLAP_S / 2)
            flaps += 1
        bed.sync_blocks(timeout_s=90)
        bed.wait_acked(history, ACKED_DURING, timeout_s=90)
        bed.finish(load, history)
