"""Write-side services the views and commands call."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from typing import Any

from django.db import DatabaseError

from collector.enrich import device_from_width, parse_agent, parse_referrer
from collector.payload import ENGAGEMENT, Hit
from collector.salts import current_salts, visitor_hash
from collector.tasks import ingest_hits
from security.guards import ip_tokens
from sites.cache import SiteInfo

log = logging.getLogger(__name__)

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0"}  # noqa: S104 (hostnames to drop, not a bind)


def hit_id(ts_ms: int) -> str:
    """32 hex characters: the 48-bit millisecond timestamp, then 80 random bits (like UUIDv7).

    Time-ordered ids land at the end of the unique index instead of anywhere in it: with 10M
    events stored, random uuid4 ids halved the ingest rate (docs/benchmarks.md).
    """
    return f"{ts_ms & 0xFFFFFFFFFFFF:012x}{secrets.token_hex(10)}"


def is_local(hostname: str) -> bool:
    return hostname in LOCAL_HOSTS or hostname.startswith("127.") or hostname.endswith(".localhost")


def build_messages(
    hit: Hit, sites: list[SiteInfo], *, ip: str, user_agent: str, country: str, ts: int
) -> tuple[list[dict[str, Any]], str]:
    """The queue messages for a validated hit (one per site), or the reason it is dropped.

    This is where the IP and User-Agent are used, and the last place they exist: the messages
    carry the daily visitor hashes and coarse facts (browser, OS, device class, country) only.
    """
    agent = parse_agent(user_agent)
    if agent.bot:
        return [], "bot"
    accepted = []
    reason = ""
    for site in sites:
        if not site.allows_hostname(hit.hostname):
            reason = "localhost" if is_local(hit.hostname) else "hostname"
            continue
        accepted.append(site)
    if not accepted:
        return [], reason
    source = parse_referrer(hit.referrer, hit.hostname) if hit.name != ENGAGEMENT else None
    # The salt is the one of the hit's UTC day; yesterday's lets a visit go on past midnight.
    today_salt, previous_salt = current_salts(dt.datetime.fromtimestamp(ts / 1000, dt.UTC).date())
    device = device_from_width(hit.width, agent.device)
    tokens = ip_tokens(ip, today_salt)
    messages = []
    for site in accepted:
        message: dict[str, Any] = {
            "id": hit_id(ts),
            "site": site.id,
            "ts": ts,
            "n": hit.name,
            "p": hit.path,
            "host": hit.hostname,
            "b": agent.browser,
            "os": agent.os,
            "dev": device,
            "cc": country,
            "i": hit.interactive,
            "vid": visitor_hash(today_salt, site.id, ip, user_agent),
            # Keyed hashes of the IP and its networks: lets the worker drop hits of an address
            # banned while they waited in the queue, without the address entering the queue.
            "tok": tokens,
            "pvid": visitor_hash(previous_salt, site.id, ip, user_agent) if previous_salt else None,
        }
        if source is not None and source.source:
            message["ref"], message["src"] = source.referrer, source.source
        elif hit.utm[0] and hit.name != ENGAGEMENT:
            message["src"] = hit.utm[0]  # no referrer: the campaign's source is the visit's source
        if any(hit.utm):
            message["utm"] = list(hit.utm)
        if hit.value is not None:
            message["v"] = hit.value
        if hit.props:
            message["props"] = hit.props
        if hit.scroll_depth is not None:
            message["sd"] = hit.scroll_depth
        if hit.engaged_ms is not None:
            message["e"] = hit.engaged_ms
        messages.append(message)
    return messages, ""


class BrokerUnavailable(Exception):
    """The hit could not be queued (broker down, or in inline mode the database)."""


def enqueue_hits(hits: list[dict[str, Any]]) -> None:
    """Queue hits for the ingest worker; inline (in this request) when no broker is configured.

    Publishing is not retried: the broker's connect and socket timeouts are short, so a dead
    broker costs the request about a second and the client gets a 503 with Retry-After.
    """
    try:
        # argsrepr: Celery would otherwise render the hits into the message headers (slow, and noise in logs).
        ingest_hits.apply_async((hits,), retry=False, argsrepr=f"<{len(hits)} hits>", kwargsrepr="{}")
    except DatabaseError as exc:  # inline mode writes in the request
        log.warning("ingest inline failed: %s", type(exc).__name__)
        raise BrokerUnavailable from exc
    except Exception as exc:  # kombu/redis/boto errors and socket timeouts: the broker is unreachable
        # The type only: an exception's text could quote what it was given (in inline mode, the hits).
        log.warning("broker unavailable: %s", type(exc).__name__)
        raise BrokerUnavailable from exc
