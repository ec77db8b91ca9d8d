"""``secprivnode bench`` option handling (no network is started: every case fails before that)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from secprivnode.bench.rate import FixedOutstanding, FixedRate, LinearRamp
from secprivnode.cli.bench_cmd import DEFAULT_OUTSTANDING, _control
from secprivnode.cli.main import cli


def test_rate_options_choose_one_controller() -> None:
    assert _control(500.0, None, None, 60) == FixedRate(500.0)
    assert _control(None, 200, None, 60) == FixedOutstanding(200)
    assert _control(None, None, "100:900", 60) == LinearRamp(100, 900, 60)
    assert _control(None, None, None, 60) == FixedOutstanding(DEFAULT_OUTSTANDING)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tps", "5", "--outstanding", "3", "--nodes", "1"], "choose one of --tps, --outstanding and --ramp"),
        (["--ramp", "fast", "--nodes", "1"], "ramp"),
        ([], "give --dir"),
        (["--url", "http://127.0.0.1:1/"], "--url needs --cert and --key"),
        (["--nodes", "3", "--url", "http://127.0.0.1:1/"], "do not combine"),
        (["--workload", "delete", "--nodes", "1"], "delete"),
    ],
)
def test_bad_options_fail_with_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["bench", *args])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_network_that_is_down_is_reported(tmp_path: Path) -> None:
    from secprivnode.bench.runner import free_base_port
    from secprivnode.network import init_network

    init_network(tmp_path / "net", orgs=1, base_port=free_base_port(1))
    result = CliRunner().invoke(cli, ["bench", "--dir", str(tmp_path / "net"), "--duration", "1"])
    assert result.exit_code == 1
    assert "is not answering" in result.output and "is the network up?" in result.output


def test_each_worker_gets_its_own_identity(tmp_path: Path) -> None:
    from secprivnode.bench.runner import target_from_dir
    from secprivnode.client import ClientIdentity
    from secprivnode.network import init_network

    init_network(tmp_path / "net", orgs=2, base_port=20000, now=1_700_000_000)
    t = target_from_dir(tmp_path / "net", workers=7, now=1_700_000_100)
    assert len(t.identities) == 7 and len({c for c, _ in t.identities}) == 7
    idents = [ClientIdentity.from_pem(c, k) for c, k in t.identities]
    assert [i.name for i in idents[4:]] == ["bench-client1", "bench-client2", "bench-client3"]
    assert [i.org for i in idents[4:]] == ["council", "transport", "council"]
    assert all(i.role == "client" for i in idents)
    assert len(target_from_dir(tmp_path / "net", workers=2).identities) == 4  # client1/client2 suffice
