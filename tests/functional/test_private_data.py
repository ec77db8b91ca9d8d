"""Private data on a 3-org network: a collection of council and transport.

A contract's private write (the value travels in the transient map) reaches exactly the member
organisations' nodes; health, not a member, never stores a byte of it (its whole data directory,
LevelDB files included, is searched). Transport is down while the data is endorsed and committed:
when it comes back it catches up on blocks, finds the private data missing, and pulls it from
council. After the collection's block-to-live the data is purged on both members.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from framework import CityTest, wait_until

from secprivnode.client import RpcError

pytestmark = pytest.mark.functional

BLOCK_TO_LIVE = 4
SECRET = b"permit 88-17 issued to citizen 4711 (private)"


def _files_hold(root: Path, needle: bytes) -> list[Path]:
    return [f for f in root.rglob("*") if f.is_file() and needle in f.read_bytes()]


class PrivateDataTest(CityTest):
    def private_value(self, node_index: int, key: str) -> bytes | None:
        node = self.nodes[node_index]
        with node.client(self.identity(node.org)) as c:
            try:
                return bytes(c.query("assets", "get_private", "pair", key)["payload"])
            except RpcError as exc:
                if "does not exist" in str(exc):
                    return None
                raise

    def run_test(self) -> None:
        council, transport, health = self.nodes
        self.log.info("define collection assets/pair of council and transport, block-to-live %d", BLOCK_TO_LIVE)
        out = self.cli(
            "channel",
            "define-collection",
            "--dir",
            str(self.dir),
            "--contract",
            "assets",
            "--name",
            "pair",
            "--member",
            "council",
            "--member",
            "transport",
            "--block-to-live",
            str(BLOCK_TO_LIVE),
        )
        assert out.returncode == 0, out.stderr
        self.sync_blocks()

        self.log.info("transport goes down; council writes private data")
        transport.stop()
        with council.client(self.identity("council")) as c:
            r = c.invoke("assets", "put_private", "pair", "permit-1", transient={"value": SECRET})
        assert r.valid, r
        committed_at = r.block_number
        assert self.private_value(0, "permit-1") == SECRET

        self.log.info("health, not a member, can neither read it nor endorse a write to it")
        with health.client(self.identity("health")) as c, pytest.raises(RpcError, match="not a member"):
            c.query("assets", "get_private", "pair", "permit-1")

        self.log.info("transport comes back, catches up and pulls the missing private data")
        transport.start()
        transport.wait_healthy()
        self.sync_blocks()
        wait_until(lambda: self.private_value(1, "permit-1") == SECRET, what="transport pulls the private data")

        self.log.info("the ledger carries only hashes")
        tx = council.rpc.chain_getTransaction(tx_id="0x" + r.tx_id.hex())
        assert SECRET.hex() not in str(tx)

        self.log.info("after %d more blocks the data is purged on both members", BLOCK_TO_LIVE)
        with council.client(self.identity("council")) as c:
            while council.height() <= committed_at + BLOCK_TO_LIVE:
                assert c.invoke("assets", "put", "tick", b"\x00").valid
        self.sync_blocks()
        wait_until(lambda: self.private_value(0, "permit-1") is None, what="purge on council")
        wait_until(lambda: self.private_value(1, "permit-1") is None, what="purge on transport")

        self.log.info("health's data directory never held a byte of it")
        health.stop()
        assert _files_hold(health.spec.dir / "data", SECRET) == []


def test_private_data(tmp_path: Path) -> None:
    PrivateDataTest().main(tmp_path)
