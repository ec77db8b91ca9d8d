"""Process faults on the namespace test bed: kill -9 loops, a paused leader, a wiped data directory.

``SECPRIVNODE_FAULT_ROUNDS`` sets the kill loop's rounds (a quick 3 in ``scripts/test``; ``scripts/faults
--rounds 50`` for the long run). Every scenario ends with the history checker over the stopped
nodes' ledgers.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
from framework import wait_until
from testbed.cluster import Testbed

pytestmark = [pytest.mark.functional, pytest.mark.usefixtures("netns_ok")]

# Kill-loop rounds: quick in CI, many in scripts/faults.
ROUNDS = int(os.environ.get("SECPRIVNODE_FAULT_ROUNDS", "3"))
# Acknowledged operations wanted before the first fault and in every round while a node is down:
# proof that the survivors keep committing.
ACKED_BEFORE = 12
ACKED_PER_ROUND = 4
# Seconds a node is paused: well past the election timeout (1 s), so the others elect without it.
PAUSE_S = 4.0
# Seconds watched after the paused leader resumes: its stale term must not start an election.
RESUME_WATCH_S = 3.0
SEED = int(os.environ.get("SECPRIVNODE_TEST_SEED", "1"))


def test_kill_loop_under_load(tmp_path: Path) -> None:
    """kill -9 a random node each round (the leader every third round); nothing acknowledged is lost."""
    rng = random.Random(SEED)
    history = tmp_path / "history.jsonl"
    with Testbed(tmp_path) as bed:
        load = bed.start_workload(history, seed=SEED)
        bed.wait_acked(history, ACKED_BEFORE)
        for r in range(ROUNDS):
            victim = bed.leader() if r % 3 == 0 else rng.choice(bed.nodes)
            bed.log.info("round %d/%d: kill -9 %s%s", r + 1, ROUNDS, victim.name,
                         " (the leader)" if r % 3 == 0 else "")  # fmt: skip
            bed.kill(victim.name)
            survivors = [n.name for n in bed.nodes if n is not victim]
            if r % 3 == 0:
                bed.new_leader(survivors, victim.name)
            bed.wait_acked(history, ACKED_PER_ROUND, timeout_s=90)
            bed.restart(victim.name)
        bed.wait_acked(history, ACKED_PER_ROUND, timeout_s=90)
        bed.finish(load, history)


def test_paused_leader_does_not_disturb_and_catches_up(tmp_path: Path) -> None:
    history = tmp_path / "history.jsonl"
    with Testbed(tmp_path) as bed:
        # Clients of the paused node wait out their timeout; the others must keep committing.
        load = bed.start_workload(history, clients=4)
        bed.wait_acked(history, ACKED_BEFORE)
        old = bed.leader()
        others = [n.name for n in bed.nodes if n is not old]
        bed.pause(old.name)
        paused_at = time.monotonic()
        new = bed.new_leader(others, old.name)
        bed.log.info("while %s is stopped, %s leads", old.name, new.name)
        bed.wait_acked(history, ACKED_PER_ROUND, timeout_s=90)
        time.sleep(max(0.0, PAUSE_S - (time.monotonic() - paused_at)))  # the pause's length is the fault
        term = new.rpc.raft_status()["term"]
        bed.resume(old.name)
        # Pre-vote and check-quorum: the resumed node learns the new term instead of forcing one.
        bed.stalled(old.name, RESUME_WATCH_S)
        after = new.rpc.raft_status()
        assert (after["leader"], after["term"]) == (new.name, term), f"resumed {old.name} disturbed: {after}"
        wait_until(lambda: old.rpc.raft_status().get("leader") == new.name, 30, what=f"{old.name} follows {new.name}")
        bed.sync_blocks(timeout_s=60)
        bed.wait_acked(history, ACKED_PER_ROUND, timeout_s=90)
        bed.finish(load, history)


def test_wiped_data_dir_catches_up(tmp_path: Path) -> None:
    history = tmp_path / "history.jsonl"
    with Testbed(tmp_path) as bed:
        load = bed.start_workload(history, clients=2)
        bed.wait_acked(history, ACKED_BEFORE)
        victim = next(n for n in bed.nodes if n is not bed.leader())
        bed.wipe(victim.name)
        bed.wait_acked(history, ACKED_PER_ROUND, timeout_s=90)
        bed.restart(victim.name)
        bed.log.info("%s restarted with an empty data directory", victim.name)
        bed.sync_blocks(timeout_s=90)
        bed.wait_acked(history, ACKED_PER_ROUND, timeout_s=90)
        bed.finish(load, history)
