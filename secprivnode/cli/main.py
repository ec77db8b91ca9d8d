"""Entry point of the ``secprivnode`` command.

Each command group lives in its own module under :mod:`secprivnode.cli` and exposes a
``register(cli)`` function; this module only assembles them. User mistakes end in a one-line
error and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import importlib

import click

# Command modules, in the order their groups appear in --help.
COMMAND_MODULES = [
    "secprivnode.cli.network_cmds",
    "secprivnode.cli.node_cmds",
    "secprivnode.cli.channel_cmds",
    "secprivnode.cli.contract_cmds",
    "secprivnode.cli.tx_cmds",
    "secprivnode.cli.blob_cmds",
    "secprivnode.cli.crypto_cmds",
    "secprivnode.cli.ledger_cmds",
    "secprivnode.cli.bench_cmd",
]


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    invoke_without_command=True,
)
@click.version_option(package_name="secprivnode", help="Show the version and exit.")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """secprivnode: a permissioned blockchain node for smart-city networks."""
    if ctx.invoked_subcommand is None:  # bare `secprivnode`: the help, as a successful answer
        click.echo(ctx.get_help())


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(cli)


def main() -> None:
    cli(prog_name="secprivnode")
