"""The arithmetic of every reported metric: Totals (additive sums) and how a metric derives
from them, with the rounding of the Stats API: bounce_rate = round(100 * bounces / visits),
visit_duration = round(duration / visits) seconds (halves round up), views_per_visit =
round(pageviews / visits, 2); 0 with no visits. `change` is the comparison with a previous period."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

from dashboard.selectors.properties import VALUE


@dataclass
class Totals:
    """Additive sums; every reported metric derives from them."""

    visitors: int = 0
    visits: int = 0
    pageviews: int = 0
    bounces: int = 0
    duration: int = 0
    events: int = 0
    value_cents: int = 0  # the custom events' values (the VALUE metric)

    def add(self, other: Totals | dict[str, Any]) -> None:
        values = other if isinstance(other, dict) else vars(other)
        for name in ("visitors", "visits", "pageviews", "bounces", "duration", "events", "value_cents"):
            # MySQL hands sums back as Decimal, and a sum over no rows is None.
            setattr(self, name, getattr(self, name) + int(values.get(name) or 0))

    def metric(self, name: str) -> int | float:
        if name == "views_per_visit":
            return ratio(self.pageviews, self.visits)
        if name == "bounce_rate":
            return divide_round(100 * self.bounces, self.visits)
        if name == "visit_duration":
            return divide_round(self.duration, self.visits)
        if name == VALUE:
            return self.value_cents
        return getattr(self, name)

    def metrics(self, names: Iterable[str]) -> dict[str, int | float]:
        return {name: self.metric(name) for name in names}


def divide_round(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half up (exact integers, no float error); 0 if nothing to divide by."""
    if denominator <= 0:
        return 0
    return (2 * numerator + denominator) // (2 * denominator)


def ratio(numerator: int, denominator: int) -> float:
    """numerator / denominator with two decimals (half up); 0.0 if nothing to divide by."""
    if denominator <= 0:
        return 0.0
    return float((Decimal(numerator) / Decimal(denominator)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def change(metric: str, previous: int | float, current: int | float) -> int | None:
    """The `change` of a compared metric: percent change rounded half away from zero (Plausible);
    percentage points for bounce_rate; None when the previous value is 0."""
    if not previous:
        return None
    if metric == "bounce_rate":
        return int(current) - int(previous)
    value = (Fraction(str(current)) - Fraction(str(previous))) / Fraction(str(previous)) * 100
    rounded = int(abs(value) + Fraction(1, 2))
    return rounded if value >= 0 else -rounded
