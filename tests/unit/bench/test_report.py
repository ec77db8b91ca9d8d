"""Report maths: percentiles, per-round statistics, timeline, histogram, and the rendered outputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from secprivnode.bench.report import (
    CONFLICT,
    FAIL,
    OK,
    histogram,
    percentile,
    render_html,
    render_table,
    summarize,
    timeline,
    write_json,
)


def test_percentile_interpolates_like_numpy_linear() -> None:
    v = [1.0, 2.0, 3.0, 4.0]
    assert percentile(v, 0) == 1.0
    assert percentile(v, 100) == 4.0
    assert percentile(v, 50) == 2.5
    assert percentile(v, 99) == pytest.approx(3.97)
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(v, 101)


def test_summarize_counts_conflicts_apart_and_uses_successes_for_latency() -> None:
    submit = [0.0, 0.0, 1.0, 1.0, 2.0]
    done = [0.5, 0.7, 1.2, 1.9, math.nan]
    outcome = [OK, OK, CONFLICT, OK, FAIL]
    s = summarize("write", "fixed", submit, done, outcome, {"timeout": 1})
    assert (s.sent, s.succ, s.conflicts, s.fail) == (5, 3, 1, 1)
    assert s.lat_min == pytest.approx(0.5)
    assert s.lat_max == pytest.approx(0.9)
    assert s.lat_avg == pytest.approx((0.5 + 0.7 + 0.9) / 3)
    assert s.p50 == pytest.approx(0.7)
    # 5 sent over 2 s: (5 - 1) / 2 intervals per second.
    assert s.send_rate == pytest.approx(2.0)
    # 3 successes between the first send (0.0) and the last successful commit (1.9).
    assert s.throughput == pytest.approx(3 / 1.9)
    assert s.errors == {"timeout": 1}


def test_summarize_with_no_success_has_no_latency() -> None:
    s = summarize("x", "c", [0.0], [math.nan], [FAIL])
    assert s.succ == 0 and s.throughput == 0.0 and math.isnan(s.p99)
    assert s.to_json()["p99"] is None  # JSON has no NaN


def test_json_has_no_nan_even_in_empty_timeline_buckets() -> None:
    s = summarize("x", "c", [0.0, 0.0], [0.1, 3.0], [OK, OK])
    doc = s.to_json()
    assert doc["timeline"][1][2] is None  # no commit in second 1
    json.dumps(doc, allow_nan=False)


def test_summarize_rejects_ragged_input() -> None:
    with pytest.raises(ValueError):
        summarize("x", "c", [0.0], [], [OK])


def test_timeline_buckets_by_commit_time_and_fills_gaps() -> None:
    tl = timeline([0.1, 0.2, 2.5], [0.1, 0.3, 1.0])
    assert [(t, n) for t, n, _, _ in tl] == [(0.0, 2), (1.0, 0), (2.0, 1)]
    assert tl[0][2] == pytest.approx(0.2)
    assert math.isnan(tl[1][2])


def test_histogram_counts_every_value_once() -> None:
    values = [0.0, 0.1, 0.2, 0.9, 1.0]
    bins = histogram(values, bins=4)
    assert len(bins) == 4
    assert sum(c for _, _, c in bins) == len(values)
    assert bins[0] == (0.0, 0.25, 3)
    assert bins[-1][2] == 2  # the top edge belongs to the last bin
    assert histogram([2.0, 2.0]) == [(2.0, 2.0, 2)]
    assert histogram([]) == []


def test_outputs_render(tmp_path: Path) -> None:
    s = summarize("write", "fixed", [0.0, 0.5, 1.0], [0.4, 1.0, 1.6], [OK, OK, OK])
    doc = {"committed_tps": s.throughput, "p99_s": s.p99, "rounds": [s.to_json()]}
    html = render_html(doc, [s])
    assert html.startswith("<!DOCTYPE html>") and html.count("<svg") == 3
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    path = tmp_path / "r.json"
    write_json(path, doc)
    assert json.loads(path.read_text())["rounds"][0]["succ"] == 3
    assert render_table([s]).row_count == 1
