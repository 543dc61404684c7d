"""The write side's tables. None of them holds an IP address or a User-Agent.

Visitors are known only by a 64-bit keyed hash that changes every day (see salts.py).
"""

from __future__ import annotations

from django.db import models

from sites.models import Site


class Salt(models.Model):
    """A random key per UTC day. Deleted 48 h after its day began (rotate_salts)."""

    day = models.DateField(unique=True)
    value = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"salt of {self.day}"


class Event(models.Model):
    """One accepted hit: a pageview, a custom event or an engagement report.

    It carries its visit's attributes as well (entry page, source, referrer, UTM, and browser,
    OS, device, country, which are the visit's), copied at ingest: they are fixed when the
    visit starts, so any visit filter is a condition on the event row alone, with no per-event
    lookup of the visit (as Plausible's events table carries its session's). `referrer`,
    `referrer_source` and `utm_*` stay the hit's own (only a visit's first hit has them). The
    visit's exit page is not known when an event is written: it is not copied.
    """

    site = models.ForeignKey(Site, on_delete=models.CASCADE, db_constraint=False, related_name="+")
    hit_id = models.CharField(max_length=32, unique=True)
    ts = models.DateTimeField()
    visitor_id = models.BigIntegerField()
    visit_key = models.BigIntegerField()
    name = models.CharField(max_length=120)
    path = models.CharField(max_length=2000)
    hostname = models.CharField(max_length=253)
    referrer = models.CharField(max_length=2000, blank=True)
    referrer_source = models.CharField(max_length=100, blank=True)
    utm_source = models.CharField(max_length=255, blank=True)
    utm_medium = models.CharField(max_length=255, blank=True)
    utm_campaign = models.CharField(max_length=255, blank=True)
    utm_content = models.CharField(max_length=255, blank=True)
    utm_term = models.CharField(max_length=255, blank=True)
    browser = models.CharField(max_length=60, blank=True)
    os = models.CharField(max_length=60, blank=True)
    device = models.CharField(max_length=20, blank=True)
    country = models.CharField(max_length=2, blank=True)
    # The visit's attributes (see the class docstring); Visit's field in the help text.
    entry_path = models.CharField(max_length=2000, blank=True, default="", help_text="Visit.entry_path")
    visit_source = models.CharField(max_length=100, blank=True, default="", help_text="Visit.referrer_source")
    visit_referrer = models.CharField(max_length=2000, blank=True, default="", help_text="Visit.referrer")
    visit_utm_source = models.CharField(max_length=255, blank=True, default="", help_text="Visit.utm_source")
    visit_utm_medium = models.CharField(max_length=255, blank=True, default="", help_text="Visit.utm_medium")
    visit_utm_campaign = models.CharField(max_length=255, blank=True, default="", help_text="Visit.utm_campaign")
    value = models.BigIntegerField(null=True, blank=True, help_text="Cents.")
    props = models.JSONField(null=True, blank=True)
    scroll_depth = models.SmallIntegerField(null=True, blank=True)
    engaged_ms = models.IntegerField(null=True, blank=True)

    class Meta:
        indexes = [
            # (site, ts) with what a filtered view counts and its most used filter (the source):
            # those statements read the index alone, not the rows (see dashboard/selectors/backends/raw.py).
            models.Index(
                fields=["site", "ts", "name", "visitor_id", "visit_key", "visit_source"], name="event_site_ts_cover"
            ),
            models.Index(fields=["site", "name", "ts"], name="event_site_name_ts"),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.path}"


# A visit's pages and attributes, in the order the ingest paths keep them (collector.ingest's
# VisitState, collector.ingest_clickhouse's session rows).
VISIT_ATTRIBUTES = (
    "entry_path",
    "exit_path",
    "referrer",
    "referrer_source",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "browser",
    "os",
    "device",
    "country",
)


class Visit(models.Model):
    """A visit (session): a visitor's hits with less than VISIT_TIMEOUT_MINUTES between them."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, db_constraint=False, related_name="+")
    visit_key = models.BigIntegerField()
    visitor_id = models.BigIntegerField()
    day = models.DateField(help_text="Local day (site time zone) the visit started.")
    started = models.DateTimeField()
    last_seen = models.DateTimeField()
    pageviews = models.IntegerField(default=0)
    events = models.IntegerField(default=0)
    interactive = models.BooleanField(default=False, help_text="Had an interactive custom event.")
    engaged_ms = models.BigIntegerField(default=0)
    entry_path = models.CharField(max_length=2000)
    exit_path = models.CharField(max_length=2000)
    referrer = models.CharField(max_length=2000, blank=True)
    referrer_source = models.CharField(max_length=100, blank=True)
    utm_source = models.CharField(max_length=255, blank=True)
    utm_medium = models.CharField(max_length=255, blank=True)
    utm_campaign = models.CharField(max_length=255, blank=True)
    browser = models.CharField(max_length=60, blank=True)
    os = models.CharField(max_length=60, blank=True)
    device = models.CharField(max_length=20, blank=True)
    country = models.CharField(max_length=2, blank=True)
    # Hashes of what this visit already counted (per local day): pages, events, dimension values.
    # They make "unique visitors" per page/source/... exact without another table.
    seen = models.JSONField(default=list)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["site", "visit_key"], name="visit_site_key")]
        indexes = [
            models.Index(fields=["site", "visitor_id"], name="visit_site_visitor"),
            # (site, started) and the short attributes a filter names, fixed when the visit starts
            # (so a visit's later hits never move its entry): a filtered view checks them in the
            # index before it reads a row.
            models.Index(
                fields=["site", "started", "referrer_source", "country", "device", "browser", "os"],
                name="visit_site_started_attrs",
            ),
        ]

    def __str__(self) -> str:
        return f"visit {self.visit_key} of site {self.site_id}"

    @property
    def is_bounce(self) -> bool:
        return self.pageviews <= 1 and not self.interactive

    @property
    def duration(self) -> int:
        return int((self.last_seen - self.started).total_seconds())


class HourlyTotal(models.Model):
    """Site totals per local hour. Daily unique visitors = sum of new_visitors over the day."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, db_constraint=False, related_name="+")
    day = models.DateField()
    hour = models.SmallIntegerField()
    visitors = models.IntegerField(default=0, help_text="Unique visitors within the hour.")
    new_visitors = models.IntegerField(default=0, help_text="Visitors first seen that local day.")
    visits = models.IntegerField(default=0)
    pageviews = models.IntegerField(default=0)
    bounces = models.IntegerField(default=0)
    duration = models.BigIntegerField(default=0, help_text="Sum of visit durations, seconds.")
    events = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["site", "day", "hour"], name="hourly_site_day_hour")]

    def __str__(self) -> str:
        return f"{self.day} {self.hour:02d}h"


class Dimension(models.TextChoices):
    PAGE = "page"
    ENTRY_PAGE = "entry_page"
    EXIT_PAGE = "exit_page"
    SOURCE = "source"
    REFERRER = "referrer"
    UTM_SOURCE = "utm_source"
    UTM_MEDIUM = "utm_medium"
    UTM_CAMPAIGN = "utm_campaign"
    BROWSER = "browser"
    OS = "os"
    DEVICE = "device"
    COUNTRY = "country"
    EVENT = "event"


# The columns a breakdown panel sums, in the covering indexes of the breakdown rollups: a panel
# reads (site, dim, day or month range) and sums these without touching the table rows (whose
# `value`, up to 2000 characters, is read only for the few rows shown).
BREAKDOWN_SUMS = ("visitors", "visits", "pageviews", "bounces", "duration", "events", "value_sum")
# Every number column of the breakdown rollups (additive deltas).
BREAKDOWN_COLUMNS = (*BREAKDOWN_SUMS, "engaged_ms", "engagements", "scroll_sum")


class Breakdown(models.Model):
    """The columns DailyBreakdown and MonthlyBreakdown share: a dimension value and its sums
    (every number an additive delta, see collector/ingest.py)."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, db_constraint=False, related_name="+")
    dim = models.CharField(max_length=20, choices=Dimension.choices)
    value_hash = models.BigIntegerField()
    value = models.CharField(max_length=2000)
    visitors = models.IntegerField(default=0)
    visits = models.IntegerField(default=0)
    pageviews = models.IntegerField(default=0)
    bounces = models.IntegerField(default=0)
    duration = models.BigIntegerField(default=0)
    events = models.IntegerField(default=0)
    value_sum = models.BigIntegerField(default=0, help_text="Cents.")
    engaged_ms = models.BigIntegerField(default=0)
    engagements = models.IntegerField(default=0)
    scroll_sum = models.BigIntegerField(default=0)

    class Meta:
        abstract = True


class DailyBreakdown(Breakdown):
    """Per local day, per dimension value: the numbers behind every breakdown panel.

    visitors are unique per day. For visit-level dimensions (entry page, source, UTM, browser,
    OS, device, country) visits/bounces/duration/pageviews are those of the visits started that
    day with that value; for page: pageviews, visits and engagement; for exit_page: visits that
    ended there; for event: events and their value.
    """

    day = models.DateField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["site", "dim", "day", "value_hash"], name="daily_site_dim_day_value")
        ]
        indexes = [
            models.Index(fields=["site", "dim", "day", "value_hash", *BREAKDOWN_SUMS], name="daily_breakdown_cover")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.dim}={self.value}"


class MonthlyBreakdown(Breakdown):
    """DailyBreakdown summed per local month (`month`: its first day), kept by the collector
    in the same transaction as the daily rows, so each row is exactly the sum of that month's
    daily rows. A breakdown over a long period reads whole months here and only its head and
    tail days from DailyBreakdown. visitors are the sum of daily unique visitors, as everywhere.
    """

    month = models.DateField(help_text="First day of the local month.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["site", "dim", "month", "value_hash"], name="monthly_site_dim_month_value")
        ]
        indexes = [
            models.Index(fields=["site", "dim", "month", "value_hash", *BREAKDOWN_SUMS], name="monthly_breakdown_cover")
        ]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} {self.dim}={self.value}"
