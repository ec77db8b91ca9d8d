"""Three orderer processes (the benchmark's) over the real mutual-TLS transport and fsync'd
LevelDB Raft logs: submissions at the leader and at a follower are ordered identically."""

from __future__ import annotations

import asyncio
import importlib.util
import random
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from crypto.msp import Role
from p2p.transport import Transport

BENCH = Path(__file__).resolve().parents[3] / "benchmarks" / "ordering_bench.py"


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ordering_bench", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["ordering_bench"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.functional
async def test_three_processes_order_identically(tmp_path: Path) -> None:
    bench = _load_bench()
    from _orderer_proc import STATS_KIND, SUBMIT_KIND

    pki = bench.make_pki(tmp_path)
    cluster = bench.Cluster(pki)
    ident = pki.msp.validate(pki.client_cert_pem, now=int(time.time()), roles={Role.NODE})
    client = Transport(
        identity=ident,
        key=pki.client_key,
        cert_pem=pki.client_cert_pem,
        msp_provider=lambda: pki.msp,
        network_id="bench",
        channels=(bench.CHANNEL,),
        rng=random.Random(11),
    )
    try:
        await cluster.start(verify=False, profile=False)
        await client.start()
        for oid, port in cluster.ports.items():
            client.add_peer(oid, f"127.0.0.1:{port}")
        leader = await bench.find_leader(client)
        follower = next(o for o in bench.ORDERERS if o != leader)
        txs = bench.TxSource(200, b"test-creator-000", None, seed=5).take(1010)
        accepted, _, errors = await client.request(leader, SUBMIT_KIND, txs[:1000], timeout_s=30)
        assert (accepted, errors) == (1000, ())
        accepted, _, errors = await client.request(follower, SUBMIT_KIND, txs[1000:], timeout_s=30)
        assert (accepted, errors) == (10, ())  # forwarded to the leader
        accepted, _, errors = await client.request(leader, SUBMIT_KIND, txs[:3], timeout_s=30)
        assert accepted == 0 and [r for _, r in errors] == ["duplicate"] * 3

        async def views() -> list[dict[str, Any]]:
            return [await client.request(o, STATS_KIND, True, timeout_s=10) for o in bench.ORDERERS]

        deadline = time.monotonic() + 30
        while True:
            v = await views()
            if all(s["delivered_txs"] == 1010 for s in v) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert [s["delivered_txs"] for s in v] == [1010] * 3
        assert len({(s["height"], s["tip"]) for s in v}) == 1  # same chain on every node
        assert sum(s["blocks_skipped"] for s in v) == 0
    finally:
        await client.stop()
        await cluster.stop()
    assert [p.returncode for p in cluster.procs.values()] == [0, 0, 0]
