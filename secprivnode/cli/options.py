"""Options shared by several command groups."""

from __future__ import annotations

from pathlib import Path

import click

network_dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("city"),
    show_default=True,
    help="Local network directory.",
)
