"""The contract lifecycle on a running network: package → approve per organisation → commit.

A contract installed through ``secprivnode contract package|approve|commit`` runs on every node
(each loads the code from the ledger); too few approvals are refused before anything is ordered;
an upgrade to v2 (a changed function, split over two modules) takes effect at the block that
commits it: a call ordered before that block saw v1, one after it sees v2, on every node. Code
that breaks a sandbox rule is refused at packaging with the rule and the line.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from framework import CityTest

pytestmark = pytest.mark.functional

V1 = b'''"""notes v1: stores text as given."""

from __future__ import annotations

from secprivnode.contracts.api import Contract, ContractError, Stub, query, transaction


class Notes(Contract):
    name = "notes"

    @transaction
    def put(self, stub: Stub, key: str, text: str) -> bytes:
        stub.put_state(key, text.encode())
        return b"v1"

    @query
    def get(self, stub: Stub, key: str) -> bytes:
        value = stub.get_state(key)
        if value is None:
            raise ContractError(f"no note {key!r}", 404)
        return value
'''

# v2: the same contract, storing text upper-cased through a helper module of the package
V2_CONTRACT = (
    V1.replace(b"notes v1: stores text as given.", b"notes v2: stores text upper-cased.")
    .replace(b"query, transaction\n", b"query, transaction\nfrom shout import shout\n")
    .replace(b'name = "notes"\n', b'name = "notes"\n    version = "2.0"\n')
    .replace(b'text.encode())\n        return b"v1"', b'shout(text).encode())\n        return b"v2"')
)

V2_HELPER = b"""def shout(text: str) -> str:
    return text.upper()
"""

BAD = b"""from secprivnode.contracts.api import Contract, Stub, transaction
import time


class Notes(Contract):
    name = "notes"

    @transaction
    def put(self, stub: Stub, key: str) -> None:
        stub.put_state(key, str(time.time()).encode())
"""


class LifecycleTest(CityTest):
    def contract(self, *args: str) -> str:
        out = self.cli("contract", *args)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def put_and_check(self, key: str, expect: bytes) -> int:
        """Invoke put through every node, query every node; return the highest block used."""
        top = 0
        for i, node in enumerate(self.nodes):
            with node.client(self.identity(node.spec.org)) as c:
                r = c.invoke("notes", "put", f"{key}{i}", "hello")
            assert r.valid, r
            assert r.response["payload"] == (b"v1" if expect == b"hello" else b"v2"), r
            top = max(top, r.block_number)
        self.sync_blocks()
        for node in self.nodes:
            with node.client(self.identity(node.spec.org)) as c:
                for i in range(len(self.nodes)):
                    assert c.query("notes", "get", f"{key}{i}")["payload"] == expect, node.name
        return top

    def run_test(self) -> None:
        work = self.dir / "work"
        work.mkdir()
        d = str(self.dir)

        self.log.info("code that imports time is refused at packaging, naming rule and line")
        (work / "bad.py").write_bytes(BAD)
        out = self.cli("contract", "package", str(work / "bad.py"), "--name", "notes", "--version", "1.0",
                       "--policy", "ANY(node)", "--out", str(work / "bad.pkg"))  # fmt: skip
        assert out.returncode != 0 and "contract.py:2: rule 'import'" in out.stderr, out.stderr
        assert not (work / "bad.pkg").exists()

        self.log.info("package v1 twice: the same bytes")
        (work / "v1.py").write_bytes(V1)
        for name in ("v1.pkg", "v1-again.pkg"):
            self.contract("package", str(work / "v1.py"), "--name", "notes", "--version", "1.0",
                          "--policy", "ANY(node)", "--out", str(work / name))  # fmt: skip
        assert (work / "v1.pkg").read_bytes() == (work / "v1-again.pkg").read_bytes()

        self.log.info("one org's approval does not satisfy MAJORITY(admin): commit refused, nothing ordered")
        self.contract("approve", "--dir", d, str(work / "v1.pkg"), "--org", "council")
        height = self.nodes[0].height()
        out = self.cli("contract", "commit", "--dir", d, "--name", "notes")
        assert out.returncode != 0 and "do not satisfy the admin policy" in out.stderr, out.stderr
        assert self.nodes[0].height() == height

        self.log.info("a second org approves: commit")
        self.contract("approve", "--dir", d, str(work / "v1.pkg"), "--org", "health")
        self.contract("commit", "--dir", d, "--name", "notes")
        self.sync_blocks()
        listed = json.loads(self.contract("list", "--dir", d, "--json"))
        notes = next(c for c in listed["committed"] if c["name"] == "notes")
        assert (notes["version"], notes["sequence"], notes["policy"]) == ("1.0", 1, "ANY(node)"), notes
        assert sorted(a.split(" ")[0] for a in notes["approvals"]) == ["council/admin", "health/admin"], notes
        assert listed["pending"] == []

        self.log.info("v1 runs on every node")
        before = self.put_and_check("a", b"hello")

        self.log.info("upgrade to v2 (two modules), approved by every org")
        (work / "v2").mkdir()
        (work / "v2" / "contract.py").write_bytes(V2_CONTRACT)
        (work / "v2" / "shout.py").write_bytes(V2_HELPER)
        self.contract("package", str(work / "v2"), "--name", "notes", "--version", "2.0",
                      "--policy", "ANY(node)", "--out", str(work / "v2.pkg"))  # fmt: skip
        self.contract("approve", "--dir", d, str(work / "v2.pkg"))
        committed = self.contract("commit", "--dir", d, "--name", "notes")
        upgrade_block = int(committed.rsplit("block ", 1)[1])
        assert before < upgrade_block, (before, upgrade_block)
        self.sync_blocks()

        self.log.info("calls ordered after block %d see v2 on every node; v1's notes are unchanged", upgrade_block)
        after = self.put_and_check("b", b"HELLO")
        assert after > upgrade_block
        for node in self.nodes:
            with node.client(self.identity(node.spec.org)) as c:
                assert c.query("notes", "get", "a0")["payload"] == b"hello"
        listed = json.loads(self.contract("list", "--dir", d, "--json"))
        notes = next(c for c in listed["committed"] if c["name"] == "notes")
        assert (notes["version"], notes["sequence"]) == ("2.0", 2), notes
        self.assert_same_chain()


def test_contract_lifecycle_install_and_upgrade(tmp_path: Path) -> None:
    LifecycleTest().main(tmp_path)
