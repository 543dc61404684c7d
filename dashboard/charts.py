"""Server-rendered SVG charts: Python computes the geometry, the template draws it.

No client-side drawing: the page's chart works without JavaScript, every point has a <title>
tooltip, and the template adds a visually-hidden table of the same numbers for screen readers.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fathom.charts import nice_step

WIDTH, HEIGHT = 960, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 30
MAX_X_TICKS = 8
DOTS_UP_TO = 31  # draw a dot on each point when there are this many or fewer


@dataclass(frozen=True)
class Point:
    key: str  # the bucket as the selectors name it ("2026-11-20", "2026-11-20 14:00:00", "2026-11-01")
    tick: str  # short axis label ("14:00", "20 Nov", "Nov")
    label: str  # full label for tooltips and the table ("Fri 20 Nov 2026, 14:00")
    value: int | float | None  # None: not yet (a bucket in the future)
    previous: int | float | None = None
    previous_label: str = ""


def line_chart(
    points: Sequence[Point],
    *,
    fmt: Callable[[float], str] = lambda v: f"{v:,.0f}",
    integer: bool = True,
) -> dict:
    """Geometry of a line chart with an optional faint previous-period line.

    Returns width/height, the plot box, `line` and `area` paths of the current series (broken at
    None values), `previous` path, `dots`, `y_ticks`, `x_ticks` and `hovers` (one slice per
    point, with the tooltip text). `fmt` formats values for ticks and tooltips.
    """
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    baseline = TOP + plot_h
    n = len(points)
    values = [p.value for p in points if p.value is not None] + [p.previous for p in points if p.previous is not None]
    peak = max(values, default=0)
    step = nice_step(peak, integer=integer) if peak > 0 else 1
    y_max = step * max(1, math.ceil(peak / step))
    scale = plot_h / y_max

    def x_of(index: int) -> float:
        if n <= 1:
            return LEFT + plot_w / 2
        return LEFT + plot_w * index / (n - 1)

    def y_of(value: float) -> float:
        return baseline - value * scale

    def path(series: list[float | None]) -> tuple[str, list[tuple[float, float]]]:
        parts, coords, pen_down = [], [], False
        for index, value in enumerate(series):
            if value is None:
                pen_down = False
                continue
            x, y = x_of(index), y_of(value)
            parts.append(f"{'L' if pen_down else 'M'}{x:.1f},{y:.1f}")
            coords.append((x, y))
            pen_down = True
        return "".join(parts), coords

    line, coords = path([p.value for p in points])
    area = ""
    if len(coords) > 1:
        area = f"{line}L{coords[-1][0]:.1f},{baseline:.1f}L{coords[0][0]:.1f},{baseline:.1f}Z"
    previous, _ = path([p.previous for p in points])
    dots = [{"x": f"{x:.1f}", "y": f"{y:.1f}"} for x, y in coords] if n <= DOTS_UP_TO else []

    slot = plot_w / max(n - 1, 1)
    hovers = []
    for index, point in enumerate(points):
        x = x_of(index)
        text = f"{point.label}: {fmt(point.value) if point.value is not None else 'not yet'}"
        if point.previous is not None:
            text += f" (previous: {fmt(point.previous)}, {point.previous_label})"
        hovers.append(
            {"x": f"{max(LEFT, x - slot / 2):.1f}", "w": f"{min(slot, plot_w):.1f}", "cx": f"{x:.1f}", "title": text}
        )

    every = max(1, math.ceil(n / MAX_X_TICKS))
    x_ticks = [{"x": f"{x_of(i):.1f}", "label": points[i].tick} for i in range(0, n, every)]
    y_ticks = []
    tick = 0.0
    while tick <= y_max + 1e-9:
        y_ticks.append({"y": f"{y_of(tick):.1f}", "label": fmt(tick)})
        tick += step
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right_x": WIDTH - RIGHT,
        "top": TOP,
        "baseline": f"{baseline:.1f}",
        "plot_h": plot_h,
        "label_y": HEIGHT - 8,
        "tick_end": f"{baseline + 4:.1f}",
        "line": line,
        "area": area,
        "previous": previous,
        "dots": dots,
        "hovers": hovers,
        "x_ticks": x_ticks,
        "y_ticks": y_ticks,
        "points": list(points),
        "empty": peak == 0,
        "center_x": f"{LEFT + plot_w / 2:.1f}",
        "center_y": f"{TOP + plot_h / 2:.1f}",
    }


def bucket_labels(key: str, interval: str) -> tuple[str, str]:
    """(axis tick, full label) of a selectors bucket key."""
    if interval == "hour":
        moment = dt.datetime.fromisoformat(key)
        return f"{moment:%H:%M}", f"{moment:%a} {moment.day} {moment:%b %Y, %H:%M}"
    day = dt.date.fromisoformat(key)
    if interval == "month":
        return f"{day:%b}" if day.month != 1 else f"{day:%b %Y}", f"{day:%B %Y}"
    return f"{day.day} {day:%b}", f"{day:%a} {day.day} {day:%b %Y}"
