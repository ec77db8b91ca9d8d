"""A channel stops committing for good when its stored data fails a check.

The channel runs on a real LevelDB ledger and an in-memory transport; the corruption is written
through the storage layer's own key layout (a state entry cut short, as a torn or bit-rotten
write would leave it), and the next block that reads that key must halt the commit loop: nothing
is written past it, new submissions and waits are refused with a clear error, and the health
checks name the failing ledger.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from pipeline_kit import CHANNEL, Chain

from crypto.batch import BatchVerifier
from p2p.memory import MemoryNetwork, MemoryTransport
from secprivnode import wire
from secprivnode.api import ServiceError
from secprivnode.channel import ChannelRuntime
from secprivnode.clock import SystemClock
from secprivnode.config import ChannelSpec, IdentitySection, NodeConfig, NodeSection
from secprivnode.contracts.assets import AssetsContract
from secprivnode.contracts.config_contract import ConfigContract
from secprivnode.contracts.runtime import ContractRegistry
from secprivnode.gateway import Gateway
from secprivnode.metrics import NodeMetrics
from secprivnode.ops import create_ops_app
from secprivnode.rpc.server import run_rpc_server
from secprivnode.service import LocalNodeService
from storage import keys
from storage.kv import Database

NODE = "health/health-node1"  # not an orderer of the test channel: no Raft group starts


async def wait_until(pred: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not pred():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


@dataclass
class Setup:
    chain: Chain  # the source of the blocks (the rest of the network, in effect)
    db: Database
    ch: ChannelRuntime
    service: LocalNodeService


@pytest.fixture
async def setup(chain: Chain, tmp_path: Path) -> AsyncIterator[Setup]:
    member = chain.pki[NODE]
    (tmp_path / "node").mkdir()  # the data directory, whose free space the health check reads
    cfg = NodeConfig(
        node=NodeSection(member.identity.name, member.identity.org, tmp_path / "node", roles=("committer",)),
        identity=IdentitySection(tmp_path / "unused.pem", tmp_path / "unused.key"),
        channels=(ChannelSpec(CHANNEL, tmp_path / "unused.block"),),
    )
    transport = MemoryTransport(MemoryNetwork(), member.identity.name, member.identity.org, [CHANNEL])
    await transport.start()
    db = Database(tmp_path / "node-ledger")
    verifier = BatchVerifier(workers=1, inline_max=1 << 20)
    ch = ChannelRuntime(
        name=CHANNEL,
        db=db,
        genesis=chain.ledger.get_block(0),
        config=cfg,
        identity=member.identity,
        key=member.key,
        transport=transport,
        contracts=ContractRegistry([AssetsContract(), ConfigContract()]),
        metrics=NodeMetrics(),
        verifier=verifier,
        rng=random.Random(7),
        clock=SystemClock(),
    )
    channels = {CHANNEL: ch}
    gateway = Gateway(member.identity.name, member.identity.org, channels, transport)
    service = LocalNodeService(cfg, channels, gateway, transport, lambda: (member.cert, member.key))
    await ch.start(publish=None)
    try:
        yield Setup(chain, db, ch, service)
    finally:
        await ch.stop()
        await transport.stop()
        verifier.close()
        db.close()


def offer(s: Setup, number: int) -> None:
    header = s.chain.ledger.get_header(number)
    s.ch.offer_block(number, s.chain.ledger.get_block_bytes(number), header.hash(), publish=False)


async def test_corrupt_state_halts_the_commit_loop(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    s = setup
    chain, ch = s.chain, s.ch
    chain.commit([chain.tx("council/alice", "create", "car", "council", {"plate": "SC-1"})])
    transfer = chain.tx("council/alice", "transfer", "car", "transport")  # reads "car"
    chain.commit([transfer])
    chain.commit([chain.tx("council/alice", "create", "bus", "transport")])
    offer(s, 1)
    await wait_until(lambda: ch.ledger.height == 2, what="block 1 committed")
    assert (await s.service.health())[f"ledger:{CHANNEL}"] == (True, "height 2")

    # A state entry cut short: its version no longer decodes (CorruptionError on read).
    cp = keys.channel_prefix(CHANNEL)
    s.db.raw.put(keys.state_key(cp, "assets", "asset/car"), b"\x00\x01")

    awaited = ch.wait_for(b"\x42" * 32)  # a transaction a client waits for
    offer(s, 2)
    offer(s, 3)
    await wait_until(lambda: ch.halted is not None, what="the channel to halt")
    assert "block 2" in ch.halted and "CorruptionError" in ch.halted
    assert any(r.levelno == logging.CRITICAL and "commit halted at block 2" in r.getMessage() for r in caplog.records)
    with pytest.raises(ServiceError, match="stopped committing"):
        await awaited

    # Nothing is written past the corruption, whatever else arrives.
    offer(s, 2)
    offer(s, 3)
    await asyncio.sleep(0.05)
    assert ch.ledger.height == 2

    ok, detail = (await s.service.health())[f"ledger:{CHANNEL}"]
    assert not ok and "commit halted at block 2" in detail
    runner, port = await run_rpc_server(create_ops_app(s.service, NodeMetrics().registry), "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as resp:
            assert resp.status == 503
            body = await resp.json()
    finally:
        await runner.cleanup()
    assert f"ledger:{CHANNEL}" in body["failing"]
    assert "commit halted at block 2" in body["checks"][f"ledger:{CHANNEL}"]["detail"]

    with pytest.raises(ServiceError, match="stopped committing") as exc_info:
        ch.wait_for(b"\x43" * 32)
    assert exc_info.value.data["reason"] == "channel_halted"
    proposal, sig = chain.propose("council/alice", "assets", "create", "tram", "transport")
    with pytest.raises(ServiceError, match="stopped committing"):
        await s.service.tx_submit(proposal, sig)
    refused = await ch.on_submit("council-node1", chain.ledger.get_block_bytes(3))
    assert list(refused[:2]) == ["err", wire.ErrorCode.CHANNEL_HALTED]


async def test_broken_ledger_halts_the_commit_loop(setup: Setup) -> None:
    """Any failure of the ledger under the commit loop halts it, rather than ending its task
    silently or going on to the next block."""
    s = setup
    chain, ch = s.chain, s.ch
    chain.commit([chain.tx("council/alice", "create", "car", "council")])
    chain.commit([chain.tx("council/alice", "create", "bus", "transport")])
    offer(s, 1)
    await wait_until(lambda: ch.ledger.height == 2, what="block 1 committed")
    s.db.close()  # every later LevelDB read and write fails
    offer(s, 2)
    await wait_until(lambda: ch.halted is not None, what="the channel to halt")
    assert "block 2" in ch.halted and "Database is closed" in ch.halted
    assert ch.ledger.height == 2
