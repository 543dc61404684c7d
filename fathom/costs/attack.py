"""The attack night: what `multiplier` x the normal traffic for some hours adds, with and without the WAF."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .base import SECONDS_PER_MONTH, CostModelError, Value, _positive_number
from .model import Model, billed_ms, lcu_hours, price, worker_usage
from .month import LineItem, _gb_price, _item, concurrency_cap


def waf_lag_seconds(model: Model) -> Value:
    """Seconds from a ban to the WAF blocking it: at most the interval of the sync_waf schedule (a sync
    is also queued after every ban change, so usually less)."""
    for fn in (model.commands, model.web, model.worker):
        for name, expression, per_month in fn.schedules:
            if "waf" in name.lower() and per_month:
                return Value(SECONDS_PER_MONTH / per_month, f"interval of {fn.stage} schedule {name} ({expression})")
    return Value(60.0, "no sync_waf schedule found: assumed every minute")


def waf_unblocked_share(
    attack_seconds: float, before_block: float, ban_base_minutes: float, ban_max_days: float = 30
) -> float:
    """Share of an attacking address's night that gets past the WAF: each ban takes `before_block`
    seconds to land in the WAF; the address returns when its ban expires (base, then x4 each time,
    as security.services.auto_ban_duration) and is banned again after the same delay."""
    t, unblocked, bans = 0.0, 0.0, 0
    while t < attack_seconds:
        window = min(before_block, attack_seconds - t)
        unblocked += window
        t += window + min(ban_base_minutes * 60 * 4**bans, ban_max_days * 86400)
        bans += 1
    return unblocked / attack_seconds


@dataclass
class Window:
    """Usage of the ALB layout over one window of time (no fixed monthly charges)."""

    lcu_hours: float
    web_requests: float
    web_gbs: float
    worker_invocations: float
    worker_gbs: float
    sqs_requests: float
    waf_requests: float
    concurrency_needed: float
    served_share: float


def window_usage(
    model: Model,
    prices: Mapping[str, Any],
    seconds: float,
    legit: float,
    attack_lambda: float,
    attack_blocked: float = 0.0,
    *,
    waf: bool = False,
) -> Window:
    """`legit` hits plus `attack_lambda` attack requests reaching the web function (a share of them
    accepted and queued, the rest cheap rejections) and `attack_blocked` ones stopped by the WAF, all
    spread evenly over `seconds`. Past the reserved concurrency the function is throttled: the ALB
    answers 503 without a Lambda charge, legit hits included."""
    accepted = attack_lambda * model.v("attack_accepted_share")
    rejected = attack_lambda - accepted
    avg, rej = billed_ms(model.v("avg_ms")), billed_ms(model.v("rejected_ms"))
    busy_ms = (legit + accepted) * avg + rejected * rej
    needed = busy_ms / 1000 / seconds
    served = min(1.0, concurrency_cap(model.web).value / needed) if needed else 1.0
    queued = (legit + accepted) * served
    usage = worker_usage(model, queued, seconds, price(prices, "sqs_request_chunk_bytes"))
    sqs = usage["sqs_send"] + usage["sqs_receive"] + usage["sqs_delete"]
    total = legit + attack_lambda + attack_blocked
    return Window(
        lcu_hours=lcu_hours(model, prices, total, seconds)[0],
        web_requests=(legit + attack_lambda) * served,
        web_gbs=busy_ms * served / 1000 * model.web.gb,
        worker_invocations=usage["worker_invocations"],
        worker_gbs=usage["worker_gbs"],
        sqs_requests=sqs,
        waf_requests=total if waf else 0.0,
        concurrency_needed=needed,
        served_share=served,
    )


def price_window_delta(model: Model, prices: Mapping[str, Any], base: Window, attacked: Window) -> list[LineItem]:
    """What the attack adds over the same window without it."""
    d = {k: getattr(attacked, k) - getattr(base, k) for k in vars(base)}
    d = {k: 0.0 if abs(v) < 1e-6 else v for k, v in d.items()}  # float noise of equal windows
    web_key, worker_key = _gb_price(prices, model.web)[0], _gb_price(prices, model.worker)[0]
    lam, sqs = "lambda_request_per_million", "sqs_request_per_million"
    items = [
        _item(prices, "attack", "ALB LCU-hours", d["lcu_hours"], "LCU-hours", "alb_lcu_hour"),
        _item(prices, "attack", "Web Lambda requests", d["web_requests"], "requests", lam, 1e6),
        _item(prices, "attack", "Web Lambda duration", d["web_gbs"], "GB-s", web_key),
        _item(prices, "attack", "Worker Lambda invocations", d["worker_invocations"], "requests", lam, 1e6),
        _item(prices, "attack", "Worker Lambda duration", d["worker_gbs"], "GB-s", worker_key),
        _item(prices, "attack", "SQS requests", d["sqs_requests"], "requests", sqs, 1e6),
    ]
    if d["waf_requests"]:
        items.append(
            _item(prices, "attack", "WAF requests", d["waf_requests"], "requests", "waf_request_per_million", 1e6)
        )
    return items


@dataclass
class Attack:
    hits: float
    multiplier: float
    hours: float
    requests: float
    blocked_share: Value
    without_waf: list[LineItem]
    with_waf: list[LineItem]
    windows: dict[str, Window]

    @property
    def cost_without_waf(self) -> float:
        return sum(i.cost for i in self.without_waf)

    @property
    def cost_with_waf(self) -> float:
        return sum(i.cost for i in self.with_waf)


def estimate_attack(
    model: Model,
    prices: Mapping[str, Any],
    hits: float,
    *,
    multiplier: float,
    hours: float,
    blocked_share: float | None = None,
    ban_base_minutes: float = 60,
    ban_max_days: float = 30,
) -> Attack:
    """Extra cost of `multiplier` x the normal hourly traffic, on top of it, for `hours`, through the ALB:
    without a WAF (every request reaches the web function; rejected ones are cheap 403/429s and queue
    nothing) and with the WAF ban IP sets (blocked requests cost ALB LCUs and WAF inspection only)."""
    for name, value in (("hits", hits), ("attack multiplier", multiplier), ("attack hours", hours)):
        if not _positive_number(value, zero=name == "hits"):
            raise CostModelError(f"{name} must be positive, not {value!r}")
    seconds = hours * 3600
    legit = hits * seconds / SECONDS_PER_MONTH
    requests = legit * multiplier
    if blocked_share is None:
        lag = waf_lag_seconds(model)
        before = model.v("ban_seconds") + lag.value
        share = 1 - waf_unblocked_share(seconds, before, ban_base_minutes, ban_max_days)
        blocked = Value(
            share,
            f"ban after ban_seconds {model.v('ban_seconds'):g} s + WAF sync lag {lag.value:g} s "
            f"({lag.source}), again after each ban expires ({ban_base_minutes:g} min, x4)",
        )
    elif not 0 <= blocked_share <= 1:
        raise CostModelError(f"the WAF-blocked share must be between 0 and 1, not {blocked_share}")
    else:
        blocked = Value(blocked_share, "command line")
    through = requests * (1 - blocked.value)
    windows = {
        "normal": window_usage(model, prices, seconds, legit, 0),
        "normal_waf": window_usage(model, prices, seconds, legit, 0, waf=True),
        "without_waf": window_usage(model, prices, seconds, legit, requests),
        "with_waf": window_usage(model, prices, seconds, legit, through, requests - through, waf=True),
    }
    return Attack(
        hits=hits,
        multiplier=multiplier,
        hours=hours,
        requests=requests,
        blocked_share=blocked,
        without_waf=price_window_delta(model, prices, windows["normal"], windows["without_waf"]),
        with_waf=price_window_delta(model, prices, windows["normal_waf"], windows["with_waf"]),
        windows=windows,
    )
