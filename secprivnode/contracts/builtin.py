"""The contracts every node installs: the ``_config`` system contract and the sample ``assets``.

A node's registry starts from :func:`builtin_registry`; application contracts are installed on
top. Installing is not enough to run: a contract also needs a definition in the channel config.
This module holds no state.
"""

from __future__ import annotations

from secprivnode.contracts.assets import AssetsContract
from secprivnode.contracts.config_contract import ConfigContract
from secprivnode.contracts.runtime import Contract, ContractRegistry

__all__ = ["builtin_contracts", "builtin_registry"]


def builtin_contracts() -> list[Contract]:
    return [ConfigContract(), AssetsContract()]


def builtin_registry() -> ContractRegistry:
    """A fresh registry holding the built-in contracts."""
    return ContractRegistry(builtin_contracts())
