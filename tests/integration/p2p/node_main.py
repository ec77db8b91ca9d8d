"""A test node process: the real TLS transport and gossip over a LevelDB ledger.

Run by ``test_multiprocess.py`` (never by the package). Usage::

    python node_main.py --dir D --name N --port P --peers a=127.0.0.1:1,b=... [--produce]

``D`` holds ``<name>.cert.pem`` / ``<name>.key.pem`` per node, ``orgs/<org>.pem`` CA certs and
``orderer.cert.pem`` / ``orderer.key.pem``. The node writes ``<name>.status.json`` (height, tip)
every 50 ms. A producer reads the target height from ``target`` and orders signed blocks up to it,
storing and publishing each one. SIGTERM stops the node in order and closes the database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from crypto.msp import MSP, Identity, OrgMSP, Role
from crypto.signing import PrivateKey, PublicKey
from p2p.clock import SystemClock
from p2p.gossip.common import GossipConfig
from p2p.gossip.core import GossipCore
from p2p.gossip.service import GossipService
from p2p.transport import Transport, TransportLimits
from p2p.verify import VerifiedBlock, verify_block
from storage.kv import Database
from storage.ledger import ChannelLedger
from storage.model import GENESIS_PREVIOUS_HASH, ValidationCode
from storage.testing import ChainBuilder, Signer, make_tx

CH = "city"
NOW = 1_767_225_600


class FixedWallClock(SystemClock):
    """The loop's monotonic clock, with the calendar held at the certificates' NOW."""

    def now_ms(self) -> int:
        return NOW * 1000


class LedgerBlocks:
    """The BlockStore adapter the node would write: gossip delivers, the ledger commits."""

    def __init__(self, ledger: ChannelLedger) -> None:
        self.ledger = ledger

    @property
    def height(self) -> int:
        return self.ledger.height

    @property
    def tip_hash(self) -> bytes | None:
        return self.ledger.tip_hash

    def get_block_bytes(self, number: int) -> bytes:
        return self.ledger.get_block_bytes(number)

    def deliver(self, blocks: Sequence[VerifiedBlock]) -> None:
        for vb in blocks:
            self.ledger.commit(vb.to_block(), [ValidationCode.VALID] * vb.tx_count, block_bytes=vb.data)


def load_msp(d: Path) -> MSP:
    return MSP(OrgMSP.from_pem(p.read_bytes()) for p in sorted((d / "orgs").glob("*.pem")))


async def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True, type=Path)
    ap.add_argument("--name", required=True)
    ap.add_argument("--port", required=True, type=int)
    ap.add_argument("--peers", default="")
    ap.add_argument("--produce", action="store_true")
    args = ap.parse_args(argv)
    d: Path = args.dir
    cert_pem = (d / f"{args.name}.cert.pem").read_bytes()
    key = PrivateKey.from_pem((d / f"{args.name}.key.pem").read_bytes())
    ident = Identity.from_cert(cert_pem)
    msp = load_msp(d)
    orderer_pem = (d / "orderer.cert.pem").read_bytes()
    orderer_ident = msp.validate(orderer_pem, now=NOW, roles={Role.NODE})

    def resolve(channel: str, cert: bytes) -> PublicKey | None:
        return orderer_ident.public_key if channel == CH and cert == orderer_ident.cert_der else None

    db = Database(d / f"{args.name}.db")
    ledger = ChannelLedger(db, CH)
    store = LedgerBlocks(ledger)
    transport = Transport(
        identity=ident,
        key=key,
        cert_pem=cert_pem,
        msp_provider=lambda: msp,
        network_id="city-test",
        channels=(CH,),
        listen_port=args.port,
        rng=random.Random(args.port),
        clock=FixedWallClock(),
        limits=TransportLimits(dial_backoff_initial_s=0.05, dial_backoff_max_s=0.5, ping_interval_s=1.0),
    )
    core = GossipCore(
        node_id=ident.name,
        org=ident.org,
        address=f"127.0.0.1:{args.port}",
        cert_der=ident.cert_der,
        key=key,
        incarnation=int.from_bytes(os.urandom(4), "big"),
        stores={CH: store},
        resolve_key=resolve,
        validate_cert=lambda cert, now_s: msp.validate(cert, now=NOW, roles={Role.NODE}),
        rng=random.Random(args.port + 1),
        config=GossipConfig(anti_entropy_interval_ms=200, state_request_timeout_ms=2000),
    )
    service = GossipService(transport, core, clock=SystemClock(), tick_interval_s=0.02)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await transport.start()
    await service.start()
    for item in filter(None, args.peers.split(",")):
        name, addr = item.split("=", 1)
        transport.add_peer(name, addr)
    status = d / f"{args.name}.status.json"
    builder = None
    if args.produce:
        orderer = Signer(PrivateKey.from_pem((d / "orderer.key.pem").read_bytes()), orderer_ident.cert_der)
        builder = ChainBuilder(CH, orderer, ledger.height, ledger.tip_hash or GENESIS_PREVIOUS_HASH)
    rng = random.Random(7)
    creator = Signer.generate(rng)
    try:
        while not stop.is_set():
            if builder is not None:
                target_file = d / "target"
                target = int(target_file.read_text()) if target_file.exists() else 0
                for _ in range(20):  # a burst, then let the loop breathe
                    if ledger.height >= target:
                        break
                    txs = [make_tx(CH, creator, [], rng, writes=[(f"k{i}", rng.randbytes(32))]) for i in range(3)]
                    block = builder.block(txs, timestamp_ms=NOW * 1000)
                    data = block.encode()
                    vb = verify_block(
                        data,
                        channel=CH,
                        number=ledger.height,
                        previous_hash=ledger.tip_hash or GENESIS_PREVIOUS_HASH,
                        resolve_key=resolve,
                    )
                    store.deliver([vb])
                    service.publish_block(CH, vb.number, data)
            tmp = status.with_suffix(".tmp")
            tip = ledger.tip_hash.hex() if ledger.tip_hash else ""
            delivered = core.channels[CH].delivered  # blocks this process got from gossip
            info = {"height": ledger.height, "tip": tip, "peers": transport.connected_peers(), "delivered": delivered}
            tmp.write_text(json.dumps(info))
            os.replace(tmp, status)
            try:
                await asyncio.wait_for(stop.wait(), 0.05)
            except TimeoutError:
                pass
    finally:
        await service.stop()
        await transport.stop()
        db.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(main(sys.argv[1:]))
