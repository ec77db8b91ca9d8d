"""The OpenRPC 1.2 document (https://spec.open-rpc.org/) that ``rpc.discover`` returns.

Generated from the same method table the dispatcher uses, so it cannot drift from what the
server accepts. Application errors (from :data:`secprivnode.api.ERROR_CODES`) and the
specification's standard errors are listed under ``components.errors``; each method refers to
the application errors it may raise.

This module only describes; it never dispatches or touches the service.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from typing import Any

from secprivnode.api import ERROR_CODES
from secprivnode.rpc.auth import IDENTITY_TEXT
from secprivnode.rpc.methods import Method

__all__ = ["OPENRPC_VERSION", "openrpc_document"]

OPENRPC_VERSION = "1.2.6"

_STANDARD = {
    "ParseError": (-32700, "Parse error"),
    "InvalidRequest": (-32600, "Invalid Request"),
    "MethodNotFound": (-32601, "Method not found"),
    "InvalidParams": (-32602, "Invalid params"),
    "InternalError": (-32603, "Internal error"),
}


def _version() -> str:
    try:
        return metadata.version("secprivnode")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _method_doc(m: Method) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": m.name,
        "summary": m.summary,
        "description": IDENTITY_TEXT[m.identity],
        "x-identity": m.identity,
        "paramStructure": "either",
        "params": [
            {
                "name": p.name,
                "required": p.required,
                "schema": dict(p.schema),
                **({"description": p.description} if p.description else {}),
            }
            for p in m.params
        ],
        "result": {"name": f"{m.name}Result", "schema": dict(m.result)},
    }
    if m.errors:
        doc["errors"] = [{"$ref": f"#/components/errors/{e.name}"} for e in m.errors]
    if m.websocket_only:
        doc["x-transport"] = ["websocket"]
    return doc


def openrpc_document(table: Mapping[str, Method]) -> dict[str, Any]:
    errors: dict[str, Any] = {name: {"code": code, "message": msg} for name, (code, msg) in _STANDARD.items()}
    for code, name in sorted(ERROR_CODES.items(), reverse=True):
        errors[name] = {"code": code, "message": name}
    return {
        "openrpc": OPENRPC_VERSION,
        "info": {
            "title": "secprivnode JSON-RPC",
            "version": _version(),
            "description": (
                "JSON-RPC 2.0 over HTTP POST / (single and batch) and WebSocket /ws (plus subscriptions). "
                "Bytes are 0x-prefixed lowercase hex; validation codes are names. Each method's "
                "x-identity says what the caller must prove: none (public chain reads), signed-read "
                "(state reads: an auth object signed by a member the namespace's read policy admits), "
                "signed-proposal, or admin-signatures. "
                "Blobs of private collections are not JSON-RPC: PUT/GET /blobs/{sha256} stream raw bytes "
                "with signed X-* headers (docs/rpc.md, 'Blobs over HTTP')."
            ),
        },
        "methods": [_method_doc(m) for m in table.values()],
        "components": {"errors": errors},
        "x-error-codes": [{"code": c, "name": n} for c, n in sorted(ERROR_CODES.items(), reverse=True)],
    }
