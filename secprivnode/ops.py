"""The operations server: ``GET /healthz`` and ``GET /metrics`` (Prometheus text exposition).

Kept apart from the JSON-RPC port so operators can expose it only to monitoring, as Fabric does
with its operations service.

* ``/healthz``: 200 with every check (``service.health()``: name -> (ok, detail)) when all pass,
  503 naming the failing ones otherwise. A health probe that itself raises counts as a failing
  ``health`` check (logged), never as a 500 with a traceback.
* ``/metrics``: the node's own registry (never the process-wide default registry).

This module must never change node state.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from secprivnode.api import NodeService

__all__ = ["OPS_REGISTRY_KEY", "OPS_SERVICE_KEY", "create_ops_app"]

log = logging.getLogger(__name__)

OPS_SERVICE_KEY = web.AppKey("secprivnode_ops_service", NodeService)
OPS_REGISTRY_KEY = web.AppKey("secprivnode_ops_registry", CollectorRegistry)


async def _healthz(request: web.Request) -> web.Response:
    service = request.app[OPS_SERVICE_KEY]
    try:
        raw = await service.health()
        checks: dict[str, Any] = {name: {"ok": bool(ok), "detail": str(detail)} for name, (ok, detail) in raw.items()}
    except Exception:
        log.exception("health probe failed")
        checks = {"health": {"ok": False, "detail": "health probe raised an error (see the node's log)"}}
    failing = sorted(name for name, c in checks.items() if not c["ok"])
    body = {"status": "failing" if failing else "ok", "failing": failing, "checks": checks}
    return web.json_response(body, status=503 if failing else 200)


async def _metrics(request: web.Request) -> web.Response:
    data = generate_latest(request.app[OPS_REGISTRY_KEY])
    # CONTENT_TYPE_LATEST carries a charset parameter, which aiohttp wants given separately.
    resp = web.Response(body=data)
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


def create_ops_app(service: NodeService, registry: CollectorRegistry) -> web.Application:
    app = web.Application()
    app[OPS_SERVICE_KEY] = service
    app[OPS_REGISTRY_KEY] = registry
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    return app
