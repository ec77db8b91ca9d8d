"""The contract API: the one project module a packaged contract may import.

A contract installed through the lifecycle (:mod:`secprivnode.contracts.lifecycle`) runs in the
deterministic sandbox (:mod:`secprivnode.contracts.sandbox`), which lets it import only this module
and a few standard modules. Everything a contract needs from the node is re-exported here::

    from secprivnode.contracts.api import Contract, ContractError, Stub, query, transaction

This module defines nothing of its own and must stay free of anything that reads the clock,
randomness or the file system: whatever it exports, contract code can reach.
"""

from __future__ import annotations

from crypto.encoding import EncodingError, decode, encode
from secprivnode.contracts.runtime import Contract, query, transaction
from secprivnode.contracts.stub import Caller, ContractError, Stub

__all__ = [
    "Caller",
    "Contract",
    "ContractError",
    "EncodingError",
    "Stub",
    "decode",
    "encode",
    "query",
    "transaction",
]
