"""Validate a hit as sent by our tracker or by Plausible's (same field names, long or short)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_NAME = 120
MAX_URL = 2000
MAX_PROPS = 30
MAX_PROP_LEN = 2000
MAX_VALUE = 10**13  # cents: a hundred billion in any currency is not a real purchase
ENGAGEMENT = "engagement"
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")


class BadHit(ValueError):
    """The hit is malformed: the client gets a 400 with this message."""


@dataclass
class Hit:
    name: str
    url: str
    hostname: str
    path: str
    site_ids: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    referrer: str | None = None
    width: int | None = None
    value: int | None = None
    props: dict[str, str] | None = None
    interactive: bool = True
    scroll_depth: int | None = None
    engaged_ms: int | None = None
    utm: tuple[str, ...] = ("", "", "", "", "")


def _pick(data: dict[str, Any], *names: str) -> Any:
    for name in names:
        if name in data and data[name] is not None:
            return data[name]
    return None


def _int(value: Any, what: str, low: int, high: int) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadHit(f"{what} must be an integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise BadHit(f"{what} must be an integer") from None
    if not isinstance(value, int):
        raise BadHit(f"{what} must be an integer")
    if not low <= value <= high:
        raise BadHit(f"{what} must be between {low} and {high}")
    return value


def _bool(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "1", "false", "0"}:
        return value.lower() in {"true", "1"}
    if isinstance(value, int):
        return bool(value)
    raise BadHit("interactive must be true or false")


def _revenue(value: Any) -> int:
    """Plausible's {"amount": "19.99", "currency": "USD"} -> 1999 cents."""
    if not isinstance(value, dict) or "amount" not in value:
        raise BadHit('revenue must be {"amount": "19.99", "currency": "USD"}')
    try:
        amount = Decimal(str(value["amount"]))
    except InvalidOperation:
        raise BadHit("revenue amount must be a number") from None
    if not amount.is_finite():
        raise BadHit("revenue amount must be a number")
    cents = int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if abs(cents) > MAX_VALUE:
        raise BadHit("revenue amount is out of range")
    return cents


def _props(value: Any) -> dict[str, str] | None:
    if value in (None, "", {}):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise BadHit("props must be an object of string pairs") from None
    if not isinstance(value, dict):
        raise BadHit("props must be an object of string pairs")
    if len(value) > MAX_PROPS:
        raise BadHit(f"props may have at most {MAX_PROPS} pairs")
    clean: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, (dict, list)):
            raise BadHit("props values must be strings, numbers or booleans")
        if item is None:
            continue
        text = json.dumps(item) if isinstance(item, bool) else str(item)
        clean[str(key)[:300]] = text[:MAX_PROP_LEN]
    return clean or None


def _names(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, str):
        raise BadHit(f"{what} must be a string")
    return [item.strip().lower() for item in value.split(",") if item.strip()]


def parse_hit(data: Any) -> Hit:
    if not isinstance(data, dict):
        raise BadHit("body must be a JSON object")
    name = _pick(data, "name", "n")
    if not isinstance(name, str) or not name.strip():
        raise BadHit("name is required")
    name = name.strip()
    if len(name) > MAX_NAME:
        raise BadHit(f"name must be at most {MAX_NAME} characters")
    url = _pick(data, "url", "u")
    if not isinstance(url, str) or not url:
        raise BadHit("url is required")
    if len(url) > MAX_URL:
        raise BadHit(f"url must be at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        hostname = (parts.hostname or "").lower()
    except ValueError:
        raise BadHit("url is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise BadHit("url must be an absolute http(s) URL")
    if hostname.startswith("www."):
        hostname = hostname[4:]
    hash_mode = _bool(_pick(data, "h", "hashMode"), False)
    path = parts.path or "/"
    if hash_mode and parts.fragment:
        path = f"{path}#{parts.fragment}"

    site_ids = _names(_pick(data, "site", "sid"), "site")
    domains = _names(_pick(data, "domain", "d"), "domain")
    if not site_ids and not domains:
        raise BadHit("site (or domain) is required")
    site_ids = [item.upper() for item in site_ids]

    referrer = _pick(data, "referrer", "r")
    if referrer is not None and not isinstance(referrer, str):
        raise BadHit("referrer must be a string")
    if referrer and len(referrer) > MAX_URL:
        referrer = referrer[:MAX_URL]

    value = _pick(data, "value")
    revenue = _pick(data, "revenue", "$")
    cents = _revenue(revenue) if revenue is not None else _int(value, "value", -MAX_VALUE, MAX_VALUE)

    query = parse_qs(parts.query, keep_blank_values=False)
    utm = [query.get(key, [""])[0][:255] for key in UTM_KEYS]
    if not utm[0]:  # Plausible treats ?ref= and ?source= as the UTM source too
        utm[0] = (query.get("ref") or query.get("source") or [""])[0][:255]

    hit = Hit(
        name=name,
        url=url,
        hostname=hostname,
        path=path[:MAX_URL],
        site_ids=site_ids,
        domains=domains,
        referrer=referrer or None,
        width=_int(_pick(data, "width", "w"), "width", 0, 100_000),
        value=cents,
        props=_props(_pick(data, "props", "p", "m", "meta")),
        interactive=_bool(_pick(data, "interactive", "i"), True),
        utm=tuple(utm),
    )
    if name == ENGAGEMENT:
        hit.scroll_depth = _int(_pick(data, "sd"), "sd", 0, 100)
        hit.engaged_ms = _int(_pick(data, "e"), "e", 0, 86_400_000)
        hit.interactive = False
    return hit
