"""The commands function: recorded EventBridge schedule events (Zappa's input transformer adds
`kwargs`) run allow-listed management commands."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from collector.models import Salt
from fathom import lambda_commands
from fathom.lambda_handler import handler
from security.models import Ban
from testing import in_set, make_ban

pytestmark = pytest.mark.django_db(transaction=True)

EVENTS = Path(__file__).parent / "events"


def recorded(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def test_expire_bans_deletes_expired_bans():
    expired = make_ban("203.0.113.7", minutes_ago=120, expires_in=dt.timedelta(minutes=-60))
    active = make_ban("203.0.113.8", expires_in=dt.timedelta(hours=1))

    result = handler(recorded("scheduled_expire_bans.json"), None)

    assert result["command"] == "expire_bans"
    assert result["ok"] is True
    assert list(Ban.objects.values_list("pk", flat=True)) == [active.pk]
    assert not Ban.objects.filter(pk=expired.pk).exists()


def test_rotate_salts_creates_todays_salt():
    assert not Salt.objects.exists()
    assert handler(recorded("scheduled_rotate_salts.json"), None)["ok"] is True
    assert list(Salt.objects.values_list("day", flat=True)) == [timezone.now().astimezone(dt.UTC).date()]


def test_sync_waf_puts_the_bans_in_the_ip_sets(wafv2, ip_sets):
    make_ban("198.51.100.7")
    assert handler(recorded("scheduled_sync_waf.json"), None) == {
        "command": "sync_waf",
        "ok": True,
        "duration_ms": pytest.approx(0, abs=60_000),
    }
    assert in_set(wafv2, ip_sets[4]) == {"198.51.100.7/32"}


def test_a_failing_command_raises_so_the_invocation_counts_as_an_error(wafv2, ip_sets, settings):
    settings.WAF_IPSET_V4_ARN = ip_sets[4].rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
    make_ban("198.51.100.7")
    with pytest.raises(lambda_commands.CommandFailed) as failed:
        handler(recorded("scheduled_sync_waf.json"), None)
    # Only the type reaches the runtime's log: not the command's message, not its traceback.
    assert str(failed.value) == "scheduled command sync_waf failed: CommandError"
    assert failed.value.__cause__ is None
    assert failed.value.__suppress_context__


def test_send_reports_runs_with_its_arguments(monkeypatch):
    seen = []
    monkeypatch.setattr(lambda_commands, "call_command", lambda name, *args, **kw: seen.append((name, args)))
    assert handler(recorded("scheduled_send_reports.json"), None)["ok"] is True
    assert seen == [("send_reports", ("--frequency", "due"))]


def test_send_reports_really_runs():
    assert handler(recorded("scheduled_send_reports.json"), None)["ok"] is True


@pytest.mark.parametrize(
    "kwargs",
    [
        {"command": "flush", "args": ["--no-input"]},
        {"command": "ban", "args": ["0.0.0.0/0"]},
        {"command": "seed_demo"},
        {"command": ["sync_waf"]},
        {"command": "sync_waf", "args": "--help"},
        {"command": "send_reports", "args": [1]},
    ],
)
def test_commands_outside_the_allow_list_or_with_bad_args_are_refused(kwargs, monkeypatch):
    seen = []
    monkeypatch.setattr(lambda_commands, "call_command", lambda *a, **kw: seen.append(a))
    event = dict(recorded("scheduled_sync_waf.json"), kwargs=kwargs)
    make_ban("203.0.113.7")
    with pytest.raises(lambda_commands.CommandNotAllowed):
        handler(event, None)
    assert seen == []
    assert Ban.objects.count() == 1


def test_the_allow_list_names_commands_that_exist():
    from django.core.management import get_commands

    assert set(get_commands()) >= lambda_commands.SCHEDULED_COMMANDS
