from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from collector.models import DailyBreakdown, Event, HourlyTotal, MonthlyBreakdown, Visit


class ReadOnlyAdmin(admin.ModelAdmin):
    """Analytics rows are written by the ingest worker only."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(HourlyTotal)
class HourlyTotalAdmin(ReadOnlyAdmin):
    list_display = ["site", "day", "hour", "visitors", "new_visitors", "visits", "pageviews", "bounces", "events"]
    list_filter = ["site"]
    date_hierarchy = "day"
    ordering = ["-day", "-hour"]


@admin.register(DailyBreakdown)
class DailyBreakdownAdmin(ReadOnlyAdmin):
    list_display = ["site", "day", "dim", "value", "visitors", "visits", "pageviews", "bounces", "events", "value_sum"]
    list_filter = ["site", "dim"]
    date_hierarchy = "day"
    ordering = ["-day", "dim", "-visitors"]


@admin.register(MonthlyBreakdown)
class MonthlyBreakdownAdmin(ReadOnlyAdmin):
    list_display = ["site", "month", "dim", "value", "visitors", "visits", "pageviews", "bounces", "events"]
    list_filter = ["site", "dim"]
    date_hierarchy = "month"
    ordering = ["-month", "dim", "-visitors"]


@admin.register(Visit)
class VisitAdmin(ReadOnlyAdmin):
    list_display = ["site", "started", "pageviews", "events", "entry_path", "exit_path", "referrer_source", "browser"]
    list_filter = ["site"]
    exclude = ["seen"]


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["site", "ts", "name", "path", "referrer_source", "browser", "os", "device", "country"]
    list_filter = ["site", "name"]
