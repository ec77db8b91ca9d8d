"""``--transient NAME=VALUE`` of ``secprivnode tx invoke|query``: text, hex and file values."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from secprivnode.cli.tx_cmds import _transient


def test_values_as_text_hex_and_file(tmp_path: Path) -> None:
    f = tmp_path / "v.bin"
    f.write_bytes(b"\x00\x01secret")
    got = _transient(("a=plain text", "b=0x00ff", f"c=@{f}", "d="))
    assert got == {"a": b"plain text", "b": b"\x00\xff", "c": b"\x00\x01secret", "d": b""}


@pytest.mark.parametrize("bad", ["noequals", "=x", "h=0xzz", "f=@/nonexistent/file"])
def test_bad_values_are_clear_errors(bad: str) -> None:
    with pytest.raises(click.ClickException):
        _transient((bad,))
