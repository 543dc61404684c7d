"""zappa_settings.json as the cost model sees it: `extends` resolved, schedules counted, each stage a Function."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import DAYS_PER_MONTH, SECONDS_PER_MONTH, SQS_POLLERS, CostModelError, Value, _positive_number

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
