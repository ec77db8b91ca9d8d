"""``secprivnode crypto`` and ``secprivnode ca``: PKI material for a network."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    @cli.group("crypto")
    def crypto_group() -> None:
        """Generate cryptographic material."""
