"""Numbers and dates as people read them: on the dashboard page and in the email report."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from dashboard import report_data
from dashboard.report_data import PERCENT, VALUE


def fmt_int(value: float) -> str:
    return f"{int(value):,}"


def fmt_decimal(value: float) -> str:
    text = f"{value:,.2f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def fmt_duration(seconds: float) -> str:
    """672 -> "11m 12s"; 3725 -> "1h 2m 5s"; 0 -> "0s" (whole seconds, the fraction dropped)."""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def fmt_percent(value: float) -> str:
    return f"{fmt_decimal(value)}%"


def fmt_money(cents: float) -> str:
    return f"{int(cents) / 100:,.2f}"


def fmt_day(day: dt.date) -> str:
    return f"{day.day} {day:%b %Y}"


FORMATTERS: dict[str, Callable[[float], str]] = {
    "visitors": fmt_int,
    "visits": fmt_int,
    "pageviews": fmt_int,
    "events": fmt_int,
    "views_per_visit": fmt_decimal,
    "bounce_rate": fmt_percent,
    "visit_duration": fmt_duration,
    PERCENT: fmt_percent,
    report_data.CONVERSION: fmt_percent,
    VALUE: fmt_money,
}


def change_view(metric: report_data.Metric) -> dict[str, Any] | None:
    if metric.change is None:
        return None
    unit = " pp" if metric.key == "bounce_rate" else "%"
    change = metric.change
    direction = "up" if change > 0 else "down" if change < 0 else "flat"
    good = direction != "flat" and (change < 0) == metric.lower_is_better
    arrow = {"up": "↑", "down": "↓", "flat": ""}[direction]
    return {
        "text": f"{arrow}{abs(change)}{unit}",
        "direction": direction,
        "tone": "flat" if direction == "flat" else "up" if good else "down",
        "spoken": f"{direction} {abs(change)}{' percentage points' if unit == ' pp' else ' percent'}",
    }


def flag(code: str) -> str:
    """The flag emoji of a two-letter country code (regional indicator symbols), or ''."""
    if len(code) != 2 or not code.isascii() or not code.isalpha():
        return ""
    return "".join(chr(0x1F1E6 + ord(c) - ord("A")) for c in code.upper())
