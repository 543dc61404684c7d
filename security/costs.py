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
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOURS_PER_MONTH = 730
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
DAYS_PER_MONTH = HOURS_PER_MONTH / 24
GIB = 1024**3
SQS_BATCH = 10  # messages per ReceiveMessage / DeleteMessageBatch
SQS_POLLERS = 5  # Lambda's concurrent SQS pollers per event source at rest
SQS_LONG_POLL_SECONDS = 20
LAMBDA_FULL_VCPU_MB = 1769  # memory at which a function gets one whole vCPU (less memory, a share)
ACCOUNT_CONCURRENCY = 1000  # AWS's default concurrency quota per region, when no reserved concurrency

# Zappa 0.63 defaults (cli.py / utilities.py), used when a key is missing.
ZAPPA_DEFAULTS: dict[str, Any] = {
    "memory_size": 512,
    "timeout_seconds": 30,
    "architecture": "x86_64",
    "lambda_concurrency": None,
    "keep_warm": True,
    "keep_warm_expression": "rate(4 minutes)",
    "alb_enabled": False,
    "apigateway_enabled": True,
}
SQS_DEFAULT_BATCH_SIZE = 10

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


class CostModelError(ValueError):
    """Bad settings file, stage, expression or input; the message says which."""


@dataclass(frozen=True)
class Value:
    """A model input and where it came from."""

    value: Any
    source: str


@dataclass(frozen=True)
class Function:
    stage: str
    found: bool
    memory_mb: Value
    timeout_s: Value
    concurrency: Value
    architecture: Value
    keep_warm_per_month: Value
    schedules: list[tuple[str, str, float]]  # (name, expression, invocations a month)
    queues: list[dict[str, Any]]  # SQS event sources: arn, batch_size, batch_window (Values)
    alb_enabled: bool

    @property
    def gb(self) -> float:
        return self.memory_mb.value / 1024

    @property
    def scheduled_per_month(self) -> float:
        return sum(n for _, _, n in self.schedules)


@dataclass(frozen=True)
class Model:
    web: Function
    worker: Function
    commands: Function
    inputs: dict[str, Value]

    def v(self, name: str) -> Any:
        return self.inputs[name].value


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


# ---- zappa_settings.json ------------------------------------------------------------------------


def load_zappa_settings(path: str | Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise CostModelError(f"{path}: no such file")
    except OSError as exc:
        raise CostModelError(f"{path}: cannot read ({exc.strerror})")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CostModelError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})")
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise CostModelError(f"{path}: expected an object of stages, each an object")
    return data


def resolve_stage(settings: Mapping[str, Any], stage: str) -> tuple[dict[str, Any], dict[str, str]] | None:
    """The stage's settings with `extends` applied as Zappa does (a shallow update: a child's key replaces
    the parent's whole value), and for each key the stage it came from. None if the stage is absent."""
    if stage not in settings:
        return None
    chain: list[str] = []
    name: str | None = stage
    while name:
        if name in chain:
            raise CostModelError(f"circular extends: {' -> '.join([*chain, name])}")
        if name not in settings:
            raise CostModelError(f"stage {chain[-1]!r} extends undefined stage {name!r}")
        chain.append(name)
        name = settings[name].get("extends")
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for name in reversed(chain):
        merged.update(settings[name])
        origin.update(dict.fromkeys(settings[name], name))
    return merged, origin


# ---- schedule expressions -----------------------------------------------------------------------

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$", re.IGNORECASE)
_CRON = re.compile(r"^cron\((.*)\)$", re.IGNORECASE)
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS = {
    m: i for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)
}
_WEEKDAYS = {d: i for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), 1)}


def invocations_per_month(expression: str) -> float:
    """Runs a month of an EventBridge schedule expression.

    rate(N minutes|hours|days): exact, 2,628,000 s / the interval (rate(1 minute) = 43,800).
    cron(min hour day-of-month month day-of-week year): approximate, (minutes matched per hour) x
    (hours matched per day) x (days matched per month) x (months matched / 12), where days per month
    are 30.42 (730 h / 24) when both day fields are * or ?, 30.42 / 7 per weekday listed, and 1 per
    day of the month listed; L, W, LW and # (nth weekday) count once a month; the year is ignored.
    """
    text = expression.strip()
    if m := _RATE.match(text):
        n = int(m.group(1))
        if n <= 0:
            raise CostModelError(f"{expression!r}: the rate must be positive")
        return SECONDS_PER_MONTH / (n * _UNIT_SECONDS[m.group(2).lower().rstrip("s")])
    if m := _CRON.match(text):
        fields = m.group(1).split()
        if len(fields) != 6:
            raise CostModelError(f"{expression!r}: cron() needs 6 fields (min hour dom month dow year)")
        minute, hour, dom, month, dow, _year = (f.upper() for f in fields)
        per_day = _count(minute, 0, 59, {}, expression) * _count(hour, 0, 23, {}, expression)
        months = _count(month, 1, 12, _MONTHS, expression)
        if dom in ("*", "?") and dow in ("*", "?"):
            days = DAYS_PER_MONTH
        elif dom in ("*", "?"):
            weekly = [p for p in dow.split(",") if "#" not in p and not p.endswith("L")]
            monthly = len(dow.split(",")) - len(weekly)
            days = (_count(",".join(weekly), 1, 7, _WEEKDAYS, expression) if weekly else 0) * DAYS_PER_MONTH / 7
            days += monthly
        else:
            plain = [p for p in dom.split(",") if p != "L" and not p.endswith("W")]
            days = (_count(",".join(plain), 1, 31, {}, expression) if plain else 0) + len(dom.split(",")) - len(plain)
        return per_day * days * months / 12
    raise CostModelError(f"{expression!r}: not a rate() or cron() expression")


def _count(spec: str, low: int, high: int, names: dict[str, int], expression: str) -> int:
    """Distinct values a cron field matches: *, a, a-b, */n, a/n, a-b/n, and lists of them."""

    def number(text: str) -> int:
        value = names.get(text) if text in names else int(text) if text.isdigit() else None
        if value is None or not low <= value <= high:
            raise CostModelError(f"{expression!r}: bad cron value {text!r}")
        return value

    values: set[int] = set()
    for part in spec.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise CostModelError(f"{expression!r}: bad cron step {part!r}")
        if base in ("*", "?"):
            start, end = low, high
        elif "-" in base:
            start, end = (number(x) for x in base.split("-", 1))
        else:
            start = number(base)
            end = high if step else start
        values.update(range(start, end + 1, step or 1))
    return len(values)


# ---- the model inputs ---------------------------------------------------------------------------


def function_from_settings(settings: Mapping[str, Any], stage: str, label: str) -> Function:
    """One stage as a function; missing keys take Zappa's defaults, a missing stage all of them."""
    resolved = resolve_stage(settings, stage)
    cfg, origin = resolved if resolved else ({}, {})

    def get(key: str) -> Value:
        if key in cfg and not (key == "lambda_concurrency" and cfg[key] is None):
            return Value(cfg[key], f"{label}: {origin[key]}.{key}")
        return Value(ZAPPA_DEFAULTS[key], f"Zappa default ({stage} has no {key})")

    memory, timeout, concurrency = get("memory_size"), get("timeout_seconds"), get("lambda_concurrency")
    for key, item in (("memory_size", memory), ("timeout_seconds", timeout)):
        if not _positive_number(item.value):
            raise CostModelError(f"{stage}.{key} must be a positive number, not {item.value!r}")
    if concurrency.value is not None and not (_positive_number(concurrency.value)):
        raise CostModelError(f"{stage}.lambda_concurrency must be a positive number, not {concurrency.value!r}")
    architecture = get("architecture")
    if architecture.value not in ("x86_64", "arm64"):
        raise CostModelError(f"{stage}.architecture must be x86_64 or arm64, not {architecture.value!r}")

    keep_warm = get("keep_warm")
    if keep_warm.value:
        expression = get("keep_warm_expression")
        warm = Value(invocations_per_month(expression.value), f"{expression.value} ({keep_warm.source})")
    else:
        warm = Value(0.0, f"keep_warm off ({keep_warm.source})")

    schedules: list[tuple[str, str, float]] = []
    queues: list[dict[str, Any]] = []
    events = cfg.get("events") or []
    if not isinstance(events, list):
        raise CostModelError(f"{stage}.events must be a list")
    for i, event in enumerate(events):
        if not isinstance(event, dict) or event.get("enabled", True) is False:
            continue
        name = str(event.get("name") or (event.get("kwargs") or {}).get("command") or f"event {i}")
        source = event.get("event_source")
        if isinstance(source, dict):
            if ":sqs:" in str(source.get("arn", "")) and source.get("enabled", True) is not False:
                queues.append(_queue(source, stage, i, label, origin.get("events", stage)))
            continue
        expressions = event.get("expressions") or ([event["expression"]] if event.get("expression") else [])
        for expression in expressions:
            schedules.append((name, str(expression), invocations_per_month(str(expression))))
    return Function(
        stage=stage,
        found=resolved is not None,
        memory_mb=memory,
        timeout_s=timeout,
        concurrency=concurrency,
        architecture=architecture,
        keep_warm_per_month=warm,
        schedules=schedules,
        queues=queues,
        alb_enabled=bool(get("alb_enabled").value),
    )


def _queue(source: dict[str, Any], stage: str, index: int, label: str, origin: str) -> dict[str, Any]:
    where = f"{label}: {origin}.events[{index}].event_source"
    if "batch_size" in source:
        size = Value(source["batch_size"], f"{where}.batch_size")
    else:
        size = Value(SQS_DEFAULT_BATCH_SIZE, "Zappa default batch_size")
    if not isinstance(size.value, int) or size.value < 1:
        raise CostModelError(f"{stage}: batch_size must be a positive integer, not {size.value!r}")
    if "batch_window" in source:
        window = Value(source["batch_window"], f"{where}.batch_window")
    else:
        window = Value(1 if size.value > 10 else 0, "Zappa default batch_window (1 s if batch_size > 10, else 0)")
    if not _positive_number(window.value, zero=True):
        raise CostModelError(f"{stage}: batch_window must be a number of seconds, not {window.value!r}")
    # Batches filling at once: Lambda's 5 pollers, fewer if the mapping caps its concurrency.
    cap = source.get("maximum_concurrency")
    if _positive_number(cap) and cap < SQS_POLLERS:
        pollers = Value(int(cap), f"{where}.maximum_concurrency")
    else:
        pollers = Value(SQS_POLLERS, "Lambda's 5 SQS pollers")
    return {"arn": source.get("arn"), "batch_size": size, "batch_window": window, "pollers": pollers}


def _positive_number(value: Any, *, zero: bool = False) -> bool:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return ok and (value >= 0 if zero else value > 0)


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


# ---- the ceiling and the attack -----------------------------------------------------------------


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


def alb_break_even(est: Estimate, door: str) -> float | None:
    """Hits a month above which the ALB costs less than API Gateway `door` (first-tier prices):
    the ALB's fixed hours over the per-hit difference; None if the ALB never wins."""
    fixed = est.cost("alb") - sum(i.cost for i in est.items if i.unit == "LCU-hours")
    if not est.hits:
        return None
    alb_per_hit = (est.cost("alb") - fixed) / est.hits
    door_per_hit = next(i.price for i in est.items if i.group == door) / 1e6
    return fixed / (door_per_hit - alb_per_hit) if door_per_hit > alb_per_hit else None


def check_prices(prices: Mapping[str, Any]) -> list[str]:
    """Names of entries lacking value, unit, source or date (empty when the table is usable)."""
    return [k for k, v in prices.items() if not isinstance(v, Mapping) or {"value", "unit", "source", "date"} - set(v)]
