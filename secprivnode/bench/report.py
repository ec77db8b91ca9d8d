"""Benchmark results: per-round statistics, the Caliper-style table, JSON and an offline HTML report.

Definitions (as Hyperledger Caliper reports them):

* **Succ / Fail** — transactions committed VALID / refused or invalidated. MVCC and phantom
  read conflicts are counted apart (``conflicts``): they are the workload's contention, not a
  fault of the network.
* **Send Rate** — transactions sent ÷ (last send − first send).
* **Latency** — submit (just before the request leaves the client) → commit (the block event of
  the node the worker talks to); over successful transactions only. Percentiles interpolate
  linearly between order statistics (numpy's default "linear" method).
* **Throughput** — successful ÷ (last successful commit − first send).

The HTML report draws its plots as inline SVG generated here, so the file opens offline with no
script and no third-party plotting library. This module never talks to a node.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CONFLICT",
    "FAIL",
    "OK",
    "NodeUsage",
    "RoundStats",
    "histogram",
    "percentile",
    "render_html",
    "render_table",
    "summarize",
    "timeline",
    "write_json",
]

OK, CONFLICT, FAIL = 0, 1, 2
# Bins of the latency histogram in the HTML report: enough to show a shape, few enough to label.
HISTOGRAM_BINS = 40


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0..100) of already sorted values, linear interpolation; NaN if empty."""
    if not 0 <= p <= 100:
        raise ValueError("p must be in [0, 100]")
    n = len(sorted_values)
    if n == 0:
        return math.nan
    pos = (n - 1) * p / 100
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac


@dataclass(frozen=True, slots=True)
class NodeUsage:
    name: str
    pid: int | None
    cpu_percent_avg: float  # 100 = one core busy
    cpu_percent_max: float
    rss_mb_start: float
    rss_mb_end: float
    rss_mb_max: float
    cpu_s: float = 0.0  # CPU seconds (user + system) the node used during the round
    rss_mb_series: tuple[float, ...] = ()  # RSS every RSS_SERIES_EVERY_S seconds: is it growing?


@dataclass(slots=True)
class RoundStats:
    name: str
    control: str
    sent: int
    succ: int
    fail: int
    conflicts: int
    send_rate: float
    throughput: float
    lat_min: float
    lat_max: float
    lat_avg: float
    p50: float
    p95: float
    p99: float
    duration_s: float
    errors: dict[str, int] = field(default_factory=dict)
    timeline: list[tuple[float, int, float, float]] = field(default_factory=list)  # (t, commits/s, p50, p99)
    histogram: list[tuple[float, float, int]] = field(default_factory=list)  # (lo, hi, count)
    nodes: list[NodeUsage] = field(default_factory=list)
    client_cpu_percent: float = 0.0
    client_cpu_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return dict(_json_safe(asdict(self)))


def _json_safe(v: Any) -> Any:
    """``v`` with every NaN (an empty percentile) replaced by None, which JSON can carry."""
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def timeline(
    done: Sequence[float], latency: Sequence[float], bucket_s: float = 1.0
) -> list[tuple[float, int, float, float]]:
    """Per bucket of commit time: (bucket start, commits per second, p50, p99 of those commits)."""
    if bucket_s <= 0:
        raise ValueError("bucket_s must be positive")
    buckets: dict[int, list[float]] = {}
    for t, lat in zip(done, latency, strict=True):
        buckets.setdefault(math.floor(t / bucket_s), []).append(lat)
    if not buckets:
        return []
    out = []
    for b in range(min(buckets), max(buckets) + 1):
        lats = sorted(buckets.get(b, []))
        out.append((b * bucket_s, round(len(lats) / bucket_s), percentile(lats, 50), percentile(lats, 99)))
    return out


def histogram(values: Sequence[float], bins: int = HISTOGRAM_BINS) -> list[tuple[float, float, int]]:
    """Equal-width bins over [min, max]: (low edge, high edge, count); the last bin is closed."""
    if bins < 1:
        raise ValueError("bins must be positive")
    if not values:
        return []
    lo, hi = min(values), max(values)
    if hi == lo:
        return [(lo, hi, len(values))]
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in values:
        counts[min(int((v - lo) / width), bins - 1)] += 1
    return [(lo + i * width, lo + (i + 1) * width, c) for i, c in enumerate(counts)]


def summarize(
    name: str,
    control: str,
    submit: Sequence[float],
    done: Sequence[float],
    outcome: Sequence[int],
    errors: Mapping[str, int] | None = None,
) -> RoundStats:
    """Statistics of one round from per-transaction (submit time, done time, outcome) in seconds.

    ``done`` may be NaN for transactions that never finished (counted as failures by the caller's
    ``outcome``)."""
    if not len(submit) == len(done) == len(outcome):
        raise ValueError("submit, done and outcome must have the same length")
    succ_lat: list[float] = []
    succ_done: list[float] = []
    counts = [0, 0, 0]
    for s, d, o in zip(submit, done, outcome, strict=True):
        counts[o] += 1
        if o == OK:
            succ_lat.append(d - s)
            succ_done.append(d)
    lat = sorted(succ_lat)
    sent = len(submit)
    first, last = (min(submit), max(submit)) if submit else (0.0, 0.0)
    send_rate = (sent - 1) / (last - first) if sent > 1 and last > first else float(sent)
    span = (max(succ_done) - first) if succ_done else 0.0
    throughput = len(lat) / span if span > 0 else 0.0
    nan = math.nan
    return RoundStats(
        name=name,
        control=control,
        sent=sent,
        succ=counts[OK],
        fail=counts[FAIL],
        conflicts=counts[CONFLICT],
        send_rate=send_rate,
        throughput=throughput,
        lat_min=lat[0] if lat else nan,
        lat_max=lat[-1] if lat else nan,
        lat_avg=sum(lat) / len(lat) if lat else nan,
        p50=percentile(lat, 50),
        p95=percentile(lat, 95),
        p99=percentile(lat, 99),
        duration_s=span,
        errors=dict(errors or {}),
        timeline=timeline(succ_done, succ_lat),
        histogram=histogram(lat),
    )


# ---- text ------------------------------------------------------------------------------------------


def _s(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.3f}"


def render_table(rounds: Sequence[RoundStats]) -> Any:
    """A rich Table, one row per round (Caliper's columns plus conflicts and percentiles)."""
    from rich.table import Table

    t = Table(title="Performance metrics per round", show_lines=False)
    for col in (
        "Name",
        "Succ",
        "Fail",
        "MVCC",
        "Send Rate (TPS)",
        "Max Latency (s)",
        "Min Latency (s)",
        "Avg Latency (s)",
        "p50 (s)",
        "p95 (s)",
        "p99 (s)",
        "Throughput (TPS)",
    ):
        t.add_column(col, justify="left" if col == "Name" else "right")
    for r in rounds:
        t.add_row(
            r.name,
            str(r.succ),
            str(r.fail),
            str(r.conflicts),
            f"{r.send_rate:.1f}",
            _s(r.lat_max),
            _s(r.lat_min),
            _s(r.lat_avg),
            _s(r.p50),
            _s(r.p95),
            _s(r.p99),
            f"{r.throughput:.1f}",
        )
    return t


def render_nodes(rounds: Sequence[RoundStats]) -> Any:
    from rich.table import Table

    t = Table(title="Resource use per node (psutil; CPU 100% = one core)")
    for col in ("Round", "Node", "PID", "CPU avg %", "CPU max %", "RSS start (MB)", "RSS end (MB)", "RSS max (MB)"):
        t.add_column(col, justify="left" if col in ("Round", "Node") else "right")
    for r in rounds:
        for n in r.nodes:
            t.add_row(
                r.name,
                n.name,
                str(n.pid or "-"),
                f"{n.cpu_percent_avg:.0f}",
                f"{n.cpu_percent_max:.0f}",
                f"{n.rss_mb_start:.0f}",
                f"{n.rss_mb_end:.0f}",
                f"{n.rss_mb_max:.0f}",
            )
        t.add_row(r.name, "load generator", "-", f"{r.client_cpu_percent:.0f}", "", "", "", "")
    return t


def write_json(path: Path, doc: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(doc, indent=2, allow_nan=False, default=str) + "\n")


# ---- HTML with inline SVG ----------------------------------------------------------------------------

_W, _H, _PAD = 640, 260, 48
_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e")


def _nice_max(v: float) -> float:
    if v <= 0 or math.isnan(v):
        return 1.0
    mag = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * mag:
            return m * mag
    return 10 * mag


def _svg(parts: Sequence[str]) -> str:
    head = f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
    head += 'font-family="sans-serif" font-size="12">'
    return head + "".join(parts) + "</svg>"


def _axes(title: str, xmax: float, ymax: float, xlabel: str, ylabel: str) -> list[str]:
    x0, y0, x1, y1 = _PAD, _H - _PAD, _W - 16, 24
    parts = [
        f'<text x="{_W / 2}" y="16" text-anchor="middle" font-weight="bold">{html.escape(title)}</text>',
        f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#333"/>',
        f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#333"/>',
        f'<text x="{(x0 + x1) / 2}" y="{_H - 8}" text-anchor="middle">{html.escape(xlabel)}</text>',
        f'<text x="12" y="{(y0 + y1) / 2}" transform="rotate(-90 12 {(y0 + y1) / 2})" '
        f'text-anchor="middle">{html.escape(ylabel)}</text>',
    ]
    for i in range(5):
        fy = i / 4
        y = y0 - fy * (y0 - y1)
        parts.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{ymax * fy:g}</text>')
        x = x0 + fy * (x1 - x0)
        parts.append(f'<text x="{x:.1f}" y="{y0 + 14}" text-anchor="middle" font-size="10">{xmax * fy:.3g}</text>')
    return parts


def svg_lines(title: str, series: Mapping[str, Sequence[tuple[float, float]]], xlabel: str, ylabel: str) -> str:
    """A line chart of named (x, y) series; NaN points break the line."""
    pts = [p for s in series.values() for p in s if not math.isnan(p[1])]
    xmax = _nice_max(max((p[0] for p in pts), default=1.0))
    ymax = _nice_max(max((p[1] for p in pts), default=1.0))
    x0, y0, x1, y1 = _PAD, _H - _PAD, _W - 16, 24
    parts = _axes(title, xmax, ymax, xlabel, ylabel)
    for i, (label, s) in enumerate(series.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        segs: list[list[str]] = [[]]
        for x, y in s:
            if math.isnan(y):
                segs.append([])
                continue
            segs[-1].append(f"{x0 + x / xmax * (x1 - x0):.1f},{y0 - y / ymax * (y0 - y1):.1f}")
        for seg in segs:
            if seg:
                parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{" ".join(seg)}"/>')
        parts.append(
            f'<text x="{x1 - 4}" y="{y1 + 14 * (i + 1)}" text-anchor="end" fill="{colour}">{html.escape(label)}</text>'
        )
    return _svg(parts)


def svg_histogram(title: str, bins: Sequence[tuple[float, float, int]], xlabel: str) -> str:
    xmax = _nice_max(max((b[1] for b in bins), default=1.0))
    ymax = _nice_max(max((b[2] for b in bins), default=1))
    x0, y0, x1, y1 = _PAD, _H - _PAD, _W - 16, 24
    parts = _axes(title, xmax, ymax, xlabel, "transactions")
    for lo, hi, c in bins:
        bx = x0 + lo / xmax * (x1 - x0)
        bw = max(1.0, (hi - lo) / xmax * (x1 - x0) - 1)
        bh = c / ymax * (y0 - y1)
        parts.append(f'<rect x="{bx:.1f}" y="{y0 - bh:.1f}" width="{bw:.1f}" height="{bh:.1f}" fill="{_COLOURS[0]}"/>')
    return _svg(parts)


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(doc: Mapping[str, Any], rounds: Sequence[RoundStats]) -> str:
    """A self-contained HTML report: summary, per-round table, node usage and plots."""
    summary_rows = [(k, v) for k, v in doc.items() if not isinstance(v, (dict, list))]
    round_rows = [
        (
            r.name,
            r.succ,
            r.fail,
            r.conflicts,
            f"{r.send_rate:.1f}",
            _s(r.lat_max),
            _s(r.lat_min),
            _s(r.lat_avg),
            _s(r.p50),
            _s(r.p95),
            _s(r.p99),
            f"{r.throughput:.1f}",
        )
        for r in rounds
    ]
    node_rows = [
        (r.name, n.name, n.pid or "-", f"{n.cpu_percent_avg:.0f}", f"{n.rss_mb_start:.0f}", f"{n.rss_mb_end:.0f}")
        for r in rounds
        for n in r.nodes
    ]
    sections = [
        "<h2>Summary</h2>",
        _html_table(("metric", "value"), summary_rows),
        "<h2>Rounds</h2>",
        _html_table(
            ("Name", "Succ", "Fail", "MVCC", "Send Rate", "Max Lat", "Min Lat", "Avg Lat", "p50", "p95", "p99", "TPS"),
            round_rows,
        ),
        "<h2>Nodes</h2>",
        _html_table(("Round", "Node", "PID", "CPU avg %", "RSS start MB", "RSS end MB"), node_rows),
    ]
    for r in rounds:
        tput = [(t, float(n)) for t, n, _, _ in r.timeline]
        lat = {"p50": [(t, p50) for t, _, p50, _ in r.timeline], "p99": [(t, p99) for t, _, _, p99 in r.timeline]}
        sections += [
            f"<h2>Round {html.escape(r.name)} ({html.escape(r.control)})</h2>",
            svg_lines("Committed throughput", {"tx/s": tput}, "seconds since start", "tx/s"),
            svg_lines("Latency (submit to commit)", lat, "seconds since start", "seconds"),
            svg_histogram("Latency histogram", r.histogram, "latency (s)"),
        ]
        if r.errors:
            sections.append(_html_table(("error", "count"), sorted(r.errors.items())))
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:70em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
        "th{background:#f3f3f3}svg{display:block;margin:1em 0}"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>secprivnode bench</title>'
        f"<style>{style}</style></head><body><h1>secprivnode bench</h1>{''.join(sections)}</body></html>\n"
    )
