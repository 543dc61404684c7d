"""WAF sync against moto's WAFv2 (AWS is never reached from the tests)."""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from typing import Any

import pytest
from botocore.exceptions import ClientError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from security import waf
from security.models import Ban
from security.services import ban_network, unban_network
from testing import in_set, make_ban

pytestmark = pytest.mark.django_db


def lock_error(operation: str = "UpdateIPSet") -> ClientError:
    return ClientError(
        {"Error": {"Code": "WAFOptimisticLockException", "Message": "someone changed the resource"}}, operation
    )


class Spy:
    """Wraps the boto3 client: counts calls, records lock tokens, can fail update_ip_set."""

    def __init__(self, client: Any, *, fail_updates: int = 0, error: ClientError | None = None) -> None:
        self.client = client
        self.calls: Counter[str] = Counter()
        self.tokens: list[str] = []
        self.sent: list[str] = []  # every address passed to update_ip_set
        self.fail_updates = fail_updates
        self.error = error or lock_error()

    def get_ip_set(self, **kwargs: Any) -> Any:
        self.calls["get_ip_set"] += 1
        return self.client.get_ip_set(**kwargs)

    def update_ip_set(self, **kwargs: Any) -> Any:
        self.calls["update_ip_set"] += 1
        self.tokens.append(kwargs["LockToken"])
        self.sent.extend(kwargs["Addresses"])
        if self.fail_updates:
            self.fail_updates -= 1
            raise self.error
        return self.client.update_ip_set(**kwargs)


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


# --- 1. not configured ------------------------------------------------------------------------


def test_without_arns_it_is_a_logged_no_op_and_bans_are_skipped(settings, caplog):
    settings.WAF_IPSET_V4_ARN = None
    settings.WAF_IPSET_V6_ARN = ""
    make_ban("203.0.113.7")
    make_ban("2001:db8::/64")
    caplog.set_level(logging.INFO, logger="security.waf")

    result = waf.sync_waf(client=object())  # any call on it would raise AttributeError

    assert result.skipped
    assert result.message == "WAF sync skipped: WAF_IPSET_V4_ARN / WAF_IPSET_V6_ARN not set"
    assert {f.outcome for f in result.families.values()} == {"skipped"}
    assert not result.failed
    lines = [r.getMessage() for r in caplog.records if "WAF" in r.getMessage()]
    assert lines == ["WAF sync skipped: WAF_IPSET_V4_ARN / WAF_IPSET_V6_ARN not set"]
    assert set(Ban.objects.values_list("waf_state", "waf_message")) == {
        ("skipped", "WAF sync skipped: WAF_IPSET_V4_ARN / WAF_IPSET_V6_ARN not set")
    }
    assert result.as_dict()["skipped"] is True


def test_only_the_configured_family_is_synced(wafv2, ip_sets, settings):
    settings.WAF_IPSET_V6_ARN = None
    v4 = make_ban("203.0.113.7")
    v6 = make_ban("2001:db8::/64")

    result = waf.sync_waf()

    assert (result.v4.outcome, result.v6.outcome) == ("synced", "skipped")
    assert in_set(wafv2, ip_sets[4]) == {"203.0.113.7/32"}
    assert in_set(wafv2, ip_sets[6]) == set()
    v4.refresh_from_db()
    v6.refresh_from_db()
    assert v4.waf_state == "synced"
    assert (v6.waf_state, v6.waf_message) == ("skipped", "WAF sync skipped: WAF_IPSET_V6_ARN not set")


# --- 2. sync, then nothing to do ----------------------------------------------------------------


def test_it_syncs_the_active_bans_and_a_second_sync_updates_nothing(wafv2, ip_sets):
    single = make_ban("198.51.100.7")
    net24 = make_ban("203.0.113.0/24", expires_in=dt.timedelta(hours=1))
    net64 = make_ban("2001:db8:1234:5678::/64")
    expired = make_ban("192.0.2.1", expires_in=dt.timedelta(minutes=-5))
    now = timezone.now()
    spy = Spy(wafv2)

    result = waf.sync_waf(client=spy, now=now)

    assert (result.v4.outcome, result.v6.outcome) == ("synced", "synced")
    assert in_set(wafv2, ip_sets[4]) == {"198.51.100.7/32", "203.0.113.0/24"}
    assert in_set(wafv2, ip_sets[6]) == {"2001:db8:1234:5678::/64"}
    assert spy.calls["update_ip_set"] == 2
    assert (result.v4.added, result.v4.removed, result.v4.synced, result.v6.synced) == (2, 0, 2, 1)
    for ban in (single, net24, net64):
        ban.refresh_from_db()
        assert (ban.waf_state, ban.waf_message, ban.waf_synced_at) == ("synced", "", now)
    expired.refresh_from_db()
    assert expired.waf_state == "pending"
    # update_ip_set replaces the whole spec: the description survives
    ref = waf.parse_ipset_arn(ip_sets[4])
    assert wafv2.get_ip_set(Name=ref.name, Scope=ref.scope, Id=ref.id)["IPSet"]["Description"].startswith("managed")

    again = Spy(wafv2)
    second = waf.sync_waf(client=again, now=now + dt.timedelta(minutes=1))

    assert (second.v4.outcome, second.v6.outcome) == ("unchanged", "unchanged")
    assert again.calls == Counter({"get_ip_set": 2})
    single.refresh_from_db()
    assert single.waf_synced_at == now  # not rewritten when nothing changed


def test_a_ban_already_in_the_set_is_marked_synced_without_an_update(wafv2, ip_sets):
    ref = waf.parse_ipset_arn(ip_sets[4])
    token = wafv2.get_ip_set(Name=ref.name, Scope=ref.scope, Id=ref.id)["LockToken"]
    wafv2.update_ip_set(Name=ref.name, Scope=ref.scope, Id=ref.id, Addresses=["203.0.113.7/32"], LockToken=token)
    ban = make_ban("203.0.113.7")
    spy = Spy(wafv2)

    result = waf.sync_waf(client=spy)

    assert result.v4.outcome == "unchanged"
    assert spy.calls["update_ip_set"] == 0
    ban.refresh_from_db()
    assert ban.waf_state == "synced"
    assert ban.waf_synced_at is not None


# --- 3. unban -----------------------------------------------------------------------------------


def test_an_unban_is_removed_on_the_next_sync(wafv2, ip_sets):
    make_ban("198.51.100.7")
    make_ban("198.51.100.8")
    make_ban("2001:db8::/64")
    waf.sync_waf()
    assert in_set(wafv2, ip_sets[4]) == {"198.51.100.7/32", "198.51.100.8/32"}

    assert unban_network(network="198.51.100.7")
    assert unban_network(network="2001:db8::/64")
    result = waf.sync_waf()

    assert (result.v4.outcome, result.v4.removed, result.v6.removed) == ("synced", 1, 1)
    assert in_set(wafv2, ip_sets[4]) == {"198.51.100.8/32"}
    assert in_set(wafv2, ip_sets[6]) == set()


# --- 4. invalid rows ----------------------------------------------------------------------------


def test_invalid_networks_are_never_sent_and_marked_skipped(wafv2, ip_sets):
    good = make_ban("198.51.100.7")
    Ban.objects.bulk_create(
        [
            Ban(network="999.1.1.1/32", version=4),  # not an address
            Ban(network="203.0.113.5/24", version=4),  # host bits set
            Ban(network="2001:db8::/64", version=4),  # wrong family
            Ban(network="10.0.0.0/4", version=4),  # far too wide
            Ban(network="2001:db8::zz/64", version=6),
            Ban(network="192.0.2.0/24", version=6),  # IPv4 recorded as IPv6
        ]
    )
    fixed_later = make_ban("192.0.2.50")
    Ban.objects.filter(pk=fixed_later.pk).update(network="300.0.0.1/32")
    spy = Spy(wafv2)

    result = waf.sync_waf(client=spy)

    assert in_set(wafv2, ip_sets[4]) == {"198.51.100.7/32"}
    assert in_set(wafv2, ip_sets[6]) == set()
    assert spy.sent == ["198.51.100.7/32"]  # the only address ever sent
    assert spy.calls["update_ip_set"] == 1  # IPv6 stays empty: no update
    assert (result.v4.invalid, result.v6.invalid) == (5, 2)
    assert (result.v4.outcome, result.v6.outcome) == ("synced", "unchanged")
    good.refresh_from_db()
    assert good.waf_state == "synced"
    invalid = Ban.objects.exclude(pk=good.pk)
    assert set(invalid.values_list("waf_state", flat=True)) == {"skipped"}
    messages = dict(invalid.values_list("network", "waf_message"))
    assert all(message.startswith("invalid network") for message in messages.values())
    assert "host bits" in messages["203.0.113.5/24"]
    assert "IPv6 recorded as IPv4" in messages["2001:db8::/64"]
    assert "IPv4 recorded as IPv6" in messages["192.0.2.0/24"]


@pytest.mark.parametrize(
    ("network", "version", "expected"),
    [
        ("203.0.113.7/32", 4, "203.0.113.7/32"),
        ("203.0.113.7", 4, "203.0.113.7/32"),
        ("203.0.113.0/24", 4, "203.0.113.0/24"),
        ("2001:db8::/64", 6, "2001:db8::/64"),
        ("2001:DB8:0::1/128", 6, "2001:db8::1/128"),
        ("999.1.1.1/32", 4, None),
        ("203.0.113.7/24", 4, None),
        ("0.0.0.0/0", 4, None),
        ("2001:db8::/64", 4, None),
        ("203.0.113.7/32", 6, None),
        ("", 4, None),
        ("203.0.113.7/32", 5, None),
    ],
)
def test_validate_network(network, version, expected):
    cidr, why = waf.validate_network(network, version)
    assert cidr == expected
    assert bool(why) == (expected is None)


# --- 5. the cap ---------------------------------------------------------------------------------


def test_over_the_cap_the_newest_bans_are_kept(wafv2, ip_sets, settings, caplog):
    settings.WAF_MAX_ADDRESSES = 3
    bans = [make_ban(f"198.51.100.{i}", minutes_ago=10 * i) for i in range(1, 6)]  # .1 newest, .5 oldest
    caplog.set_level(logging.WARNING, logger="security.waf")

    result = waf.sync_waf()

    assert in_set(wafv2, ip_sets[4]) == {"198.51.100.1/32", "198.51.100.2/32", "198.51.100.3/32"}
    assert result.over_cap == {"v4": 2, "v6": 0, "collector_v4": 0, "collector_v6": 0}
    assert result.as_dict()["over_cap"] == {"v4": 2, "v6": 0, "collector_v4": 0, "collector_v6": 0}
    assert result.v4.addresses == 3
    for ban in bans:
        ban.refresh_from_db()
    assert [b.waf_state for b in bans] == ["synced", "synced", "synced", "skipped", "skipped"]
    assert bans[4].waf_message == "over the WAF cap of 3 addresses"
    assert any("over the WAF cap of 3 addresses" in r.getMessage() for r in caplog.records)

    # Room again after an unban: the newest left-out ban gets in.
    unban_network(network="198.51.100.1")
    result = waf.sync_waf()
    assert in_set(wafv2, ip_sets[4]) == {"198.51.100.2/32", "198.51.100.3/32", "198.51.100.4/32"}
    assert result.over_cap == {"v4": 1, "v6": 0, "collector_v4": 0, "collector_v6": 0}
    bans[3].refresh_from_db()
    assert (bans[3].waf_state, bans[3].waf_message) == ("synced", "")


# --- 6. optimistic locking and errors -----------------------------------------------------------


def test_a_lock_conflict_is_retried_and_succeeds(wafv2, ip_sets):
    ban = make_ban("198.51.100.7")
    spy = Spy(wafv2, fail_updates=1)
    sleeps = Sleeps()

    result = waf.sync_waf(client=spy, sleep=sleeps)

    assert result.v4.outcome == "synced"
    assert result.v4.attempts == 2
    assert spy.calls["update_ip_set"] == 2
    assert spy.calls["get_ip_set"] == 3  # v4 twice (token re-read), v6 once
    assert len(sleeps) == 1
    assert 0.1 <= sleeps[0] <= 0.2
    assert in_set(wafv2, ip_sets[4]) == {"198.51.100.7/32"}
    ban.refresh_from_db()
    assert ban.waf_state == "synced"


def test_a_concurrent_writer_forces_a_fresh_lock_token(wafv2, ip_sets):
    """A real conflict in moto: someone updates the set between our get and our update."""
    make_ban("198.51.100.7")
    ref = waf.parse_ipset_arn(ip_sets[4])

    class Racer(Spy):
        raced = False

        def update_ip_set(self, **kwargs: Any) -> Any:
            if not self.raced:
                self.raced = True
                token = self.client.get_ip_set(Name=ref.name, Scope=ref.scope, Id=ref.id)["LockToken"]
                self.client.update_ip_set(
                    Name=ref.name, Scope=ref.scope, Id=ref.id, Addresses=["192.0.2.99/32"], LockToken=token
                )
            return super().update_ip_set(**kwargs)

    spy = Racer(wafv2)
    result = waf.sync_waf(client=spy, sleep=Sleeps())

    assert result.v4.outcome == "synced"
    assert len(set(spy.tokens)) == 2  # the retry used the new token
    assert in_set(wafv2, ip_sets[4]) == {"198.51.100.7/32"}  # the stranger's address is gone


def test_a_lock_conflict_every_time_fails_the_family_without_raising(wafv2, ip_sets, caplog):
    v4 = make_ban("198.51.100.7")
    v6 = make_ban("2001:db8::/64")
    spy = Spy(wafv2, fail_updates=1000)
    sleeps = Sleeps()
    caplog.set_level(logging.WARNING, logger="security.waf")

    result = waf.sync_waf(client=spy, sleep=sleeps)

    assert result.v4.outcome == "failed"
    assert result.v4.attempts == waf.MAX_ATTEMPTS
    assert "WAFOptimisticLockException" in result.v4.error
    assert result.v6.outcome == "failed"
    assert result.failed
    assert result.as_dict()["failed"] is True
    assert spy.calls["update_ip_set"] == 2 * waf.MAX_ATTEMPTS
    for ban in (v4, v6):
        ban.refresh_from_db()
        assert ban.waf_state == "failed"
        assert ban.waf_message.startswith("WAF sync failed: WAFOptimisticLockException")
        assert ban.waf_synced_at is None
    # per family: MAX_ATTEMPTS - 1 sleeps, each growing and jittered within [step/2, step]
    per_family = sleeps[: waf.MAX_ATTEMPTS - 1]
    assert len(sleeps) == 2 * (waf.MAX_ATTEMPTS - 1)
    assert per_family == sorted(per_family)
    for attempt, delay in enumerate(per_family, start=1):
        step = min(waf.BACKOFF_CAP, waf.BACKOFF_BASE * 2 ** (attempt - 1))
        assert step / 2 <= delay <= step
    # jittered: the delays are not a fixed fraction of their step
    assert len({round(d / min(waf.BACKOFF_CAP, waf.BACKOFF_BASE * 2**i), 6) for i, d in enumerate(per_family)}) > 1
    assert any("WAF sync of IPv4 failed" in r.getMessage() for r in caplog.records)

    # The next sync (AWS healthy again) puts things right.
    result = waf.sync_waf(client=wafv2)
    assert (result.v4.outcome, result.v6.outcome) == ("synced", "synced")
    v4.refresh_from_db()
    assert (v4.waf_state, v4.waf_message) == ("synced", "")


def test_backoff_is_capped():
    delays = [waf.backoff_delay(attempt) for attempt in range(1, 12)]
    assert all(0 < delay <= waf.BACKOFF_CAP for delay in delays)
    assert min(delays[5:]) >= waf.BACKOFF_CAP / 2


def test_other_errors_fail_the_family_at_once(wafv2, ip_sets, settings):
    settings.WAF_IPSET_V6_ARN = ip_sets[6].rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
    v4 = make_ban("198.51.100.7")
    v6 = make_ban("2001:db8::/64")
    throttled = ClientError({"Error": {"Code": "WAFInternalErrorException", "Message": "try later"}}, "UpdateIPSet")
    spy = Spy(wafv2, fail_updates=1, error=throttled)
    sleeps = Sleeps()

    result = waf.sync_waf(client=spy, sleep=sleeps)

    assert result.v4.outcome == "failed"
    assert result.v4.error == "WAFInternalErrorException: try later"
    assert result.v4.attempts == 1
    assert sleeps == []
    assert result.v6.outcome == "failed"
    assert "WAFNonexistentItemException" in result.v6.error
    v4.refresh_from_db()
    v6.refresh_from_db()
    assert (v4.waf_state, v4.waf_message) == ("failed", "WAF sync failed: WAFInternalErrorException: try later")
    assert v6.waf_state == "failed"


def test_a_family_already_synced_stays_synced_when_a_later_sync_fails(wafv2, ip_sets):
    old = make_ban("198.51.100.7")
    waf.sync_waf()
    new = make_ban("198.51.100.8")

    result = waf.sync_waf(client=Spy(wafv2, fail_updates=1000), sleep=Sleeps())

    assert result.v4.outcome == "failed"
    old.refresh_from_db()
    new.refresh_from_db()
    assert old.waf_state == "synced"  # still in the set: nothing but a sync removes it
    assert new.waf_state == "failed"


def test_a_set_of_the_wrong_family_is_refused(wafv2, ip_sets, settings):
    settings.WAF_IPSET_V4_ARN, settings.WAF_IPSET_V6_ARN = ip_sets[6], ip_sets[4]
    make_ban("198.51.100.7")

    result = waf.sync_waf()

    assert (result.v4.outcome, result.v6.outcome) == ("failed", "failed")
    assert "holds IPV6 addresses" in result.v4.error
    assert in_set(wafv2, ip_sets[6]) == set()


def test_a_malformed_arn_fails_that_family_only(wafv2, ip_sets, settings):
    settings.WAF_IPSET_V6_ARN = "arn:aws:s3:::not-a-waf-set"
    make_ban("198.51.100.7")
    ban6 = make_ban("2001:db8::/64")

    result = waf.sync_waf()

    assert (result.v4.outcome, result.v6.outcome) == ("synced", "failed")
    assert result.v6.error.startswith("WAF_IPSET_V6_ARN:")
    ban6.refresh_from_db()
    assert ban6.waf_state == "failed"


@pytest.mark.parametrize(
    ("arn", "expected"),
    [
        (
            "arn:aws:wafv2:us-east-1:123456789012:regional/ipset/fathom-bans-v4/a1b2c3d4-5678-90ab-cdef-EXAMPLE11111",
            ("fathom-bans-v4", "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111", "REGIONAL", "us-east-1"),
        ),
        (
            "arn:aws:wafv2:us-east-1:123456789012:global/ipset/cf_bans/1234",
            ("cf_bans", "1234", "CLOUDFRONT", "us-east-1"),
        ),
        ("arn:aws:wafv2:eu-west-1:123456789012:ipset/legacy/1234", ("legacy", "1234", "REGIONAL", "eu-west-1")),
    ],
)
def test_parse_ipset_arn(arn, expected):
    ref = waf.parse_ipset_arn(arn, default_scope="REGIONAL")
    assert (ref.name, ref.id, ref.scope, ref.region) == expected


@pytest.mark.parametrize(
    "arn", ["", "arn:aws:wafv2:us-east-1:1:regional/webacl/x/y", "arn:aws:wafv2:us-east-1:1:regional/ipset/x"]
)
def test_parse_ipset_arn_refuses_other_arns(arn):
    with pytest.raises(waf.ConfigError):
        waf.parse_ipset_arn(arn)


# --- 7. the command and the task ----------------------------------------------------------------


def test_the_command_prints_a_summary_per_family(wafv2, ip_sets, capsys):
    make_ban("198.51.100.7")
    make_ban("2001:db8::/64")

    call_command("sync_waf")

    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("IPv4: synced [fathom-bans-v4 REGIONAL], 1 address(es) wanted (+1 -0)")
    assert lines[1].startswith("IPv6: synced [fathom-bans-v6 REGIONAL]")
    assert lines[2] == (
        "IPv4 collector: skipped (collector-only ban, enforced by the app only: "
        "WAF_COLLECTOR_IPSET_V4_ARN / WAF_COLLECTOR_IPSET_V6_ARN not set)"
    )
    assert lines[3].startswith("IPv6 collector: skipped")

    call_command("sync_waf")
    assert capsys.readouterr().out.splitlines()[0].startswith("IPv4: unchanged")


def test_the_command_fails_when_a_family_failed(wafv2, ip_sets, settings, capsys):
    settings.WAF_IPSET_V4_ARN = ip_sets[4].rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"

    with pytest.raises(CommandError, match="WAFNonexistentItemException"):
        call_command("sync_waf")
    assert capsys.readouterr().out.startswith("IPv4: failed")


def test_the_command_without_configuration(settings, capsys):
    settings.WAF_IPSET_V4_ARN = settings.WAF_IPSET_V6_ARN = None
    call_command("sync_waf")
    out = capsys.readouterr().out
    assert "IPv4: skipped (WAF sync skipped: WAF_IPSET_V4_ARN / WAF_IPSET_V6_ARN not set)" in out


def test_the_celery_task_runs_the_sync(wafv2, ip_sets):
    from security.waf_sync import sync_waf_task

    ban = make_ban("198.51.100.7")

    outcome = sync_waf_task.apply()

    assert outcome.successful()
    assert outcome.result["families"]["v4"]["outcome"] == "synced"
    assert outcome.result["over_cap"] == {"v4": 0, "v6": 0, "collector_v4": 0, "collector_v6": 0}
    assert in_set(wafv2, ip_sets[4]) == {"198.51.100.7/32"}
    ban.refresh_from_db()
    assert ban.waf_state == "synced"


# --- 8. the collector pair: bans of scope collector ---------------------------------------------


@pytest.fixture
def collector_sets(wafv2: Any, ip_sets: dict[int, str], settings: Any) -> dict[int, str]:
    """The optional second pair (moto), wired into the settings. Returns {4: arn, 6: arn}."""
    arns = {}
    for version in (4, 6):
        created = wafv2.create_ip_set(
            Name=f"fathom-collector-bans-v{version}",
            Scope="REGIONAL",
            IPAddressVersion=f"IPV{version}",
            Addresses=[],
        )
        arns[version] = created["Summary"]["ARN"]
    settings.WAF_COLLECTOR_IPSET_V4_ARN = arns[4]
    settings.WAF_COLLECTOR_IPSET_V6_ARN = arns[6]
    return arns


def test_each_scope_goes_to_its_own_pair_of_sets(wafv2, ip_sets, collector_sets):
    everywhere = [make_ban("198.51.100.7"), make_ban("2001:db8:1::/64")]
    collector = [make_ban("203.0.113.9", scope="collector"), make_ban("2001:db8:2::/64", scope="collector")]
    now = timezone.now()

    result = waf.sync_waf(now=now)

    assert in_set(wafv2, ip_sets[4]) == {"198.51.100.7/32"}
    assert in_set(wafv2, ip_sets[6]) == {"2001:db8:1::/64"}
    assert in_set(wafv2, collector_sets[4]) == {"203.0.113.9/32"}
    assert in_set(wafv2, collector_sets[6]) == {"2001:db8:2::/64"}
    assert {key: family.outcome for key, family in result.families.items()} == dict.fromkeys(
        ("v4", "v6", "collector_v4", "collector_v6"), "synced"
    )
    assert result.collector_v4.summary().startswith(
        "IPv4 collector: synced [fathom-collector-bans-v4 REGIONAL], 1 address(es) wanted (+1 -0)"
    )
    for ban in everywhere + collector:
        ban.refresh_from_db()
        assert (ban.waf_state, ban.waf_message, ban.waf_synced_at) == ("synced", "", now)

    again = Spy(wafv2)
    second = waf.sync_waf(client=again)
    assert {family.outcome for family in second.families.values()} == {"unchanged"}
    assert again.calls == Counter({"get_ip_set": 4})


def test_without_the_collector_pair_collector_bans_are_app_only_and_never_reach_the_all_paths_sets(wafv2, ip_sets):
    everywhere = make_ban("198.51.100.7")
    collector = [make_ban("203.0.113.9", scope="collector"), make_ban("2001:db8:2::/64", scope="collector")]
    spy = Spy(wafv2)

    result = waf.sync_waf(client=spy)

    assert spy.sent == ["198.51.100.7/32"]  # the collector bans were never sent anywhere
    assert in_set(wafv2, ip_sets[4]) == {"198.51.100.7/32"}
    assert in_set(wafv2, ip_sets[6]) == set()
    assert (result.collector_v4.outcome, result.collector_v6.outcome) == ("skipped", "skipped")
    assert not result.skipped
    assert not result.failed
    message = (
        "collector-only ban, enforced by the app only: WAF_COLLECTOR_IPSET_V4_ARN / WAF_COLLECTOR_IPSET_V6_ARN not set"
    )
    for ban in collector:
        ban.refresh_from_db()
        assert (ban.waf_state, ban.waf_message) == ("skipped", message)
    everywhere.refresh_from_db()
    assert everywhere.waf_state == "synced"


def test_without_any_set_collector_bans_say_they_are_app_only(settings):
    settings.WAF_IPSET_V4_ARN = settings.WAF_IPSET_V6_ARN = ""
    settings.WAF_COLLECTOR_IPSET_V4_ARN = settings.WAF_COLLECTOR_IPSET_V6_ARN = ""
    make_ban("198.51.100.7")
    make_ban("203.0.113.9", scope="collector")

    result = waf.sync_waf(client=object())

    assert result.skipped
    assert dict(Ban.objects.values_list("network", "waf_message")) == {
        "198.51.100.7/32": waf.NOT_CONFIGURED,
        "203.0.113.9/32": "collector-only ban, enforced by the app only: "
        "WAF_COLLECTOR_IPSET_V4_ARN / WAF_COLLECTOR_IPSET_V6_ARN not set",
    }


def test_the_collector_pair_alone_is_synced_when_the_all_paths_pair_is_not_set(
    wafv2, ip_sets, collector_sets, settings
):
    settings.WAF_IPSET_V4_ARN = settings.WAF_IPSET_V6_ARN = ""
    everywhere = make_ban("198.51.100.7")
    make_ban("203.0.113.9", scope="collector")

    result = waf.sync_waf()

    assert not result.skipped
    assert (result.v4.outcome, result.collector_v4.outcome) == ("skipped", "synced")
    assert in_set(wafv2, collector_sets[4]) == {"203.0.113.9/32"}
    assert in_set(wafv2, ip_sets[4]) == set()
    everywhere.refresh_from_db()
    assert (everywhere.waf_state, everywhere.waf_message) == ("skipped", waf.NOT_CONFIGURED)


def test_half_a_collector_pair_names_the_missing_setting(wafv2, ip_sets, collector_sets, settings):
    settings.WAF_COLLECTOR_IPSET_V6_ARN = ""
    v4 = make_ban("203.0.113.9", scope="collector")
    v6 = make_ban("2001:db8:2::/64", scope="collector")

    result = waf.sync_waf()

    assert (result.collector_v4.outcome, result.collector_v6.outcome) == ("synced", "skipped")
    v4.refresh_from_db()
    v6.refresh_from_db()
    assert v4.waf_state == "synced"
    assert (v6.waf_state, v6.waf_message) == (
        "skipped",
        "collector-only ban, enforced by the app only: WAF_COLLECTOR_IPSET_V6_ARN not set",
    )
    assert in_set(wafv2, ip_sets[6]) == set()


def test_widening_a_collector_ban_moves_it_to_the_all_paths_set(wafv2, ip_sets, collector_sets):
    ban_network(network="203.0.113.9", scope="collector")
    waf.sync_waf()
    assert in_set(wafv2, collector_sets[4]) == {"203.0.113.9/32"}

    ban = ban_network(network="203.0.113.9", scope="all")
    assert (ban.scope, ban.waf_state) == ("all", "pending")
    result = waf.sync_waf()

    assert in_set(wafv2, collector_sets[4]) == set()
    assert in_set(wafv2, ip_sets[4]) == {"203.0.113.9/32"}
    assert (result.v4.added, result.collector_v4.removed) == (1, 1)
    ban.refresh_from_db()
    assert ban.waf_state == "synced"


def test_the_cap_and_our_own_validation_hold_for_the_collector_sets(wafv2, ip_sets, collector_sets, settings):
    settings.WAF_MAX_ADDRESSES = 2
    bans = [make_ban(f"203.0.113.{i}", minutes_ago=10 * i, scope="collector") for i in range(1, 5)]
    everywhere = [make_ban(f"198.51.100.{i}", minutes_ago=10 * i) for i in range(1, 3)]
    Ban.objects.bulk_create([Ban(network="203.0.113.5/24", version=4, scope="collector")])  # host bits set
    spy = Spy(wafv2)

    result = waf.sync_waf(client=spy)

    assert in_set(wafv2, collector_sets[4]) == {"203.0.113.1/32", "203.0.113.2/32"}  # the newest two
    assert in_set(wafv2, ip_sets[4]) == {"198.51.100.1/32", "198.51.100.2/32"}  # its own cap of 2
    assert "203.0.113.5/24" not in spy.sent
    assert result.over_cap == {"v4": 0, "v6": 0, "collector_v4": 2, "collector_v6": 0}
    assert (result.collector_v4.invalid, result.collector_v4.addresses) == (1, 2)
    for ban in bans + everywhere:
        ban.refresh_from_db()
    assert [ban.waf_state for ban in bans] == ["synced", "synced", "skipped", "skipped"]
    assert bans[3].waf_message == "over the WAF cap of 2 addresses"
    assert {ban.waf_state for ban in everywhere} == {"synced"}
    assert Ban.objects.get(network="203.0.113.5/24").waf_message.startswith("invalid network: host bits set")


def test_a_lock_conflict_on_a_collector_set_is_retried_with_a_fresh_token(wafv2, ip_sets, collector_sets):
    ban = make_ban("203.0.113.9", scope="collector")
    ref = waf.parse_ipset_arn(collector_sets[4])

    class Racer(Spy):
        raced = False

        def update_ip_set(self, **kwargs: Any) -> Any:
            if kwargs["Id"] == ref.id and not self.raced:
                self.raced = True
                token = self.client.get_ip_set(Name=ref.name, Scope=ref.scope, Id=ref.id)["LockToken"]
                self.client.update_ip_set(
                    Name=ref.name, Scope=ref.scope, Id=ref.id, Addresses=["192.0.2.99/32"], LockToken=token
                )
            return super().update_ip_set(**kwargs)

    spy = Racer(wafv2)
    result = waf.sync_waf(client=spy, sleep=Sleeps())

    assert (result.collector_v4.outcome, result.collector_v4.attempts) == ("synced", 2)
    assert len(set(spy.tokens)) == 2
    assert in_set(wafv2, collector_sets[4]) == {"203.0.113.9/32"}
    ban.refresh_from_db()
    assert ban.waf_state == "synced"


def test_a_failing_collector_set_marks_its_bans_failed_and_leaves_the_others(wafv2, ip_sets, collector_sets, settings):
    settings.WAF_COLLECTOR_IPSET_V4_ARN = collector_sets[4].rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
    collector = make_ban("203.0.113.9", scope="collector")
    everywhere = make_ban("198.51.100.7")

    result = waf.sync_waf()

    assert (result.v4.outcome, result.collector_v4.outcome) == ("synced", "failed")
    assert result.failed
    assert result.error.startswith("IPv4 collector: WAFNonexistentItemException")
    collector.refresh_from_db()
    everywhere.refresh_from_db()
    assert collector.waf_state == "failed"
    assert collector.waf_message.startswith("WAF sync failed: WAFNonexistentItemException")
    assert everywhere.waf_state == "synced"


def test_a_collector_set_of_the_wrong_family_is_refused_by_its_setting_name(wafv2, ip_sets, collector_sets, settings):
    settings.WAF_COLLECTOR_IPSET_V4_ARN = collector_sets[6]
    make_ban("203.0.113.9", scope="collector")

    result = waf.sync_waf()

    assert result.collector_v4.outcome == "failed"
    assert "holds IPV6 addresses but is configured as WAF_COLLECTOR_IPSET_V4_ARN" in result.collector_v4.error


# --- 9. the web ACL rule for the collector sets -------------------------------------------------


def test_the_collector_rule_is_accepted_by_the_wafv2_api(wafv2, ip_sets, collector_sets):
    rule = waf.collector_rule([collector_sets[4], collector_sets[6]])
    statements = rule["Statement"]["AndStatement"]["Statements"]
    assert statements[0] == {
        "OrStatement": {
            "Statements": [
                {"IPSetReferenceStatement": {"ARN": collector_sets[4]}},
                {"IPSetReferenceStatement": {"ARN": collector_sets[6]}},
            ]
        }
    }
    paths = [s["ByteMatchStatement"] for s in statements[1]["OrStatement"]["Statements"]]
    assert [(p["SearchString"], p["PositionalConstraint"], p["FieldToMatch"]) for p in paths] == [
        ("/api/event", "EXACTLY", {"UriPath": {}}),
        ("/script.js", "EXACTLY", {"UriPath": {}}),
    ]
    all_paths = [
        {
            "Name": f"fathom-bans-v{version}",
            "Priority": index,
            "Action": {"Block": {}},
            "Statement": {"IPSetReferenceStatement": {"ARN": ip_sets[version]}},
            "VisibilityConfig": {
                "SampledRequestsEnabled": True,
                "CloudWatchMetricsEnabled": True,
                "MetricName": f"fathom-bans-v{version}",
            },
        }
        for index, version in enumerate((4, 6))
    ]
    # botocore checks every statement against the WAFv2 API model before the call is made.
    created = wafv2.create_web_acl(
        Name="fathom",
        Scope="REGIONAL",
        DefaultAction={"Allow": {}},
        Rules=[*all_paths, rule],
        VisibilityConfig={"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True, "MetricName": "fathom"},
    )
    acl = wafv2.get_web_acl(Name="fathom", Scope="REGIONAL", Id=created["Summary"]["Id"])["WebACL"]
    assert [r["Name"] for r in acl["Rules"]] == ["fathom-bans-v4", "fathom-bans-v6", "fathom-collector-bans"]


def test_the_collector_rule_with_one_set_references_it_directly():
    rule = waf.collector_rule(["arn:aws:wafv2:us-east-1:1:regional/ipset/c4/1", ""])
    first = rule["Statement"]["AndStatement"]["Statements"][0]
    assert first == {"IPSetReferenceStatement": {"ARN": "arn:aws:wafv2:us-east-1:1:regional/ipset/c4/1"}}
    with pytest.raises(waf.ConfigError, match="no collector IP set"):
        waf.collector_rule(["", ""])


def test_the_command_prints_the_collector_rule_for_the_configured_sets(settings, capsys):
    import json

    settings.WAF_COLLECTOR_IPSET_V4_ARN = "arn:aws:wafv2:us-east-1:123456789012:regional/ipset/c4/1"
    settings.WAF_COLLECTOR_IPSET_V6_ARN = "arn:aws:wafv2:us-east-1:123456789012:regional/ipset/c6/2"
    call_command("sync_waf", "--collector-rule")
    rule = json.loads(capsys.readouterr().out)
    assert rule == waf.collector_rule([settings.WAF_COLLECTOR_IPSET_V4_ARN, settings.WAF_COLLECTOR_IPSET_V6_ARN])
    assert not Ban.objects.exists()

    settings.WAF_COLLECTOR_IPSET_V4_ARN = settings.WAF_COLLECTOR_IPSET_V6_ARN = ""
    with pytest.raises(CommandError, match="no collector IP set"):
        call_command("sync_waf", "--collector-rule")
