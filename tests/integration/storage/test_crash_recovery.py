"""Crash recovery: SIGKILL a committing process at random moments; every acknowledged block survives.

A worker process commits blocks with synchronous write batches and prints each block number after
``commit`` returns. The test kills it with SIGKILL after a delay drawn from a seeded RNG, reopens
the database, and checks that the ledger opens (recovery), that the new part of the chain verifies
(hash links, Merkle roots, indices, orderer signatures), that every printed block is there, and that
the state written by the tip block is in place. It repeats this RUNS times on the same database.
"""

from __future__ import annotations

import hashlib
import os
import random
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crypto.signing import PrivateKey, PublicKey
from storage.kv import Database
from storage.ledger import ChannelLedger

WORKER = Path(__file__).with_name("crash_worker.py")
RUNS = 50
SEED = 1729
MAX_KILL_DELAY_S = 0.15  # long enough to commit several blocks, short enough to keep runs brief
MAX_BLOCKS_PER_RUN = 400  # a run that is never killed still ends
READY_TIMEOUT_S = 20.0

ORDERER_KEY = PrivateKey.from_scalar(hashlib.sha256(b"orderer").digest()).public


def resolver(cert: bytes) -> PublicKey | None:
    return ORDERER_KEY if cert == b"orderer-cert" else None


def read_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout_s):
            raise TimeoutError("worker did not report in time")
        return proc.stdout.readline()
    finally:
        sel.close()


@pytest.mark.slow
def test_sigkill_during_commits_loses_no_acknowledged_block(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    db_dir = tmp_path / "ledger"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    verified = 0
    killed_mid_run = 0
    err_path = tmp_path / "worker.err"
    for run in range(RUNS):
        with open(err_path, "w") as err_file:
            proc = subprocess.Popen(
                [sys.executable, str(WORKER), str(db_dir), str(SEED * 1000 + run), str(MAX_BLOCKS_PER_RUN)],
                stdout=subprocess.PIPE,
                stderr=err_file,
                text=True,
                env=env,
            )
        try:
            ready = read_line(proc, READY_TIMEOUT_S).split()
            assert ready[:1] == ["ready"], f"run {run}: worker said {ready!r}"
            start_height = int(ready[1])
            time.sleep(rng.uniform(0.0, MAX_KILL_DELAY_S))  # the random kill moment is the point here
            if proc.poll() is None:
                killed_mid_run += 1
            proc.send_signal(signal.SIGKILL)
            assert proc.stdout is not None
            out = proc.stdout.read()  # through the same buffer readline() used; EOF once it died
            proc.wait(timeout=READY_TIMEOUT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        acked = [int(x) for x in out.split()]
        assert proc.returncode in (-signal.SIGKILL, 0), f"run {run}: worker failed: {err_path.read_text()}"
        assert acked == list(range(start_height, start_height + len(acked))), f"run {run}: {acked}"
        with Database(db_dir, create=False) as db:
            ledger = ChannelLedger(db, "crash")  # recovery runs here
            if acked:
                assert ledger.height >= acked[-1] + 1, f"run {run}: acknowledged block {acked[-1]} lost"
            assert ledger.height >= start_height
            assert ledger.height <= start_height + len(acked) + 1  # at most the one in flight
            ledger.verify_chain(resolver, start=max(0, verified - 1))
            verified = ledger.height
            if ledger.height:
                last = ledger.get_state("kv", "last")
                assert last is not None and last[0] == str(ledger.height - 1).encode()
                assert last[1] == (ledger.height - 1, 0)
    assert killed_mid_run >= RUNS // 2  # most kills landed while the worker was committing
    with Database(db_dir, create=False) as db:
        ChannelLedger(db, "crash").verify_chain(resolver)
