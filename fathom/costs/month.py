"""One month priced line by line (ALB, API Gateway alternatives, Lambdas, SQS, WAF, free tier), and the ceiling."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .base import (
    ACCOUNT_CONCURRENCY,
    HOURS_PER_MONTH,
    SECONDS_PER_MONTH,
    SQS_LONG_POLL_SECONDS,
    SQS_POLLERS,
    CostModelError,
    Value,
    _positive_number,
)
from .model import Model, billed_ms, lcu_hours, price, worker_usage
from .zappa import Function


@dataclass(frozen=True)
class LineItem:
    group: str  # alb, apigw_rest, apigw_http, web, worker, commands, waf, free
    label: str
    quantity: float
    unit: str
    price_key: str
    price: float
    per: float  # the price is for this many units (1 or 1,000,000)
    cost: float


@dataclass
class Estimate:
    hits: float
    items: list[LineItem] = field(default_factory=list)

    def cost(self, *groups: str) -> float:
        return sum(i.cost for i in self.items if i.group in groups)

    def totals(self) -> dict[str, float | None]:
        """Month total per front door; HTTP APIs cannot have a WAF web ACL (None then)."""
        common = self.cost("web", "worker", "commands", "free")
        waf = self.cost("waf")
        has_waf = any(i.group == "waf" for i in self.items)
        return {
            "alb": self.cost("alb") + common + waf,
            "apigw_rest": self.cost("apigw_rest") + common + waf,
            "apigw_http": None if has_waf else self.cost("apigw_http") + common,
        }


def _gb_price(prices: Mapping[str, Any], fn: Function) -> tuple[str, float]:
    key = f"lambda_gb_second_{fn.architecture.value}"
    return key, price(prices, key)


def _item(prices: Mapping[str, Any], group: str, label: str, qty: float, unit: str, key: str, per: float = 1):
    p = price(prices, key)
    return LineItem(group, label, qty, unit, key, p, per, qty / per * p)


def _lambda_items(prices: Mapping[str, Any], group: str, fn: Function, label: str, calls: list[tuple[float, float]]):
    """Requests and GB-s lines of one function for (invocations, ms each) pairs."""
    requests = sum(n for n, _ in calls)
    gbs = sum(n * billed_ms(ms) / 1000 for n, ms in calls) * fn.gb
    key, _ = _gb_price(prices, fn)
    return [
        _item(prices, group, f"{label} Lambda requests", requests, "requests", "lambda_request_per_million", 1e6),
        _item(prices, group, f"{label} Lambda duration ({fn.memory_mb.value:g} MB)", gbs, "GB-s", key),
    ]


def tiered(requests: float, tiers: list[tuple[float, float]]) -> float:
    """Cost of `requests` under (size of tier, price per 1M) tiers; the last tier is unbounded."""
    cost, left = 0.0, requests
    for size, per_million in tiers:
        used = min(left, size)
        cost += used / 1e6 * per_million
        left -= used
    return cost


def estimate_month(
    model: Model,
    prices: Mapping[str, Any],
    hits: float,
    *,
    waf: bool = False,
    free_tier: bool = False,
) -> Estimate:
    if not _positive_number(hits, zero=True):
        raise CostModelError(f"hits per month must be a number >= 0, not {hits!r}")
    est = Estimate(hits=hits)
    add = est.items.append
    web, worker, commands = model.web, model.worker, model.commands

    albs = max(1, sum(f.alb_enabled for f in {f.stage: f for f in (web, worker, commands)}.values()))
    label = f"ALB hours ({albs} load balancer{'s' * (albs > 1)})"
    add(_item(prices, "alb", label, albs * HOURS_PER_MONTH, "ALB-hours", "alb_hour"))
    lcus, dominant = lcu_hours(model, prices, hits, SECONDS_PER_MONTH)
    add(_item(prices, "alb", f"ALB LCU-hours ({dominant} dominate)", lcus, "LCU-hours", "alb_lcu_hour"))

    rest = tiered(
        hits,
        [
            (333e6, price(prices, "apigw_rest_per_million")),
            (667e6, price(prices, "apigw_rest_per_million_333m_to_1b")),
            (19e9, price(prices, "apigw_rest_per_million_1b_to_20b")),
            (math.inf, price(prices, "apigw_rest_per_million_over_20b")),
        ],
    )
    http = tiered(
        hits,
        [
            (300e6, price(prices, "apigw_http_per_million")),
            (math.inf, price(prices, "apigw_http_per_million_over_300m")),
        ],
    )
    for group, label, key, cost in (
        ("apigw_rest", "API Gateway REST API calls", "apigw_rest_per_million", rest),
        ("apigw_http", "API Gateway HTTP API requests", "apigw_http_per_million", http),
    ):
        add(LineItem(group, label, hits, "requests", key, price(prices, key), 1e6, cost))

    def own(fn: Function) -> list[tuple[float, float]]:
        return [
            (fn.keep_warm_per_month.value, model.v("keep_warm_ms")),
            (fn.scheduled_per_month, model.v("command_ms")),
        ]

    lambda_items = _lambda_items(prices, "web", web, "Web", [(hits, model.v("avg_ms")), *own(web)])
    usage = worker_usage(model, hits, SECONDS_PER_MONTH, price(prices, "sqs_request_chunk_bytes"))
    lambda_items += _lambda_items(
        prices, "worker", worker, "Worker", [(usage["worker_invocations"], usage["worker_ms"]), *own(worker)]
    )
    lambda_items += _lambda_items(prices, "commands", commands, "Commands", own(commands))
    est.items += lambda_items
    sqs = "sqs_request_per_million"
    add(_item(prices, "worker", "SQS SendMessage (one per hit)", usage["sqs_send"], "requests", sqs, 1e6))
    add(_item(prices, "worker", "SQS ReceiveMessage (Lambda pollers)", usage["sqs_receive"], "requests", sqs, 1e6))
    add(_item(prices, "worker", "SQS DeleteMessageBatch", usage["sqs_delete"], "requests", sqs, 1e6))
    idle = max(1, len(worker.queues)) * SQS_POLLERS * SECONDS_PER_MONTH / SQS_LONG_POLL_SECONDS
    add(_item(prices, "worker", "SQS empty long polls (idle pollers)", idle, "requests", sqs, 1e6))

    if waf:
        add(_item(prices, "waf", "WAF web ACL", 1, "ACL-months", "waf_acl_month"))
        add(_item(prices, "waf", "WAF rules", model.v("waf_rules"), "rule-months", "waf_rule_month"))
        add(_item(prices, "waf", "WAF requests inspected", hits, "requests", "waf_request_per_million", 1e6))

    if free_tier:  # the always-free allowances only (per account; 12-month offers are not applied)
        requests = sum(i.quantity for i in lambda_items if i.unit == "requests")
        free = min(requests, price(prices, "lambda_free_requests_per_month"))
        add(
            LineItem(
                "free",
                "Free tier: Lambda requests",
                -free,
                "requests",
                "lambda_request_per_million",
                price(prices, "lambda_request_per_million"),
                1e6,
                -free / 1e6 * price(prices, "lambda_request_per_million"),
            )
        )
        left = price(prices, "lambda_free_gb_seconds_per_month")
        for i in (i for i in lambda_items if i.unit == "GB-s"):
            used = min(left, i.quantity)
            left -= used
            if used:
                add(
                    LineItem(
                        "free",
                        f"Free tier: {i.label.split(' Lambda')[0]} GB-s",
                        -used,
                        "GB-s",
                        i.price_key,
                        i.price,
                        1,
                        -used * i.price,
                    )
                )
        sqs_total = sum(i.quantity for i in est.items if i.price_key == sqs)
        free = min(sqs_total, price(prices, "sqs_free_requests_per_month"))
        add(
            LineItem(
                "free",
                "Free tier: SQS requests",
                -free,
                "requests",
                sqs,
                price(prices, sqs),
                1e6,
                -free / 1e6 * price(prices, sqs),
            )
        )
    return est


def alb_break_even(est: Estimate, door: str) -> float | None:
    """Hits a month above which the ALB costs less than API Gateway `door` (first-tier prices):
    the ALB's fixed hours over the per-hit difference; None if the ALB never wins."""
    fixed = est.cost("alb") - sum(i.cost for i in est.items if i.unit == "LCU-hours")
    if not est.hits:
        return None
    alb_per_hit = (est.cost("alb") - fixed) / est.hits
    door_per_hit = next(i.price for i in est.items if i.group == door) / 1e6
    return fixed / (door_per_hit - alb_per_hit) if door_per_hit > alb_per_hit else None


# ---- the ceiling ---------------------------------------------------------------------------------


def concurrency_cap(fn: Function) -> Value:
    if fn.concurrency.value is not None:
        return fn.concurrency
    return Value(ACCOUNT_CONCURRENCY, f"no lambda_concurrency in {fn.stage}: the account quota (AWS default)")


def ceiling(model: Model, prices: Mapping[str, Any], fn: Function, request_ms: float | None = None) -> dict[str, float]:
    """The most a function can bill in a month: every concurrency slot busy all month, each request
    lasting `request_ms` (default: until the timeout). Duration is capped by concurrency whatever the
    requests last; request charges grow as requests get shorter, so they are bounded by the rate of the
    attack, not by the cap."""
    cap = concurrency_cap(fn).value
    seconds = (request_ms / 1000) if request_ms else fn.timeout_s.value
    gbs = cap * SECONDS_PER_MONTH * fn.gb
    requests = cap * SECONDS_PER_MONTH / seconds
    duration_cost = gbs * _gb_price(prices, fn)[1]
    request_cost = requests / 1e6 * price(prices, "lambda_request_per_million")
    total = duration_cost + request_cost
    return {
        "concurrency": cap,
        "seconds": seconds,
        "gbs": gbs,
        "requests": requests,
        "duration_cost": duration_cost,
        "request_cost": request_cost,
        "month": total,
        "hour": total / HOURS_PER_MONTH,
    }
