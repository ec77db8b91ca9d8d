"""Node configuration: examples load, every option is documented, mistakes name the option."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest
import yaml

from secprivnode.config import ConfigError, NodeConfig, load_config

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "configs" / "node.example.yaml"

MINIMAL = {
    "node": {"name": "n1", "org": "council", "data_dir": "data"},
    "identity": {"cert": "cert.pem", "key": "key.pem"},
    "channels": [{"name": "city", "genesis": "city.block"}],
}


def write(tmp_path: Path, doc: object) -> Path:
    p = tmp_path / "node.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def test_examples_load() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.node.name == "council-node1"
    assert cfg.default_channel == "city"
    assert cfg.identity.cert.is_absolute()
    dep = load_config(ROOT / "configs" / "deployment" / "council-node1.yaml")
    assert dep.p2p.advertised == "council-node1.city.example:7051"
    assert dep.logging.format == "json"


def test_every_option_is_documented_in_the_example() -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    hints = typing.get_type_hints(NodeConfig)
    for section in dataclasses.fields(NodeConfig):
        assert section.name in doc, f"section {section.name} missing from {EXAMPLE.name}"
        cls = hints[section.name]
        if dataclasses.is_dataclass(cls):
            for f in dataclasses.fields(cls):
                assert f.name in doc[section.name], f"{section.name}.{f.name} missing from {EXAMPLE.name}"


def test_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.node.data_dir == tmp_path / "data"
    assert cfg.channels[0].genesis == tmp_path / "city.block"
    assert cfg.node.roles == ("orderer", "endorser", "committer", "gateway")


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"node": {"name": "n1", "org": "c", "data_dir": "d", "colour": "red"}}, "node: unknown option(s) ['colour']"),
        ({"rpc": {"max_batch": "many"}}, "rpc.max_batch: expected an integer"),
        ({"p2p": {"listen": "localhost"}}, "p2p.listen: expected host:port"),
        ({"p2p": {"bootstrap": ["127.0.0.1:7051"]}}, "p2p.bootstrap: expected name@host:port"),
        ({"node": {"name": "n1", "org": "c", "data_dir": "d", "roles": ["miner"]}}, "node.roles: unknown role"),
        ({"channels": []}, "channels: at least one channel"),
        ({"crypto": {"backend": "gpu"}}, "crypto.backend"),
        ({"raft": {"election_ticks": 1, "heartbeat_ticks": 1}}, "raft:"),
        ({"logging": {"format": "xml"}}, "logging.format"),
        ({"rpc": {"tls": {"enabled": "yes"}}}, "rpc.tls.enabled: expected true or false"),
        ({"rpc": {"tls": {"enabled": True, "cert": "c.pem"}}}, "rpc.tls: cert and key go together"),
        ({"rpc": {"tls": {"client_ca": "ca.pem"}}}, "rpc.tls: cert, key and client_ca need enabled: true"),
        ({"rpc": {"tls": {"enabled": True, "min_version": "1.1"}}}, "rpc.tls.min_version: expected one of"),
        ({"rpc": {"tls": {"enabled": True, "ciphers": "all"}}}, "rpc.tls: unknown option(s) ['ciphers']"),
        ({"rpc": {"tls": {"enabled": True, "key": ""}}}, "rpc.tls.key: expected a path"),
        ({"rpc": {"read_policies": [{"namespace": "assets"}]}}, "rpc.read_policies[0]: missing required option(s)"),
        ({"rpc": {"read_policies": [{"namespace": "a", "policy": "OR("}]}}, "rpc.read_policies[a]: policy error"),
        (
            {"rpc": {"read_policies": [{"namespace": "a", "policy": "ANY(client)"}] * 2}},
            "rpc.read_policies: a namespace is listed twice",
        ),
    ],
)
def test_mistakes_name_the_option(tmp_path: Path, patch: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(write(tmp_path, {**MINIMAL, **patch}))


def test_missing_required_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing required option\(s\) \['identity'"):
        load_config(write(tmp_path, {"node": MINIMAL["node"], "channels": MINIMAL["channels"]}))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("node: [unclosed")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(bad)


def test_rpc_tls_paths_resolve_and_default_to_the_node_identity(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, {**MINIMAL, "rpc": {"tls": {"enabled": True, "client_ca": "cas.pem"}}}))
    tls = cfg.rpc.tls
    assert tls.enabled and tls.cert is None and tls.key is None and tls.min_version == "1.2"
    assert tls.client_ca == tmp_path / "cas.pem"
    assert not load_config(write(tmp_path, MINIMAL)).rpc.tls.enabled
    policies = {"read_policies": [{"namespace": "assets", "policy": "OR('council.admin')"}]}
    cfg = load_config(write(tmp_path, {**MINIMAL, "rpc": policies}))
    assert [(p.namespace, p.policy) for p in cfg.rpc.read_policies] == [("assets", "OR('council.admin')")]
