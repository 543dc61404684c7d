"""The commands function: EventBridge schedules run a management command.

Zappa's schedule rules send the normal EventBridge fields plus the event's `kwargs`, e.g.
{"detail-type": "Scheduled Event", ..., "kwargs": {"command": "send_reports", "args": ["--frequency", "due"]}}.
Only the commands below can run this way: a schedule (or anyone able to invoke the function)
cannot reach ban/unban, createsite, seed_demo or Django's own commands.

A failing command raises: the invocation counts as an error in Lambda's metrics (alarm on
it), and EventBridge's asynchronous invocation tries it again. Every command here is safe to
run again.
"""

from __future__ import annotations

import io
import logging
import time
from typing import Any

from django.core.management import call_command
from django.db import close_old_connections

log = logging.getLogger(__name__)

SCHEDULED_COMMANDS = frozenset({"sync_waf", "expire_bans", "rotate_salts", "send_reports", "rollup_clickhouse"})


class CommandNotAllowed(ValueError):
    pass


def parse(event: dict[str, Any]) -> tuple[str, list[str]]:
    kwargs = event.get("kwargs")
    if not isinstance(kwargs, dict):
        kwargs = {}
    name, args = kwargs.get("command"), kwargs.get("args") or []
    if not isinstance(name, str) or name not in SCHEDULED_COMMANDS:
        raise CommandNotAllowed(
            f"scheduled command {str(name)[:50]!r} is not allowed (allowed: {', '.join(sorted(SCHEDULED_COMMANDS))})"
        )
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        raise CommandNotAllowed("scheduled command args must be a list of strings")
    return name, args


class CommandFailed(RuntimeError):
    """A scheduled command raised; only its exception type is kept (see run)."""


def run(event: dict[str, Any], context: Any) -> dict[str, Any]:
    name, args = parse(event)
    started = time.monotonic()
    close_old_connections()
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(name, *args, stdout=out, stderr=err)
    except Exception as exc:
        log.error(
            "schedule: %s failed after %.0f ms: %s", name, (time.monotonic() - started) * 1000, type(exc).__name__
        )
        # Re-raised without the original message or traceback: the runtime logs what it gets,
        # and a command's error text (an AWS error, say) could quote an address.
        raise CommandFailed(f"scheduled command {name} failed: {type(exc).__name__}") from None
    finally:
        close_old_connections()
    duration_ms = round((time.monotonic() - started) * 1000)
    # The output is counts and states, but is not logged: a future command could print addresses.
    log.info("schedule: %s ok in %d ms", name, duration_ms)
    return {"command": name, "ok": True, "duration_ms": duration_ms}
