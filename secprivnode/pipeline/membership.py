"""The channel's current configuration and MSP, as the ledger holds them.

Both are derived from the committed ``_config``/``channel`` state, so after a config block commits
the next lookup sees the new organisations, CRLs and contract definitions without anyone telling
this module. Lookups are cached by the config key's version (one LevelDB get per call), and MSPs
are built once per config (:func:`secprivnode.contracts.config_contract.msp_from_config`).

This module never writes to the ledger and never reads the clock.
"""

from __future__ import annotations

import threading
from typing import Protocol

from crypto.msp import MSP
from secprivnode.contracts.config_contract import CONFIG_KEY, CONFIG_NAMESPACE, msp_from_config
from secprivnode.pipeline.errors import ProposalRejected, RejectCode
from storage.model import ChannelConfig, Version

__all__ = ["ChannelView", "ConfigSource"]


class ConfigSource(Protocol):
    def get_version(self, ns: str, key: str) -> Version | None: ...

    def latest_config(self) -> ChannelConfig | None: ...


class ChannelView:
    """``config()`` and ``msp()`` of the latest committed configuration (``msp`` is an ``msp_provider``)."""

    def __init__(self, ledger: ConfigSource) -> None:
        self._ledger = ledger
        self._lock = threading.Lock()
        self._version: Version | None = None
        self._config: ChannelConfig | None = None

    def config(self) -> ChannelConfig | None:
        """The latest committed config, or ``None`` before genesis."""
        version = self._ledger.get_version(CONFIG_NAMESPACE, CONFIG_KEY)
        with self._lock:
            if version is not None and version == self._version:
                return self._config
        cfg = self._ledger.latest_config()
        with self._lock:
            self._version, self._config = version, cfg
        return cfg

    def require_config(self) -> ChannelConfig:
        cfg = self.config()
        if cfg is None:
            raise ProposalRejected(RejectCode.NOT_READY, "the channel has no configuration yet (genesis not committed)")
        return cfg

    def msp(self) -> MSP:
        """The MSP of the latest config; :class:`ProposalRejected` (NOT_READY) before genesis."""
        return msp_from_config(self.require_config())

    __call__ = msp
