"""Contract definitions take effect through configuration transactions approved by channel admins.

Redefining ``assets`` with a two-org endorsement policy makes the next transactions carry two
orgs' endorsements; an update approved by too few admins (the default admin policy is a majority)
commits as INVALID_CONFIG and changes nothing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from framework import CityTest

pytestmark = pytest.mark.functional

TWO_ORGS = "AND('council.node', 'health.node')"


class ContractPolicyTest(CityTest):
    def run_test(self) -> None:
        node = self.nodes[1]  # transport: its own org is not in the new policy
        self.log.info("redefine assets with %s", TWO_ORGS)
        out = self.cli(
            "channel",
            "define-contract",
            "--dir",
            str(self.dir),
            "--name",
            "assets",
            "--version",
            "1.0",
            "--policy",
            TWO_ORGS,
        )
        assert out.returncode == 0, out.stderr
        self.sync_blocks()
        contracts = {c["name"]: c for c in node.rpc.contract_list()}
        assert contracts["assets"]["policy"] == TWO_ORGS

        with node.client(self.identity("transport")) as c:
            r = c.invoke("assets", "put", "two-orgs", b"\x01")
        assert r.valid, r
        tx = node.rpc.chain_getTransaction(tx_id="0x" + r.tx_id.hex())
        orgs = sorted(e.split("/")[0] for e in tx["endorsers"])
        assert orgs == ["council", "health"], tx["endorsers"]

        self.log.info("an update approved by one admin of three is refused by the admin policy")
        from secprivnode.admin import current_config

        with node.client() as c:
            cfg = current_config(c)
            weaker = dataclasses.replace(cfg, sequence=cfg.sequence + 1, admin_policy="ANY(admin)")
            result = c.config_update(weaker, [self.identity("transport", "admin")])
        assert result["code"] == "INVALID_CONFIG", result
        assert node.rpc.config_get()["sequence"] == cfg.sequence
        self.sync_blocks()
        self.assert_same_chain()


def test_contract_definition_by_admin_approved_config_update(tmp_path: Path) -> None:
    ContractPolicyTest().main(tmp_path)
