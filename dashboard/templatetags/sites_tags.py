"""Template helpers of the sites pages: a compact number and an inline SVG sparkline."""

from __future__ import annotations

from collections.abc import Sequence

from django import template
from django.utils.html import format_html

register = template.Library()

WIDTH, HEIGHT, PAD = 120, 32, 2


@register.filter
def compact(value: int | float | None) -> str:
    """1234 -> "1,234"; 12_345 -> "12.3k"; 4_560_000 -> "4.6M" (as the dashboards show counts)."""
    number = int(value or 0)
    if abs(number) < 10_000:
        return f"{number:,}"
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if abs(number) >= size:
            text = f"{number / size:.1f}".removesuffix(".0")
            return f"{text}{suffix}"
    return str(number)


def sparkline_points(values: Sequence[int | float]) -> list[tuple[float, float]]:
    """(x, y) in a WIDTH x HEIGHT box, y down; a flat line at the bottom when all are zero."""
    if not values:
        return []
    top = max(values) or 1
    step = (WIDTH - 2 * PAD) / max(len(values) - 1, 1)
    return [
        (round(PAD + i * step, 1), round(HEIGHT - PAD - (value / top) * (HEIGHT - 2 * PAD), 1))
        for i, value in enumerate(values)
    ]


@register.simple_tag
def sparkline(values: Sequence[int | float], label: str = "") -> str:
    """An inline SVG line (and a soft area under it) of `values`; `label` is its accessible name."""
    points = sparkline_points(values)
    if not points:
        return ""
    line = " ".join(f"{x},{y}" for x, y in points)
    area = (
        f"M{points[0][0]},{HEIGHT - PAD} L"
        + " L".join(f"{x},{y}" for x, y in points)
        + f" L{points[-1][0]},{HEIGHT - PAD} Z"
    )
    return format_html(
        '<svg class="sparkline" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{label}"'
        ' preserveAspectRatio="none"><title>{label}</title>'
        '<path class="sparkline-area" d="{area}"></path>'
        '<polyline class="sparkline-line" points="{line}" fill="none" vector-effect="non-scaling-stroke"></polyline>'
        "</svg>",
        w=WIDTH,
        h=HEIGHT,
        label=label,
        area=area,
        line=line,
    )
