"""``secprivnode channel``: create channels, list them, inspect a channel's configuration, define
contracts and private collections on it and revoke users."""

from __future__ import annotations

import json
from pathlib import Path

import click

from secprivnode.cli.options import network_dir_option
from secprivnode.network import DEFAULT_MAX_PEERS, NetworkError, load_network, rpc_call
from secprivnode.network_channels import create_channel, list_channels


def register(cli: click.Group) -> None:
    @cli.group("channel")
    def channel_group() -> None:
        """Channel configuration: members, nodes, batch parameters, contracts."""

    @channel_group.command("show")
    @network_dir_option
    @click.option("--channel", default=None, help="Channel name (default: the network's default channel).")
    def show(directory: Path, channel: str | None) -> None:
        """Print the channel's current configuration as a node reports it."""
        try:
            default, nodes = load_network(directory)
            members = {c["name"]: c["orgs"] for c in list_channels(directory)}
            name = channel or default
            if name not in members:
                raise NetworkError(f"no channel {name!r} in {directory} (see `secprivnode channel list`)")
            node = next(n for n in nodes if n.org in members[name])
            got = rpc_call(node.rpc_url, "config_get", {"channel": name}, context=node.ssl_context())
        except (NetworkError, OSError) as exc:
            raise click.ClickException(str(exc)) from exc
        cfg = dict(got["config"])
        cfg.pop("encoded", None)
        click.echo(json.dumps(cfg, indent=2))

    @channel_group.command("define-collection")
    @network_dir_option
    @click.option("--contract", required=True, help="The contract the collection belongs to (e.g. assets).")
    @click.option("--name", required=True, help="Collection name.")
    @click.option("--member", "members", multiple=True, required=True, help="A member organisation (repeat).")
    @click.option("--required-peers", type=int, default=0, show_default=True, help="Acks before endorsing.")
    @click.option("--max-peers", type=int, default=None, help="Most member nodes pushed to (default: all).")
    @click.option("--block-to-live", type=int, default=0, show_default=True, help="Blocks kept; 0: forever.")
    def define_collection(
        directory: Path,
        contract: str,
        name: str,
        members: tuple[str, ...],
        required_peers: int,
        max_peers: int | None,
        block_to_live: int,
    ) -> None:
        """Define or redefine a private-data collection: a config update approved by the channel admins."""
        from secprivnode.admin import define_collection as define
        from storage.model import CollectionConfig

        max_peers = max_peers if max_peers is not None else DEFAULT_MAX_PEERS
        coll = CollectionConfig(contract, name, members, required_peers, max_peers, block_to_live)
        try:
            cfg = define(directory, coll)
        except (NetworkError, OSError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(
            f"collection {contract}/{name} of {', '.join(members)} defined on {cfg.channel} "
            f"(block-to-live {block_to_live}, config sequence {cfg.sequence})"
        )

    @channel_group.command("create")
    @network_dir_option
    @click.option("--name", required=True, help="New channel's name (lower-case letters, digits, '-').")
    @click.option("--orgs", required=True, help="Comma-separated member organisations, e.g. council,health.")
    @click.option(
        "--restart/--no-restart",
        default=True,
        show_default=True,
        help="Restart the member nodes that are running, one at a time, so they join the channel.",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
    def create(directory: Path, name: str, orgs: str, restart: bool, as_json: bool) -> None:
        """Create a channel among a subset of the organisations: its genesis block, its own Raft
        group and ledger on the member nodes; other organisations' nodes never hold its blocks."""
        try:
            path, members = create_channel(
                directory, name, [o.strip() for o in orgs.split(",") if o.strip()], restart=restart
            )
        except (NetworkError, OSError) as exc:
            raise click.ClickException(str(exc)) from exc
        result = {"channel": name, "genesis": str(path), "nodes": [n.name for n in members]}
        if as_json:
            click.echo(json.dumps(result, indent=2))
        else:
            click.echo(f"channel {name} created: genesis {path}; member nodes {', '.join(result['nodes'])}")

    @channel_group.command("list")
    @network_dir_option
    @click.option("--json", "as_json", is_flag=True, help="Print the channels as JSON.")
    def list_cmd(directory: Path, as_json: bool) -> None:
        """The network's channels and their member organisations."""
        try:
            channels = list_channels(directory)
        except (NetworkError, OSError) as exc:
            raise click.ClickException(str(exc)) from exc
        if as_json:
            click.echo(json.dumps(channels, indent=2))
            return
        for c in channels:
            click.echo(f"{c['name']}{' (default)' if c['default'] else ''}: {', '.join(c['orgs'])}")

    @channel_group.command("define-contract")
    @network_dir_option
    @click.option("--name", required=True, help="Contract name, e.g. assets (packaged code is kept).")
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
