"""Inline SVG charts: escaping, scales, empty states."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from devattest.dashboard import charts

KEYS = ("affirming", "warning", "contraindicated")


def test_rejects_markup_injection_through_chart_labels_and_titles() -> None:
    evil = '<script>alert(1)</script>"'
    svg = str(charts.stacked_bars(evil, [(evil, {"affirming": 1})], KEYS, y_label=evil))
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    svg = str(charts.meter({"trusted": 1}, ("trusted",), title=evil))
    assert "<script>" not in svg


def test_stacked_bars_draw_one_rect_per_nonzero_series_and_scale_to_a_nice_maximum() -> None:
    svg = str(charts.stacked_bars("t", [("12:00", {"affirming": 30, "warning": 7}),
                                        ("12:01", {"contraindicated": 0})], KEYS))
    assert svg.count("<rect") == 2
    assert ">50<" in svg  # 37 rounds up to 50
    assert 'role="img"' in svg and 'aria-label="t"' in svg


def test_empty_charts_say_so() -> None:
    assert "no data yet" in str(charts.stacked_bars("t", [], KEYS))
    assert "no samples yet" in str(charts.lines("t", [], ("trusted",)))


def test_lines_draw_one_polyline_per_series_spanning_the_plot() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    pts = [(t0 + timedelta(minutes=i), {"trusted": i, "untrusted": 10 - i}) for i in range(11)]
    svg = str(charts.lines("posture", pts, ("trusted", "untrusted")))
    lines = re.findall(r'<polyline class="line ([^"]+)" points="([^"]+)"', svg)
    assert [c for c, _ in lines] == ["s-trusted", "s-untrusted"]
    xs = [float(p.split(",")[0]) for p in lines[0][1].split()]
    assert xs == sorted(xs) and len(xs) == 11


def test_meter_widths_sum_to_the_whole_bar() -> None:
    svg = str(charts.meter({"trusted": 3, "untrusted": 1}, ("trusted", "untrusted"), title="m"))
    widths = [float(w) for w in re.findall(r'width="([0-9.]+)"', svg)]
    assert abs(sum(widths) - 100.0) < 0.01
    assert widths == [75.0, 25.0]
