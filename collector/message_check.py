"""The queued hit message, checked again by the worker before it writes anything.

collector.services.build_messages writes these messages; the queue is not trusted (old messages,
another producer, a bug), so every hit is checked against what that function makes: types,
ranges, text that encodes as UTF-8 without NUL, lengths that fit collector.models.Event's
columns. problem_of names what is wrong (never the value: it may be anything); hit_label names
the hit in a log line.
"""

from __future__ import annotations

from typing import Any

from collector.models import Event
from collector.payload import MAX_PROP_LEN, MAX_PROPS, MAX_VALUE, UTM_KEYS

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
TS_MIN = 946_684_800_000  # 2000-01-01: older is not a hit of this service
TS_AHEAD_MS = 86_400_000  # clock skew tolerated between the collector and the worker
MAX_PROP_KEY = 300  # collector.payload cuts prop names there
MAX_TOKENS = 8  # security.guards.ip_tokens makes 3
# Message key -> the Event column that bounds its length, and whether it may be empty.
TEXT_FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("id", "hit_id", False),
    ("n", "name", False),
    ("p", "path", True),
)
OPTIONAL_TEXT_FIELDS: tuple[tuple[str, str], ...] = (
    ("host", "hostname"),
    ("ref", "referrer"),
    ("src", "referrer_source"),
    ("b", "browser"),
    ("os", "os"),
    ("dev", "device"),
    ("cc", "country"),
)
# Message key -> inclusive range; None (or absent) is allowed for the optional ones.
OPTIONAL_INT_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("pvid", INT64_MIN, INT64_MAX),
    ("v", -MAX_VALUE, MAX_VALUE),
    ("sd", 0, 100),
    ("e", 0, 86_400_000),
)
_MAX_LENGTH = {key: Event._meta.get_field(column).max_length for key, column, *_ in TEXT_FIELDS + OPTIONAL_TEXT_FIELDS}
_MAX_UTM = Event._meta.get_field("utm_source").max_length


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text_problem(value: Any, max_length: int) -> str:
    """Why this value cannot go into a text column of max_length characters ("" when it can)."""
    if not isinstance(value, str):
        return "is not text"
    if len(value) > max_length:
        return f"is longer than {max_length} characters"
    if "\x00" in value:
        return "contains a NUL character"
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return "is not valid Unicode (a lone surrogate)"
    return ""


def _props_problem(props: Any) -> str:
    if not isinstance(props, dict):
        return "is not an object"
    if len(props) > MAX_PROPS:
        return f"has more than {MAX_PROPS} pairs"
    for key, value in props.items():
        problem = _text_problem(key, MAX_PROP_KEY)
        if problem:
            return f"has a name that {problem}"
        problem = _text_problem(value, MAX_PROP_LEN)
        if problem:
            return f"has a value that {problem}"
    return ""


def problem_of(hit: Any, now_ms: int) -> str:
    """Why a queued hit breaks the contract of collector.services.build_messages ("" if it does not).
    Field names only: the reason is logged, so it never quotes a value."""
    if not isinstance(hit, dict):
        return "not an object"
    for key, _column, may_be_empty in TEXT_FIELDS:
        if key not in hit:
            return f"'{key}' is missing"
        problem = _text_problem(hit[key], _MAX_LENGTH[key])
        if problem:
            return f"'{key}' {problem}"
        if not may_be_empty and not hit[key]:
            return f"'{key}' is empty"
    for key, _column in OPTIONAL_TEXT_FIELDS:
        if key in hit:
            problem = _text_problem(hit[key], _MAX_LENGTH[key])
            if problem:
                return f"'{key}' {problem}"
    site, ts, vid = hit.get("site"), hit.get("ts"), hit.get("vid")
    if not (is_int(site) and 0 < site <= INT64_MAX):
        return "'site' is not a site id"
    if not is_int(ts):
        return "'ts' is not an integer"
    if not TS_MIN <= ts <= now_ms + TS_AHEAD_MS:
        return "'ts' is out of range"
    if not (is_int(vid) and INT64_MIN <= vid <= INT64_MAX):
        return "'vid' is not a 64-bit integer"
    for key, low, high in OPTIONAL_INT_FIELDS:
        value = hit.get(key)
        if value is not None and not (is_int(value) and low <= value <= high):
            return f"'{key}' is not an integer between {low} and {high}"
    if hit.get("i") is not None and not isinstance(hit["i"], bool):
        return "'i' is not true or false"
    utm = hit.get("utm")
    if utm:  # the worker reads a missing or empty one as no UTM values
        if not isinstance(utm, (list, tuple)) or len(utm) != len(UTM_KEYS):
            return f"'utm' is not a list of {len(UTM_KEYS)} texts"
        for value in utm:
            problem = _text_problem(value, _MAX_UTM)
            if problem:
                return f"'utm' has a value that {problem}"
    props = hit.get("props")
    if props:
        problem = _props_problem(props)
        if problem:
            return f"'props' {problem}"
    tokens = hit.get("tok")
    if tokens:
        if not isinstance(tokens, list) or len(tokens) > MAX_TOKENS:
            return f"'tok' is not a list of at most {MAX_TOKENS} integers"
        if not all(is_int(token) and INT64_MIN <= token <= INT64_MAX for token in tokens):
            return "'tok' is not a list of 64-bit integers"
    return ""


def hit_label(hit: Any) -> str:
    """How a log line names a hit: its id when that is text (escaped, at most 32 characters)."""
    hit_id = hit.get("id") if isinstance(hit, dict) else None
    return ascii(hit_id[:32]) if isinstance(hit_id, str) else "without an id"
