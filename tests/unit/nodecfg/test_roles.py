"""Node roles: a node without the gateway role refuses submissions, without the endorser role it
runs no contracts, and every node must be a committer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from secprivnode import wire
from secprivnode.api import Unauthorized
from secprivnode.config import ConfigError, NodeSection
from secprivnode.gateway import Gateway


class _NoPeers:
    def connected_peers(self) -> list[str]:
        return []


def test_committer_is_required() -> None:
    with pytest.raises(ConfigError, match="committer is required"):
        NodeSection("n1", "council", Path("d"), ("orderer", "endorser", "gateway"))
    NodeSection("n1", "council", Path("d"), ("committer",))


def test_a_node_without_the_gateway_role_refuses_submissions() -> None:
    gw = Gateway("n1", "council", {}, _NoPeers(), gateway=False)
    with pytest.raises(Unauthorized, match="gateway role"):
        gw.require_gateway()
    with pytest.raises(Unauthorized, match="gateway role"):
        asyncio.run(gw.submit(None, b"", wait=False, timeout_s=1))  # type: ignore[arg-type]
    Gateway("n1", "council", {}, _NoPeers()).require_gateway()


def test_a_node_without_the_endorser_role_runs_no_contracts() -> None:
    gw = Gateway("n1", "council", {}, _NoPeers(), endorser=False)
    answer = asyncio.run(gw.on_endorse("peer", ["city", [], b"", {}]))
    assert answer[0] == "err" and answer[1] == wire.ErrorCode.UNAUTHORIZED
    with pytest.raises(Unauthorized, match="endorser role"):
        asyncio.run(gw.query(None, b""))  # type: ignore[arg-type]


def test_malformed_endorsement_requests_get_an_error_value() -> None:
    gw = Gateway("n1", "council", {}, _NoPeers())
    for payload in (None, "x", ["city"], ["city", [], b"", {}], ["city", [], b"", {"k": 1}]):
        answer = asyncio.run(gw.on_endorse("peer", payload))
        assert answer[0] == "err", (payload, answer)
