"""Admin for bans, flagged IPs and the ban audit log. Ban changes go through security.services,
so every one is audited, bumps the snapshot version and queues a WAF sync."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from security.forms import ban_flagged_ips, client_ip
from security.models import Ban, BanAudit, FlaggedIP, normalize_network, wider_scope
from security.selectors import describe_reasons
from security.services import ban_network, dismiss_flags, unban_network
from security.waf_sync import sync_waf_task

log = logging.getLogger(__name__)


class BanAdminForm(forms.ModelForm):
    # Manual bans close every path unless the operator picks the collector (an absent value too).
    scope = forms.ChoiceField(
        choices=Ban.Scope.choices,
        initial=Ban.Scope.ALL,
        required=False,
        help_text="Collector only: the address may not send analytics hits but can still sign in and read "
        "dashboards (an office or VPN address shared with owners).",
    )

    class Meta:
        model = Ban
        fields = ["network", "reason", "scope", "expires_at"]

    def clean_network(self) -> str:
        return normalize_network(self.cleaned_data["network"])

    def clean_scope(self) -> str:
        """A ban is never narrowed by an edit (ban_network would keep the wider scope): say so."""
        scope = self.cleaned_data.get("scope") or Ban.Scope.ALL
        current = self.instance.scope if self.instance.pk else None
        if current and wider_scope(current, scope) != scope:
            raise ValidationError("A ban on every path cannot be narrowed to the collector: unban it and ban it again.")
        return scope

    def clean_expires_at(self) -> dt.datetime | None:
        expires_at = self.cleaned_data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            raise ValidationError("The expiry must be in the future (leave it empty for a permanent ban).")
        return expires_at


@admin.register(Ban)
class BanAdmin(admin.ModelAdmin):
    form = BanAdminForm
    list_display = [
        "network",
        "source",
        "scope",
        "reason",
        "created_by",
        "created_at",
        "expires_at",
        "waf_state",
        "waf_synced_at",
    ]
    list_filter = ["source", "scope", "waf_state", "version", "created_at", "expires_at"]
    search_fields = ["network", "reason"]
    list_select_related = ["created_by"]
    date_hierarchy = "created_at"
    readonly_fields = ["source", "created_by", "created_at", "waf_state", "waf_synced_at", "waf_message"]
    actions = ["unban_selected", "sync_waf_now"]

    def get_readonly_fields(self, request: HttpRequest, obj: Ban | None = None) -> list[str]:
        # The network is the ban's identity: change it by unbanning and banning the new one.
        return [*self.readonly_fields, "network"] if obj is not None else list(self.readonly_fields)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # "Unban selected" goes through the service instead
        return actions

    def save_model(self, request: HttpRequest, obj: Ban, form: forms.ModelForm, change: bool) -> None:
        """Add and change both go through ban_network (a change of an existing ban is an extension)."""
        duration = obj.expires_at - timezone.now() if obj.expires_at else None
        ban = ban_network(
            network=obj.network,
            reason=obj.reason,
            source=obj.source if change else Ban.Source.MANUAL,
            actor=request.user,
            duration=duration,
            scope=obj.scope,
        )
        ban.refresh_from_db()
        for field in Ban._meta.concrete_fields:
            setattr(obj, field.attname, getattr(ban, field.attname))
        obj._state.adding = False
        obj._state.db = ban._state.db

    def delete_model(self, request: HttpRequest, obj: Ban) -> None:
        unban_network(network=obj.network, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Ban]) -> None:
        for network in list(queryset.values_list("network", flat=True)):
            unban_network(network=network, actor=request.user)

    @admin.action(description="Unban selected")
    def unban_selected(self, request: HttpRequest, queryset: QuerySet[Ban]) -> None:
        networks = list(queryset.values_list("network", flat=True))
        removed = [network for network in networks if unban_network(network=network, actor=request.user)]
        if removed:
            self.message_user(request, f"Unbanned {len(removed)}: {', '.join(removed)}.", messages.SUCCESS)
        else:
            self.message_user(request, "Nothing was unbanned.", messages.WARNING)

    @admin.action(description="Sync to WAF now")
    def sync_waf_now(self, request: HttpRequest, queryset: QuerySet[Ban]) -> None:
        """Queue the WAF sync; if it cannot be queued (or fails inline), run security.waf here."""
        try:
            result = sync_waf_task.apply_async()
        except Exception as exc:
            log.warning("could not queue the WAF sync: %s", type(exc).__name__)
        else:
            summary = _summary(getattr(result, "result", None)) if _ready(result) else ""
            self.message_user(request, _sentence(summary) if summary else "WAF sync queued.", messages.SUCCESS)
            return
        try:
            from security.waf import sync_waf  # here: boto3 takes half a second to load, for one rare action
        except ImportError:
            self.message_user(
                request,
                "The WAF sync is not available (security.waf is not installed); bans are enforced in the app.",
                messages.WARNING,
            )
            return
        try:
            outcome = sync_waf()
        except Exception as exc:
            log.exception("WAF sync failed")
            self.message_user(request, f"WAF sync failed: {type(exc).__name__}: {exc}", messages.ERROR)
            return
        as_dict = getattr(outcome, "as_dict", None)
        summary = _summary(as_dict() if callable(as_dict) else outcome)
        self.message_user(request, _sentence(summary) if summary else "WAF sync ran.", messages.SUCCESS)


def _ready(result: Any) -> bool:
    ready = getattr(result, "ready", None)
    try:
        return bool(ready()) if callable(ready) else False
    except Exception:
        return False


def _sentence(summary: str) -> str:
    text = summary if summary.lower().startswith("waf") else f"WAF sync ran: {summary}"
    return text if text.endswith(".") else f"{text}."


def _summary(value: Any) -> str:
    """One line from security.waf's SyncResult.as_dict() (or whatever the sync returned)."""
    if isinstance(value, dict):
        families = value.get("families")
        if isinstance(families, dict) and families and not value.get("skipped"):
            return "; ".join(
                str(family.get("summary", key)) if isinstance(family, dict) else str(key)
                for key, family in families.items()
            )
        if value.get("message"):
            return str(value["message"])
        return ", ".join(f"{key}: {item}" for key, item in value.items())
    return "" if value is None else str(value)


@admin.register(FlaggedIP)
class FlaggedIPAdmin(admin.ModelAdmin):
    list_display = ["ip", "score", "status", "reasons_display", "sites_count", "last_seen", "times_banned"]
    list_filter = ["status"]
    search_fields = ["ip"]
    ordering = ["-score", "-last_seen"]
    readonly_fields = [
        "ip",
        "score",
        "status",
        "reasons",
        "sites",
        "first_seen",
        "last_seen",
        "times_banned",
        "expires_at",
    ]
    actions = ["ban_24h", "ban_7d", "dismiss_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # flags come from the detectors

    @admin.display(description="reasons")
    def reasons_display(self, obj: FlaggedIP) -> str:
        return describe_reasons(obj.reasons)

    @admin.display(description="sites")
    def sites_count(self, obj: FlaggedIP) -> int:
        return len(obj.sites or [])

    def _ban(self, request: HttpRequest, queryset: QuerySet[FlaggedIP], duration: dt.timedelta, label: str) -> None:
        ips = list(queryset.values_list("ip", flat=True))
        result = ban_flagged_ips(ips=ips, duration=duration, actor=request.user, client_ip=client_ip(request))
        if result.banned:
            self.message_user(
                request, f"Banned {len(result.banned)} for {label}: {', '.join(result.banned)}.", messages.SUCCESS
            )
        for error in result.errors:
            self.message_user(request, error, messages.ERROR)

    @admin.action(description="Ban selected for 24 h")
    def ban_24h(self, request: HttpRequest, queryset: QuerySet[FlaggedIP]) -> None:
        self._ban(request, queryset, dt.timedelta(hours=24), "24h")

    @admin.action(description="Ban selected for 7 days")
    def ban_7d(self, request: HttpRequest, queryset: QuerySet[FlaggedIP]) -> None:
        self._ban(request, queryset, dt.timedelta(days=7), "7d")

    @admin.action(description="Dismiss selected")
    def dismiss_selected(self, request: HttpRequest, queryset: QuerySet[FlaggedIP]) -> None:
        count = dismiss_flags(ips=list(queryset.values_list("ip", flat=True)))
        self.message_user(request, f"Dismissed {count} flagged IP{'s' if count != 1 else ''}.", messages.SUCCESS)


@admin.register(BanAudit)
class BanAuditAdmin(admin.ModelAdmin):
    list_display = ["at", "action", "network", "source", "scope", "actor", "reason", "expires_at"]
    list_filter = ["action", "source", "scope", "at"]
    search_fields = ["network", "reason"]
    list_select_related = ["actor"]
    date_hierarchy = "at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
