"""The cost model (fathom/costs/) and `manage.py cost_estimate`, checked against hand arithmetic.

Every expected figure below is written out as the arithmetic a person would do with the fixture's
settings and the PRICES table, so a change in the model shows up as a specific wrong number.
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError

from fathom import costs
from fathom.costs import CostModelError

MONTH_S = 730 * 3600  # 2,628,000 s
X86 = 0.0000166667  # USD per GB-s

# The prices of settings.AWS_PRICES as of 2026-11-26, frozen here so the tests don't follow the table.
PRICES: dict[str, dict[str, Any]] = {
    name: {"value": value, "unit": "test", "source": "test", "date": "2026-11-26"}
    for name, value in {
        "alb_hour": 0.0225,
        "alb_lcu_hour": 0.008,
        "alb_lcu_new_connections_per_second": 25,
        "alb_lcu_active_connections_per_minute": 3000,
        "alb_lcu_lambda_gb_per_hour": 0.4,
        "alb_lcu_rule_evaluations_per_second": 1000,
        "alb_free_rules_per_request": 10,
        "lambda_request_per_million": 0.20,
        "lambda_gb_second_x86_64": X86,
        "lambda_gb_second_arm64": 0.0000133334,
        "lambda_free_requests_per_month": 1_000_000,
        "lambda_free_gb_seconds_per_month": 400_000,
        "sqs_request_per_million": 0.40,
        "sqs_request_chunk_bytes": 65536,
        "sqs_free_requests_per_month": 1_000_000,
        "apigw_rest_per_million": 3.50,
        "apigw_rest_per_million_333m_to_1b": 2.80,
        "apigw_rest_per_million_1b_to_20b": 2.38,
        "apigw_rest_per_million_over_20b": 1.51,
        "apigw_http_per_million": 1.00,
        "apigw_http_per_million_over_300m": 0.90,
        "apigw_free_requests_per_month": 1_000_000,
        "waf_acl_month": 5.00,
        "waf_rule_month": 1.00,
        "waf_request_per_million": 0.60,
        # The analytics store (2026-12-03): ClickHouse Cloud Scale tier, PrivateLink, EC2, EBS, S3.
        "clickhouse_cloud_unit_hour": 0.2993,
        "clickhouse_cloud_storage_tb_month": 25.30,
        "privatelink_endpoint_az_hour": 0.01,
        "privatelink_gb": 0.01,
        "ec2_m6i_xlarge_hour": 0.192,
        "ec2_t3_small_hour": 0.0208,
        "ebs_gp3_gb_month": 0.08,
        "s3_standard_gb_month": 0.023,
    }.items()
}

# Small layout: web 2 GB / 5 s / 10 slots with keep-warm every 5 min; worker 1 GB fed by one queue
# (batch 100, window 10 s); commands 512 MB, a 2-minute WAF sync and a daily cron. Keys not set here
# (architecture of the worker, timeouts...) come from `base` or Zappa's defaults.
FIXTURE: dict[str, Any] = {
    "base": {"memory_size": 2048, "keep_warm": False, "architecture": "x86_64"},
    "web": {
        "extends": "base",
        "alb_enabled": True,
        "timeout_seconds": 5,
        "lambda_concurrency": 10,
        "keep_warm": True,
        "keep_warm_expression": "rate(5 minutes)",
    },
    "worker": {
        "extends": "base",
        "memory_size": 1024,
        "timeout_seconds": 60,
        "events": [
            {
                "function": "h",
                "event_source": {"arn": "arn:aws:sqs:us-east-1:1:fathom-ingest", "batch_size": 100, "batch_window": 10},
            },
        ],
    },
    "commands": {
        "extends": "base",
        "memory_size": 512,
        "events": [
            {"name": "sync_waf", "function": "h", "expression": "rate(2 minutes)", "kwargs": {"command": "sync_waf"}},
            {"name": "rotate", "function": "h", "expression": "cron(0 3 * * ? *)"},
            {"name": "off", "function": "h", "expression": "rate(1 minute)", "enabled": False},
        ],
    },
}
STAGES = {"web_stage": "web", "worker_stage": "worker", "commands_stage": "commands"}


def model(overrides: dict[str, float] | None = None, data: dict[str, Any] | None = None) -> costs.Model:
    return costs.build_model(data or FIXTURE, **STAGES, overrides={"avg_ms": 20, "rejected_ms": 2, **(overrides or {})})


def item(est: costs.Estimate, label_start: str) -> costs.LineItem:
    (found,) = [i for i in est.items if i.label.startswith(label_start)]
    return found


@pytest.fixture
def fixture_file(tmp_path: Path) -> Path:
    path = tmp_path / "zappa_settings.json"
    path.write_text(json.dumps(FIXTURE))
    return path


# ---- schedules --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "per_month"),
    [
        ("rate(1 minute)", 43_800),  # 2,628,000 s / 60
        ("rate(4 minutes)", 10_950),  # Zappa's keep-warm default
        ("rate(1 hour)", 730),
        ("rate(2 hours)", 365),
        ("rate(1 day)", 730 / 24),
        ("cron(0 3 * * ? *)", 730 / 24),  # once a day: 30.42 days a month
        ("cron(*/15 * * * ? *)", 4 * 24 * 730 / 24),  # 4 a hour, 24 hours
        ("cron(0,30 8-17 ? * MON,WED *)", 2 * 10 * 2 * (730 / 24) / 7),  # 2 a hour, 10 hours, 2 weekdays
        ("cron(0 9 ? * MON-FRI *)", 5 * (730 / 24) / 7),
        ("cron(0 9 ? * 2-6 *)", 5 * (730 / 24) / 7),  # the same days by number (SUN = 1)
        ("cron(0 0 1 * ? *)", 1),  # first of the month
        ("cron(0 0 1,15 * ? *)", 2),
        ("cron(0 0 L * ? *)", 1),  # last day: once a month
        ("cron(0 0 1 JAN ? *)", 1 / 12),  # once a year
        ("cron(0 12 ? * 2#1 *)", 1),  # first Monday: once a month
        ("cron(5/20 * * * ? *)", 3 * 24 * 730 / 24),  # minutes 5, 25, 45
    ],
)
def test_it_counts_schedule_runs_a_month(expression: str, per_month: float) -> None:
    assert costs.invocations_per_month(expression) == pytest.approx(per_month)


@pytest.mark.parametrize(
    "expression",
    ["rate(0 minutes)", "rate(5 weeks)", "cron(0 3 * *)", "cron(61 * * * ? *)", "at(2026-01-01T00:00:00)", ""],
)
def test_it_rejects_expressions_it_cannot_count(expression: str) -> None:
    with pytest.raises(CostModelError):
        costs.invocations_per_month(expression)


# ---- zappa_settings.json ----------------------------------------------------------------------


def test_it_resolves_extends_like_zappa_a_child_key_replaces_the_whole_value() -> None:
    data = {
        "base": {"memory_size": 512, "aws_environment_variables": {"A": "1", "B": "2"}},
        "mid": {"extends": "base", "timeout_seconds": 20},
        "leaf": {"extends": "mid", "aws_environment_variables": {"A": "3"}},
    }
    merged, origin = costs.resolve_stage(data, "leaf")
    assert merged["memory_size"] == 512
    assert merged["timeout_seconds"] == 20
    assert merged["aws_environment_variables"] == {"A": "3"}  # not merged key by key (cli.py stage_config)
    assert origin["memory_size"] == "base"
    assert origin["timeout_seconds"] == "mid"
    assert costs.resolve_stage(data, "absent") is None


def test_it_reports_circular_and_dangling_extends() -> None:
    with pytest.raises(CostModelError, match="circular extends: a -> b -> a"):
        costs.resolve_stage({"a": {"extends": "b"}, "b": {"extends": "a"}}, "a")
    with pytest.raises(CostModelError, match="undefined stage 'nope'"):
        costs.resolve_stage({"a": {"extends": "nope"}}, "a")


def test_it_reads_each_function_with_where_the_value_came_from() -> None:
    m = model()
    assert (m.web.memory_mb.value, m.web.memory_mb.source) == (2048, "zappa_settings.json: base.memory_size")
    assert m.web.timeout_s.source == "zappa_settings.json: web.timeout_seconds"
    assert m.web.concurrency.value == 10
    assert m.web.keep_warm_per_month.value == pytest.approx(MONTH_S / 300)  # rate(5 minutes) = 8,760
    assert m.worker.keep_warm_per_month.value == 0  # keep_warm false in base
    assert m.worker.timeout_s.value == 60
    assert m.commands.timeout_s.value == 30
    assert m.commands.timeout_s.source.startswith("Zappa default")
    queue = costs.ingest_queue(m.worker)
    assert (queue["batch_size"].value, queue["batch_window"].value, queue["pollers"].value) == (100, 10, 5)
    # The disabled event is skipped; the other two are counted.
    assert [name for name, _, _ in m.commands.schedules] == ["sync_waf", "rotate"]


def test_missing_stages_and_keys_take_zappas_documented_defaults() -> None:
    m = costs.build_model({"production": {}})
    assert m.web.found
    assert (m.worker.found, m.commands.found) == (False, False)
    assert (m.web.memory_mb.value, m.web.timeout_s.value, m.web.concurrency.value) == (512, 30, None)
    assert m.web.keep_warm_per_month.value == 10_950  # keep_warm defaults to true, rate(4 minutes)
    assert m.worker.keep_warm_per_month.value == 10_950  # ...for every stage that doesn't turn it off
    assert costs.concurrency_cap(m.web).value == costs.ACCOUNT_CONCURRENCY
    # A queue without batch settings gets Zappa's batch_size 10 and window 0; above 10, a 1 s window.
    data = {
        "production_worker": {
            "events": [
                {"event_source": {"arn": "arn:aws:sqs:r:1:q"}},
                {"event_source": {"arn": "arn:aws:sqs:r:1:q2", "batch_size": 50}},
            ]
        }
    }
    q1, q2 = costs.build_model(data).worker.queues
    assert (q1["batch_size"].value, q1["batch_window"].value) == (10, 0)
    assert (q2["batch_size"].value, q2["batch_window"].value) == (50, 1)


def test_the_web_duration_default_scales_the_measured_cpu_time_with_the_memory_size() -> None:
    # 6 ms CPU at 1024 MB gets 1024/1769 of a vCPU: 6 x 1769/1024 + 10 ms of waits = 20.37 ms.
    m = costs.build_model({"production": {"memory_size": 1024}})
    assert m.v("avg_ms") == pytest.approx(6 * 1769 / 1024 + 10)
    assert m.v("rejected_ms") == pytest.approx(0.52 * 1769 / 1024 + 1)
    # At 2048 MB and above the CPU time is not stretched.
    assert costs.build_model({"production": {"memory_size": 2048}}).v("avg_ms") == pytest.approx(16)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"production": {"memory_size": "big"}}, "production.memory_size must be a positive number"),
        ({"production": {"timeout_seconds": 0}}, "production.timeout_seconds must be a positive number"),
        ({"production": {"lambda_concurrency": -1}}, "lambda_concurrency must be a positive number"),
        ({"production": {"architecture": "sparc"}}, "architecture must be x86_64 or arm64"),
        ({"production": {"keep_warm_expression": "every 4 minutes"}}, "not a rate"),
        ({"production": {"events": {"a": 1}}}, "events must be a list"),
    ],
)
def test_bad_settings_values_are_reported_by_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(CostModelError, match=message):
        costs.build_model(data)


def test_bad_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(CostModelError, match="no such file"):
        costs.load_zappa_settings(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"production": {')
    with pytest.raises(CostModelError, match="not valid JSON"):
        costs.load_zappa_settings(bad)
    bad.write_text('["production"]')
    with pytest.raises(CostModelError, match="expected an object of stages"):
        costs.load_zappa_settings(bad)


# ---- one month --------------------------------------------------------------------------------


def test_ten_million_hits_a_month_by_hand() -> None:
    est = costs.estimate_month(model(), PRICES, 10_000_000)
    rps = 10_000_000 / MONTH_S  # 3.805 hits/s

    # ALB: 730 h x $0.0225. LCUs: new connections (one per hit) / 25 dominate the bytes
    # (3.805 x 3600 x 1500 B = 0.019 GiB/h, / 0.4 = 0.048) and the active connections (3.805 x 5 s
    # idle timeout / 3000 = 0.006): 3.805 / 25 = 0.1522 LCU x 730 h = 10M / 90,000 = 111.1 LCU-h.
    assert item(est, "ALB hours").cost == pytest.approx(730 * 0.0225)  # 16.425
    lcu = item(est, "ALB LCU-hours")
    assert "new connections" in lcu.label
    assert lcu.quantity == pytest.approx(10_000_000 / 90_000)
    assert lcu.cost == pytest.approx(10_000_000 / 90_000 * 0.008)  # 0.889

    # API Gateway, first tiers: 10 x $3.50 and 10 x $1.00.
    assert item(est, "API Gateway REST").cost == pytest.approx(35.0)
    assert item(est, "API Gateway HTTP").cost == pytest.approx(10.0)

    # Web: 10M hits + 8,760 keep-warm pings; 10M x 20 ms x 2 GB + 8,760 x 2 ms x 2 GB.
    assert item(est, "Web Lambda requests").quantity == pytest.approx(10_008_760)
    web_gbs = 10_000_000 * 0.020 * 2 + 8_760 * 0.002 * 2  # 400,035.04 GB-s
    assert item(est, "Web Lambda duration").quantity == pytest.approx(web_gbs)
    assert item(est, "Web Lambda duration").cost == pytest.approx(web_gbs * X86)  # 6.667

    # Worker: 3.805 hits/s x 10 s window / 5 pollers = 7.61 hits a batch, so 10M / 7.61 = 1,314,000
    # invocations (2,628,000 s / 10 s x 5 pollers) of ceil(10 + 7.61) = 18 ms at 1 GB.
    per_batch = rps * 10 / 5
    assert per_batch == pytest.approx(7.6104, abs=1e-4)
    assert item(est, "Worker Lambda requests").quantity == pytest.approx(1_314_000)
    assert item(est, "Worker Lambda duration").quantity == pytest.approx(1_314_000 * 0.018 * 1)  # 23,652 GB-s

    # SQS: 10M sends; receives and deletes of 7.61 messages each (2 KB each: one 64 KB chunk);
    # 5 idle pollers x 2,628,000 s / 20 s = 657,000 empty receives.
    assert item(est, "SQS SendMessage").cost == pytest.approx(4.0)
    assert item(est, "SQS ReceiveMessage").quantity == pytest.approx(1_314_000)
    assert item(est, "SQS DeleteMessageBatch").quantity == pytest.approx(1_314_000)
    assert item(est, "SQS empty long polls").quantity == pytest.approx(657_000)

    # Commands: rate(2 minutes) = 21,900 runs + the daily cron 30.42, 1 s each at 0.5 GB.
    runs = 21_900 + 730 / 24
    assert item(est, "Commands Lambda requests").quantity == pytest.approx(runs)
    assert item(est, "Commands Lambda duration").quantity == pytest.approx(runs * 1 * 0.5)

    common = (
        10_008_760 * 0.2e-6
        + web_gbs * X86  # web 2.0018 + 6.6673
        + 1_314_000 * 0.2e-6
        + 23_652 * X86  # worker 0.2628 + 0.3942
        + (10_000_000 + 1_314_000 * 2 + 657_000) * 0.4e-6  # SQS 5.314
        + runs * 0.2e-6
        + runs * 0.5 * X86  # commands 0.0044 + 0.1828
    )
    totals = est.totals()
    assert totals["alb"] == pytest.approx(16.425 + 10_000_000 / 90_000 * 0.008 + common)
    assert totals["apigw_rest"] == pytest.approx(35 + common)
    assert totals["apigw_http"] == pytest.approx(10 + common)
    # 16.425 + 0.8889 + 2.0018 + 6.6673 + 0.2628 + 0.3942 + 5.3140 + 0.0044 + 0.1828 = 32.1410
    assert totals["alb"] == pytest.approx(32.1410, abs=1e-4)
    assert totals["apigw_rest"] == pytest.approx(49.8272, abs=1e-4)  # 35 + (32.1410 - 16.425 - 0.8889)


def test_api_gateway_prices_fall_in_tiers() -> None:
    est = costs.estimate_month(model(), PRICES, 1_000_000_000)
    # REST: 333M x 3.50 + 667M x 2.80; HTTP: 300M x 1.00 + 700M x 0.90.
    assert item(est, "API Gateway REST").cost == pytest.approx(333 * 3.5 + 667 * 2.8)
    assert item(est, "API Gateway HTTP").cost == pytest.approx(300 + 700 * 0.9)


def test_waf_adds_the_acl_its_rules_and_every_request_and_rules_out_http_apis() -> None:
    est = costs.estimate_month(model(), PRICES, 10_000_000, waf=True)
    assert est.cost("waf") == pytest.approx(5 + 2 * 1 + 10 * 0.60)
    totals = est.totals()
    assert totals["apigw_http"] is None
    plain = costs.estimate_month(model(), PRICES, 10_000_000).totals()
    assert totals["alb"] - plain["alb"] == pytest.approx(13.0)


def test_the_collector_ip_sets_add_their_rule_to_the_waf() -> None:
    data = json.loads(json.dumps(FIXTURE))
    data["base"]["aws_environment_variables"] = {"WAF_COLLECTOR_IPSET_V4_ARN": "arn:...:ipset/c4/1"}
    with_collector = model(data=data)
    assert with_collector.v("waf_rules") == 3
    assert "the collector-path rule (WAF_COLLECTOR_IPSET_V4_ARN set in zappa_settings.json)" in (
        with_collector.inputs["waf_rules"].source
    )
    est = costs.estimate_month(with_collector, PRICES, 10_000_000, waf=True)
    assert est.cost("waf") == pytest.approx(5 + 3 * 1 + 10 * 0.60)
    assert model().v("waf_rules") == 2  # not set: the two all-paths rules only
    assert model({"waf_rules": 5}, data=data).v("waf_rules") == 5  # --waf-rules still wins


def test_free_tier_subtracts_the_always_free_allowances_only_when_asked() -> None:
    est = costs.estimate_month(model(), PRICES, 10_000_000, free_tier=True)
    assert item(est, "Free tier: Lambda requests").cost == pytest.approx(-0.20)  # 1M x 0.20/M
    assert item(est, "Free tier: Web GB-s").cost == pytest.approx(-400_000 * X86)  # all 400k on the web function
    assert item(est, "Free tier: SQS requests").cost == pytest.approx(-0.40)
    assert not [i for i in est.items if i.label.startswith("Free tier: Worker")]
    assert costs.estimate_month(model(), PRICES, 10_000_000).cost("free") == 0


def test_zero_hits_still_pays_for_the_alb_the_pollers_and_the_schedules() -> None:
    est = costs.estimate_month(model(), PRICES, 0)
    assert item(est, "ALB hours").cost == pytest.approx(16.425)
    assert item(est, "ALB LCU-hours").cost == 0
    assert item(est, "Worker Lambda requests").quantity == 0
    assert item(est, "SQS empty long polls").cost == pytest.approx(657_000 * 0.4e-6)
    assert est.totals()["apigw_http"] == pytest.approx(est.cost("web", "worker", "commands"))


def test_arm64_functions_are_priced_at_the_arm_rate() -> None:
    data = json.loads(json.dumps(FIXTURE))
    data["web"]["architecture"] = "arm64"
    est = costs.estimate_month(model(data=data), PRICES, 10_000_000)
    assert item(est, "Web Lambda duration").price == 0.0000133334
    assert item(est, "Worker Lambda duration").price == X86


# ---- ceiling and attack -----------------------------------------------------------------------


def test_the_ceiling_is_concurrency_times_memory_for_the_month() -> None:
    m = model()
    c = costs.ceiling(m, PRICES, m.web)
    # 10 slots x 2,628,000 s x 2 GB = 52,560,000 GB-s; requests lasting the 5 s timeout: 5,256,000.
    assert c["gbs"] == pytest.approx(52_560_000)
    assert c["requests"] == pytest.approx(5_256_000)
    assert c["month"] == pytest.approx(52_560_000 * X86 + 5.256 * 0.2)  # 877.05
    assert c["hour"] == pytest.approx(c["month"] / 730)  # 1.20
    # The same slots full of 2 ms rejections: the same duration, 2,500 times the requests.
    fast = costs.ceiling(m, PRICES, m.web, 2)
    assert fast["gbs"] == c["gbs"]
    assert fast["requests"] == pytest.approx(10 * MONTH_S / 0.002)


def test_the_waf_blocks_all_but_the_minutes_before_each_ban_lands() -> None:
    # 8 h; 41.2 s to the ban + 120 s to the next sync; bans of 1 h, 4 h, 16 h: the address gets
    # through at 0 s, after 1 h and after 5 h: 3 x 161.2 s of 28,800 s.
    assert costs.waf_unblocked_share(28_800, 161.2, 60) == pytest.approx(3 * 161.2 / 28_800)
    attack = costs.estimate_attack(model(), PRICES, 10_000_000, multiplier=10, hours=8)
    assert attack.blocked_share.value == pytest.approx(1 - 3 * 161.2 / 28_800)  # 98.32 %
    assert "sync_waf (rate(2 minutes))" in attack.blocked_share.source


def test_an_attack_night_by_hand_with_and_without_waf_bans() -> None:
    m = model({"attack_accepted_share": 0.1})
    attack = costs.estimate_attack(m, PRICES, 10_000_000, multiplier=10, hours=8, blocked_share=0.99)
    legit = 10_000_000 * 28_800 / MONTH_S  # 109,589 hits in the 8 h
    extra = 10 * legit  # 1,095,890 attack requests
    assert attack.requests == pytest.approx(extra)
    no = {i.label: i for i in attack.without_waf}

    # No WAF: every attack request is a Lambda invocation; 10 % accepted (20 ms), 90 % rejected (2 ms).
    assert no["ALB LCU-hours"].quantity == pytest.approx(extra / 90_000)  # new connections / 25 / 3600
    assert no["Web Lambda requests"].quantity == pytest.approx(extra)
    assert no["Web Lambda duration"].quantity == pytest.approx((0.1 * extra * 0.020 + 0.9 * extra * 0.002) * 2)
    # The queued hits double (legit + 10 % of 10x): batches grow from 7.61 to 15.22 hits within the
    # same 10 s windows, so no extra invocations, but 26 ms instead of 18 ms each: 14,400 x 8 ms x 1 GB.
    assert no["Worker Lambda invocations"].quantity == pytest.approx(0)
    assert no["Worker Lambda duration"].quantity == pytest.approx(14_400 * 0.008)
    # SQS: sends + (receives + deletes of 10) - the normal (sends + receives + deletes of 7.61).
    sqs = (2 * legit + 2 * 2 * legit / 10) - (legit + 2 * 14_400)
    assert no["SQS requests"].quantity == pytest.approx(sqs)
    expected_no = (
        extra / 90_000 * 0.008
        + extra * 0.2e-6
        + (0.1 * extra * 0.020 + 0.9 * extra * 0.002) * 2 * X86
        + 14_400 * 0.008 * X86
        + sqs * 0.4e-6
    )
    assert attack.cost_without_waf == pytest.approx(expected_no)
    # 0.0974 LCU + 0.2192 requests + 0.1388 duration + 0.0019 worker + 0.0498 SQS = 0.5072
    assert attack.cost_without_waf == pytest.approx(0.5072, abs=1e-4)

    # With WAF bans: 99 % stop at the WAF (ALB LCUs + WAF inspection), 1 % still reach the function.
    waf = {i.label: i for i in attack.with_waf}
    through = 0.01 * extra
    assert waf["ALB LCU-hours"].quantity == pytest.approx(extra / 90_000)
    assert waf["WAF requests"].cost == pytest.approx(extra * 0.6e-6)  # 0.658
    assert waf["Web Lambda requests"].quantity == pytest.approx(through)
    assert waf["Web Lambda duration"].quantity == pytest.approx((0.1 * through * 0.020 + 0.9 * through * 0.002) * 2)
    assert waf["Worker Lambda duration"].quantity == pytest.approx(0)  # still 18 ms batches
    assert waf["SQS requests"].quantity == pytest.approx(0.1 * through)  # one send per queued hit
    expected_waf = (
        extra / 90_000 * 0.008
        + extra * 0.6e-6
        + through * 0.2e-6
        + (0.1 * through * 0.020 + 0.9 * through * 0.002) * 2 * X86
        + 0.1 * through * 0.4e-6
    )
    assert attack.cost_with_waf == pytest.approx(expected_waf)  # 0.758
    # Cheap rejections cost less than WAF inspection: the bans buy capacity, not a smaller bill.
    assert attack.cost_with_waf > attack.cost_without_waf


def test_an_attack_past_the_reserved_concurrency_is_throttled_not_billed() -> None:
    # 1 slot, 1 s per accepted request, everything accepted: 100M hits a month = 38 req/s legit.
    data = json.loads(json.dumps(FIXTURE))
    data["web"]["lambda_concurrency"] = 1
    m = model({"avg_ms": 1000, "attack_accepted_share": 1}, data)
    attack = costs.estimate_attack(m, PRICES, 100_000_000, multiplier=10, hours=8, blocked_share=0)
    window = attack.windows["without_waf"]
    assert window.concurrency_needed == pytest.approx(11 * 100_000_000 / MONTH_S)  # 418.6 slots wanted
    assert window.served_share == pytest.approx(1 / window.concurrency_needed)
    # Billed duration never exceeds 1 slot x 28,800 s x 2 GB, however many requests come.
    assert window.web_gbs == pytest.approx(28_800 * 2)
    assert attack.windows["normal"].web_gbs == pytest.approx(28_800 * 2)  # already saturated


def test_bad_attack_and_traffic_inputs_are_rejected() -> None:
    m = model()
    with pytest.raises(CostModelError, match="hits per month"):
        costs.estimate_month(m, PRICES, -1)
    with pytest.raises(CostModelError, match="attack multiplier"):
        costs.estimate_attack(m, PRICES, 10, multiplier=0, hours=8)
    with pytest.raises(CostModelError, match="between 0 and 1"):
        costs.estimate_attack(m, PRICES, 10, multiplier=10, hours=8, blocked_share=1.5)
    with pytest.raises(CostModelError, match="attack_accepted_share must be between 0 and 1"):
        model({"attack_accepted_share": 2})
    with pytest.raises(CostModelError, match="avg_ms must be positive"):
        model({"avg_ms": -5})
    with pytest.raises(CostModelError, match="no usable 'alb_hour'"):
        costs.estimate_month(m, {}, 10)


def test_the_settings_price_table_is_complete_and_sourced() -> None:
    prices = django_settings.AWS_PRICES
    assert costs.check_prices(prices) == []
    assert set(PRICES) <= set(prices)
    for entry in prices.values():
        assert all(entry[key] for key in ("source", "unit", "date"))


# ---- the command ------------------------------------------------------------------------------


def run(*args: str, **options: Any) -> str:
    out = StringIO()
    call_command("cost_estimate", *args, stdout=out, **options)
    return out.getvalue()


def test_the_command_prints_line_items_totals_ceiling_assumptions_and_prices(fixture_file: Path, settings: Any) -> None:
    settings.AWS_PRICES = PRICES
    text = run(
        "--hits-per-month",
        "10000000",
        "--settings-file",
        str(fixture_file),
        "--web-stage",
        "web",
        "--worker-stage",
        "worker",
        "--commands-stage",
        "commands",
        "--avg-ms",
        "20",
        "--rejected-ms",
        "2",
    )
    (total_line,) = [line for line in text.splitlines() if line.strip().startswith("TOTAL")]
    # 32.14 through the ALB, 35 + 14.83 through REST, 10 + 14.83 through HTTP (see the by-hand test).
    assert total_line.split()[1:] == ["32.14", "49.83", "24.83"]
    assert "ALB LCU-hours (new connections dominate)" in text
    assert "concurrency 10 (zappa_settings.json: web.lambda_concurrency) x timeout 5 s" in text
    assert "877.05 USD/month (1.20 USD/hour)" in text
    assert "schedule sync_waf: rate(2 minutes) = 21,900 runs a month" in text
    assert "avg_ms = 20: command line" in text
    assert "Prices (settings.AWS_PRICES, us-east-1)" in text
    for name in PRICES:
        assert f"  {name} " in text


def test_the_command_prints_the_attack_night_with_and_without_waf_bans(fixture_file: Path, settings: Any) -> None:
    settings.AWS_PRICES = PRICES
    text = run(
        "--hits-per-month",
        "10000000",
        "--settings-file",
        str(fixture_file),
        "--web-stage",
        "web",
        "--worker-stage",
        "worker",
        "--commands-stage",
        "commands",
        "--avg-ms",
        "20",
        "--rejected-ms",
        "2",
        "--attack-multiplier",
        "10",
        "--attack-hours",
        "8",
        "--waf-blocked-share",
        "0.99",
        "--attack-accepted-share",
        "0.1",
    )
    assert "Attack: 10 x the normal hourly rate for 8 h" in text
    assert "Extra cost of the night without WAF bans" in text
    assert "Extra cost of the night with WAF bans: 99.00% of the attack blocked at the WAF (command line)" in text
    totals = [line.split()[-1] for line in text.splitlines() if line.strip().startswith("total ")]
    assert totals == ["0.51", "0.76"]  # the by-hand test's 0.507 and 0.758


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hits-per-month", "-5"], "must be >= 0"),
        (["--hits-per-month", "10", "--settings-file", "/nonexistent/zappa_settings.json"], "no such file"),
        (["--hits-per-month", "10", "--attack-multiplier", "10", "--waf-blocked-share", "2"], "between 0 and 1"),
        (["--hits-per-month", "10", "--new-connection-share", "1.5"], "between 0 and 1"),
        (["--hits-per-month", "ten"], "invalid float value"),
    ],
)
def test_the_command_turns_bad_input_into_a_command_error(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run(*args)


def test_the_command_reports_bad_json_and_bad_stages(tmp_path: Path) -> None:
    bad = tmp_path / "zappa_settings.json"
    bad.write_text("{not json")
    with pytest.raises(CommandError, match="not valid JSON"):
        run("--hits-per-month", "10", "--settings-file", str(bad))
    bad.write_text(json.dumps({"production": {"extends": "production"}}))
    with pytest.raises(CommandError, match="circular extends"):
        run("--hits-per-month", "10", "--settings-file", str(bad))


def test_the_command_runs_on_the_repositorys_own_zappa_settings() -> None:
    # Whatever the stages hold today, as long as it is valid JSON with the documented keys.
    path = Path(django_settings.BASE_DIR) / "zappa_settings.json"
    text = run("--hits-per-month", "10000000", "--settings-file", str(path), "--attack-multiplier", "10", "--waf")
    assert "TOTAL" in text
    assert "Denial-of-wallet ceiling" in text
    assert "Extra cost of the night with WAF bans" in text


def test_the_alb_wins_above_the_hits_where_its_fixed_hours_are_paid_back() -> None:
    est = costs.estimate_month(model(), PRICES, 10_000_000)
    # 16.425 / (1.00 - 0.0889) per 1M hits = 18.03M for the HTTP API; / (3.50 - 0.0889) = 4.815M for REST.
    assert costs.alb_break_even(est, "apigw_http") == pytest.approx(16.425 / (1e-6 - 0.008 / 90_000))
    assert costs.alb_break_even(est, "apigw_rest") == pytest.approx(16.425 / (3.5e-6 - 0.008 / 90_000))
    assert costs.alb_break_even(costs.estimate_month(model(), PRICES, 0), "apigw_http") is None


# ---- the analytics store on ClickHouse ---------------------------------------------------------

CH = {"ch_bytes_per_event": 80, "ch_retention_months": 24, "ch_events_per_unit": 10_000_000, "ch_replicas": 2}


def ch_items(hits: float, **overrides: float) -> dict[str, costs.LineItem]:
    items = costs.estimate_clickhouse(costs.clickhouse_inputs({**CH, **overrides}), PRICES, hits)
    return {f"{i.group} {i.label.split(':')[0].split(' (')[0]}": i for i in items}


def test_clickhouse_cloud_and_self_hosted_for_ten_million_hits_by_hand() -> None:
    items = ch_items(10_000_000)
    # Stored: 10M hits x 24 months x 80 B = 19.2 GB. One unit per replica serves 10M hits a month.
    cloud = {k: v for k, v in items.items() if k.startswith("ch_cloud")}
    assert cloud["ch_cloud Compute"].quantity == 2 * 1 * 730
    assert cloud["ch_cloud Compute"].cost == pytest.approx(1460 * 0.2993)  # 436.98
    assert cloud["ch_cloud Storage"].quantity == pytest.approx(0.0192 * 2)  # the data + one backup, in TB
    assert cloud["ch_cloud Storage"].cost == pytest.approx(0.0384 * 25.30)  # 0.97
    assert cloud["ch_cloud PrivateLink endpoint"].cost == pytest.approx(2 * 730 * 0.01)  # 14.60
    assert cloud["ch_cloud PrivateLink data processed"].quantity == pytest.approx(10_000_000 * 400 / 1e9)  # 4 GB
    assert sum(i.cost for i in cloud.values()) == pytest.approx(436.978 + 0.97152 + 14.6 + 0.04)
    ec2 = {k: v for k, v in items.items() if k.startswith("ch_ec2")}
    assert ec2["ch_ec2 Nodes"].quantity == 1 * 2 * 730  # one shard, two replicas
    assert ec2["ch_ec2 Keeper nodes"].cost == pytest.approx(3 * 730 * 0.0208)  # 45.55
    assert ec2["ch_ec2 gp3 volumes"].quantity == pytest.approx(19.2 * 2 * 1.5)  # both replicas, 1.5x headroom
    assert ec2["ch_ec2 Backup on S3"].cost == pytest.approx(19.2 * 0.023)
    assert sum(i.cost for i in ec2.values()) == pytest.approx(280.32 + 45.552 + 4.608 + 0.4416)


def test_clickhouse_compute_grows_in_units_and_shards_with_the_hits() -> None:
    items = ch_items(25_000_000)
    # 25M / 10M per unit -> 3 units a replica (Cloud: 2 x 3 units); self-hosted: 2 units an m6i.xlarge,
    # so 2 shards x 2 replicas.
    assert items["ch_cloud Compute"].quantity == 2 * 3 * 730
    assert items["ch_cloud Compute"].label.startswith("Compute: 2 replicas x 3 units")
    assert items["ch_ec2 Nodes"].quantity == 4 * 730
    assert items["ch_ec2 Nodes"].label.startswith("Nodes: 2 shards x 2 replicas")
    # No traffic still pays for the smallest service, and nothing for storage.
    idle = ch_items(0)
    assert idle["ch_cloud Compute"].quantity == 1460
    assert idle["ch_cloud Storage"].cost == 0
    # Half the months kept, half the storage.
    assert ch_items(10_000_000, ch_retention_months=12)["ch_cloud Storage"].cost == pytest.approx(0.0384 * 25.30 / 2)


def test_bad_clickhouse_inputs_are_rejected() -> None:
    with pytest.raises(CostModelError, match="ch_retention_months must be positive"):
        costs.clickhouse_inputs({"ch_retention_months": -1})
    with pytest.raises(CostModelError, match="hits per month"):
        costs.estimate_clickhouse(costs.clickhouse_inputs(), PRICES, -5)
    with pytest.raises(CostModelError, match="clickhouse_cloud_unit_hour"):
        costs.estimate_clickhouse(costs.clickhouse_inputs(), {}, 10)


def test_the_command_prints_the_analytics_store_beside_the_lambda_totals(fixture_file: Path, settings: Any) -> None:
    settings.AWS_PRICES = PRICES
    args = ["--hits-per-month", "10000000", "--settings-file", str(fixture_file), "--web-stage", "web"]
    args += ["--worker-stage", "worker", "--commands-stage", "commands", "--avg-ms", "20", "--rejected-ms", "2"]
    text = run(*args, "--ch-bytes-per-event", "80", "--ch-events-per-unit", "10000000")
    assert "Analytics store on ClickHouse (ANALYTICS_URL=clickhouse://; not in the totals above)" in text
    assert "240,000,000 events stored (24 months), 19.2 GB compressed" in text
    (cloud,) = [line for line in text.splitlines() if line.strip().startswith("ClickHouse Cloud (USD/month)")]
    # 436.98 + 0.97 + 14.60 + 0.04 = 452.59; with the fixture's ALB layout (32.14, the by-hand test): 484.73.
    assert cloud.split()[3:] == ["452.59", "with", "the", "ALB", "layout", "above:", "484.73"]
    (own,) = [line for line in text.splitlines() if line.strip().startswith("self-hosted ClickHouse (USD/month)")]
    assert own.split()[3] == "330.92"  # 280.32 + 45.55 + 4.61 + 0.44
    assert "ch_retention_months = 24: assumed" in text
    assert "ch_events_per_unit = 10,000,000: command line" in text
    (total_line,) = [line for line in text.splitlines() if line.strip().startswith("TOTAL")]
    assert total_line.split()[1:] == ["32.14", "49.83", "24.83"]  # the Lambda totals are unchanged
    shorter = run(*args, "--ch-bytes-per-event", "80", "--retention-months", "12")
    assert "120,000,000 events stored (12 months), 9.6 GB compressed" in shorter
