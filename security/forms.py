"""Forms of the security dashboard. Every write goes through security.services."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db import transaction

from security.models import FlaggedIP, Scope, normalize_network
from security.selectors import describe_reasons
from security.services import ban_network, dismiss_flags, parse_duration

DURATIONS = [("1h", "1 hour"), ("24h", "24 hours"), ("7d", "7 days"), ("30d", "30 days"), ("permanent", "permanent")]
DEFAULT_DURATION = "24h"
# Manual bans close everything by default; "collector" closes only the public collector (an address
# shared by an office or a VPN whose owners must still reach their dashboards).
SCOPES = [(Scope.ALL.value, "everything"), (Scope.COLLECTOR.value, "collector only")]
DEFAULT_SCOPE = Scope.ALL.value
KEPT_WIDER = "{networks} already had a ban on every path, which it keeps (unban first to narrow it)."


def ban_text(duration: str, scope: str) -> str:
    """'for 24h' / 'from the collector for 24h' (for flash messages)."""
    text = duration_text(duration)
    return f"from the collector {text}" if scope == Scope.COLLECTOR else text


def duration_text(duration: str) -> str:
    """'24h' -> 'for 24h'; 'permanent' -> 'permanently' (for flash messages)."""
    return "permanently" if parse_duration(duration) is None else f"for {duration}"


def flag_reason(flag: FlaggedIP | None) -> str:
    if flag is None or not flag.reasons:
        return "flagged"
    return f"flagged: {describe_reasons(flag.reasons)} (score {flag.score})"[:300]


def client_ip(request: Any) -> str:
    """The operator's address as the ban middleware sees it (resolved by ClientIPMiddleware)."""
    return getattr(request, "client_ip", None) or request.META.get("REMOTE_ADDR", "")


def covers(network: str, ip: str | None) -> bool:
    """Whether `ip` is inside `network` (False for anything unparsable)."""
    try:
        return ipaddress.ip_address(ip or "") in ipaddress.ip_network(network.strip(), strict=False)
    except ValueError:
        return False


def own_address_error(network: str, ip: str) -> str:
    return f"{network} contains your own address ({ip}): banning it would lock you out."


@dataclass
class BanResult:
    banned: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    kept_wider: list[str] = field(default_factory=list)  # asked for collector, already banned everywhere


def ban_flagged_ips(
    *,
    ips: list[str],
    duration: dt.timedelta | None,
    actor: Any,
    client_ip: str | None = None,
    scope: str = DEFAULT_SCOPE,
) -> BanResult:
    """Ban each flagged address (the flag's evidence becomes the ban's reason).

    client_ip: the operator's own address, never banned from their own session."""
    flags = {flag.ip: flag for flag in FlaggedIP.objects.filter(ip__in=ips)}
    result = BanResult()
    with transaction.atomic():  # one commit: one snapshot bump and one WAF sync for the lot
        _ban_each(ips, flags, duration, actor, client_ip, scope, result)
    return result


def _ban_each(
    ips: list[str],
    flags: dict[str, Any],
    duration: dt.timedelta | None,
    actor: Any,
    client_ip: str | None,
    scope: str,
    result: Any,
) -> None:
    for ip in ips:
        # A collector ban leaves the owner pages open, but the operator's own address is refused
        # anyway: their own test hits would stop counting without a word.
        if client_ip and covers(ip, client_ip):
            result.errors.append(own_address_error(ip, client_ip))
            continue
        try:
            ban = ban_network(
                network=ip, reason=flag_reason(flags.get(ip)), actor=actor, duration=duration, scope=scope
            )
        except ValidationError as exc:
            result.errors.append(f"{ip}: {' '.join(exc.messages)}")
        else:
            result.banned.append(ban.network)
            if ban.scope != scope:
                result.kept_wider.append(ban.network)


class ManualBanForm(forms.Form):
    network = forms.CharField(
        max_length=64,
        label="IP or CIDR",
        widget=forms.TextInput(attrs={"placeholder": "203.0.113.7 or 203.0.113.0/24", "autocomplete": "off"}),
    )
    reason = forms.CharField(max_length=300, required=False, widget=forms.TextInput(attrs={"placeholder": "why"}))
    duration = forms.ChoiceField(choices=DURATIONS, initial=DEFAULT_DURATION)
    scope = forms.ChoiceField(choices=SCOPES, initial=DEFAULT_SCOPE, required=False, label="Close")

    def clean_scope(self) -> str:
        return self.cleaned_data.get("scope") or DEFAULT_SCOPE

    def save(self, actor: Any, client_ip: str | None = None) -> str:
        """Ban through the service; a refused network becomes this form's error. Returns the message."""
        duration = self.cleaned_data["duration"]
        scope = self.cleaned_data["scope"]
        try:
            network = normalize_network(self.cleaned_data["network"])
            if client_ip and covers(network, client_ip):
                raise ValidationError(own_address_error(network, client_ip))
            ban = ban_network(
                network=network,
                reason=self.cleaned_data["reason"],
                actor=actor,
                duration=parse_duration(duration),
                scope=scope,
            )
        except ValidationError as exc:
            self.add_error("network", exc)
            raise
        message = f"Banned {ban.network} {ban_text(duration, ban.scope)}."
        if ban.scope != scope:
            message += " " + KEPT_WIDER.format(networks=ban.network)
        return message


class AddressListField(forms.Field):
    """Repeated ?ip=... values, each a single IP address (deduplicated, order kept)."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[str]:
        if not value:
            return []
        values = [value] if isinstance(value, str) else list(value)
        ips = []
        for item in values:
            try:
                ips.append(str(ipaddress.ip_address(str(item).strip())))
            except ValueError:
                raise ValidationError(f"{item!r} is not an IP address.") from None
        return list(dict.fromkeys(ips))


class FlaggedActionForm(forms.Form):
    """One row's button or the bulk bar: ban or dismiss the selected addresses."""

    action = forms.ChoiceField(choices=[("ban", "Ban"), ("dismiss", "Dismiss")])
    ip = AddressListField(error_messages={"required": "Select at least one IP."})
    duration = forms.ChoiceField(choices=DURATIONS, initial=DEFAULT_DURATION, required=False)
    scope = forms.ChoiceField(choices=SCOPES, initial=DEFAULT_SCOPE, required=False)

    def clean_duration(self) -> str:
        return self.cleaned_data.get("duration") or DEFAULT_DURATION

    def clean_scope(self) -> str:
        return self.cleaned_data.get("scope") or DEFAULT_SCOPE

    def save(self, actor: Any, client_ip: str | None = None) -> tuple[list[str], list[str]]:
        """Returns (success messages, error messages)."""
        ips = self.cleaned_data["ip"]
        if self.cleaned_data["action"] == "dismiss":
            count = dismiss_flags(ips=ips)
            noun = ips[0] if len(ips) == 1 else f"{count} IPs"
            return ([f"Dismissed {noun}."] if count else []), ([] if count else ["Nothing to dismiss."])
        duration, scope = self.cleaned_data["duration"], self.cleaned_data["scope"]
        result = ban_flagged_ips(
            ips=ips, duration=parse_duration(duration), actor=actor, client_ip=client_ip, scope=scope
        )
        done = []
        if len(result.banned) == 1:
            done.append(f"Banned {result.banned[0]} {ban_text(duration, scope)}.")
        elif result.banned:
            done.append(f"Banned {len(result.banned)} IPs {ban_text(duration, scope)}: {', '.join(result.banned)}.")
        if result.kept_wider:
            done.append(KEPT_WIDER.format(networks=", ".join(result.kept_wider)))
        return done, result.errors


class UnbanForm(forms.Form):
    network = forms.CharField(max_length=64)
