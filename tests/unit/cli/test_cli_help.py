"""The whole ``secprivnode`` command tree documents itself: every option has help text, options
with a default show it, and bare ``secprivnode`` prints the help and exits 0."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from secprivnode.cli.main import cli


def walk(cmd: click.Command, path: str = "secprivnode") -> Iterator[tuple[str, click.Command]]:
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from walk(sub, f"{path} {name}")


COMMANDS = list(walk(cli))


def test_the_tree_is_walked() -> None:
    names = {path for path, _ in COMMANDS}
    assert {"secprivnode tx invoke", "secprivnode bench", "secprivnode chain contracts"} <= names


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_command_and_option_has_help(path: str, cmd: click.Command) -> None:
    assert (cmd.help or cmd.short_help or "").strip(), f"`{path}` has no help text"
    ctx = click.Context(cmd)
    for p in cmd.params:
        if not isinstance(p, click.Option) or p.hidden:
            continue
        name = "/".join(p.opts + p.secondary_opts)
        assert (p.help or "").strip(), f"`{path}` option {name} has no help text"
        default = p.get_default(ctx, call=False)
        # A plain flag that is off by default says nothing by showing "False", nor does an empty
        # string (its help says what empty means).
        plain_off_flag = p.is_flag and not p.secondary_opts and not default
        if default not in (None, "") and not plain_off_flag and not p.multiple and not p.required and not p.is_eager:
            assert p.show_default, f"`{path}` option {name} has default {p.default!r} but does not show it"


def test_bare_command_prints_help_and_exits_0() -> None:
    result = CliRunner().invoke(cli, [])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and "network" in result.output
