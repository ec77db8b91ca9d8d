"""JSON-RPC 2.0 request handling over decoded JSON (https://www.jsonrpc.org/specification).

:func:`dispatch` takes one decoded JSON value (a request object or a batch array) and returns the
response value, or ``None`` when the specification says to return nothing (a notification, or a
batch of only notifications). It knows nothing of HTTP or WebSocket; the transports in
:mod:`secprivnode.rpc.server` feed it and write what it returns.

Rules implemented (section numbers of the specification):

* §4 a request needs ``"jsonrpc": "2.0"`` exactly, a string ``method``, ``params`` (if present)
  an array or object, and ``id`` (if present) a string, number or null; otherwise -32600 Invalid
  Request, with the id echoed when it was itself valid and null when not.
* §4.1 a request without an ``id`` member is a notification: it runs and gets no response, even
  when it fails.
* §5 the response echoes ``id`` exactly; exactly one of ``result`` or ``error``.
* §5.1 codes: -32700 parse error (id null), -32600, -32601, -32602, -32603; application errors
  from :class:`ServiceError` keep their code (-32000…-32099), message and data. Internal errors
  never carry a traceback to the client; they are logged.
* §6 a batch is an array; an empty array is one -32600 error object (not an array); each element
  is answered on its own (invalid elements each get an error); if nothing is left to answer the
  result is ``None``. Batches longer than ``max_batch_len`` are refused whole with -32600.

This module must never let an exception escape for any client input, never include exception
text from a non-:class:`ServiceError` in a response, and never echo anything but a valid id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from secprivnode.api import ServiceError
from secprivnode.rpc import codec
from secprivnode.rpc.methods import CallContext, Method, ParamError

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "STANDARD_ERRORS",
    "Observer",
    "bind_params",
    "decode_json",
    "dispatch",
    "error_response",
    "handle_text",
]

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

STANDARD_ERRORS: dict[int, str] = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid Request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
}

_APP_MIN, _APP_MAX = -32099, -32000

# (method label, outcome: "ok" or the error code as a string, seconds) -> None; for metrics.
Observer = Callable[[str, str, float], None]

_ABSENT = object()


def error_response(code: int, message: str, id_: Any = None, data: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "error": err, "id": id_}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode_json(body: bytes | str) -> tuple[Any, dict[str, Any] | None]:
    """``(value, None)``, or ``(None, parse-error response)`` for bytes that are not JSON text."""
    try:
        text = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body
        return json.loads(text, parse_constant=_reject_constant), None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        detail = "not valid UTF-8" if isinstance(exc, UnicodeDecodeError) else "not valid JSON"
        return None, error_response(PARSE_ERROR, f"Parse error: body is {detail}")


def _valid_id(v: Any) -> bool:
    return v is None or isinstance(v, str) or (isinstance(v, (int, float)) and not isinstance(v, bool))


def bind_params(method: Method, params: Any) -> dict[str, Any]:
    """Match ``params`` (absent, array or object) to the method's parameters and convert them."""
    specs = method.params
    if params is _ABSENT or params is None:
        given: dict[str, Any] = {}
    elif isinstance(params, list):
        if len(params) > len(specs):
            raise ParamError("", f"too many parameters: {method.name} takes at most {len(specs)}")
        given = {p.name: v for p, v in zip(specs, params, strict=False)}
    else:
        names = {p.name for p in specs}
        for k in params:
            if k not in names:
                raise ParamError(k, f"unexpected parameter {k!r}")
        given = params
    args: dict[str, Any] = {}
    for p in specs:
        if p.name in given:
            args[p.name] = p.convert(given[p.name], p.name)
        elif p.required:
            raise ParamError(p.name, f"missing required parameter {p.name!r}")
        else:
            args[p.name] = p.default
    return args


def _service_error(exc: ServiceError, id_: Any) -> dict[str, Any]:
    code = exc.code if _APP_MIN <= exc.code <= _APP_MAX else -32000
    data = None
    if exc.data is not None:
        try:
            data = codec.to_json(exc.data)
        except TypeError:
            log.warning("dropping unrepresentable error data of %s", type(exc).__name__)
    return error_response(code, exc.message, id_, data)


async def _invoke(method: Method | None, name: str, params: Any, id_: Any, ctx: CallContext) -> dict[str, Any]:
    if method is None:
        return error_response(METHOD_NOT_FOUND, "Method not found", id_, {"method": name})
    if method.websocket_only and ctx.session is None:
        return error_response(
            METHOD_NOT_FOUND, f"Method not found: {name} is only available over WebSocket (/ws)", id_, {"method": name}
        )
    try:
        args = bind_params(method, params)
        result = await method.handler(ctx, args)
    except ParamError as exc:
        data = {"param": exc.param} if exc.param else None
        return error_response(INVALID_PARAMS, f"Invalid params: {exc}", id_, data)
    except ServiceError as exc:
        return _service_error(exc, id_)
    except Exception:
        # The node's bug, not the caller's: log the traceback, tell the client nothing about it.
        log.exception("internal error in RPC method %s", name)
        return error_response(INTERNAL_ERROR, "Internal error", id_)
    return {"jsonrpc": "2.0", "result": result, "id": id_}


async def _call_one(req: Any, ctx: CallContext, observer: Observer | None) -> dict[str, Any] | None:
    if not isinstance(req, dict):
        return error_response(INVALID_REQUEST, "Invalid Request: expected a request object")
    has_id = "id" in req
    id_ = req.get("id")
    if has_id and not _valid_id(id_):
        return error_response(INVALID_REQUEST, "Invalid Request: id must be a string, number or null")
    echo = id_ if has_id else None
    if req.get("jsonrpc") != "2.0" or not isinstance(req.get("jsonrpc"), str):
        return error_response(INVALID_REQUEST, 'Invalid Request: "jsonrpc" must be exactly "2.0"', echo)
    name = req.get("method")
    if not isinstance(name, str):
        return error_response(INVALID_REQUEST, "Invalid Request: method must be a string", echo)
    params = req.get("params", _ABSENT)
    if params is not _ABSENT and not isinstance(params, (list, dict)):
        return error_response(INVALID_REQUEST, "Invalid Request: params must be an array or an object", echo)
    method = ctx.table.get(name)
    started = time.perf_counter()
    response = await _invoke(method, name, params, echo, ctx)
    if observer is not None:
        outcome = "ok" if "result" in response else str(response["error"]["code"])
        observer(name if method is not None else "unknown", outcome, time.perf_counter() - started)
    return response if has_id else None


async def dispatch(
    msg: Any, ctx: CallContext, *, max_batch_len: int, observer: Observer | None = None
) -> dict[str, Any] | list[dict[str, Any]] | None:
    """Answer one decoded JSON-RPC message (request or batch); ``None`` means send nothing."""
    if isinstance(msg, list):
        if not msg:
            return error_response(INVALID_REQUEST, "Invalid Request: empty batch")
        if len(msg) > max_batch_len:
            return error_response(
                INVALID_REQUEST, f"Invalid Request: batch of {len(msg)} exceeds the limit of {max_batch_len}"
            )
        # §6: the server may process a batch concurrently; responses keep the request order.
        results = await asyncio.gather(*(_call_one(r, ctx, observer) for r in msg))
        answered = [r for r in results if r is not None]
        return answered or None
    return await _call_one(msg, ctx, observer)


async def handle_text(
    body: bytes | str, ctx: CallContext, *, max_batch_len: int, observer: Observer | None = None
) -> dict[str, Any] | list[dict[str, Any]] | None:
    """Decode a body and dispatch it; a body that is not JSON gets the -32700 response."""
    msg, parse_error = decode_json(body)
    if parse_error is not None:
        return parse_error
    return await dispatch(msg, ctx, max_batch_len=max_batch_len, observer=observer)
