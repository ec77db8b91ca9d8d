"""A node judges its own membership from a committed configuration: removed, revoked, or member."""

from __future__ import annotations

import dataclasses

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pipeline_kit import NOW, Chain, Pki, channel_config, make_pki

from secprivnode.pipeline.standing import ever_listed, exclusion_reason


def test_a_listed_unrevoked_node_is_a_member(pki: Pki) -> None:
    assert exclusion_reason(channel_config(pki), pki["health/health-node2"].identity, NOW) is None


def test_a_node_missing_from_the_config_was_removed(pki: Pki) -> None:
    cfg = channel_config(pki, sequence=4)
    cfg = dataclasses.replace(cfg, nodes=tuple(n for n in cfg.nodes if n.name != "health-node2"))
    reason = exclusion_reason(cfg, pki["health/health-node2"].identity, NOW)
    assert reason == "health-node2 was removed from channel city (configuration sequence 4)"
    assert exclusion_reason(cfg, pki["health/health-node1"].identity, NOW) is None


def test_a_node_on_its_orgs_crl_is_revoked_even_if_still_listed() -> None:
    pki = make_pki()  # its own CAs: revoking changes the CA's state
    node = pki["transport/transport-node2"].identity
    ca = pki.cas["transport"]
    _, crl_pem = ca.revoke_certificate(node.to_pem(), now=NOW)
    crl = x509.load_pem_x509_crl(crl_pem).public_bytes(Encoding.DER)
    cfg = channel_config(pki, sequence=2, orgs=pki.org_configs({"transport": crl}))
    reason = exclusion_reason(cfg, node, NOW)
    assert reason is not None and "revoked" in reason and "sequence 2" in reason
    assert exclusion_reason(cfg, pki["transport/transport-node1"].identity, NOW) is None


def test_a_joining_node_not_yet_listed_is_not_removed(pki: Pki) -> None:
    cfg = channel_config(pki)
    cfg = dataclasses.replace(cfg, nodes=tuple(n for n in cfg.nodes if n.name != "health-node2"))
    assert exclusion_reason(cfg, pki["health/health-node2"].identity, NOW, was_member=False) is None


def test_ever_listed_reads_the_config_history(chain: Chain) -> None:
    assert ever_listed(chain.ledger, "health-node2")
    assert not ever_listed(chain.ledger, "health-node9")
