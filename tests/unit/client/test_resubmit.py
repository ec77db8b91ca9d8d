"""The SDK resubmits a proposal refused for want of a leader, with the SAME transaction id.

A scripted JSON-RPC server on 127.0.0.1 answers each call from a list; the tests check what the
client sent (every attempt carries the identical signed proposal), what it returns, and which
refusals it does not retry.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from secprivnode import client as sdk
from secprivnode.client import AsyncClient, ClientIdentity

TX = "0x" + "11" * 32


@pytest.fixture
def ident(tmp_path: Path, fakemod: Any) -> ClientIdentity:
    return ClientIdentity.load(*fakemod.make_identity(tmp_path, "council", "client", "dana"))


class Script:
    """Replies by method, in order; records every request."""

    def __init__(self) -> None:
        self.replies: dict[str, list[dict[str, Any]]] = {}
        self.seen: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        req = await request.json()
        self.seen.append(req)
        if req["method"] == "node_status":
            return web.json_response({"jsonrpc": "2.0", "id": req["id"], "result": {"default_channel": "city"}})
        reply = self.replies[req["method"]].pop(0)
        return web.json_response({"jsonrpc": "2.0", "id": req["id"], **reply})


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[Script, str]]:
    script = Script()
    app = web.Application()
    app.router.add_post("/", script.handle)
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    try:
        yield script, str(srv.make_url("/"))
    finally:
        await srv.close()


def _err(code: int, message: str, data: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "data": data}}


OK = {"result": {"tx_id": TX, "block_number": 7, "code": "VALID", "response": {"status": 200}}}
NO_LEADER = _err(-32005, "no Raft leader is known yet (an election is under way); retry")
OVERLOADED = _err(-32006, "could not forward the transaction to the ordering leader")


async def test_resubmits_the_same_proposal_until_a_leader_orders_it(scripted: Any, ident: ClientIdentity) -> None:
    script, url = scripted
    script.replies["tx_submitAndWait"] = [NO_LEADER, OVERLOADED, NO_LEADER, OK]
    async with AsyncClient(url, ident) as c:
        r = await c.invoke("assets", "put", "k", b"v", timeout_s=10)
    assert (r.block_number, r.code) == (7, "VALID")
    sent = [q["params"] for q in script.seen if q["method"] == "tx_submitAndWait"]
    assert len(sent) == 4
    assert len({(p["proposal"], p["signature"]) for p in sent}) == 1, "every attempt must carry the same proposal"


async def test_duplicate_on_a_resubmission_waits_for_the_first_attempts_commit(
    scripted: Any, ident: ClientIdentity
) -> None:
    script, url = scripted
    duplicate = _err(-32003, "already pending", {"reason": "DuplicateTransaction"})
    script.replies["tx_submitAndWait"] = [OVERLOADED, duplicate]
    script.replies["tx_status"] = [
        {"result": {"tx_id": TX, "status": "pending"}},
        {"result": {"tx_id": TX, "status": "committed", "block": 9, "index": 2, "code": "VALID"}},
    ]
    async with AsyncClient(url, ident) as c:
        r = await c.invoke("assets", "put", "k", b"v", timeout_s=10)
    assert (r.block_number, r.code) == (9, "VALID")


@pytest.mark.parametrize(
    "refusal",
    [
        _err(-32003, "bad signature", {"reason": "bad_signature"}),
        _err(-32003, "already committed", {"reason": "duplicate_txid"}),  # first attempt: someone else's
        _err(-32004, "contract failed", {"status": 409}),
    ],
)
async def test_definite_refusals_are_not_retried(scripted: Any, ident: ClientIdentity, refusal: Any) -> None:
    script, url = scripted
    script.replies["tx_submitAndWait"] = [refusal, OK]
    async with AsyncClient(url, ident) as c:
        with pytest.raises(sdk.RpcError):
            await c.invoke("assets", "put", "k", b"v", timeout_s=10)
    assert sum(q["method"] == "tx_submitAndWait" for q in script.seen) == 1


async def test_gives_up_at_its_timeout(scripted: Any, ident: ClientIdentity) -> None:
    script, url = scripted
    script.replies["tx_submitAndWait"] = [NO_LEADER] * 100
    async with AsyncClient(url, ident) as c:
        with pytest.raises(sdk.NotLeader):
            await c.invoke("assets", "put", "k", b"v", timeout_s=1.0)
    assert 2 <= sum(q["method"] == "tx_submitAndWait" for q in script.seen) <= 6


async def test_an_attempt_unanswered_in_time_is_resubmitted(scripted: Any, ident: ClientIdentity) -> None:
    """A submission lost with a dying leader never commits: only a resubmission can bring it through."""
    script, url = scripted
    script.replies["tx_submitAndWait"] = [_err(-32007, "not committed within 5s", {"tx_id": TX}), OK]
    async with AsyncClient(url, ident) as c:
        r = await c.invoke("assets", "put", "k", b"v", timeout_s=30)
    assert r.code == "VALID"
    sent = [q["params"] for q in script.seen if q["method"] == "tx_submitAndWait"]
    assert len(sent) == 2 and sent[0]["proposal"] == sent[1]["proposal"]
    assert all(p["timeout_s"] <= sdk.ATTEMPT_WAIT_S for p in sent), "each attempt waits at most ATTEMPT_WAIT_S"


async def test_a_refusal_after_an_unanswered_attempt_is_not_definite(scripted: Any, ident: ClientIdentity) -> None:
    """Found by the wiped-data-dir fault test: the first attempt committed, the resubmission went to a
    node without that state and was refused (404); reporting the refusal would have been a lie."""
    script, url = scripted
    timeout = _err(-32007, "not committed within 5s", {"tx_id": TX})
    script.replies["tx_submitAndWait"] = [timeout, _err(-32004, "asset 'acct-0' does not exist", {"status": 404})]
    script.replies["tx_status"] = [
        {"result": {"tx_id": TX, "status": "unknown"}},
        {"result": {"tx_id": TX, "status": "committed", "block": 11, "index": 0, "code": "VALID"}},
    ]
    async with AsyncClient(url, ident) as c:
        r = await c.invoke("assets", "update", "acct-0", 1, timeout_s=30)
    assert (r.block_number, r.code) == (11, "VALID")


async def test_an_outcome_never_confirmed_is_reported_unknown(scripted: Any, ident: ClientIdentity) -> None:
    script, url = scripted
    script.replies["tx_submitAndWait"] = [OVERLOADED] * 100
    async with AsyncClient(url, ident) as c:
        with pytest.raises(sdk.RpcTimeout, match="may still commit"):
            await c.invoke("assets", "put", "k", b"v", timeout_s=1.0)
