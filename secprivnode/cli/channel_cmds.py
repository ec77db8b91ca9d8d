"""``secprivnode channel``: inspect a channel's configuration, define contracts, revoke users."""

from __future__ import annotations

import json
from pathlib import Path

import click

from secprivnode.cli.options import network_dir_option
from secprivnode.network import NetworkError, load_network, rpc_call


def register(cli: click.Group) -> None:
    @cli.group("channel")
    def channel_group() -> None:
        """Channel configuration: members, nodes, batch parameters, contracts."""

    @channel_group.command("show")
    @network_dir_option
    def show(directory: Path) -> None:
        """Print the channel's current configuration as a node reports it."""
        try:
            _, nodes = load_network(directory)
            got = rpc_call(nodes[0].rpc_url, "config_get", context=nodes[0].ssl_context())
        except (NetworkError, OSError) as exc:
            raise click.ClickException(str(exc)) from exc
        cfg = dict(got["config"])
        cfg.pop("encoded", None)
        click.echo(json.dumps(cfg, indent=2))

    @channel_group.command("define-contract")
    @network_dir_option
    @click.option("--name", required=True, help="Contract name (installed on the nodes, e.g. assets).")
    @click.option("--version", "version", required=True, help="Contract version.")
    @click.option(
        "--policy", required=True, help="Endorsement policy, e.g. \"OutOf(2, 'council.node', 'health.node')\"."
    )
    def define_contract(directory: Path, name: str, version: str, policy: str) -> None:
        """Define or redefine a contract: a config update approved by the channel admins."""
        from secprivnode.admin import define_contract as define

        try:
            cfg = define(directory, name, version, policy)
        except (NetworkError, OSError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(
            f"contract {name} {version} defined on {cfg.channel} with policy {policy} (config sequence {cfg.sequence})"
        )

    @channel_group.command("revoke")
    @network_dir_option
    @click.option("--identity", required=True, help="org/user to revoke, e.g. council/client2.")
    def revoke(directory: Path, identity: str) -> None:
        """Revoke a user's certificate and publish the CRL in a config update: every node then
        refuses the identity in proposals and signed state reads."""
        from secprivnode.admin import revoke_user

        org, sep, user = identity.partition("/")
        if not sep or not org or not user:
            raise click.ClickException(f"--identity: expected org/user, got {identity!r}")
        try:
            cfg = revoke_user(directory, org, user)
        except (NetworkError, OSError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"revoked {org}/{user} on {cfg.channel} (config sequence {cfg.sequence})")
