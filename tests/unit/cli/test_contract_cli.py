"""``secprivnode contract package`` and the approval file format (no network needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from secprivnode.cli.main import cli
from secprivnode.contract_admin import Approvals, next_config
from secprivnode.contracts.package import ContractPackage
from secprivnode.network import NetworkError
from storage.model import BatchConfig, ChannelConfig, ChannelNode, ContractDefinition, OrgConfig

SOURCE = """from secprivnode.contracts.api import Contract, Stub, transaction


class Kv(Contract):
    name = "kv"

    @transaction
    def put(self, stub: Stub, key: str, value: bytes) -> None:
        stub.put_state(key, value)
"""


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_package_is_deterministic_and_checked(tmp_path: Path) -> None:
    src = tmp_path / "kv.py"
    src.write_text(SOURCE)
    outs = []
    for name in ("a.pkg", "b.pkg"):
        code, text = invoke("contract", "package", str(src), "--name", "kv", "--version", "1.0",
                            "--policy", "ANY(node)", "--out", str(tmp_path / name))  # fmt: skip
        assert code == 0, text
        outs.append((tmp_path / name).read_bytes())
    assert outs[0] == outs[1]
    pkg = ContractPackage.from_file_bytes(outs[0])
    assert pkg.hash.hex() in text and pkg.policy == "ANY(node)"

    src.write_text(SOURCE + "\nRATE = 0.5\n")
    code, text = invoke("contract", "package", str(src), "--name", "kv", "--version", "1.0",
                        "--policy", "ANY(node)", "--out", str(tmp_path / "bad.pkg"))  # fmt: skip
    assert code != 0 and "contract.py:11: rule 'float'" in text, text
    assert not (tmp_path / "bad.pkg").exists()


def _config() -> ChannelConfig:
    return ChannelConfig(
        "city",
        4,
        (OrgConfig("council", b"ca"),),
        (ChannelNode("council-node1", "council", "127.0.0.1:7051", True),),
        BatchConfig(),
        (ContractDefinition("assets", "1.0", "ANY(node)"),),
        "MAJORITY(admin)",
    )


def test_next_config_and_approval_file_round_trip() -> None:
    pkg = ContractPackage("kv", "1.0", "ANY(node)", (("contract.py", SOURCE.encode()),))
    cfg = next_config(_config(), pkg)
    assert cfg.sequence == 5 and cfg.contract("kv") == ContractDefinition("kv", "1.0", "ANY(node)", pkg.hash, 1)
    assert cfg.contract("assets") == _config().contract("assets")
    v2 = ContractPackage("kv", "2.0", "ANY(node)", pkg.files)
    assert next_config(cfg, v2).contract("kv").sequence == 2  # type: ignore[union-attr]
    approvals = Approvals(cfg, pkg.code_bytes(), ((b"cert", b"sig"),))
    assert Approvals.decode(approvals.encode()) == approvals
    with pytest.raises(NetworkError, match="malformed"):
        Approvals.decode(approvals.encode()[:-1])
