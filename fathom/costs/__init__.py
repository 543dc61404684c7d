"""Monthly AWS cost of the serverless layout, and what a denial-of-wallet attack can add to it.

Pure functions over two inputs: the stages of zappa_settings.json (web, worker, commands; read at run
time, `extends` resolved the way Zappa does it) and a price table shaped like `settings.AWS_PRICES`
(`{"name": {"value": ..., "unit": ..., "source": ..., "date": ...}}`). No Django, no AWS calls.

The model (one 730-hour month, AWS's convention; traffic spread evenly over it):

- ALB: ALB-hours, plus LCU-hours = the largest of the four LCU dimensions each hour. Every dimension is
  proportional to the request rate, so any traffic shape with the same mix gives the same LCU-hours as
  an even spread; no peak factor is needed.
- Web Lambda: one invocation per hit (plus keep-warm pings and the stage's own schedules), billed
  GB-s = memory x duration, each invocation rounded up to whole milliseconds.
- Worker Lambda: SQS delivers the hits in batches; records per invocation = the messages that arrive
  within `batch_window` split over Lambda's 5 pollers, between 1 and `batch_size`.
- SQS: one SendMessage per hit, ReceiveMessage and DeleteMessageBatch per up to 10 messages, every
  64 KB of payload one request, plus the pollers' empty long polls (one per poller every 20 s).
- Commands: every schedule of every stage (rate() exact, cron() approximate, see
  `invocations_per_month`), plus keep-warm pings where `keep_warm` is on (Zappa's default).
- API Gateway REST / HTTP: the same hits priced per call instead of the ALB, Lambda the same.
- Ceiling: reserved concurrency x memory x the month is the most web-Lambda duration anyone can bill;
  the timeout sets how long each stuck request bills.
- The analytics store on ClickHouse (`clickhouse`): ClickHouse Cloud or a self-hosted EC2 cluster for
  the same hits, priced beside the Lambda layout, not inside its totals.

The modules: `base` (units, CostModelError, Value), `zappa` (zappa_settings.json: stages, `extends`,
schedules), `model` (the inputs and usage over a period), `month` (the month's line items and the
ceiling), `attack` (the attack night), `clickhouse` (the analytics store). Import from `fathom.costs`;
every public name is here.
"""

from .attack import (
    Attack,
    Window,
    estimate_attack,
    price_window_delta,
    waf_lag_seconds,
    waf_unblocked_share,
    window_usage,
)
from .base import (
    ACCOUNT_CONCURRENCY,
    DAYS_PER_MONTH,
    GIB,
    HOURS_PER_MONTH,
    LAMBDA_FULL_VCPU_MB,
    SECONDS_PER_MONTH,
    SQS_BATCH,
    SQS_LONG_POLL_SECONDS,
    SQS_POLLERS,
    CostModelError,
    Value,
)
from .clickhouse import CLICKHOUSE_INPUTS, clickhouse_inputs, estimate_clickhouse, sizing
from .model import MEASURED, Model, billed_ms, build_model, check_prices, ingest_queue, lcu_hours, price, worker_usage
from .month import Estimate, LineItem, alb_break_even, ceiling, concurrency_cap, estimate_month, tiered
from .zappa import (
    SQS_DEFAULT_BATCH_SIZE,
    ZAPPA_DEFAULTS,
    Function,
    function_from_settings,
    invocations_per_month,
    load_zappa_settings,
    resolve_stage,
)

__all__ = [
    "ACCOUNT_CONCURRENCY",
    "CLICKHOUSE_INPUTS",
    "DAYS_PER_MONTH",
    "GIB",
    "HOURS_PER_MONTH",
    "LAMBDA_FULL_VCPU_MB",
    "MEASURED",
    "SECONDS_PER_MONTH",
    "SQS_BATCH",
    "SQS_DEFAULT_BATCH_SIZE",
    "SQS_LONG_POLL_SECONDS",
    "SQS_POLLERS",
    "ZAPPA_DEFAULTS",
    "Attack",
    "CostModelError",
    "Estimate",
    "Function",
    "LineItem",
    "Model",
    "Value",
    "Window",
    "alb_break_even",
    "billed_ms",
    "build_model",
    "ceiling",
    "check_prices",
    "clickhouse_inputs",
    "concurrency_cap",
    "estimate_attack",
    "estimate_clickhouse",
    "estimate_month",
    "function_from_settings",
    "ingest_queue",
    "invocations_per_month",
    "lcu_hours",
    "load_zappa_settings",
    "price",
    "price_window_delta",
    "resolve_stage",
    "sizing",
    "tiered",
    "waf_lag_seconds",
    "waf_unblocked_share",
    "window_usage",
    "worker_usage",
]
