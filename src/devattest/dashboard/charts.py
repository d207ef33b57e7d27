"""Server-rendered inline SVG charts: no JavaScript chart library, no external assets.

Pure functions from numbers to markup. Every label is escaped; every chart has a ``<title>``
and an ``aria-label`` and is paired, in the templates, with a table of the same numbers
(screen readers read the table, not the drawing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from markupsafe import Markup, escape

#: CSS classes per series key (colours live in dashboard.css, so the CSP needs no inline
#: styles).
SERIES_CLASS = {
    "trusted": "s-trusted", "affirming": "s-trusted",
    "warning": "s-warning",
    "untrusted": "s-untrusted", "contraindicated": "s-untrusted",
    "overdue": "s-overdue",
    "unknown": "s-unknown", "none": "s-unknown",
}

_W, _H = 640, 200
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 8, 10, 26


def _nice_max(v: int) -> int:
    """The smallest 1/2/5 x 10^k at or above ``v`` (at least 1)."""
    if v <= 1:
        return 1
    scale = 1
    while True:
        for m in (1, 2, 5):
            if m * scale >= v:
                return m * scale
        scale *= 10


def _axis(ymax: int, label: str) -> list[str]:
    parts = []
    for frac in (0.0, 0.5, 1.0):
        y = _TOP + (_H - _TOP - _BOTTOM) * (1 - frac)
        parts.append(f'<line class="grid" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" '
                     f'y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{_LEFT - 4}" y="{y + 4:.1f}" '
                     f'text-anchor="end">{round(ymax * frac)}</text>')
    parts.append(f'<text class="axis-label" x="{_LEFT + 4}" y="{_TOP + 2}" '
                 'dominant-baseline="hanging">'
                 f'{escape(label)}</text>')
    return parts


def _svg(title: str, body: list[str]) -> Markup:
    t = escape(title)
    # Every interpolated piece is escaped text or a number formatted here.
    return Markup(  # noqa: S704
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" aria-label="{t}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{t}</title>' + "".join(body) + "</svg>")


def stacked_bars(title: str, buckets: Sequence[tuple[str, Mapping[str, int]]],
                 keys: Sequence[str], *, y_label: str = "") -> Markup:
    """Stacked vertical bars, one per bucket (e.g. a minute), stacked by ``keys``.

    Args:
        title: accessible name of the chart.
        buckets: ``(x label, {key: count})`` in display order.
        keys: the stacking order (bottom first); other keys are ignored.
        y_label: the unit shown on the y axis.
    """
    totals = [sum(int(c.get(k, 0)) for k in keys) for _, c in buckets]
    ymax = _nice_max(max(totals, default=0))
    plot_w = _W - _LEFT - _RIGHT
    plot_h = _H - _TOP - _BOTTOM
    n = max(len(buckets), 1)
    slot = plot_w / n
    bar_w = max(slot * 0.8, 1.0)
    body = _axis(ymax, y_label)
    label_every = max(1, n // 8)
    for i, (label, counts) in enumerate(buckets):
        x = _LEFT + i * slot + (slot - bar_w) / 2
        y_base: float = _TOP + plot_h
        for k in keys:
            v = int(counts.get(k, 0))
            if v <= 0:
                continue
            h = plot_h * v / ymax
            y_base -= h
            body.append(f'<rect class="{SERIES_CLASS.get(k, "s-unknown")}" x="{x:.1f}" '
                        f'y="{y_base:.1f}" width="{bar_w:.1f}" height="{h:.1f}">'
                        f'<title>{escape(label)}: {v} {escape(k)}</title></rect>')
        if i % label_every == 0:
            body.append(f'<text class="tick" x="{x + bar_w / 2:.1f}" y="{_H - 8}" '
                        f'text-anchor="middle">{escape(label)}</text>')
    if not buckets:
        body.append(f'<text class="empty" x="{_W / 2}" y="{_H / 2}" text-anchor="middle">'
                    'no data yet</text>')
    return _svg(title, body)


def lines(title: str, points: Sequence[tuple[datetime, Mapping[str, int]]],
          keys: Sequence[str], *, y_label: str = "") -> Markup:
    """One polyline per key over time (e.g. devices per posture).

    Args:
        title: accessible name of the chart.
        points: ``(time, {key: value})``, oldest first.
        keys: the series to draw.
        y_label: the unit shown on the y axis.
    """
    ymax = _nice_max(max((int(v.get(k, 0)) for _, v in points for k in keys), default=0))
    plot_w = _W - _LEFT - _RIGHT
    plot_h = _H - _TOP - _BOTTOM
    body = _axis(ymax, y_label)
    if len(points) >= 1:
        t0 = points[0][0].timestamp()
        span = max(points[-1][0].timestamp() - t0, 1.0)

        def xy(t: datetime, v: int) -> str:
            x = _LEFT + plot_w * ((t.timestamp() - t0) / span if len(points) > 1 else 1.0)
            y = _TOP + plot_h * (1 - v / ymax)
            return f"{x:.1f},{y:.1f}"

        for k in keys:
            pts = " ".join(xy(t, int(v.get(k, 0))) for t, v in points)
            body.append(f'<polyline class="line {SERIES_CLASS.get(k, "s-unknown")}" '
                        f'points="{pts}"><title>{escape(k)}</title></polyline>')
        for t, anchor in ((points[0][0], "start"), (points[-1][0], "end")):
            x = _LEFT if anchor == "start" else _W - _RIGHT
            body.append(f'<text class="tick" x="{x}" y="{_H - 8}" text-anchor="{anchor}">'
                        f'{escape(t.strftime("%H:%M"))}</text>')
    else:
        body.append(f'<text class="empty" x="{_W / 2}" y="{_H / 2}" text-anchor="middle">'
                    'no samples yet</text>')
    return _svg(title, body)


def meter(counts: Mapping[str, int], keys: Sequence[str], *, title: str) -> Markup:
    """A single horizontal 100% bar split by ``keys`` (a group's posture mix)."""
    total = sum(int(counts.get(k, 0)) for k in keys)
    body: list[str] = []
    x = 0.0
    for k in keys:
        v = int(counts.get(k, 0))
        if v <= 0 or total == 0:
            continue
        w = 100.0 * v / total
        body.append(f'<rect class="{SERIES_CLASS.get(k, "s-unknown")}" x="{x:.2f}" y="0" '
                    f'width="{w:.2f}" height="10"><title>{v} {escape(k)}</title></rect>')
        x += w
    t = escape(title)
    return Markup(  # noqa: S704
        f'<svg class="meter" viewBox="0 0 100 10" preserveAspectRatio="none" '
                  f'role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg">'
                  f'<title>{t}</title>' + "".join(body) + "</svg>")
