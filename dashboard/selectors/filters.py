"""Filters: `property==value;property!=value`, `|` for OR inside a value, `\\|` for a literal
bar. They select events; with a filter, visit metrics are those of the visits started in the
period that match the visit filters and have a matching event in the period. Bad input raises
periods.InvalidParameter, whose message is shown to the client."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from dashboard.selectors.periods import InvalidParameter, quoted
from dashboard.selectors.properties import PROPERTIES, Property


@dataclass(frozen=True)
class Filter:
    """Rows whose property is one of `values` (or none of them: `negate`), compared exactly
    (case too); a backend applies it to its own rows."""

    prop: Property
    values: tuple[str, ...]  # as stored
    negate: bool = False


# Every filter is a condition, and every alternative two SQL parameters: the caps keep any query
# small (without them 250 filters overflow SQLite's expression tree, and MySQL takes them all).
MAX_FILTERS = 10
MAX_FILTER_VALUES = 100  # alternatives (`a|b|c`) in one filter
MAX_VALUE_CHARS = 2000  # a value's length: as long as the longest URL the collector keeps
_FILTER = re.compile(r"^\s*([a-z_]+:[a-z_]+)\s*(==|!=)(.*)$", re.DOTALL)
_ALTERNATIVES = re.compile(r"(?<!\\)\|")  # a bar not escaped as \|


def parse_filters(text: str | None) -> list[Filter]:
    """`visit:source==Google;event:page==/pricing|/plans` -> [Filter, ...], or InvalidParameter.
    At most MAX_FILTERS filters of at most MAX_FILTER_VALUES values of 1 to MAX_VALUE_CHARS characters."""
    filters: list[Filter] = []
    for part in (text or "").split(";"):
        if not part.strip():
            continue
        if len(filters) == MAX_FILTERS:
            raise InvalidParameter(f"at most {MAX_FILTERS} filters at a time")
        match = _FILTER.match(part)
        shown = quoted(part.strip())
        if match is None:
            raise InvalidParameter(f"invalid filter {shown}: expected property==value or property!=value")
        name, operator, raw = match.groups()
        prop = PROPERTIES.get(name)
        if prop is None:
            raise InvalidParameter(f"unknown filter property {quoted(name)}: use one of {', '.join(PROPERTIES)}")
        values = _ALTERNATIVES.split(raw, maxsplit=MAX_FILTER_VALUES)
        if len(values) > MAX_FILTER_VALUES:
            raise InvalidParameter(f"invalid filter {shown}: at most {MAX_FILTER_VALUES} values separated by |")
        values = [v.replace("\\|", "|").strip() for v in values]
        if not all(values) or any(len(v) > MAX_VALUE_CHARS for v in values):
            raise InvalidParameter(f"invalid filter {shown}: every value must be 1 to {MAX_VALUE_CHARS} characters")
        filters.append(Filter(prop, tuple(prop.raw(v) for v in values), negate=operator == "!="))
    return filters


def as_filters(filters: str | Sequence[Filter] | None) -> list[Filter]:
    """Filters as text (parsed here) or already parsed -> a list of Filters."""
    if filters is None or isinstance(filters, str):
        return parse_filters(filters)
    return list(filters)
