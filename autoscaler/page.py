"""The status page at ``/``: the /status snapshot drawn for a person. Pure: a dict in, HTML out.

One row per service: its replicas (set and ready), the metric that decided its last
check against its threshold, a chart of the last hour (the deciding metric as a percent
of its threshold, and the replicas), and its last changes with their reasons. The page
reloads itself and loads nothing else: no script, style sheet or font from anywhere.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from html import escape
from typing import Any

CONTENT_TYPE = "text/html; charset=utf-8"
REFRESH_SECONDS = 10
WIDTH, HEIGHT = 360.0, 64.0
"""Size of each chart, in pixels."""
HOUR = 3600.0

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
h1 { font-size: 1.3em; margin: 0 0 .2em; }
.meta { color: #666; margin-bottom: 1em; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { border-bottom: 1px solid #ddd; padding: .45em .6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; font-weight: 600; }
.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
.over { color: #b00020; font-weight: 600; }
.problem { color: #b00020; }
.changes { margin: 0; padding-left: 1.1em; color: #444; font-size: .92em; min-width: 24em; }
svg { background: #fcfcfc; border: 1px solid #e4e4e4; }
.legend { color: #666; font-size: .85em; }
"""


def _ago(now: float, at: float | None) -> str:
    if at is None:
        return "never"
    seconds = max(0.0, now - at)
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(at))


def _polyline(points: Sequence[tuple[float, float]], color: str, *, dashed: bool = False) -> str:
    if not points:
        return ""
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    dash = ' stroke-dasharray="4 3"' if dashed else ""
    return f'<polyline fill="none" stroke="{color}" stroke-width="1.5"{dash} points="{path}"/>'


def _chart(last_hour: Sequence[Sequence[Any]], now: float) -> str:
    """The deciding metric in percent of its threshold (red line: 100 %), and the replicas set and ready."""

    def x(at: float) -> float:
        return WIDTH * (1 - min(HOUR, max(0.0, now - at)) / HOUR)

    ratios = [
        (at, 100 * value / threshold)
        for at, _, _, _, value, threshold in last_hour
        if value is not None and threshold
    ]
    top = max([200.0, *(float(ratio) for _, ratio in ratios)])
    most = max([1, *(int(desired) for _, desired, *_ in last_hour)])

    def y_ratio(ratio: float) -> float:
        return HEIGHT - 2 - (HEIGHT - 4) * min(ratio, top) / top

    def y_replicas(replicas: float) -> float:
        return HEIGHT - 2 - (HEIGHT - 4) * replicas / (most + 1)

    line = y_ratio(100)
    metric = _polyline([(x(at), y_ratio(ratio)) for at, ratio in ratios], "#1f77b4")
    desired = _polyline([(x(p[0]), y_replicas(p[1])) for p in last_hour], "#2ca02c")
    ready = _polyline(
        [(x(p[0]), y_replicas(p[2])) for p in last_hour if p[2] is not None], "#2ca02c", dashed=True
    )
    return (
        f'<svg width="{WIDTH:.0f}" height="{HEIGHT:.0f}" viewBox="0 0 {WIDTH:.0f} {HEIGHT:.0f}" '
        'role="img" aria-label="the last hour">'
        f'<line x1="0" x2="{WIDTH:.0f}" y1="{line:.1f}" y2="{line:.1f}" stroke="#d62728" stroke-width="1"/>'
        f"{metric}{desired}{ready}</svg>"
    )


def _decision(entry: dict[str, Any]) -> str:
    reason = entry.get("reason") or {}
    metric, value, threshold = reason.get("metric"), reason.get("value"), reason.get("threshold")
    if metric is None or value is None:
        return escape(str(reason.get("message", "—")))
    over = threshold is not None and value > threshold
    shown = f"{metric} {value:g}" + ("" if threshold is None else f" / {threshold:g}")
    css = ' class="num over"' if over else ' class="num"'
    return f"<span{css}>{escape(shown)}</span><br>{escape(str(reason.get('message', '')))}"


def _changes(entry: dict[str, Any]) -> str:
    changes = entry.get("last_changes") or []
    if not changes:
        return '<span class="legend">no change yet</span>'
    items = "".join(
        f'<li><span class="num">{_clock(change["at"])} {change["replicas_from"]} → {change["replicas_to"]}'
        f"</span> {escape(change['message'])}</li>"
        for change in changes[:5]
    )
    return f'<ul class="changes">{items}</ul>'


def _row(name: str, entry: dict[str, Any], now: float) -> str:
    if entry.get("config_error"):
        problem = escape(str(entry["config_error"]))
        return f'<tr><td>{escape(name)}</td><td colspan="4" class="problem">skipped: {problem}</td></tr>'
    replicas = (
        f'<span class="num">{entry.get("desired_replicas", "—")} set · '
        f"{entry.get('ready_replicas') if entry.get('ready_replicas') is not None else '—'} ready</span>"
    )
    flags = " ".join(flag for flag in ("paused", "dry_run") if entry.get(flag))
    if flags:
        replicas += f'<br><span class="legend">{escape(flags)}</span>'
    problems = "".join(
        f'<div class="problem">{escape(str(problem))}</div>' for problem in entry.get("problems", [])
    )
    return (
        f'<tr data-service="{escape(name)}"><td>{escape(name)}</td><td>{replicas}</td>'
        f"<td>{_decision(entry)}{problems}</td>"
        f"<td>{_chart(entry.get('last_hour') or [], now)}</td><td>{_changes(entry)}</td></tr>"
    )


def render(status: dict[str, Any], now: float) -> str:
    """The page for one /status snapshot taken at ``now`` (seconds since the epoch)."""
    services = status.get("services") or {}
    rows = "".join(_row(name, entry, now) for name, entry in sorted(services.items()))
    if not rows:
        rows = '<tr><td colspan="5">No service is labelled autoscaler.enable=true in scope.</td></tr>'
    problems = status.get("problems") or []
    summary = (
        f"last check {_ago(now, status.get('last_check_at'))} · "
        f"{status.get('collectors_answered', 0)} collector(s) and "
        f"{status.get('entry_points_answered', 0)} entry point(s) answered · "
        f"{len(problems)} problem(s) · refreshes every {REFRESH_SECONDS} s · "
        '<a href="/status">/status</a> as JSON'
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<title>swarm-autoscaler</title><style>{STYLE}</style></head>
<body><h1>swarm-autoscaler</h1><div class="meta">{summary}</div>
<table><thead><tr><th>service</th><th>replicas</th><th>last decision: metric / threshold</th>
<th>last hour <span class="legend">(blue: metric in % of its threshold, red line 100 %;
green: replicas set, dashed: ready)</span></th><th>last changes</th></tr></thead>
<tbody>{rows}</tbody></table></body></html>
"""
