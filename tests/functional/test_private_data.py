"""Private data and blobs on a 3-org network: a collection of council and transport.

A contract's private write (the value travels in the transient map) reaches exactly the member
organisations' nodes; health, not a member, never stores a byte of it (its whole data directory,
LevelDB files included, is searched). Transport is down while the data is endorsed and committed:
when it comes back it catches up on blocks, finds the private data missing, and pulls it from
council. A blob of tens of MB uploaded to council with ``secprivnode blob put`` streams (the
node's resident memory does not grow by its size), reaches transport, and never health; after the
collection's block-to-live the private data and the blob are purged on both members.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
from framework import CityTest, TestNode, wait_until

from secprivnode.client import RpcError

pytestmark = pytest.mark.functional

BLOCK_TO_LIVE = 4
SECRET = b"permit 88-17 issued to citizen 4711 (private)"
BLOB_BYTES = 40 * 1024 * 1024  # tens of MB: the node must stream it, not hold it


def _files_hold(root: Path, needle: bytes) -> list[Path]:
    return [f for f in root.rglob("*") if f.is_file() and needle in f.read_bytes()]


def _rss_bytes(node: TestNode) -> int:
    for line in Path(f"/proc/{node.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _blob_file(node: TestNode, digest: str) -> Path:
    return node.spec.dir / "data" / "blobs" / "objects" / digest[:2] / digest[2:4] / digest


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
        colls = {(c["contract"], c["name"]): c for c in council.rpc.config_get()["config"]["collections"]}
        assert colls[("assets", "pair")]["member_orgs"] == ["council", "transport"]
        assert colls[("assets", "pair")]["block_to_live"] == BLOCK_TO_LIVE

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

        digest, marker = self.blobs(tmp_dir=self.dir)

        self.log.info("after %d more blocks the data is purged on both members", BLOCK_TO_LIVE)
        with council.client(self.identity("council")) as c:
            while council.height() <= committed_at + BLOCK_TO_LIVE:
                assert c.invoke("assets", "put", "tick", b"\x00").valid
        self.sync_blocks()
        wait_until(lambda: self.private_value(0, "permit-1") is None, what="purge on council")
        wait_until(lambda: self.private_value(1, "permit-1") is None, what="purge on transport")
        for n in (council, transport):
            wait_until(lambda n=n: not _blob_file(n, digest).exists(), what=f"blob purged on {n.name}")  # type: ignore[misc]

        self.log.info("health's data directory never held a byte of either")
        health.stop()
        assert _files_hold(health.spec.dir / "data", SECRET) == []
        assert _files_hold(health.spec.dir / "data", marker) == []

    def blobs(self, tmp_dir: Path) -> tuple[str, bytes]:
        council, transport, health = self.nodes
        self.log.info("upload a %d MiB blob of assets/pair to council, streamed", BLOB_BYTES >> 20)
        path = tmp_dir / "scan.bin"
        rng = random.Random(self.seed)
        with open(path, "wb") as f:
            for _ in range(BLOB_BYTES >> 20):
                f.write(rng.randbytes(1 << 20))
        marker = path.read_bytes()[1000:1064]  # 64 random bytes: found only where the blob is
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        before = _rss_bytes(council)
        out = self.cli(
            "blob",
            "put",
            "--dir",
            str(self.dir),
            "--identity",
            "council/client1",
            "--collection",
            "assets/pair",
            "--json",
            str(path),
        )
        assert out.returncode == 0, out.stderr
        answer = json.loads(out.stdout)
        assert (answer["sha256"], answer["size"], answer["created"]) == (digest, BLOB_BYTES, True)
        grown = _rss_bytes(council) - before
        self.log.info("council's resident memory grew by %.1f MiB during the upload", grown / 2**20)
        assert grown < BLOB_BYTES // 2, f"RSS grew by {grown} bytes for a {BLOB_BYTES}-byte blob"

        self.log.info("transport (member) receives it; health (not a member) refuses it")
        wait_until(lambda: _blob_file(transport, digest).exists(), what="blob offered to and pulled by transport")
        refused = self.cli(
            "blob",
            "put",
            "--dir",
            str(self.dir),
            "--node",
            health.name,
            "--identity",
            "health/client1",
            "--collection",
            "assets/pair",
            str(path),
        )
        assert refused.returncode != 0 and "403" in refused.stderr, refused.stderr
        got = tmp_dir / "scan.out"
        out = self.cli(
            "blob",
            "get",
            "--dir",
            str(self.dir),
            "--node",
            transport.name,
            "--identity",
            "transport/client1",
            "--collection",
            "assets/pair",
            "-o",
            str(got),
            digest,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == [digest, str(BLOB_BYTES)]
        assert hashlib.sha256(got.read_bytes()).hexdigest() == digest
        denied = self.cli(
            "blob",
            "get",
            "--dir",
            str(self.dir),
            "--node",
            council.name,
            "--identity",
            "health/client1",
            "--collection",
            "assets/pair",
            "-o",
            str(got),
            digest,
        )
        assert denied.returncode != 0 and "403" in denied.stderr
        assert not _blob_file(health, digest).exists()
        return digest, marker


def test_private_data(tmp_path: Path) -> None:
    PrivateDataTest().main(tmp_path)
