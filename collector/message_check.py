"""The queued hit message, checked again by the worker before it writes anything.

collector.services.build_messages writes these messages; the queue is not trusted (old messages,
another producer, a bug), so every hit is checked against what that function makes: types,
ranges, text that encodes as UTF-8 without NUL, lengths that fit collector.models.Event's
columns. problem_of names what is wrong (never the value: it may be anything); hit_label names
the hit in a log line.

The worker checks every hit of every batch, so the check is on the ingest's hot path: a first pass
(_plainly_valid) accepts the common hit with a few type, range and length comparisons and one NUL /
ASCII test over all its texts joined; anything it does not accept, including every non-ASCII text,
goes through the detailed checks, which accept or name the problem. The first pass accepts only
what the detailed checks accept (a test compares the two on mutated hits), so it changes the cost,
never the verdict: ~30 us a hit before, a few us now (docs/benchmarks.md, "ClickHouse ingest").
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


# The same bounds as above, flattened for the first pass.
_ID_MAX, _NAME_MAX, _PATH_MAX = (_MAX_LENGTH[key] for key, *_ in TEXT_FIELDS)
_OPTIONAL_TEXT_MAX = tuple((key, _MAX_LENGTH[key]) for key, _column in OPTIONAL_TEXT_FIELDS)
_OPTIONAL_INT_RANGES = OPTIONAL_INT_FIELDS
_N_UTM = len(UTM_KEYS)


def _plainly_valid(hit: dict, now_ms: int) -> bool:
    """True only if problem_of would find nothing (False: let the detailed checks decide).
    Stricter than they are where that is cheaper: exact types (no subclasses), ASCII texts only."""
    get = hit.get
    hit_id, name, path = get("id"), get("n"), get("p")
    if type(hit_id) is not str or type(name) is not str or type(path) is not str:
        return False
    if not (0 < len(hit_id) <= _ID_MAX and 0 < len(name) <= _NAME_MAX and len(path) <= _PATH_MAX):
        return False
    texts = [hit_id, name, path]
    for key, limit in _OPTIONAL_TEXT_MAX:
        value = get(key)
        if value is None:
            if key in hit:
                return False
            continue
        if type(value) is not str or len(value) > limit:
            return False
        texts.append(value)
    site, ts, vid = get("site"), get("ts"), get("vid")
    if type(site) is not int or not 0 < site <= INT64_MAX:
        return False
    if type(ts) is not int or not TS_MIN <= ts <= now_ms + TS_AHEAD_MS:
        return False
    if type(vid) is not int or not INT64_MIN <= vid <= INT64_MAX:
        return False
    for key, low, high in _OPTIONAL_INT_RANGES:
        value = get(key)
        if value is not None and (type(value) is not int or not low <= value <= high):
            return False
    interactive = get("i")
    if interactive is not None and interactive is not True and interactive is not False:
        return False
    utm = get("utm")
    if utm:
        if type(utm) is not list or len(utm) != _N_UTM:
            return False
        for value in utm:
            if type(value) is not str or len(value) > _MAX_UTM:
                return False
        texts += utm
    props = get("props")
    if props and _props_problem(props):
        return False
    tokens = get("tok")
    if tokens:
        if type(tokens) is not list or len(tokens) > MAX_TOKENS:
            return False
        for token in tokens:
            if type(token) is not int or not INT64_MIN <= token <= INT64_MAX:
                return False
    joined = "".join(texts)
    return joined.isascii() and "\x00" not in joined


def problem_of(hit: Any, now_ms: int) -> str:
    """Why a queued hit breaks the contract of collector.services.build_messages ("" if it does not).
    Field names only: the reason is logged, so it never quotes a value."""
    if type(hit) is dict and _plainly_valid(hit, now_ms):
        return ""
    return _problem_of(hit, now_ms)


def _problem_of(hit: Any, now_ms: int) -> str:
    """problem_of's detailed checks, in the order that decides which problem is named."""
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
