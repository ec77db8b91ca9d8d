"""Fixtures for RPC tests: the in-memory node, identities and a live server on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from secprivnode.metrics import NodeMetrics
from secprivnode.rpc.server import RpcLimits, create_rpc_app, run_rpc_server


def _load_fake() -> Any:
    name = "secprivnode_tests_fake_node"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("fake_node.py"))
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


@pytest.fixture
def fakemod() -> Any:
    return _load_fake()


@pytest.fixture
def fake(fakemod: Any) -> Any:
    return fakemod.FakeNode()


class LiveServer:
    def __init__(self, url: str, app: Any, http: aiohttp.ClientSession, metrics: NodeMetrics) -> None:
        self.url = url
        self.app = app
        self.http = http
        self.metrics = metrics

    async def post(self, payload: Any = None, *, data: bytes | None = None) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"data": data} if data is not None else {"json": payload}
        async with self.http.post(self.url, **kwargs) as resp:
            body = await resp.read()
            return resp.status, (await resp.json(content_type=None)) if body else None


@pytest.fixture
def limits() -> RpcLimits:
    return RpcLimits()


@pytest.fixture
async def server(fake: Any, limits: RpcLimits) -> AsyncIterator[LiveServer]:
    metrics = NodeMetrics()
    app = create_rpc_app(fake, limits=limits, metrics=metrics)
    runner, port = await run_rpc_server(app, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http:
            yield LiveServer(f"http://127.0.0.1:{port}/", app, http, metrics)
    finally:
        await runner.cleanup()
