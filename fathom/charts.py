"""Chart helpers shared by the apps' server-rendered SVG charts (the dashboard's line chart,
the security dashboard's traffic bars). Here, in the project package, because security imports
no other app."""

from __future__ import annotations

import math


def nice_step(peak: float, ticks: int = 4, *, integer: bool = False) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving about `ticks` gridlines up to peak.
    `integer`: a whole step of at least 1 (for counts: no gridline at 0.5 visitors)."""
    raw = max(peak / ticks, 1e-9)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next((factor * magnitude for factor in (1, 2, 5) if factor * magnitude >= raw), 10 * magnitude)
    return max(1, math.ceil(step)) if integer else step
