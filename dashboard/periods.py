"""Stats periods: `period` + `date` query parameters -> an inclusive range of local dates.

Everything is in the site's time zone: "day" is the site's calendar day, not UTC's. The
shapes follow Plausible's Stats API v1:

- day     the one day `date` (default: today)
- 7d, 30d the 7 / 30 days ending with `date`, inclusive
- month   the calendar month holding `date`
- 6mo     the 6 calendar months ending with the month of `date`
- 12mo    the 12 calendar months ending with the month of `date`
- custom  `date=YYYY-MM-DD,YYYY-MM-DD`, both inclusive

Bad input raises ValueError with a message fit to show an API client.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass

PERIODS = ("day", "7d", "30d", "month", "6mo", "12mo", "custom")
INTERVALS = ("hour", "date", "month")
DEFAULT_PERIOD = "30d"
# Beyond about three months a daily chart has too many points to read: months instead.
DATE_INTERVAL_MAX_DAYS = 93
# An hourly chart of more than a month is thousands of points; refuse it.
HOUR_INTERVAL_MAX_DAYS = 31
# A custom range longer than this is a typo (or an attempt to make the server work for nothing).
MAX_RANGE_DAYS = 3 * 366 + 365
MIN_YEAR, MAX_YEAR = 1970, 2999  # keeps date arithmetic far from datetime's limits
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Period:
    """An inclusive range of local dates of one site."""

    start: dt.date
    end: dt.date
    tz: zoneinfo.ZoneInfo

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def default_interval(self) -> str:
        """hour for a single day, date up to about three months, month beyond."""
        if self.days == 1:
            return "hour"
        if self.days <= DATE_INTERVAL_MAX_DAYS:
            return "date"
        return "month"

    def dates(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range(self.days)]

    def utc_bounds(self) -> tuple[dt.datetime, dt.datetime]:
        """[local midnight of start, local midnight after end) as aware UTC datetimes."""
        return local_midnight(self.start, self.tz), local_midnight(self.end + dt.timedelta(days=1), self.tz)

    def previous(self) -> Period:
        """The period of the same number of days that ends the day before this one starts."""
        start = self.start - dt.timedelta(days=self.days)
        return Period(start=start, end=self.start - dt.timedelta(days=1), tz=self.tz)

    def check_interval(self, interval: str | None) -> str:
        """The interval to use: the given one if it is valid for this period, else the default."""
        if interval in (None, ""):
            return self.default_interval
        if interval not in INTERVALS:
            raise ValueError(f"unknown interval {interval!r}: use one of {', '.join(INTERVALS)}")
        if interval == "hour" and self.days > HOUR_INTERVAL_MAX_DAYS:
            raise ValueError(f"interval 'hour' is limited to periods of {HOUR_INTERVAL_MAX_DAYS} days or fewer")
        return interval


def local_midnight(day: dt.date, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    """The UTC instant a local day begins. (Where a DST change skips midnight, the first moment after it.)"""
    return dt.datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(dt.UTC)


def parse_date(text: str) -> dt.date:
    text = text.strip()
    # fromisoformat alone would also take "20261120" and "2026-W47-5".
    if not _DATE.match(text):
        raise ValueError(f"invalid date {text!r}: expected YYYY-MM-DD")
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"invalid date {text!r}: no such day")
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        raise ValueError(f"invalid date {text!r}: the year must be between {MIN_YEAR} and {MAX_YEAR}")
    return day


def month_start(day: dt.date, months: int = 0) -> dt.date:
    """The first day of the month `months` after (negative: before) the month of `day`."""
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _month_end(day: dt.date) -> dt.date:
    return month_start(day, 1) - dt.timedelta(days=1)


def parse_period(
    period: str | None, date: str | None, tz: zoneinfo.ZoneInfo, *, today: dt.date | None = None
) -> Period:
    """`period` and `date` as sent by an API client -> Period (see the module docstring)."""
    period = (period or DEFAULT_PERIOD).strip()
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}: use one of {', '.join(PERIODS)}")
    if today is None:
        today = dt.datetime.now(tz).date()
    date = (date or "").strip()

    if period == "custom":
        parts = date.split(",")
        if len(parts) != 2 or not all(p.strip() for p in parts):
            raise ValueError("period 'custom' needs date=YYYY-MM-DD,YYYY-MM-DD")
        start, end = parse_date(parts[0]), parse_date(parts[1])
        if end < start:
            raise ValueError(f"invalid date range {date!r}: the end is before the start")
        if (end - start).days + 1 > MAX_RANGE_DAYS:
            raise ValueError(f"invalid date range {date!r}: at most {MAX_RANGE_DAYS} days")
        return Period(start=start, end=end, tz=tz)

    if "," in date:
        raise ValueError(f"a date range is only valid with period 'custom' (got date={date!r})")
    anchor = parse_date(date) if date else today
    if period == "day":
        return Period(start=anchor, end=anchor, tz=tz)
    if period in ("7d", "30d"):
        days = int(period[:-1])
        return Period(start=anchor - dt.timedelta(days=days - 1), end=anchor, tz=tz)
    if period == "month":
        return Period(start=month_start(anchor), end=_month_end(anchor), tz=tz)
    months = 6 if period == "6mo" else 12
    return Period(start=month_start(anchor, 1 - months), end=_month_end(anchor), tz=tz)
