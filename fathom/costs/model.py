"""The traffic model: measured inputs, the three functions, and the usage (LCUs, worker, SQS) they imply."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .base import GIB, LAMBDA_FULL_VCPU_MB, SQS_BATCH, SQS_POLLERS, CostModelError, Value, _positive_number
from .zappa import SQS_DEFAULT_BATCH_SIZE, Function, function_from_settings, resolve_stage

# Defaults of the traffic model, each with where it comes from (shown by the command).
MEASURED: dict[str, tuple[float, str]] = {
    "collector_cpu_ms": (
        6.0,
        "CPU ms of an accepted hit: 5.2-6.0 in-process (docs/benchmarks.md, profiles), "
        "6.14 under gunicorn (docs/attack-results.md, cost phase)",
    ),
    "collector_wait_ms": (
        10.0,
        "assumed network wait of an accepted hit on Lambda: ~5 Redis round trips (docs/benchmarks.md "
        "profile) and one SQS SendMessage (not measured; the benches published to Redis)",
    ),
    "rejected_cpu_ms": (0.52, "CPU ms of a banned 403 in Django (docs/attack-results.md)"),
    "rejected_wait_ms": (1.0, "assumed: one Redis pipeline round trip (metrics.record)"),
    "bytes_per_hit": (
        1500,
        "ALB bytes per hit, request + response: ~110 B body (benchmark body; COLLECTOR_MAX_BODY 4096), "
        "~900 B of browser headers, ~250 B 202 answer, rounded up",
    ),
    "new_connection_share": (
        1.0,
        "every hit opens a connection: visitors send a hit every 8-20 s (attack drill), longer than the "
        "ALB idle timeout Zappa sets (= the web timeout)",
    ),
    "message_bytes": (2048, "assumed Celery envelope of one hit, base64 twice (under one 64 KB chunk)"),
    "worker_fixed_ms": (10.0, "ms per ingest batch at batch 1: 10.0-11.2 (docs/benchmarks.md, ingest)"),
    "worker_per_hit_ms": (
        1.0,
        "ms per hit in a batch: 1,001 events/s at batch 1,000 with 10M events stored, the slowest "
        "(docs/benchmarks.md, run 3)",
    ),
    "command_ms": (1000.0, "assumed duration of a scheduled command (sync_waf, expire_bans...); not measured"),
    "keep_warm_ms": (2.0, "assumed: the handler returns at once on a keep-warm ping"),
    "ban_seconds": (
        41.2,
        "seconds until an attacking IP is banned: slowest flood ban of the five drill runs (8.6-41.2 s, "
        "docs/attack-results.md)",
    ),
    "attack_accepted_share": (
        1200 / 10977,
        "share of attack requests answered 202 and queued: 1,200 of 10,977 in the drill's 45 s "
        "(docs/attack-results.md); the rest are 403/429/400 served by the web function",
    ),
    "waf_rules": (2, "the IPv4 and IPv6 ban IP-set rules (security/waf.py)"),
    "alb_rules_per_request": (1, "Zappa's one listener rule forwarding to the function"),
}


@dataclass(frozen=True)
class Model:
    web: Function
    worker: Function
    commands: Function
    inputs: dict[str, Value]

    def v(self, name: str) -> Any:
        return self.inputs[name].value


# ---- the model inputs ---------------------------------------------------------------------------


def build_model(
    settings: Mapping[str, Any],
    *,
    label: str = "zappa_settings.json",
    web_stage: str = "production",
    worker_stage: str = "production_worker",
    commands_stage: str = "production_commands",
    overrides: Mapping[str, float | None] | None = None,
) -> Model:
    """The three functions and the traffic inputs; `overrides` (from the command's flags) win."""
    web = function_from_settings(settings, web_stage, label)
    inputs = {name: Value(value, source) for name, (value, source) in MEASURED.items()}
    if collector := _collector_ip_sets(settings, web_stage):
        inputs["waf_rules"] = Value(
            3, f"the IPv4 and IPv6 ban IP-set rules + the collector-path rule ({collector} set in {label})"
        )
    for name, value in (overrides or {}).items():
        if value is not None:
            inputs[name] = Value(value, "command line")
    for name, item in inputs.items():
        share = name.endswith("_share")
        if not _positive_number(item.value, zero=share or name == "waf_rules") or (share and item.value > 1):
            raise CostModelError(f"{name} must be {'between 0 and 1' if share else 'positive'}, not {item.value}")
    if "avg_ms" not in inputs:
        inputs["avg_ms"] = _duration(inputs, "collector", web.memory_mb.value)
    if "rejected_ms" not in inputs:
        inputs["rejected_ms"] = _duration(inputs, "rejected", web.memory_mb.value)
    return Model(
        web=web,
        worker=function_from_settings(settings, worker_stage, label),
        commands=function_from_settings(settings, commands_stage, label),
        inputs=inputs,
    )


def _collector_ip_sets(settings: Mapping[str, Any], stage: str) -> str:
    """The collector IP set settings the web stage sets (they add one rule: security.waf.collector_rule)."""
    resolved = resolve_stage(settings, stage)
    variables = (resolved[0].get("aws_environment_variables") or {}) if resolved else {}
    names = ("WAF_COLLECTOR_IPSET_V4_ARN", "WAF_COLLECTOR_IPSET_V6_ARN")
    return " / ".join(name for name in names if isinstance(variables, Mapping) and variables.get(name))


def _duration(inputs: dict[str, Value], kind: str, memory_mb: float) -> Value:
    """Wall ms on Lambda: CPU ms stretched by the vCPU share of the memory size, plus network waits."""
    cpu, wait = inputs[f"{kind}_cpu_ms"].value, inputs[f"{kind}_wait_ms"].value
    stretch = max(1.0, LAMBDA_FULL_VCPU_MB / memory_mb)
    return Value(cpu * stretch + wait, f"{kind}_cpu_ms x max(1, {LAMBDA_FULL_VCPU_MB} MB / memory) + {kind}_wait_ms")


# ---- usage over a period ------------------------------------------------------------------------


def billed_ms(ms: float) -> int:
    """Lambda bills each invocation in whole milliseconds (the average rounded up, as an approximation)."""
    return max(1, math.ceil(ms - 1e-9))


def price(prices: Mapping[str, Any], key: str) -> float:
    try:
        return float(prices[key]["value"])
    except (KeyError, TypeError, ValueError):
        raise CostModelError(f"the price table has no usable {key!r}")


def check_prices(prices: Mapping[str, Any]) -> list[str]:
    """Names of entries lacking value, unit, source or date (empty when the table is usable)."""
    return [k for k, v in prices.items() if not isinstance(v, Mapping) or {"value", "unit", "source", "date"} - set(v)]


def lcu_hours(model: Model, prices: Mapping[str, Any], requests: float, seconds: float) -> tuple[float, str]:
    """LCU-hours for requests spread evenly over `seconds`, and the dimension that sets them."""
    rps = requests / seconds
    new_conns = rps * model.v("new_connection_share")
    # Zappa sets the ALB idle timeout to the function timeout: a connection stays open that long.
    active = new_conns * model.web.timeout_s.value
    extra_rules = max(0, model.v("alb_rules_per_request") - price(prices, "alb_free_rules_per_request"))
    dims = {
        "new connections": new_conns / price(prices, "alb_lcu_new_connections_per_second"),
        "active connections": active / price(prices, "alb_lcu_active_connections_per_minute"),
        "processed bytes": rps * 3600 * model.v("bytes_per_hit") / GIB / price(prices, "alb_lcu_lambda_gb_per_hour"),
        "rule evaluations": rps * extra_rules / price(prices, "alb_lcu_rule_evaluations_per_second"),
    }
    dominant = max(dims, key=lambda k: dims[k])
    return dims[dominant] * seconds / 3600, dominant


def ingest_queue(fn: Function) -> dict[str, Any] | None:
    """The SQS source the hits arrive on: the one named like *ingest*, else the first."""
    named = [q for q in fn.queues if "ingest" in str(q["arn"]).rsplit(":", 1)[-1]]
    return (named or fn.queues or [None])[0]


def worker_usage(model: Model, messages: float, seconds: float, chunk: float = 65536) -> dict[str, float]:
    """Worker invocations and GB-s, and SQS requests, for `messages` hits queued over `seconds`."""
    queue = ingest_queue(model.worker)
    size = queue["batch_size"].value if queue else SQS_DEFAULT_BATCH_SIZE
    window = queue["batch_window"].value if queue else 0
    pollers = queue["pollers"].value if queue else SQS_POLLERS
    per_batch = min(size, max(1.0, messages / seconds * window / pollers)) if messages else 1.0
    invocations = messages / per_batch
    ms = billed_ms(model.v("worker_fixed_ms") + model.v("worker_per_hit_ms") * per_batch)
    send = messages * math.ceil(model.v("message_bytes") / chunk)
    per_receive = min(SQS_BATCH, per_batch)
    receive = messages / per_receive * math.ceil(per_receive * model.v("message_bytes") / chunk)
    delete = messages / per_receive
    return {
        "records_per_batch": per_batch,
        "worker_ms": ms,
        "worker_invocations": invocations,
        "worker_gbs": invocations * ms / 1000 * model.worker.gb,
        "sqs_send": send,
        "sqs_receive": receive,
        "sqs_delete": delete,
    }
