"""The contracts built into every node: the ``_config`` system contract.

A node's registry starts from :func:`builtin_registry`. Every other contract is installed through
the lifecycle (:mod:`secprivnode.contracts.lifecycle`): its code comes from the ledger, so the node
never imports application code. This module holds no state.
"""

from __future__ import annotations

from secprivnode.contracts.config_contract import ConfigContract
from secprivnode.contracts.runtime import Contract, ContractRegistry

__all__ = ["builtin_contracts", "builtin_registry"]


def builtin_contracts() -> list[Contract]:
    return [ConfigContract()]


def builtin_registry() -> ContractRegistry:
    """A fresh registry holding the built-in contracts."""
    return ContractRegistry(builtin_contracts())
