"""Validate a hit as sent by our tracker or by Plausible's (same field names, long or short).

Everything a client sends is checked here, before anything is queued: a hit that passes can be
encoded as UTF-8 and stored in any of our databases' columns, so the worker never meets a value
it cannot write. A hit that does not pass raises BadHit, whose message the client sees: it names
the field, and never contains Python internals or the client's text.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_NAME = 120
MAX_URL = 2000
MAX_HOSTNAME = 253  # DNS's limit, and the width of the hostname column
MAX_PROPS = 30
MAX_PROP_LEN = 2000
MAX_VALUE = 10**13  # cents: a hundred billion in any currency is not a real purchase
MAX_DEPTH = 8  # JSON nesting; a hit needs 2 (the body, then props or revenue)
MAX_SOURCE = 100  # utm_source becomes the visit's source when there is no referrer: a 100-character column
ENGAGEMENT = "engagement"
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")

# Canonical names for the error messages; a field we do not know is never echoed back.
FIELD_NAMES = {
    "n": "name",
    "u": "url",
    "d": "domain",
    "sid": "site",
    "r": "referrer",
    "w": "width",
    "p": "props",
    "m": "props",
    "meta": "props",
    "i": "interactive",
    "$": "revenue",
    "hashMode": "h",
}
KNOWN_FIELDS = {*FIELD_NAMES, *FIELD_NAMES.values(), "value", "sd", "e", "v"}

# A lone UTF-16 surrogate cannot be encoded as UTF-8, and no database stores a NUL in a text
# column (PostgreSQL refuses it, MySQL and SQLite cut or mangle it). JSON can carry both as
# escapes (\ud800, \u0000): a tracker that cuts a string inside an emoji sends a lone surrogate.
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
# ASCII digits only: int() would also take '١٢٣', '1_000' and ' 12 '.
_INTEGER = re.compile(r"[+-]?[0-9]+")
_AMOUNT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_CURRENCY = re.compile(r"[A-Za-z]{3}")
# Exact for every amount that passes the range check; never traps (the range is checked first).
_MONEY = Context(prec=40, rounding=ROUND_HALF_UP, traps=[])
_MAX_AMOUNT = Decimal(MAX_VALUE) / 100


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


# -- JSON ---------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


# NaN, Infinity and -Infinity are Python's extensions; JSON.stringify never writes them.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """Does this JSON text nest arrays/objects deeper than limit? (Checked before parsing:
    the parser recurses, and a few thousand brackets would exhaust Python's stack.)"""
    if text.count("[") + text.count("{") <= limit:
        return False  # cannot nest deeper than it has brackets: the common case, in C
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _loads(text: str, what: str, invalid: str) -> Any:
    if too_deep(text):
        raise BadHit(f"{what} is nested too deeply (at most {MAX_DEPTH} levels)")
    try:
        return _DECODER.decode(text)
    except ValueError:  # JSONDecodeError, NaN/Infinity, an integer over Python's digit limit
        raise BadHit(invalid) from None


def parse_body(body: bytes) -> Any:
    """A POST body: JSON in UTF-8 (a byte-order mark is tolerated)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:  # also raw (UTF-8-encoded) surrogates: not valid UTF-8
        raise BadHit("body must be JSON") from None
    return _loads(text, "body", "body must be JSON")


# -- text ---------------------------------------------------------------------------------------


def text_problem(text: str) -> str | None:
    """Why this text cannot be stored, or None when it can."""
    found = _BAD_TEXT.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "a NUL character"
    return "a lone UTF-16 surrogate (a string cut inside an emoji?)"


def _check_text(value: Any, what: str) -> None:
    """Every string in value, keys included, at any depth (the depth is bounded by MAX_DEPTH)."""
    if isinstance(value, str):
        problem = text_problem(value)
        if problem:
            raise BadHit(f"{what} is not valid text: it contains {problem}")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, what)
            _check_text(item, what)
    elif isinstance(value, list):
        for item in value:
            _check_text(item, what)


def _check_fields(data: dict[str, Any]) -> None:
    for key, value in data.items():
        if text_problem(key):
            raise BadHit(f"a field name is not valid text: it contains {text_problem(key)}")
        _check_text(value, FIELD_NAMES.get(key, key) if key in KNOWN_FIELDS else "an unknown field")


# -- fields -------------------------------------------------------------------------------------


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
    if isinstance(value, float):
        if not value.is_integer():  # also NaN and infinities
            raise BadHit(f"{what} must be an integer")
        if not low <= value <= high:
            raise BadHit(f"{what} must be between {low} and {high}")
        value = int(value)
    elif isinstance(value, str):
        if not _INTEGER.fullmatch(value):
            raise BadHit(f"{what} must be an integer")
        if len(value.lstrip("+-").lstrip("0")) > len(str(high)) + 1:
            raise BadHit(f"{what} must be between {low} and {high}")
        value = int(value)
    if not isinstance(value, int):
        raise BadHit(f"{what} must be an integer")
    if not low <= value <= high:
        raise BadHit(f"{what} must be between {low} and {high}")
    return value


def _bool(value: Any, what: str, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "1", "false", "0"}:
        return value.lower() in {"true", "1"}
    if isinstance(value, int):
        return bool(value)
    raise BadHit(f"{what} must be true or false")


def _amount(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise BadHit("revenue amount must be a number")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadHit("revenue amount is out of range")
        return Decimal(repr(value))  # the shortest decimal that round-trips: 19.99, not 19.989999...
    if not isinstance(value, str) or len(value) > 64 or not _AMOUNT.fullmatch(value):
        raise BadHit("revenue amount must be a number")
    try:
        return Decimal(value)
    except InvalidOperation:  # an exponent beyond what Decimal can hold, either way
        raise BadHit("revenue amount is out of range") from None


def _revenue(value: Any) -> int:
    """Plausible's {"amount": "19.99", "currency": "USD"} -> 1999 cents.

    The currency is checked (a 3-letter code when present) but not stored yet.
    """
    if isinstance(value, str):  # the pixel's query parameters are strings
        value = _loads(value, "revenue", 'revenue must be {"amount": "19.99", "currency": "USD"}')
    if not isinstance(value, dict) or "amount" not in value:
        raise BadHit('revenue must be {"amount": "19.99", "currency": "USD"}')
    currency = value.get("currency")
    if currency is not None and not (isinstance(currency, str) and _CURRENCY.fullmatch(currency)):
        raise BadHit("revenue currency must be a 3-letter code such as USD")
    amount = _amount(value["amount"])
    # Compared before any arithmetic: 1e26 * 100 would not fit Decimal's default precision.
    if amount < 0:
        raise BadHit("revenue amount must not be negative")
    if amount > _MAX_AMOUNT:
        raise BadHit("revenue amount is out of range")
    return int(_MONEY.to_integral_value(_MONEY.multiply(amount, 100)))


def _props(value: Any) -> dict[str, str] | None:
    if value in (None, "", {}):
        return None
    if isinstance(value, str):  # the pixel's `p`, or a tracker that sends props pre-encoded
        value = _loads(value, "props", "props must be an object of string pairs")
        _check_text(value, "props")
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
    _check_fields(data)
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
    if len(hostname) > MAX_HOSTNAME:
        raise BadHit(f"url host must be at most {MAX_HOSTNAME} characters")
    if hostname.startswith("www."):
        hostname = hostname[4:]
    hash_mode = _bool(_pick(data, "h", "hashMode"), "h", False)
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

    cents = _int(_pick(data, "value"), "value", 0, MAX_VALUE)
    revenue = _pick(data, "revenue", "$")
    if revenue is not None:
        cents = _revenue(revenue)

    query = parse_qs(parts.query, keep_blank_values=False)
    utm = [query.get(key, [""])[0][:255] for key in UTM_KEYS]
    if not utm[0]:  # Plausible treats ?ref= and ?source= as the UTM source too
        utm[0] = (query.get("ref") or query.get("source") or [""])[0]
    utm[0] = utm[0][:MAX_SOURCE]

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
        interactive=_bool(_pick(data, "interactive", "i"), "interactive", True),
        utm=tuple(utm),
    )
    if name == ENGAGEMENT:
        hit.scroll_depth = _int(_pick(data, "sd"), "sd", 0, 100)
        hit.engaged_ms = _int(_pick(data, "e"), "e", 0, 86_400_000)
        hit.interactive = False
    return hit
