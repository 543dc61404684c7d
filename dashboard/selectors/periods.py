"""Stats periods: `period` + `date` query parameters -> an inclusive range of local dates.

Everything is in the site's time zone: "day" is the site's calendar day, not UTC's. The
shapes follow Plausible's Stats API v1:

- day     the one day `date` (default: today)
- 7d, 30d the 7 / 30 days ending with `date`, inclusive
- month   the calendar month holding `date`
- 6mo     the 6 calendar months ending with the month of `date`
- 12mo    the 12 calendar months ending with the month of `date`
- custom  `date=YYYY-MM-DD,YYYY-MM-DD`, both inclusive

Bad input raises InvalidParameter (a ValueError) with a message fit to show an API client or a
person; `quoted` shows what they sent in it, cut short. Dates are ASCII `YYYY-MM-DD` with a year
from MIN_YEAR to MAX_YEAR, and a custom range is at most MAX_RANGE_DAYS days (about four years):
far enough for any real question, and far from the limits of date arithmetic and of the database.

A period still in progress can be cut (Period.cutoff: the last local day and hour counted) so
that it compares fairly with the same amount of time in the previous period; see
compared_periods. The rollups are hourly, so a cut falls at the end of a local wall-clock hour.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass, replace

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
# ASCII digits only: \d would also take other scripts' digits (Arabic-Indic, fullwidth, ...).
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# How much of a bad value an error message repeats.
QUOTE_CHARS = 60


class InvalidParameter(ValueError):
    """A query parameter the client got wrong. Its message says what, fit to show them (the
    Stats API's 400 error, the dashboard's 400 page); any other ValueError is a bug, and its
    message (Python's words) is never shown."""


def quoted(value: str) -> str:
    """`value` quoted for an error message, escaped (control characters show as \\x00) and
    cut to QUOTE_CHARS characters, so that a megabyte of input is not echoed back."""
    if len(value) > QUOTE_CHARS:
        return repr(value[:QUOTE_CHARS]) + "\N{HORIZONTAL ELLIPSIS}"
    return repr(value)


@dataclass(frozen=True)
class Period:
    """An inclusive range of local dates of one site; with a `cutoff` (local day, hour), only
    the time up to the end of that hour counts (the hours after it, on that day and after, do not)."""

    start: dt.date
    end: dt.date
    tz: zoneinfo.ZoneInfo
    cutoff: tuple[dt.date, int] | None = None

    def __post_init__(self) -> None:
        if self.cutoff is not None:
            day, hour = self.cutoff
            if not (self.start <= day <= self.end and 0 <= hour <= 23):
                raise ValueError(f"cutoff {self.cutoff!r} is outside the period")

    @property
    def whole(self) -> Period:
        """The same dates without a cutoff."""
        return replace(self, cutoff=None) if self.cutoff is not None else self

    def elapsed(self, now: dt.datetime | None = None) -> Period:
        """The part of this period that has happened by the end of the current local hour of
        `now` (default: the site's current time) if the period holds now; else the period as is."""
        local = (now or local_now(self.tz)).astimezone(self.tz)
        if not self.start <= local.date() <= self.end:
            return self
        return replace(self, cutoff=(local.date(), local.hour))

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

    def hours(self) -> list[tuple[dt.date, int]]:
        """Every local (day, hour) of the period, as an hourly series has them (24 a day, DST or not)."""
        return [(day, hour) for day in self.dates() for hour in range(24)]

    def utc_bounds(self) -> tuple[dt.datetime, dt.datetime]:
        """[local midnight of start, local midnight after end) as aware UTC datetimes; with a
        cutoff, the end is the end of the cutoff's local hour instead."""
        end = local_midnight(self.end + dt.timedelta(days=1), self.tz)
        if self.cutoff is not None:
            day, hour = self.cutoff
            # Wall-clock arithmetic: hour 23 ends at the next local midnight.
            cut = dt.datetime(day.year, day.month, day.day, tzinfo=self.tz) + dt.timedelta(hours=hour + 1)
            end = min(end, cut.astimezone(dt.UTC))
        return local_midnight(self.start, self.tz), end

    def previous(self) -> Period:
        """The period of the same number of days that ends the day before this one starts; a
        cutoff moves with it (the same day of the period, the same hour)."""
        shift = dt.timedelta(days=self.days)
        cutoff = (self.cutoff[0] - shift, self.cutoff[1]) if self.cutoff is not None else None
        return Period(start=self.start - shift, end=self.start - dt.timedelta(days=1), tz=self.tz, cutoff=cutoff)

    def check_interval(self, interval: str | None) -> str:
        """The interval to use: the given one if it is valid for this period, else the default."""
        if interval in (None, ""):
            return self.default_interval
        if interval not in INTERVALS:
            raise InvalidParameter(f"unknown interval {quoted(interval)}: use one of {', '.join(INTERVALS)}")
        if interval == "hour" and self.days > HOUR_INTERVAL_MAX_DAYS:
            raise InvalidParameter(f"interval 'hour' is limited to periods of {HOUR_INTERVAL_MAX_DAYS} days or fewer")
        return interval


def compared_periods(period: Period, now: dt.datetime | None = None) -> tuple[Period, Period]:
    """(current, previous) for a comparison with the previous period.

    A period entirely in the past (or the future) compares whole with `period.previous()`, the
    same number of days just before it. A period still in progress (it holds `now`, default the
    site's current time) compares only its elapsed part, up to the end of the current local hour,
    with the same elapsed part of the previous one: today until 09:59 against yesterday until
    09:59; this month on the 3rd at 10:15 against the first 2 days and 11 hours of the 30 days
    before it (as Plausible: "a period still in progress is compared with the same amount of
    time in the previous period").
    """
    current = period.elapsed(now)
    return current, current.previous()


def local_now(tz: zoneinfo.ZoneInfo) -> dt.datetime:
    """The site's current local time (one place, so that tests can set the clock)."""
    return dt.datetime.now(tz)


def local_midnight(day: dt.date, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    """The UTC instant a local day begins. (Where a DST change skips midnight, the first moment after it.)"""
    return dt.datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(dt.UTC)


def parse_date(text: str) -> dt.date:
    text = text.strip()
    # fromisoformat alone would also take "20261120" and "2026-W47-5".
    if not _DATE.fullmatch(text):
        raise InvalidParameter(f"invalid date {quoted(text)}: expected YYYY-MM-DD")
    # The year first: datetime knows no year 0 and would call 0000-01-01 "no such day".
    if not MIN_YEAR <= int(text[:4]) <= MAX_YEAR:
        raise InvalidParameter(f"invalid date {quoted(text)}: the year must be between {MIN_YEAR} and {MAX_YEAR}")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidParameter(f"invalid date {quoted(text)}: no such day") from None


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
        raise InvalidParameter(f"unknown period {quoted(period)}: use one of {', '.join(PERIODS)}")
    if today is None:
        today = local_now(tz).date()
    date = (date or "").strip()

    if period == "custom":
        parts = date.split(",")
        if len(parts) != 2 or not all(p.strip() for p in parts):
            raise InvalidParameter("period 'custom' needs date=YYYY-MM-DD,YYYY-MM-DD")
        start, end = parse_date(parts[0]), parse_date(parts[1])
        if end < start:
            raise InvalidParameter(f"invalid date range {quoted(date)}: the end is before the start")
        if (end - start).days + 1 > MAX_RANGE_DAYS:
            raise InvalidParameter(f"invalid date range {quoted(date)}: at most {MAX_RANGE_DAYS} days")
        return Period(start=start, end=end, tz=tz)

    if "," in date:
        raise InvalidParameter(f"a date range is only valid with period 'custom' (got date={quoted(date)})")
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
