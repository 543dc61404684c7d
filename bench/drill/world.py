"""The drill's database and Redis queue: the app's environment and knobs, the queue's depth, and
the poller that watches FlaggedIP and Ban rows while the traffic runs."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import threading
import time
from typing import Any

from bench.common import PYTHON, ROOT, BenchDatabase, foreign_queries_sql, queue_depth
from bench.drill.config import DB_NAME, REDIS_URL


def drill_database() -> BenchDatabase:
    # TRUSTED_PROXY_HOPS=1: the drill plays the ALB, the client is the last X-Forwarded-For entry.
    return BenchDatabase(DB_NAME, redis_url=REDIS_URL, settings={"TRUSTED_PROXY_HOPS": "1"})


def app_knobs(db: BenchDatabase) -> dict[str, Any]:
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({k: getattr(s, k) for k in ('COLLECTOR_RATE', 'COLLECTOR_SITE_RATE', "
        "'COLLECTOR_MAX_BODY', 'DETECT_HUMAN_MAX_PER_MINUTE', 'DETECT_MAX_SITES_PER_HOUR', 'AUTO_BAN_SCORE', "
        "'AUTO_BAN_BASE_MINUTES', 'TRUSTED_PROXY_HOPS')}))"
    )
    out = subprocess.run([str(PYTHON), "-c", code], cwd=ROOT, env=db.env(), check=True, capture_output=True)
    return json.loads(out.stdout)


def utc_ts(value: dt.datetime | None) -> float | None:
    return value.replace(tzinfo=dt.UTC).timestamp() if value is not None else None


class Poller(threading.Thread):
    """Once a second: which IPs have a FlaggedIP row, which networks a Ban row (first seen)."""

    def __init__(self, db: BenchDatabase) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.stop_event = threading.Event()
        self.flag_seen: dict[str, float] = {}
        self.ban_seen: dict[str, float] = {}
        self.polls = 0
        self.errors = 0
        self.foreign_busy = 0  # polls that saw MariaDB running a query for another database

    def run(self) -> None:
        conn = self.db.connect()
        conn.autocommit(True)
        try:
            for _ in range(3600):  # bounded: an hour of polls at most
                if self.stop_event.wait(1.0):
                    break
                try:
                    with conn.cursor() as cur:
                        cur.execute("SELECT ip FROM security_flaggedip")
                        flags = [row[0] for row in cur.fetchall()]
                        cur.execute("SELECT network FROM security_ban")
                        bans = [row[0] for row in cur.fetchall()]
                        cur.execute(foreign_queries_sql(self.db.name))
                        self.foreign_busy += int(cur.fetchone()[0] > 0)
                except Exception:
                    self.errors += 1
                    continue
                now = time.time()
                for ip in flags:
                    self.flag_seen.setdefault(ip, now)
                for network in bans:
                    self.ban_seen.setdefault(network.removesuffix("/32"), now)
                self.polls += 1
        finally:
            conn.close()

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)


def wait_drained(limit: float) -> tuple[bool, float, int]:
    """Wait (at most `limit` s) until the queue is empty twice in a row: (drained, seconds, left)."""
    start = time.monotonic()
    empty = 0
    waiting = reserved = 0
    while time.monotonic() - start < limit:
        waiting, reserved = queue_depth(REDIS_URL)
        empty = empty + 1 if waiting == 0 and reserved == 0 else 0
        if empty >= 2:
            return True, time.monotonic() - start, 0
        time.sleep(0.5)
    return False, time.monotonic() - start, waiting + reserved
