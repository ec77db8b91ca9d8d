"""A slow, lossy network: 100 ms ± 50 ms of delay and 5% loss on every node's link (tc netem).

The network must keep committing; the throughput and p99 latency of acknowledged operations are
printed beside a clean run's on the same bed. Needs the kernel's netem qdisc
(CONFIG_NET_SCH_NETEM): without it the test is skipped with that reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from testbed.checker import latency_figures
from testbed.cluster import Testbed
from testbed.netns import Netem, netem_supported

pytestmark = [pytest.mark.functional, pytest.mark.usefixtures("netns_ok")]

ACKED_SETUP = 12  # the accounts' creates and a little load before measuring
ACKED_MEASURED = 30  # acknowledged operations per measured phase
IMPAIRED = Netem(delay_ms=100, jitter_ms=50, loss_pct=5.0)


def _window_ms(history: Path) -> int:
    last = history.read_text().splitlines()[-1]
    return int(json.loads(last)["time_ms"])


def test_latency_and_loss_keep_committing(tmp_path: Path) -> None:
    if not netem_supported():
        pytest.skip("the kernel has no netem qdisc (CONFIG_NET_SCH_NETEM); delay and loss cannot be injected")
    history = tmp_path / "history.jsonl"
    with Testbed(tmp_path) as bed:
        load = bed.start_workload(history, clients=4)
        bed.wait_acked(history, ACKED_SETUP)
        t0 = _window_ms(history)
        bed.wait_acked(history, ACKED_MEASURED, timeout_s=120)
        t1 = _window_ms(history)
        for n in bed.nodes:
            bed.net.netem(n.name, IMPAIRED)
        bed.log.info("netem on every node: %s", " ".join(IMPAIRED.args()))
        bed.wait_acked(history, ACKED_MEASURED, timeout_s=300)
        t2 = _window_ms(history)
        for n in bed.nodes:
            bed.net.clear_netem(n.name)
        clean, slow = latency_figures(history, t0, t1), latency_figures(history, t1, t2)
        print(f"\nclean link:            {clean}\n100±50 ms, 5% loss:    {slow}")
        bed.log.info("clean %s; impaired %s", clean, slow)
        assert slow["acked"] > 0
        bed.finish(load, history)
