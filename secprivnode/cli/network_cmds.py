"""``secprivnode network``: create, start, inspect and stop a local city network."""

from __future__ import annotations

import json
from pathlib import Path

import click

from secprivnode.cli.options import network_dir_option
from secprivnode.network import (
    NetworkError,
    init_network,
    network_down,
    network_status,
    network_up,
)

_DIR = network_dir_option


def _print_status(status: dict[str, object]) -> None:
    click.echo(f"channel {status['channel']}, Raft leader: {status.get('leader') or 'none'}")
    for n in status["nodes"]:  # type: ignore[attr-defined]
        state = "healthy" if n["healthy"] else ("running" if n["pid"] else "stopped")
        click.echo(f"  {n['name']:<22} {n['rpc']:<28} pid {n['pid'] or '-':<8} {state}")


def register(cli: click.Group) -> None:
    @cli.group("network")
    def network_group() -> None:
        """Run a local city network: one process per node, on this machine."""

    @network_group.command("init")
    @_DIR
    @click.option("--orgs", type=click.IntRange(1, 32), default=3, show_default=True, help="Organisations.")
    @click.option("--nodes-per-org", type=click.IntRange(1, 8), default=1, show_default=True, help="Nodes per org.")
    @click.option("--channel", default="city", show_default=True, help="Channel name.")
    @click.option(
        "--base-port",
        type=click.IntRange(1024, 60000),
        default=7051,
        show_default=True,
        envvar="SECPRIVNODE_BASE_PORT",
        show_envvar=True,
        help="P2P ports start here; JSON-RPC at +1000, operations at +2000.",
    )
    @click.option(
        "--rpc-tls/--no-rpc-tls",
        default=False,
        show_default=True,
        help="Serve JSON-RPC and operations over HTTPS/WSS with the node certificates "
        "(clients verify them against crypto/ca-bundle.pem).",
    )
    def init(directory: Path, orgs: int, nodes_per_org: int, channel: str, base_port: int, rpc_tls: bool) -> None:
        """Write crypto material, the genesis block and node configs for a new network."""
        try:
            nodes = init_network(
                directory,
                orgs=orgs,
                nodes_per_org=nodes_per_org,
                channel=channel,
                base_port=base_port,
                rpc_tls=rpc_tls,
            )
        except (NetworkError, ValueError, OSError) as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"initialised network in {directory}: channel {channel}, {len(nodes)} nodes")
        for n in nodes:
            click.echo(f"  {n.name:<22} p2p {n.p2p:<18} rpc {n.rpc_url}")
        if rpc_tls:
            click.echo(f"clients verify the nodes with --cacert {directory / 'crypto' / 'ca-bundle.pem'}")
        click.echo(f"next: secprivnode network up --dir {directory}")

    @network_group.command("up")
    @_DIR
    @click.option("--timeout", "timeout_s", type=float, default=60.0, show_default=True, help="Seconds to wait.")
    def up(directory: Path, timeout_s: float) -> None:
        """Start the nodes in the background; return once all are healthy and a leader is elected."""
        try:
            status = network_up(directory, timeout_s=timeout_s)
        except NetworkError as exc:
            raise click.ClickException(str(exc)) from exc
        _print_status(status)

    @network_group.command("status")
    @_DIR
    @click.option("--json", "as_json", is_flag=True, help="Print JSON (nodes with name, rpc, pid, roles).")
    def status(directory: Path, as_json: bool) -> None:
        """Show each node's RPC address, process and health, and the Raft leader."""
        try:
            st = network_status(directory)
        except NetworkError as exc:
            raise click.ClickException(str(exc)) from exc
        if as_json:
            click.echo(json.dumps(st, indent=2))
        else:
            _print_status(st)

    @network_group.command("down")
    @_DIR
    def down(directory: Path) -> None:
        """Stop every node gracefully (SIGTERM; SIGKILL after a timeout)."""
        try:
            stopped = network_down(directory)
        except NetworkError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"stopped {len(stopped)} node(s){': ' + ', '.join(stopped) if stopped else ''}")
