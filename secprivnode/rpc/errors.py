"""JSON-RPC error objects as typed exceptions, for clients of the node.

:func:`rpc_error` picks the class by code: the specification's -32700…-32603, and the node's
application codes, which mirror :data:`secprivnode.api.ERROR_CODES` (a test keeps the two tables
in step). Unknown codes give the base :class:`RpcError`. This module imports nothing of the node.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BadRequest",
    "ContractFailed",
    "InternalError",
    "InvalidParams",
    "InvalidRequest",
    "MethodNotFound",
    "NotFound",
    "NotLeader",
    "Overloaded",
    "ParseError",
    "RpcError",
    "RpcTimeout",
    "ServerError",
    "TxRejected",
    "Unauthenticated",
    "Unauthorized",
    "UnknownChannel",
    "rpc_error",
]


class RpcError(Exception):
    """A JSON-RPC error object returned by the node."""

    code = 0

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.message = message
        self.data = data


class ParseError(RpcError):
    code = -32700


class InvalidRequest(RpcError):
    code = -32600


class MethodNotFound(RpcError):
    code = -32601


class InvalidParams(RpcError):
    code = -32602


class InternalError(RpcError):
    code = -32603


class ServerError(RpcError):
    code = -32000


class NotFound(RpcError):
    code = -32001


class UnknownChannel(RpcError):
    code = -32002


class TxRejected(RpcError):
    code = -32003


class ContractFailed(RpcError):
    code = -32004


class NotLeader(RpcError):
    code = -32005


class Overloaded(RpcError):
    code = -32006


class RpcTimeout(RpcError):
    code = -32007


class Unauthorized(RpcError):
    code = -32008


class BadRequest(RpcError):
    code = -32009


class Unauthenticated(RpcError):
    code = -32010


_ERRORS: dict[int, type[RpcError]] = {
    cls.code: cls
    for cls in (
        ParseError,
        InvalidRequest,
        MethodNotFound,
        InvalidParams,
        InternalError,
        ServerError,
        NotFound,
        UnknownChannel,
        TxRejected,
        ContractFailed,
        NotLeader,
        Overloaded,
        RpcTimeout,
        Unauthorized,
        BadRequest,
        Unauthenticated,
    )
}


def rpc_error(code: int, message: str, data: Any = None) -> RpcError:
    """The exception for an error object: the class of its code, else :class:`RpcError`."""
    return _ERRORS.get(code, RpcError)(code, message, data)
