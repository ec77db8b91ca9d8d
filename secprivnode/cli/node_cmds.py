"""``secprivnode node``: run a node from its configuration file; admit a new node to a network."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from secprivnode.cli.options import network_dir_option
from secprivnode.config import ConfigError, load_config


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a core dependency; stay usable without it
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def register(cli: click.Group) -> None:
    @cli.group("node")
    def node_group() -> None:
        """Run a node, or admit a new node to a channel."""

    @node_group.command("run")
    @click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        required=True,
        help="Node configuration (YAML); see configs/node.example.yaml.",
    )
    def run(config_path: Path) -> None:
        """Run the node in the foreground until SIGTERM or SIGINT (graceful shutdown)."""
        from secprivnode.logs import setup_logging
        from secprivnode.node import run_node

        try:
            config = load_config(config_path)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from exc
        setup_logging(config.node.name, config.logging.level, config.logging.format)
        _install_uvloop()
        sys.exit(asyncio.run(run_node(config)))

    @node_group.command("join")
    @network_dir_option
    @click.option("--org", required=True, help="Organisation whose CA issues the node certificate.")
    @click.option("--name", default=None, help="Node name (default: <org>-node<next>).")
    @click.option("--orderer", is_flag=True, help="Also make it an orderer (Raft learner, then voter).")
    def join(directory: Path, org: str, name: str | None, orderer: bool) -> None:
        """Admit a new node: issue its certificate, update the channel config, write its node.yaml.

        Then start it with `secprivnode network up --dir DIR`: it catches up by state transfer from
        its seed peer and serves queries and endorsements.
        """
        from secprivnode.admin import admit_node
        from secprivnode.network import NetworkError

        try:
            node = admit_node(directory, org, orderer=orderer, name=name)
        except (NetworkError, OSError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"admitted {node.name} ({'orderer, ' if orderer else ''}peer) at {node.p2p}; config {node.config}")
        click.echo(f"start it: secprivnode network up --dir {directory}")

    @node_group.command("remove")
    @network_dir_option
    @click.option("--name", required=True, help="Node to remove from the channel.")
    @click.option("--revoke/--no-revoke", default=True, show_default=True, help="Also revoke its certificate.")
    @click.option(
        "--stop/--keep-running",
        default=True,
        show_default=True,
        help="Stop the removed node's process if it runs here (kept running, it reports its removal "
        "in /healthz and refuses transactions).",
    )
    def remove(directory: Path, name: str, revoke: bool, stop: bool) -> None:
        """Remove a node from the channel (and revoke its certificate): every node then refuses it.

        The node also leaves the network directory's network.yaml, so `network up`, `status` and
        `down` no longer include it; its directory under nodes/ is kept.
        """
        from secprivnode.admin import remove_node
        from secprivnode.network import NetworkError

        try:
            cfg = remove_node(directory, name, revoke=revoke, stop=stop)
        except (NetworkError, OSError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
        note = "; certificate revoked" if revoke else ""
        note += "; its process stopped if it ran here" if stop else ""
        click.echo(f"removed {name} from {cfg.channel} (config sequence {cfg.sequence}){note}")
