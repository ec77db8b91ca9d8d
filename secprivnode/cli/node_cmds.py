"""``secprivnode node``: run a node from its configuration file; admit a new node to a network."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

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
