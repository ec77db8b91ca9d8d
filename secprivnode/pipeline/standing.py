"""Whether this node is still a member of a channel, judged from a committed configuration.

A node stops being a member when a committed configuration no longer lists it although an
earlier one did, or when its own certificate is on its organisation's CRL in that configuration.
(A node that is joining starts from a genesis block that does not list it yet: it is not "removed"
until it has been a member.) Either way every other node
refuses it from that block on, so it must stop presenting itself as useful: the channel runtime
records the reason (logged once), ``/healthz`` names it as a failing ``membership:<channel>``
check, and the gateway refuses transaction submissions with that reason instead of timing out
on an ordering service that will never answer.

This module only judges; it never changes the transport, the ledger or the node's state.
"""

from __future__ import annotations

from typing import Any, Protocol

from crypto.encoding import EncodingError, decode
from crypto.msp import Identity, IdentityError, Revoked, Role
from secprivnode.contracts.config_contract import CONFIG_KEY, CONFIG_NAMESPACE, msp_from_config
from storage.model import ChannelConfig

__all__ = ["ConfigHistory", "ever_listed", "exclusion_reason"]


class ConfigHistory(Protocol):
    def get_history(self, ns: str, key: str, limit: int | None = None) -> list[Any]: ...


def ever_listed(ledger: ConfigHistory, name: str) -> bool:
    """Whether any committed configuration of the channel listed node ``name``."""
    for entry in ledger.get_history(CONFIG_NAMESPACE, CONFIG_KEY):
        if entry.value is None:
            continue
        try:
            cfg = ChannelConfig.from_obj(decode(entry.value))
        except (EncodingError, ValueError, TypeError):
            continue  # the validator admitted it; a value we cannot read lists nobody we know
        if cfg.node(name) is not None:
            return True
    return False


def exclusion_reason(cfg: ChannelConfig, identity: Identity, now: int, *, was_member: bool = True) -> str | None:
    """Why ``identity`` (this node) is no longer a member under ``cfg``, or ``None`` if it is one
    (or, with ``was_member`` false, has not been one yet).

    ``now`` (unix seconds) is only needed by the certificate check; an expired certificate is not
    judged here (the operator renews it), only revocation and removal."""
    try:
        msp_from_config(cfg).validate(identity.cert_der, now=now, roles={Role.NODE})
    except Revoked:
        return (
            f"the certificate of {identity.id} is revoked by {identity.org}'s CRL in configuration "
            f"sequence {cfg.sequence} of channel {cfg.channel}"
        )
    except IdentityError:
        pass
    me = cfg.node(identity.name)
    if was_member and (me is None or me.org != identity.org):
        return f"{identity.name} was removed from channel {cfg.channel} (configuration sequence {cfg.sequence})"
    return None
