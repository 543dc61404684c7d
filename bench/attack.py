"""Attack drill for the public collector (POST /api/event): does it keep counting honestly?

Sets up its own world (MariaDB database bench_attack, Redis db 11, gunicorn with 2 sync workers,
one Celery worker on queues ingest+default that writes the hits during the run, TRUSTED_PROXY_HOPS=1
with this script playing the ALB: every request carries `X-Forwarded-For: <client ip>` as its last
entry), then:

1. baseline: legit traffic only - 300 client IPs from 198.18.0.0/15 with browser User-Agents, each a
   human (a pageview every 8-20 s, sometimes a custom event after it and an engagement report
   before the next one), plus two groups of people behind one NAT address each (an office on one
   Chrome build, a mobile carrier's CGNAT address); ~35 req/s in total;
2. attack: the same legit traffic plus, at the same time,
   (a) flood: one IP, two connections as fast as they go;
   (b) spoof: one IP, one connection as fast as it goes, random fake X-Forwarded-For entries left
       of its real address (some of them legit visitors' addresses);
   (c) sweep: one IP posting to every customer site in turn, up to 20 req/s;
   (d) bots: 5 IPs with python-requests / HeadlessChrome User-Agents, up to 4 req/s each;
   (e) bodies: 3 IPs sending oversized (>4 KiB, with Content-Length or chunked) and malformed
       bodies, one at up to 20 req/s and two at up to 4 req/s;
   every attack hit has a path /attack-<pattern>-<lane>, so its rows can be found afterwards;
3. cost: the Celery worker paused, two connections as fast as they go, first as the banned flood
   IP, then as fresh legit IPs (one request each), to compare what a banned and an accepted
   request cost the web tier (gunicorn workers' CPU per request, latency, throughput), plus the
   Django part of each measured in one process without gunicorn;
4. return: the flood IP's auto-ban is expired (its expiry moved to the past, then `manage.py
   expire_bans`, as the scheduler would an hour later) and it floods again: is it banned again?
5. drains the queue, counts what reached the database (Event rows with attack paths, before and
   after each attacker's ban; HourlyTotal pageviews against the legit pageviews answered 202),
   prints the report and writes docs/attack-results.md (a hand-written block between the
   analysis markers is kept);
6. stops gunicorn and the worker, drops bench_attack, flushes Redis db 11.

FlaggedIP and Ban are polled once a second during the run (first flag / ban time per IP).

    .venv/bin/python bench/attack.py                  # ~4 min: baseline 30 s, attack 45 s, cost 2 x 8 s
    .venv/bin/python bench/attack.py --quick          # ~2 min: baseline 10 s, attack 20 s, cost 2 x 3 s
    .venv/bin/python bench/attack.py --duration 60    # a longer attack phase
    .venv/bin/python bench/attack.py --quiet-wait 300 # first wait (bounded) for the shared box to be idle

The machine is shared: the report shows the CPU each process group used, including `other` (work
that is not the drill's), and whether MariaDB was running another database's queries.
Nothing here tunes a threshold: the app runs with its defaults (or whatever the environment sets,
printed in the report).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import heapq
import http.client
import ipaddress
import itertools
import json
import math
import multiprocessing
import os
import random
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import GUNICORN, PYTHON, ROOT, app_env, log, machine, mysql_connect

DB_NAME = "bench_attack"
REDIS_URL = "redis://127.0.0.1:6379/11"
CELERY = ROOT / ".venv" / "bin" / "celery"
RESULTS_MD = ROOT / "docs" / "attack-results.md"
REPORT_DATE = "2026-11-26"
ANALYSIS_START = "<!-- analysis:start -->"
ANALYSIS_END = "<!-- analysis:end -->"

CUSTOMER_SITES = [f"customer{i}.example" for i in range(8)]
LEGIT_SITE_WEIGHTS = (0.5, 0.3, 0.2)  # legit traffic goes to the first three customer sites
COST_SITE = "cost.example"  # the cost phase writes here, away from the customers' numbers

ERROR = -1  # status of a request that got no HTTP answer (refused, reset, timed out)
TIMEOUT = 10.0
ACCEPTED = "202-accepted"
CATEGORIES = ("403", "429", "202-dropped", "400", "413", "404", ACCEPTED, "5xx", "error", "other")

LEGIT_UAS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
)
ATTACKER_UA = LEGIT_UAS[0]  # the flood, spoof and sweep pass as Chrome: they want to be counted
BOT_UAS = (
    "python-requests/2.32.3",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
)
PAGES = ("/", "/pricing", "/features", "/about", "/contact", "/docs/getting-started", "/docs/api", "/blog/")
REFERRERS = (None, None, None, "https://www.google.com/", "https://duckduckgo.com/", "https://news.ycombinator.com/")
EVENTS = ("Signup", "Download", "Outbound Link: Click", "Newsletter")
WIDTHS = (390, 414, 768, 1280, 1366, 1440, 1536, 1920)

# IPs: legit visitors 198.18.0.1..; attackers 198.19.x; the cost phase's fresh IPs 198.18.64.0/18.
FLOOD_IP = "198.19.1.1"
SPOOF_IP = "198.19.2.1"
SWEEP_IP = "198.19.3.1"
BOT_IPS = tuple(f"198.19.4.{i}" for i in range(1, 6))
BODY_IPS = ("198.19.5.1", "198.19.5.2", "198.19.5.3")
FALLBACK_BANNED_IP = "198.19.8.8"  # banned by hand for the cost phase if the flood IP was not banned
WARMUP_IP = "198.19.9.9"
OFFICE_IP, OFFICE_PEOPLE = "198.18.200.1", 25  # legit people behind one NAT address
CGNAT_IP, CGNAT_PEOPLE = "198.18.201.1", 40
GROUPS = {
    "distinct": "visitors with an IP each",
    "office": f"office NAT: {OFFICE_PEOPLE} people, 1 IP, 1 UA, customer0",
    "cgnat": f"mobile CGNAT: {CGNAT_PEOPLE} people, 1 IP, 2 UAs, all 8 customer sites",
}
COST_NET = ipaddress.ip_network("198.18.64.0/18")

PATTERNS = {
    "flood": "(a) single-IP flood, 2 connections flat out",
    "spoof": "(b) spoofed X-Forwarded-For, 1 connection flat out",
    "sweep": "(c) many-sites sweep, one IP over 8 sites, 20 req/s",
    "bot": "(d) bot UAs, 5 IPs x 4 req/s",
    "body": "(e) oversized / malformed bodies, 3 IPs (20 + 4 + 4 req/s)",
}


# -- HTTP --------------------------------------------------------------------------------------


def post(port: int, body: bytes, headers: dict[str, str], *, chunked: bool = False) -> tuple[int, str, float, float]:
    """One POST /api/event on a fresh connection (gunicorn's sync workers close after each answer).

    Returns (status or ERROR, X-Dropped, latency in seconds, wall-clock time of the answer)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    start = time.perf_counter()
    try:
        if chunked:  # no Content-Length: http.client sends Transfer-Encoding: chunked
            half = len(body) // 2
            conn.request("POST", "/api/event", body=iter([body[:half], body[half:]]), headers=headers)
        else:
            conn.request("POST", "/api/event", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("X-Dropped") or "", time.perf_counter() - start, time.time()
    except (OSError, http.client.HTTPException):
        return ERROR, "", time.perf_counter() - start, time.time()
    finally:
        conn.close()


def category(status: int, dropped: str) -> str:
    if status == 202:
        return "202-dropped" if dropped else ACCEPTED
    if status in (400, 403, 404, 413, 429):
        return str(status)
    if status == ERROR:
        return "error"
    if status >= 500:
        return "5xx"
    return "other"


def headers_for(ip: str, ua: str, origin: str | None, xff: str | None = None) -> dict[str, str]:
    headers = {"Content-Type": "text/plain", "User-Agent": ua, "X-Forwarded-For": xff or ip, "Accept": "*/*"}
    if origin:
        headers["Origin"] = origin
    return headers


def dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


# -- legit traffic -----------------------------------------------------------------------------


def legit_users(count: int, sites: list[tuple[str, str]], seed: int, nat: bool = True) -> list[dict[str, Any]]:
    """`count` visitors with an IP each, then (nat) two groups of people sharing one IP, as behind
    NAT: an office (25 people, one managed Chrome build: one User-Agent, since Chrome's reduced UA
    is the same for every Windows user of a version) reading customer0, and a mobile carrier's
    CGNAT address (40 people, iPhone Safari / Android Chrome) spread over all customer sites."""
    rng = random.Random(seed)
    users = []

    def add(group: str, ip: str, ua: str, site: tuple[str, str]) -> None:
        sid, domain = site
        host = f"www.{domain}" if rng.random() < 0.5 else domain
        user = {"group": group, "ip": ip, "ua": ua, "sid": sid, "domain": domain, "host": host}
        users.append({**user, "w": rng.choice(WIDTHS), "url": None})

    for i in range(count):
        site = rng.choices(sites[: len(LEGIT_SITE_WEIGHTS)], weights=LEGIT_SITE_WEIGHTS)[0]
        add("distinct", f"198.18.{i // 250}.{i % 250 + 1}", rng.choice(LEGIT_UAS), site)
    if nat:
        for _ in range(OFFICE_PEOPLE):
            add("office", OFFICE_IP, LEGIT_UAS[0], sites[0])
        for _ in range(CGNAT_PEOPLE):
            add("cgnat", CGNAT_IP, rng.choice(LEGIT_UAS[5:7]), rng.choice(sites[: len(CUSTOMER_SITES)]))
    return users


def legit_stream(
    port: int, users: list[dict[str, Any]], start_at: float, end_at: float, gap: tuple[float, float], seed: int
) -> list[tuple]:
    """Every user a human: pageview every gap s, maybe a custom event 1-4 s later, maybe an
    engagement report just before the next pageview. Open loop: sends follow the schedule, not
    the answers. Returns (t_scheduled, t_started, latency, status, dropped, kind, user) per request."""
    rng = random.Random(seed)
    heap: list[tuple[float, int, int, str]] = []
    seq = itertools.count()
    for uid in range(len(users)):
        heapq.heappush(heap, (start_at + rng.uniform(0, gap[1]), next(seq), uid, "pageview"))
    records: list[tuple] = []
    lock = threading.Lock()

    def send(t_sched: float, uid: int, kind: str, body: bytes, headers: dict[str, str]) -> None:
        t_start = time.time()
        status, dropped, latency, _ = post(port, body, headers)
        with lock:
            records.append((t_sched, t_start, latency, status, dropped, kind, uid))

    with ThreadPoolExecutor(max_workers=64) as pool:
        sent = 0
        while heap and sent < 200_000:  # bounded in count as well as in time
            t_next, _, uid, kind = heap[0]
            if t_next >= end_at:
                break
            now = time.time()
            if t_next > now:
                time.sleep(min(t_next - now, 0.05))
                continue
            heapq.heappop(heap)
            user = users[uid]
            origin = f"https://{user['host']}"
            if kind == "pageview":
                first = user["url"] is None
                referrer = rng.choice(REFERRERS) if first else user["url"]
                page = rng.choice(PAGES)
                if page == "/blog/" and rng.random() < 0.7:
                    page = f"/blog/post-{rng.randint(1, 40)}"
                user["url"] = f"https://{user['host']}{page}"
                data: dict[str, Any] = {"n": "pageview", "u": user["url"], "w": user["w"], "sid": user["sid"]}
                if referrer:
                    data["r"] = referrer
                wait = rng.uniform(*gap)
                heapq.heappush(heap, (t_next + wait, next(seq), uid, "pageview"))
                if rng.random() < 0.15:
                    heapq.heappush(heap, (t_next + rng.uniform(1.0, 4.0), next(seq), uid, "event"))
                if rng.random() < 0.3:
                    heapq.heappush(heap, (t_next + wait - 0.3, next(seq), uid, "engagement"))
            elif kind == "event":
                data = {"n": rng.choice(EVENTS), "u": user["url"], "w": user["w"], "sid": user["sid"]}
                if rng.random() < 0.3:
                    data["p"] = {"plan": rng.choice(["free", "pro", "team"])}
            else:
                data = {"n": "engagement", "u": user["url"], "sd": rng.randint(5, 100), "e": rng.randint(1000, 90_000)}
                data["sid"] = user["sid"]
            pool.submit(send, t_next, uid, kind, dumps(data), headers_for(user["ip"], user["ua"], origin))
            sent += 1
    return records


# -- attack traffic ----------------------------------------------------------------------------


def malformed_bodies(sid: str, domain: str, path: str) -> list[tuple[bytes, bool]]:
    """(body, chunked) pairs: oversized with Content-Length, oversized chunked, and malformed."""
    url = f"https://{domain}{path}"
    pad = {"n": "pageview", "u": url, "sid": sid, "p": {f"k{i}": "x" * 250 for i in range(30)}}
    return [
        (dumps(pad), False),  # ~8 KiB with Content-Length: 413 before the body is read
        (dumps(pad), True),  # ~8 KiB chunked (no Content-Length): 413 after a bounded read
        (b'{"n": "pageview", "u": ', False),  # truncated JSON
        (b"[1, 2, 3]", False),  # JSON, not an object
        (dumps({"n": "pageview", "sid": sid}), False),  # no url
        (dumps({"n": "pageview", "u": "javascript:alert(1)", "sid": sid}), False),
        (dumps({"n": "pageview", "u": url, "sid": sid, "w": "wide"}), False),
        (b"\xff\xfe\x00\x80garbage", False),  # not UTF-8
        (dumps({"n": "x" * 500, "u": url, "sid": sid}), False),  # name too long
        (dumps({"n": "pageview", "u": url, "sid": "ZZZZZZZZ"}), False),  # unknown site: 404
    ]


def spoofed_xff(rng: random.Random, real_ip: str, decoys: list[str]) -> str:
    fakes = []
    for _ in range(rng.randint(1, 4)):
        roll = rng.random()
        if roll < 0.4:
            fakes.append(rng.choice(decoys))  # try to frame a legit visitor
        elif roll < 0.9:
            fakes.append(str(ipaddress.IPv4Address(rng.randint(0x01000000, 0xDF000000))))
        else:
            fakes.append(rng.choice(["unknown", "127.0.0.1", "10.0.0.1", "::1", "999.1.1.1"]))
    return ", ".join([*fakes, real_ip])


def attack_lane(port: int, lane: dict[str, Any], start_at: float, end_at: float) -> dict[str, Any]:
    """One attacker connection: closed loop when rate is None, else paced at rate req/s."""
    rng = random.Random(lane["seed"])
    sites: list[tuple[str, str]] = lane["sites"]
    path = f"/attack-{lane['pattern']}-{lane['lane']}"
    bodies = malformed_bodies(sites[0][0], sites[0][1], path) if lane["pattern"] == "body" else []
    counts: Counter[str] = Counter()
    first: dict[str, float] = {}
    accepted_at: list[float] = []
    rate = lane["rate"]
    time.sleep(max(0.0, start_at - time.time()))
    next_t = time.time()
    sent = 0
    while sent < lane["max_requests"]:
        now = time.time()
        if now >= end_at:
            break
        if rate:
            if next_t > now:
                time.sleep(next_t - now)
                if time.time() >= end_at:
                    break
            next_t = max(next_t + 1.0 / rate, time.time() - 1.0)
        sid, domain = sites[sent % len(sites)]
        origin = f"https://{domain}"
        chunked = False
        xff = None
        if lane["pattern"] == "body":
            body, chunked = bodies[sent % len(bodies)]
        else:
            body = dumps({"n": "pageview", "u": f"https://{domain}{path}", "w": 1920, "sid": sid})
        if lane["pattern"] == "spoof":
            xff = spoofed_xff(rng, lane["ip"], lane["decoys"])
        status, dropped, _, answered = post(
            port, body, headers_for(lane["ip"], lane["ua"], origin, xff), chunked=chunked
        )
        cat = category(status, dropped)
        counts[cat] += 1
        first.setdefault(cat, answered)
        if cat == ACCEPTED:
            accepted_at.append(answered)
        sent += 1
    return {
        "pattern": lane["pattern"],
        "lane": lane["lane"],
        "ip": lane["ip"],
        "requests": sent,
        "counts": dict(counts),
        "first": first,
        "accepted_at": accepted_at,
    }


def attack_process(port: int, lanes: list[dict[str, Any]], start_at: float, end_at: float) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(max_workers=len(lanes)) as pool:
        futures = [pool.submit(attack_lane, port, lane, start_at, end_at) for lane in lanes]
        return [future.result() for future in futures]


def attack_plan(sites: list[tuple[str, str]], decoys: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Lanes per process (one process per pattern, so the patterns don't share a GIL)."""
    main = [sites[0]]
    customers = sites[: len(CUSTOMER_SITES)]

    def lane(pattern: str, n: int, ip: str, rate: float | None, **extra: Any) -> dict[str, Any]:
        spec = {"pattern": pattern, "lane": n, "ip": ip, "rate": rate, "ua": ATTACKER_UA, "sites": main}
        spec.update({"seed": 1000 * len(pattern) + n, "max_requests": 100_000, "decoys": decoys})
        spec.update(extra)
        return spec

    return {
        "flood": [lane("flood", 0, FLOOD_IP, None), lane("flood", 1, FLOOD_IP, None)],
        "spoof": [lane("spoof", 0, SPOOF_IP, None)],
        "sweep": [lane("sweep", 0, SWEEP_IP, 20.0, sites=customers)],
        "bot": [lane("bot", n, ip, 4.0, ua=BOT_UAS[n % 2]) for n, ip in enumerate(BOT_IPS)],
        "body": [lane("body", n, ip, 20.0 if n == 0 else 4.0) for n, ip in enumerate(BODY_IPS)],
    }


# -- cost phase --------------------------------------------------------------------------------


def cost_lane(port: int, mode: str, lane: int, site: tuple[str, str], banned_ip: str, seconds: float) -> dict[str, Any]:
    """Closed loop for `seconds`: as the banned IP, or as a fresh legit IP per request."""
    sid, domain = site
    hosts = list(COST_NET.hosts())
    share = len(hosts) // 2
    mine = hosts[lane * share : (lane + 1) * share]
    latencies: list[float] = []
    counts: Counter[str] = Counter()
    end_at = time.time() + seconds
    limit = len(mine) if mode == "accepted" else 200_000
    i = 0
    while time.time() < end_at and i < limit:
        ip = banned_ip if mode == "banned" else str(mine[i])
        body = dumps({"n": "pageview", "u": f"https://{domain}/cost-{mode}", "w": 1280, "sid": sid})
        status, dropped, latency, _ = post(port, body, headers_for(ip, ATTACKER_UA, f"https://{domain}"))
        counts[category(status, dropped)] += 1
        latencies.append(latency)
        i += 1
    return {"latencies": latencies, "counts": dict(counts)}


# In-process CPU of the Django part of a banned and an accepted request (no gunicorn, no socket):
# run with the drill's environment, against the drill's database, while the server is up.
PROFILE_CODE = """
import io, json, sys, time
import django
django.setup()
import security.metrics
from fathom.wsgi import application
banned_ip, sid, domain, ua = sys.argv[1:5]
body = json.dumps({"n": "pageview", "u": f"https://{domain}/cost-profile", "sid": sid}).encode()

def environ(ip):
    return {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/event", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
            "HTTP_HOST": "127.0.0.1", "REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": ip,
            "HTTP_USER_AGENT": ua, "HTTP_ORIGIN": f"https://{domain}", "CONTENT_TYPE": "text/plain",
            "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr, "SERVER_PROTOCOL": "HTTP/1.1"}

def run(ips):
    statuses = {}
    start = time.process_time()
    for ip in ips:
        out = application(environ(ip), lambda status, headers: statuses.update({status: statuses.get(status, 0) + 1}))
        b"".join(out)
        out.close()
    return (time.process_time() - start) * 1000 / len(ips), statuses

fresh = [f"198.19.{64 + i // 250}.{i % 250 + 1}" for i in range(700)]
run([banned_ip] * 200)
run(fresh[:200])
banned = run([banned_ip] * 3000)
record = security.metrics.record
security.metrics.record = lambda *args, **kwargs: None
banned_no_metrics = run([banned_ip] * 3000)
security.metrics.record = record
accepted = run(fresh[200:])
print(json.dumps({"banned": banned, "banned_no_metrics": banned_no_metrics, "accepted": accepted}))
"""


# -- processes we start ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of one process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def proc_cpu_seconds(pid: int) -> float:
    return sum(proc_cpu_split(pid))


def children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def box_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine."""
    values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def all_cpu() -> dict[int, tuple[str, int, float]]:
    """pid -> (command name, parent pid, CPU seconds) of every process (read from /proc only)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        name = text[text.find("(") + 1 : text.rfind(")")]
        fields = text.rsplit(")", 1)[1].split()
        out[int(entry.name)] = (name, int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return out


CPU_GROUPS = ("gunicorn", "celery worker", "load generator", "MariaDB", "Redis", "other")


def cpu_by_group(
    before: dict[int, tuple[str, int, float]], after: dict[int, tuple[str, int, float]], seconds: float, roots: dict
) -> dict[str, float]:
    """Cores used per group between two all_cpu() snapshots. roots: group -> pids whose trees belong to it."""

    def tree(pid: int) -> set[int]:
        found, todo = {pid}, [pid]
        while todo:
            parent = todo.pop()
            kids = [p for p, (_, ppid, _) in after.items() if ppid == parent and p not in found]
            found.update(kids)
            todo.extend(kids)
        return found

    owner: dict[int, str] = {}
    for group in ("gunicorn", "celery worker"):
        for pid in roots.get(group, ()):
            owner.update(dict.fromkeys(tree(pid), group))
    for pid in tree(os.getpid()):
        owner.setdefault(pid, "load generator")
    used = dict.fromkeys(CPU_GROUPS, 0.0)
    for pid, (name, _, cpu) in after.items():
        delta = cpu - before.get(pid, (name, 0, 0.0))[2]
        group = owner.get(pid)
        if group is None:
            group = "MariaDB" if name in ("mariadbd", "mysqld") else "Redis" if name.startswith("redis") else "other"
        used[group] += max(0.0, delta)
    return {group: value / seconds for group, value in used.items()}


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total else 0.0


class Service:
    """A subprocess this script starts, logs to a file and stops by its own pid."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.logfile = Path(tempfile.gettempdir()) / f"attack-{name}-{os.getpid()}.log"
        self._log = self.logfile.open("wb")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.paused = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def pause(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.alive() and self.paused:
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        if self.alive():
            self.resume()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()

    def log_text(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""


# -- database and Redis --------------------------------------------------------------------------


def drill_env() -> dict[str, str]:
    return app_env(
        DB_NAME,
        REDIS_URL=REDIS_URL,
        CELERY_BROKER_URL=REDIS_URL,
        TRUSTED_PROXY_HOPS="1",
        ALLOWED_HOSTS="127.0.0.1",
        LOG_LEVEL="WARNING",
    )


def redis_client() -> Any:
    import redis

    return redis.Redis.from_url(REDIS_URL)


def flush_redis_db11() -> int:
    client = redis_client()
    keys = int(client.dbsize())
    client.flushdb()
    return keys


def create_database() -> None:
    conn = mysql_connect()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{DB_NAME}`")
        cur.execute(f"CREATE DATABASE `{DB_NAME}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    conn.close()


def drop_database() -> None:
    conn = mysql_connect()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{DB_NAME}`")
    conn.close()


def manage(*args: str) -> str:
    out = subprocess.run(
        [str(PYTHON), "manage.py", *args], cwd=ROOT, env=drill_env(), check=True, capture_output=True, text=True
    )
    return out.stdout


def app_knobs() -> dict[str, Any]:
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({k: getattr(s, k) for k in ('COLLECTOR_RATE', 'COLLECTOR_SITE_RATE', "
        "'COLLECTOR_MAX_BODY', 'DETECT_HUMAN_MAX_PER_MINUTE', 'DETECT_MAX_SITES_PER_HOUR', 'AUTO_BAN_SCORE', "
        "'AUTO_BAN_BASE_MINUTES', 'TRUSTED_PROXY_HOPS')}))"
    )
    out = subprocess.run([str(PYTHON), "-c", code], cwd=ROOT, env=drill_env(), check=True, capture_output=True)
    return json.loads(out.stdout)


def query(sql: str, params: list[Any] | None = None) -> list[tuple]:
    conn = mysql_connect(DB_NAME)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params or [])
            return list(cur.fetchall())
    finally:
        conn.close()


def execute(sql: str, params: list[Any] | None = None) -> int:
    conn = mysql_connect(DB_NAME)
    try:
        with conn.cursor() as cur:
            rows = cur.execute(sql, params or [])
        conn.commit()
        return int(rows)
    finally:
        conn.close()


def utc_ts(value: dt.datetime | None) -> float | None:
    return value.replace(tzinfo=dt.UTC).timestamp() if value is not None else None


# Other work on the shared MariaDB (another database's queries) skews every figure here: counted.
FOREIGN_QUERIES = (
    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND = 'Query' "
    f"AND (DB IS NULL OR DB <> '{DB_NAME}') AND ID <> CONNECTION_ID() AND INFO NOT LIKE '%PROCESSLIST%'"
)


def box_is_quiet() -> tuple[bool, str]:
    load = os.getloadavg()[0]
    try:
        conn = mysql_connect()
        with conn.cursor() as cur:
            cur.execute(FOREIGN_QUERIES)
            foreign = int(cur.fetchone()[0])
        conn.close()
    except Exception:
        foreign = 0
    return load < 0.8 and foreign == 0, f"load average {load:.2f}, other MariaDB queries running: {foreign}"


def wait_for_quiet(limit: float) -> str:
    """Wait (at most `limit` s) until the box looks idle; returns what it looked like at the start."""
    deadline = time.monotonic() + limit
    quiet, state = box_is_quiet()
    while not quiet and time.monotonic() < deadline:
        time.sleep(5)
        quiet, state = box_is_quiet()
    return state


class Poller(threading.Thread):
    """Once a second: which IPs have a FlaggedIP row, which networks a Ban row (first seen)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop_event = threading.Event()
        self.flag_seen: dict[str, float] = {}
        self.ban_seen: dict[str, float] = {}
        self.polls = 0
        self.errors = 0
        self.foreign_busy = 0  # polls that saw MariaDB running a query for another database

    def run(self) -> None:
        conn = mysql_connect(DB_NAME)
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
                        cur.execute(FOREIGN_QUERIES)
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


def queue_depth() -> tuple[int, int]:
    """(messages waiting in the ingest queue, messages reserved by the worker and not yet acked)."""
    client = redis_client()
    return int(client.llen("ingest")), int(client.hlen("unacked"))


def wait_drained(limit: float) -> tuple[bool, float, int]:
    """Wait (at most `limit` s) until the queue is empty twice in a row: (drained, seconds, left)."""
    start = time.monotonic()
    empty = 0
    waiting = reserved = 0
    while time.monotonic() - start < limit:
        waiting, reserved = queue_depth()
        empty = empty + 1 if waiting == 0 and reserved == 0 else 0
        if empty >= 2:
            return True, time.monotonic() - start, 0
        time.sleep(0.5)
    return False, time.monotonic() - start, waiting + reserved


# -- statistics ----------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.2f} %" if whole else "n/a"


def legit_summary(records: list[tuple]) -> dict[str, Any]:
    counts = Counter(category(r[3], r[4]) for r in records)
    latencies = [r[2] for r in records if r[3] != ERROR]
    lags = [max(0.0, r[1] - r[0]) for r in records]
    return {
        "requests": len(records),
        "ok": counts.get(ACCEPTED, 0),
        "counts": dict(counts),
        "p50": pct(latencies, 50),
        "p95": pct(latencies, 95),
        "p99": pct(latencies, 99),
        "max": max(latencies) if latencies else float("nan"),
        "lag_p95": pct(lags, 95),
        "kinds": dict(Counter(r[5] for r in records)),
    }


def timeline(records: list[tuple], t0: float, t1: float, step: float) -> list[dict[str, Any]]:
    rows = []
    t = t0
    while t < t1 - 0.5:
        part = [r for r in records if t <= r[0] < t + step]
        summary = legit_summary(part)
        rows.append({"from": t - t0, "to": min(t + step, t1) - t0, **summary})
        t += step
    return rows


# -- the drill -----------------------------------------------------------------------------------


@dataclass
class Drill:
    baseline: float
    duration: float
    users: int
    cost_seconds: float
    gap: tuple[float, float]
    command: str
    output: Path
    port: int = field(default_factory=free_port)
    sites: list[tuple[str, str]] = field(default_factory=list)  # (public id, domain), customers then cost
    site_ids: dict[str, int] = field(default_factory=dict)  # domain -> pk
    server: Service | None = None
    worker: Service | None = None
    results: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    nat: bool = True
    return_seconds: float = 10.0

    def legit_users(self) -> list[dict[str, Any]]:
        return legit_users(self.users, self.sites, seed=1, nat=self.nat)

    # setup / teardown

    def setup(self) -> None:
        keys = flush_redis_db11()
        log(f"redis db 11: flushed ({keys} keys)")
        create_database()
        log(f"database {DB_NAME}: created, migrating")
        manage("migrate", "--noinput", "-v", "0")
        for domain in [*CUSTOMER_SITES, COST_SITE]:
            public_id = manage("createsite", domain, "--timezone", "UTC").strip().splitlines()[-1].strip()
            self.sites.append((public_id, domain))
        self.site_ids = {domain: pk for pk, domain in query("SELECT id, domain FROM dashboard_site")}
        log(f"sites: {', '.join(f'{d}={p}' for p, d in self.sites)}")
        self.results["knobs"] = app_knobs()
        env = drill_env()
        self.server = Service(
            "gunicorn",
            [
                str(GUNICORN),
                "fathom.wsgi",
                "-w",
                "2",
                "-k",
                "sync",
                "-b",
                f"127.0.0.1:{self.port}",
                "--log-level",
                "warning",
                "--error-logfile",
                "-",
            ],
            env,
        )
        self.worker = Service(
            "celery",
            [
                str(CELERY),
                "-A",
                "fathom",
                "worker",
                "-Q",
                "ingest,default",
                "-c",
                "1",
                "--pool",
                "solo",
                "-n",
                f"attack-drill-{os.getpid()}@%h",
                "--loglevel",
                "WARNING",
            ],
            env,
        )
        self.wait_ready()
        self.warm_up()

    def wait_ready(self) -> None:
        assert self.server is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not self.server.alive():
                raise RuntimeError(f"gunicorn exited; see {self.server.logfile}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/readyz", headers={"X-Forwarded-For": WARMUP_IP})
                response = conn.getresponse()
                response.read()
                conn.close()
                if response.status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        else:
            raise RuntimeError(f"gunicorn not ready within 60 s; see {self.server.logfile}")
        workers = children(self.server.pid)
        log(f"gunicorn: 2 sync workers on 127.0.0.1:{self.port} (master {self.server.pid}, workers {workers})")

    def warm_up(self) -> None:
        """A few hits to the cost site so both workers have their caches and today's salt exists."""
        sid, domain = self.sites[-1]
        statuses = Counter()
        for i in range(8):
            body = dumps({"n": "pageview", "u": f"https://{domain}/warmup-{i}", "sid": sid})
            statuses[post(self.port, body, headers_for(WARMUP_IP, LEGIT_UAS[0], f"https://{domain}"))[0]] += 1
        time.sleep(2)
        assert self.worker is not None
        if not self.worker.alive():
            raise RuntimeError(f"celery worker exited; see {self.worker.logfile}")
        log(f"warm-up: {dict(statuses)}; celery worker pid {self.worker.pid}")

    def cleanup(self) -> None:
        for service in (self.server, self.worker):
            if service is not None:
                with contextlib.suppress(Exception):
                    service.stop()
                if "server_log" in self.results:  # read into the results: the file is not needed
                    service.logfile.unlink(missing_ok=True)
        with contextlib.suppress(Exception):
            drop_database()
            log(f"database {DB_NAME}: dropped")
        with contextlib.suppress(Exception):
            log(f"redis db 11: flushed ({flush_redis_db11()} keys)")

    # phases

    def run(self) -> None:
        self.setup()
        assert self.server is not None
        assert self.worker is not None
        decoy_users = self.legit_users()
        decoys = [user["ip"] for user in decoy_users[:50]]
        plan = attack_plan(self.sites, decoys)
        t_base = time.time() + 2.0
        t_attack = t_base + self.baseline
        t_end = t_attack + self.duration
        self.results["times"] = {"base": t_base, "attack": t_attack, "end": t_end}
        log(
            f"baseline {self.baseline:g} s, then attack {self.duration:g} s; legit: {self.users} users, "
            f"a pageview every {self.gap[0]:g}-{self.gap[1]:g} s each"
        )
        poller = Poller()
        poller.start()
        roots = {"gunicorn": [self.server.pid], "celery worker": [self.worker.pid]}
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=1 + len(plan), mp_context=context) as pool:
            legit_future = pool.submit(legit_stream, self.port, decoy_users, t_base, t_end, self.gap, 7)
            attack_futures: dict[str, Future] = {
                name: pool.submit(attack_process, self.port, lanes, t_attack, t_end) for name, lanes in plan.items()
            }
            cpu = {}
            self._sleep_until(t_base)
            cpu["base0"] = box_cpu()
            procs = {"base0": all_cpu()}
            self._sleep_until(t_attack)
            cpu["attack0"] = box_cpu()
            procs["attack0"] = all_cpu()
            log("attack phase: flood, spoof, sweep, bots, bodies")
            self._sleep_until(t_end)
            cpu["attack1"] = box_cpu()
            procs["attack1"] = all_cpu()
            queued_at_end = queue_depth()
            legit = legit_future.result(timeout=120)
            attacks = {name: future.result(timeout=120) for name, future in attack_futures.items()}
        poller.stop()
        self.results.update(
            legit=legit,
            attacks=attacks,
            flag_seen=poller.flag_seen,
            ban_seen=poller.ban_seen,
            polls=poller.polls,
            poll_errors=poller.errors,
            foreign_busy=poller.foreign_busy,
            queued_at_end=queued_at_end,
            cpu_groups={
                "baseline": cpu_by_group(procs["base0"], procs["attack0"], self.baseline, roots),
                "attack": cpu_by_group(procs["attack0"], procs["attack1"], self.duration, roots),
            },
            box_busy={
                "baseline": busy_share(cpu["base0"], cpu["attack0"]),
                "attack": busy_share(cpu["attack0"], cpu["attack1"]),
            },
        )
        log(f"load done: {len(legit)} legit requests; queue at the end of the attack: {queued_at_end}")
        drained = wait_drained(self.drain_budget(reserve=40 + 2 * self.cost_seconds))
        self.results["drain_attack"] = drained
        log(f"queue drained after the attack: {drained[0]} in {drained[1]:.1f} s ({drained[2]} left)")
        self.results["flags_attack"] = query(
            "SELECT ip, score, status, reasons, first_seen, times_banned FROM security_flaggedip"
        )
        self.results["bans_attack"] = query("SELECT network, created_at, expires_at, reason, source FROM security_ban")
        self.cost_phase()
        self.return_phase()
        drained = wait_drained(self.drain_budget(reserve=8))
        self.results["drain_final"] = drained
        log(f"queue drained at the end: {drained[0]} in {drained[1]:.1f} s ({drained[2]} left)")
        self.collect()

    def drain_budget(self, reserve: float) -> float:
        """Seconds the next drain may take, keeping the default run within ~4 minutes."""
        left = 225 - (time.monotonic() - self.started) - reserve
        return max(15.0, min(90.0, left))

    @staticmethod
    def _sleep_until(t: float) -> None:
        time.sleep(max(0.0, t - time.time()))

    def cost_phase(self) -> None:
        assert self.server is not None
        assert self.worker is not None
        banned = {row[0].removesuffix("/32") for row in query("SELECT network FROM security_ban")}
        banned_ip = FLOOD_IP
        if FLOOD_IP not in banned:
            banned_ip = FALLBACK_BANNED_IP
            manage("ban", banned_ip, "--reason", "attack drill: cost phase", "--for", "1h")
            time.sleep(1.5)  # every process reloads its snapshot within a second
            log(f"flood IP not banned: banned {banned_ip} by hand for the cost phase")
        self.results["cost_banned_ip"] = banned_ip
        site = self.sites[-1]
        self.worker.pause()
        log(f"cost phase: celery worker paused; {self.cost_seconds:g} s banned ({banned_ip}), then accepted")
        cost: dict[str, Any] = {}
        workers = children(self.server.pid)
        context = multiprocessing.get_context("fork")
        try:
            with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
                for mode in ("banned", "accepted"):
                    split0 = [proc_cpu_split(pid) for pid in workers]
                    box0 = box_cpu()
                    t0 = time.perf_counter()
                    futures = [
                        pool.submit(cost_lane, self.port, mode, n, site, banned_ip, self.cost_seconds) for n in (0, 1)
                    ]
                    parts = [future.result(timeout=self.cost_seconds + 60) for future in futures]
                    elapsed = time.perf_counter() - t0
                    split1 = [proc_cpu_split(pid) for pid in workers]
                    user = sum(b[0] - a[0] for a, b in zip(split0, split1, strict=True))
                    system = sum(b[1] - a[1] for a, b in zip(split0, split1, strict=True))
                    latencies = [x for part in parts for x in part["latencies"]]
                    counts: Counter[str] = Counter()
                    for part in parts:
                        counts.update(part["counts"])
                    n = len(latencies)
                    cost[mode] = {
                        "requests": n,
                        "rps": n / elapsed if elapsed else 0.0,
                        "p50": pct(latencies, 50),
                        "p95": pct(latencies, 95),
                        "cpu_ms": (user + system) * 1000 / n if n else float("nan"),
                        "user_ms": user * 1000 / n if n else float("nan"),
                        "sys_ms": system * 1000 / n if n else float("nan"),
                        "counts": dict(counts),
                        "box_busy": busy_share(box0, box_cpu()),
                    }
                    c = cost[mode]
                    log(
                        f"  {mode:<8} {c['requests']:>6} requests {c['rps']:7.0f} req/s  p50 {ms(c['p50'])} ms  "
                        f"p95 {ms(c['p95'])} ms  gunicorn CPU {c['cpu_ms']:.2f} ms/request  {c['counts']}"
                    )
            cost["django"] = self.profile(banned_ip, site)
            queued = queue_depth()[0]  # the worker is paused: one message per hit of this phase
        finally:
            self.worker.resume()
        # The hits of the cost phase, ingested by the worker: its CPU per hit.
        wcpu0 = proc_cpu_seconds(self.worker.pid)
        drained = wait_drained(self.drain_budget(reserve=10))
        wcpu1 = proc_cpu_seconds(self.worker.pid)
        ingested = queued - drained[2]
        cost["ingest_cpu_ms"] = (wcpu1 - wcpu0) * 1000 / ingested if ingested > 0 else float("nan")
        cost["drain"] = drained
        self.results["cost"] = cost
        log(f"queue drained after the cost phase: {drained[0]} in {drained[1]:.1f} s ({drained[2]} left)")

    @staticmethod
    def profile(banned_ip: str, site: tuple[str, str]) -> dict[str, Any] | None:
        """CPU ms of the Django part of each request type, in one process without gunicorn."""
        try:
            out = subprocess.run(
                [str(PYTHON), "-c", PROFILE_CODE, banned_ip, site[0], site[1], ATTACKER_UA],
                cwd=ROOT,
                env=drill_env(),
                check=True,
                capture_output=True,
                text=True,
                timeout=120,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
        except (subprocess.SubprocessError, ValueError, IndexError) as exc:
            log(f"in-process profile failed: {exc}")
            return None
        log(
            "  in-process (Django only): banned {:.2f} ms, banned without the metrics counter {:.2f} ms, "
            "accepted {:.2f} ms CPU per request".format(
                result["banned"][0], result["banned_no_metrics"][0], result["accepted"][0]
            )
        )
        return result

    def return_phase(self) -> None:
        """The flood IP comes back when its auto-ban has expired: is it banned again?

        Its hour is not waited for: the Ban row's expiry is moved to the past and `manage.py
        expire_bans` (what the scheduler runs every minute) does the rest, as it would an hour later."""
        if self.results.get("cost_banned_ip") != FLOOD_IP:
            log("return phase skipped: the flood IP was not auto-banned")
            return
        assert self.server is not None
        execute(
            "UPDATE security_ban SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND WHERE network = %s",
            [f"{FLOOD_IP}/32"],
        )
        expired = manage("expire_bans").strip()
        before = query("SELECT status, score, times_banned FROM security_flaggedip WHERE ip = %s", [FLOOD_IP])
        time.sleep(1.5)  # every process reloads its ban snapshot within a second
        log(f"return phase: ban of {FLOOD_IP} expired ({expired}); flag row {before}")
        log(f"  flooding again from {FLOOD_IP} for {self.return_seconds:g} s")
        lanes = [
            {
                "pattern": "return",
                "lane": n,
                "ip": FLOOD_IP,
                "rate": None,
                "ua": ATTACKER_UA,
                "sites": [self.sites[0]],
                "seed": 77 + n,
                "max_requests": 100_000,
                "decoys": [],
            }
            for n in (0, 1)
        ]
        start = time.time() + 0.5
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            future = pool.submit(attack_process, self.port, lanes, start, start + self.return_seconds)
            result = future.result(timeout=self.return_seconds + 60)
        time.sleep(1.0)
        after_flag = query("SELECT status, score, times_banned FROM security_flaggedip WHERE ip = %s", [FLOOD_IP])
        after_ban = query("SELECT created_at, expires_at FROM security_ban WHERE network = %s", [f"{FLOOD_IP}/32"])
        counts: Counter[str] = Counter()
        for lane in result:
            counts.update(lane["counts"])
        self.results["return"] = {
            "start": start,
            "seconds": self.return_seconds,
            "lanes": result,
            "counts": dict(counts),
            "requests": sum(lane["requests"] for lane in result),
            "flag_before": before[0] if before else None,
            "flag_after": after_flag[0] if after_flag else None,
            "ban_after": after_ban[0] if after_ban else None,
        }
        log(f"  returning flood: {dict(counts)}; flag row after {after_flag}; ban row after {after_ban}")

    def collect(self) -> None:
        """What reached the database, read after the queue drained."""
        r = self.results
        r["flags"] = query("SELECT ip, score, status, reasons, first_seen, times_banned FROM security_flaggedip")
        r["bans"] = query("SELECT network, created_at, expires_at, reason, source FROM security_ban")
        r["attack_events"] = query(
            "SELECT site_id, path, name, ts FROM collector_event WHERE path LIKE %s", ["/attack-%"]
        )
        r["hourly"] = query("SELECT site_id, SUM(pageviews), SUM(events) FROM collector_hourlytotal GROUP BY site_id")
        assert self.server is not None
        assert self.worker is not None
        r["server_log"] = self.server.log_text()
        r["worker_log"] = self.worker.log_text()


# -- the report ----------------------------------------------------------------------------------


def analyse(drill: Drill) -> dict[str, Any]:
    r = drill.results
    t = r["times"]
    legit = r["legit"]
    base_records = [x for x in legit if t["base"] <= x[0] < t["attack"]]
    attack_records = [x for x in legit if t["attack"] <= x[0] < t["end"]]
    a: dict[str, Any] = {
        "baseline": legit_summary(base_records),
        "attack": legit_summary(attack_records),
        "timeline": timeline(attack_records, t["attack"], t["end"], 5.0),
    }
    users = drill.legit_users()
    legit_ips = {user["ip"] for user in users}
    # Bans and flags as they were when the attack phase ended (the return phase changes them).
    bans = {row[0].removesuffix("/32"): utc_ts(row[1]) for row in r["bans_attack"]}
    flags_attack = {row[0]: row for row in r["flags_attack"]}
    flags = {row[0]: row for row in r["flags"]}
    a["groups"] = {
        group: {
            phase: legit_summary([x for x in records if users[x[6]]["group"] == group])
            for phase, records in (("baseline", base_records), ("attack", attack_records))
        }
        for group in GROUPS
        if any(user["group"] == group for user in users)
    }
    group_of = {user["ip"]: user["group"] for user in users}
    minutes = (t["end"] - t["base"]) / 60
    a["group_hits_per_minute"] = {
        group: sum(1 for x in legit if users[x[6]]["group"] == group and t["base"] <= x[0] < t["end"]) / minutes
        for group in a["groups"]
    }
    a["false_positive_rows"] = [
        {
            "ip": ip,
            "group": group_of[ip],
            "score": flags[ip][1],
            "status": flags[ip][2],
            "reasons": reasons_of(flags[ip][3]),
            "first_seen": rel(utc_ts(flags[ip][4]), t["attack"]),
            "banned": ip in bans,
        }
        for ip in sorted(flags)
        if ip in legit_ips
    ]
    a["bans"] = bans
    a["false_flags"] = sorted(ip for ip in flags if ip in legit_ips)
    a["false_bans"] = sorted(ip for ip in bans if ip in legit_ips)
    attacker_ips = {FLOOD_IP, SPOOF_IP, SWEEP_IP, *BOT_IPS, *BODY_IPS, FALLBACK_BANNED_IP}
    a["stray_flags"] = sorted(ip for ip in flags if ip not in legit_ips and ip not in attacker_ips)

    # Attack events: path /attack-<pattern>-<lane> -> the lane's IP.
    events_by_lane: dict[tuple[str, int], list[float]] = defaultdict(list)
    for _site, path, _name, ts in r["attack_events"]:
        match = re.fullmatch(r"/attack-(\w+)-(\d+)", path)
        key = (match.group(1), int(match.group(2))) if match else ("?", 0)
        events_by_lane[key].append(utc_ts(ts) or 0.0)

    patterns = {}
    for name, lanes in r["attacks"].items():
        counts: Counter[str] = Counter()
        for lane in lanes:
            counts.update(lane["counts"])
        ips = sorted({lane["ip"] for lane in lanes})
        per_ip = {}
        for ip in ips:
            ip_lanes = [lane for lane in lanes if lane["ip"] == ip]
            ban_at = bans.get(ip)
            first_403 = min((lane["first"]["403"] for lane in ip_lanes if "403" in lane["first"]), default=None)
            accepted_after_ban = sum(
                1 for lane in ip_lanes for x in lane["accepted_at"] if ban_at is not None and x > ban_at
            )
            events = [x for lane in ip_lanes for x in events_by_lane.get((name, lane["lane"]), [])]
            row = flags_attack.get(ip)
            per_ip[ip] = {
                "flag_poll": rel(r["flag_seen"].get(ip), t["attack"]),
                "flag_db": rel(utc_ts(row[4]) if row else None, t["attack"]),
                "ban_poll": rel(r["ban_seen"].get(ip), t["attack"]),
                "ban_db": rel(ban_at, t["attack"]),
                "first_403": rel(first_403, t["attack"]),
                "score": row[1] if row else None,
                "status": row[2] if row else "",
                "reasons": reasons_of(row[3]) if row else {},
                "accepted": sum(lane["counts"].get(ACCEPTED, 0) for lane in ip_lanes),
                "accepted_after_ban": accepted_after_ban,
                "events": len(events),
                "events_after_ban": sum(1 for x in events if ban_at is not None and x >= ban_at),
            }
        patterns[name] = {
            "requests": sum(lane["requests"] for lane in lanes),
            "counts": dict(counts),
            "ips": per_ip,
            "events": sum(v["events"] for v in per_ip.values()),
            "events_after_ban": sum(v["events_after_ban"] for v in per_ip.values()),
            "events_never_banned": sum(v["events"] for ip, v in per_ip.items() if ip not in bans),
        }
    a["patterns"] = patterns
    ret = r.get("return")
    if ret:
        events = [x for lane in ret["lanes"] for x in events_by_lane.get(("return", lane["lane"]), [])]
        first_403 = min((lane["first"]["403"] for lane in ret["lanes"] if "403" in lane["first"]), default=None)
        a["return"] = {
            **{k: ret[k] for k in ("requests", "counts", "seconds", "flag_before", "flag_after", "ban_after")},
            "events": len(events),
            "first_403": rel(first_403, ret["start"]),
            "rebanned": ret["ban_after"] is not None,
        }

    # Customer stats: HourlyTotal pageviews per site against legit pageviews answered 202 + attack rows.
    id_domain = {pk: domain for domain, pk in drill.site_ids.items()}
    sid_domain = dict(drill.sites)
    legit_pv: Counter[str] = Counter()
    legit_ev: Counter[str] = Counter()
    for rec in legit:
        if category(rec[3], rec[4]) != ACCEPTED:
            continue
        domain = sid_domain[users[rec[6]]["sid"]]
        if rec[5] == "pageview":
            legit_pv[domain] += 1
        elif rec[5] == "event":
            legit_ev[domain] += 1
    attack_pv: Counter[str] = Counter()
    for site_id, _path, name, _ts in r["attack_events"]:
        if name == "pageview":
            attack_pv[id_domain.get(site_id, "?")] += 1
    hourly = {id_domain.get(row[0], "?"): (int(row[1] or 0), int(row[2] or 0)) for row in r["hourly"]}
    sites = []
    for domain in CUSTOMER_SITES:
        pv, ev = hourly.get(domain, (0, 0))
        sites.append(
            {
                "domain": domain,
                "hourly_pv": pv,
                "legit_pv": legit_pv[domain],
                "attack_pv": attack_pv[domain],
                "unexplained": pv - legit_pv[domain] - attack_pv[domain],
                "hourly_ev": ev,
                "legit_ev": legit_ev[domain],
            }
        )
    a["sites"] = sites

    cost = r["cost"]
    a["cost_ratio_cpu"] = cost["banned"]["cpu_ms"] / cost["accepted"]["cpu_ms"] if cost["accepted"]["cpu_ms"] else 0
    a["cost_ratio_p50"] = cost["banned"]["p50"] / cost["accepted"]["p50"] if cost["accepted"]["p50"] else 0
    a["cost_ratio_rps"] = cost["accepted"]["rps"] / cost["banned"]["rps"] if cost["banned"]["rps"] else 0

    server_log, worker_log = r["server_log"], r["worker_log"]
    a["tracebacks"] = server_log.count("Traceback") + worker_log.count("Traceback")
    a["server_errors"] = [line for line in server_log.splitlines() if " ERROR " in line or "CRITICAL" in line][:10]
    a["worker_errors"] = [line for line in worker_log.splitlines() if " ERROR " in line or "CRITICAL" in line][:10]
    a["worker_dropped_banned"] = sum(
        int(m.group(1)) for m in re.finditer(r"dropped (\d+) hits from addresses banned", worker_log)
    )
    a["auto_ban_lines"] = len(re.findall(r"auto-banned", server_log))
    a["five_xx"] = {
        "legit": sum(1 for x in legit if x[3] >= 500),
        "attack": sum(p["counts"].get("5xx", 0) for p in patterns.values()),
        "cost": sum(cost[m]["counts"].get("5xx", 0) for m in ("banned", "accepted")),
    }

    legit_rate = a["attack"]["ok"] / a["attack"]["requests"] if a["attack"]["requests"] else 0.0
    after_ban = sum(p["events_after_ban"] for p in patterns.values())
    a["targets"] = [
        ("legit success under attack >= 99 %", share(a["attack"]["ok"], a["attack"]["requests"]), legit_rate >= 0.99),
        (
            "zero attack hits counted once banned",
            f"{after_ban} Event rows with ts after the IP's ban",
            after_ban == 0,
        ),
        (
            "banned request <= 1/3 of an accepted one (gunicorn CPU per request)",
            f"{a['cost_ratio_cpu']:.2f} ({ms_val(cost['banned']['cpu_ms'])} vs {ms_val(cost['accepted']['cpu_ms'])})",
            a["cost_ratio_cpu"] <= 1 / 3,
        ),
    ]
    return a


def reasons_of(value: Any) -> dict[str, int]:
    return json.loads(value) if isinstance(value, str) else dict(value or {})


def rel(value: float | None, t0: float) -> float | None:
    return None if value is None else value - t0


def ms_val(value: float) -> str:
    return f"{value:.2f} ms"


def ip_list(ips: list[str]) -> str:
    return f"{len(ips)} ({', '.join(ips[:20])}{', ...' if len(ips) > 20 else ''})" if ips else "0"


def secs(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f} s"


def table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return out


def report_lines(drill: Drill, a: dict[str, Any]) -> list[str]:
    r = drill.results
    knobs = r["knobs"]
    m = r["machine"]
    cost = r["cost"]
    base, att = a["baseline"], a["attack"]
    lines = [
        "# Attack drill: the collector under attack",
        "",
        f"Date: {REPORT_DATE}. Command (from the repository root):",
        "",
        "```",
        drill.command,
        "```",
        "",
        "Written by `bench/attack.py` (numbers and the automatic notes; the hand-written analysis at the end "
        "is kept when the script rewrites this file).",
        "",
        "## Setup",
        "",
        f"- Machine: {m['nproc']} cores ({m['cpu']}), Python {m['python']}, MariaDB {m['mariadb']}.",
        "- Server: gunicorn `fathom.wsgi -w 2 -k sync`, DEBUG=0, `TRUSTED_PROXY_HOPS=1` (the drill plays the ALB: "
        "the client IP is the last `X-Forwarded-For` entry), Redis db 11 as cache and broker, MariaDB database "
        "`bench_attack`.",
        "- Writes: a real Celery worker (`celery -A fathom worker -Q ingest,default -c 1 --pool solo`) consumed "
        "the queue during the run; the drill waited for the queue to drain before counting rows.",
        f"- App knobs (defaults, not tuned): {', '.join(f'{k}={v}' for k, v in knobs.items())}.",
        f"- Sites: {len(CUSTOMER_SITES)} customer sites (`customer0..7.example`); legit traffic on customer0/1/2 "
        f"(50/30/20 %); `{COST_SITE}` for the cost phase only.",
        f"- Legit: {drill.users} client IPs from 198.18.0.0/15, 11 browser UAs, a pageview every "
        f"{drill.gap[0]:g}-{drill.gap[1]:g} s per visitor, 15 % followed by a custom event 1-4 s later, 30 % "
        "with an engagement report before the next pageview; Origin matches the site; open loop (the schedule "
        "does not wait for answers), a fresh connection per request (sync workers close)."
        + (
            f" Plus people sharing one address each, with the same behaviour: {GROUPS['office']}; {GROUPS['cgnat']}."
            if drill.nat
            else ""
        ),
        f"- Phases: baseline {drill.baseline:g} s (legit only), attack {drill.duration:g} s (legit + all five "
        f"patterns at once), then the cost phase (2 x {drill.cost_seconds:g} s, Celery worker paused), then the "
        f"returning flood ({drill.return_seconds:g} s).",
        f"- Box at the start: {r['box_at_start']}. Whole-box CPU busy: baseline "
        f"{100 * r['box_busy']['baseline']:.0f} %, attack "
        f"{100 * r['box_busy']['attack']:.0f} % (load generator, gunicorn, worker, MariaDB and Redis share the "
        "2 cores).",
        "",
        "CPU in cores (of 2) per process group; `other` is work on the box that is not the drill's:",
        "",
        *table(
            ["phase", *CPU_GROUPS],
            [
                [phase, *(f"{r['cpu_groups'][phase][group]:.2f}" for group in CPU_GROUPS)]
                for phase in ("baseline", "attack")
            ],
        ),
        "",
        "Attack patterns (all start together when the attack phase starts; attack hits use paths "
        "`/attack-<pattern>-<lane>`):",
        "",
    ]
    lines += [f"- {name}: {text}" for name, text in PATTERNS.items()]
    lines += [
        "",
        "## Targets",
        "",
        *table(
            ["target", "result", "met"],
            [[name, value, "yes" if ok else "**no**"] for name, value, ok in a["targets"]],
        ),
        "",
        "## Legit traffic: baseline vs under attack",
        "",
        *table(
            ["phase", "requests", "202 accepted", "success", "other answers", "p50 ms", "p95 ms", "p99 ms", "max ms"],
            [
                [
                    name,
                    s["requests"],
                    s["ok"],
                    share(s["ok"], s["requests"]),
                    ", ".join(f"{k}: {v}" for k, v in sorted(s["counts"].items()) if k != ACCEPTED) or "-",
                    ms(s["p50"]),
                    ms(s["p95"]),
                    ms(s["p99"]),
                    ms(s["max"]),
                ]
                for name, s in (("baseline", base), ("attack", att))
            ],
        ),
        "",
        "By group (under attack; baseline success in brackets):",
        "",
        *table(
            ["group", "requests", "success", "p50 ms", "p95 ms", "other answers"],
            [
                [
                    GROUPS[group],
                    g["attack"]["requests"],
                    f"{share(g['attack']['ok'], g['attack']['requests'])} "
                    f"({share(g['baseline']['ok'], g['baseline']['requests'])})",
                    ms(g["attack"]["p50"]),
                    ms(g["attack"]["p95"]),
                    ", ".join(f"{k}: {v}" for k, v in sorted(g["attack"]["counts"].items()) if k != ACCEPTED) or "-",
                ]
                for group, g in a["groups"].items()
            ],
        ),
        "",
        f"Legit rate: {base['requests'] / drill.baseline:.1f} req/s baseline, {att['requests'] / drill.duration:.1f} "
        f"req/s under attack. Load-generator lag (send time after schedule) p95: {ms(base['lag_p95'])} ms baseline, "
        f"{ms(att['lag_p95'])} ms under attack. Latency is measured from connect to the end of the answer.",
        "",
        "Legit traffic during the attack, per 5 s:",
        "",
        *table(
            ["window (s after attack start)", "requests", "success", "p50 ms", "p95 ms", "max ms"],
            [
                [
                    f"{row['from']:.0f}-{row['to']:.0f}",
                    row["requests"],
                    share(row["ok"], row["requests"]),
                    ms(row["p50"]),
                    ms(row["p95"]),
                    ms(row["max"]),
                ]
                for row in a["timeline"]
            ],
        ),
        "",
        "## Attack patterns: what they got",
        "",
    ]
    cols = ["403", "429", "202-dropped", "400", "413", "404", ACCEPTED, "5xx", "error", "other"]
    rows = []
    for name, p in a["patterns"].items():
        n = p["requests"]
        rate = f"{n / drill.duration:.0f}"
        rows.append([name, n, rate, *[share(p["counts"].get(c, 0), n) if p["counts"].get(c) else "-" for c in cols]])
    lines += table(["pattern", "requests", "req/s", *cols], rows)
    lines += [
        "",
        "Per attacker IP (times relative to the attack start; flag/ban from the 1 s poll of FlaggedIP/Ban, "
        "with the row's own timestamp in brackets; first 403 as seen by the attacker):",
        "",
    ]
    ip_rows = []
    for name, p in a["patterns"].items():
        for ip, v in p["ips"].items():
            reasons = ", ".join(f"{k} {n}" for k, n in sorted(v["reasons"].items())) if v["reasons"] else "-"
            ip_rows.append(
                [
                    name,
                    ip,
                    f"{secs(v['flag_poll'])} ({secs(v['flag_db'])})",
                    f"{secs(v['ban_poll'])} ({secs(v['ban_db'])})",
                    secs(v["first_403"]),
                    v["score"] if v["score"] is not None else "-",
                    v["status"] or "-",
                    reasons,
                    v["accepted"],
                    v["accepted_after_ban"],
                    v["events"],
                    v["events_after_ban"],
                ]
            )
    lines += table(
        [
            "pattern",
            "IP",
            "flagged",
            "banned",
            "first 403",
            "score",
            "status",
            "reasons (count)",
            "202 accepted",
            "202 after ban",
            "Event rows",
            "rows after ban",
        ],
        ip_rows,
    )
    flood = a["patterns"]["flood"]["ips"].get(FLOOD_IP, {})
    lines += [
        "",
        f"Flood IP {FLOOD_IP}: first FlaggedIP row {secs(flood.get('flag_poll'))} after the attack started "
        f"(row timestamp {secs(flood.get('flag_db'))}), Ban row {secs(flood.get('ban_poll'))} "
        f"(row timestamp {secs(flood.get('ban_db'))}), first 403 at the attacker {secs(flood.get('first_403'))}.",
        f"{r['polls']} polls ({r['poll_errors']} failed); MariaDB was running another database's queries in "
        f"{r['foreign_busy']} of them. "
        f"The worker dropped {a['worker_dropped_banned']} queued hits of addresses banned after they were queued "
        "(its log).",
        "",
        "## What reached the customers' stats",
        "",
        *table(
            [
                "site",
                "HourlyTotal pageviews",
                "legit pageviews answered 202",
                "attack pageview rows (all phases)",
                "unexplained",
                "HourlyTotal events",
                "legit custom events answered 202",
            ],
            [
                [
                    s["domain"],
                    s["hourly_pv"],
                    s["legit_pv"],
                    s["attack_pv"],
                    s["unexplained"],
                    s["hourly_ev"],
                    s["legit_ev"],
                ]
                for s in a["sites"]
            ],
        ),
        "",
    ]
    total_attack = sum(p["events"] for p in a["patterns"].values())
    after_ban = sum(p["events_after_ban"] for p in a["patterns"].values())
    never = sum(p["events_never_banned"] for p in a["patterns"].values())
    total_legit_pv = sum(s["legit_pv"] for s in a["sites"])
    not_drained = "" if r["drain_attack"][0] else f" - NOT drained, {r['drain_attack'][2]} messages left"
    lines += [
        f"Attack Event rows of the attack phase: {total_attack} ({share(total_attack, total_attack + total_legit_pv)} "
        "of the customers' pageviews; the returning flood's rows, below, come on top), "
        f"{after_ban} with a timestamp after their IP's ban, {never} from IPs never banned. "
        f"Queue at the end of the attack: {r['queued_at_end'][0]} waiting, {r['queued_at_end'][1]} reserved; "
        f"drained {r['drain_attack'][1]:.1f} s later{not_drained}.",
        "",
        *return_lines(a),
        "## Cost of a banned request vs an accepted one",
        "",
        f"Same server, Celery worker paused (hits stay queued), two connections as fast as they go for "
        f"{drill.cost_seconds:g} s each: as the banned IP {r['cost_banned_ip']}, then as fresh legit IPs "
        f"(one request per IP) posting a valid pageview to `{COST_SITE}`.",
        "",
        *table(
            [
                "request",
                "requests",
                "req/s",
                "p50 ms",
                "p95 ms",
                "gunicorn CPU ms/request (user + kernel)",
                "box CPU busy",
                "answers",
            ],
            [
                [
                    mode,
                    cost[mode]["requests"],
                    f"{cost[mode]['rps']:.0f}",
                    ms(cost[mode]["p50"]),
                    ms(cost[mode]["p95"]),
                    f"{cost[mode]['cpu_ms']:.2f} ({cost[mode]['user_ms']:.2f} + {cost[mode]['sys_ms']:.2f})",
                    f"{100 * cost[mode]['box_busy']:.0f} %",
                    ", ".join(f"{k}: {v}" for k, v in sorted(cost[mode]["counts"].items())),
                ]
                for mode in ("banned", "accepted")
            ],
        ),
        "",
        f"Banned / accepted: gunicorn CPU {a['cost_ratio_cpu']:.2f}, p50 latency {a['cost_ratio_p50']:.2f}, "
        f"throughput {a['cost_ratio_rps']:.2f} (accepted req/s over banned req/s). An accepted hit also costs the "
        f"worker {cost['ingest_cpu_ms']:.2f} ms of CPU to ingest (one task per hit), plus MariaDB's share.",
        "",
        *profile_lines(cost),
        "## False positives",
        "",
        f"Legit IPs flagged: {ip_list(a['false_flags'])}. Legit IPs banned: {ip_list(a['false_bans'])}. "
        f"Other IPs flagged (e.g. the spoofer's fake X-Forwarded-For entries): {ip_list(a['stray_flags'])}.",
        "",
        *(
            table(
                ["legit IP", "group", "flagged (s after attack start)", "score", "status", "reasons (count)"],
                [
                    [
                        row["ip"],
                        GROUPS[row["group"]],
                        secs(row["first_seen"]),
                        row["score"],
                        row["status"] + (" (banned)" if row["banned"] else ""),
                        ", ".join(f"{k} {n}" for k, n in sorted(row["reasons"].items())),
                    ]
                    for row in a["false_positive_rows"]
                ],
            )
            if a["false_positive_rows"]
            else []
        ),
        "",
        "## Errors",
        "",
        f"5xx answers: legit {a['five_xx']['legit']}, attack {a['five_xx']['attack']}, cost phase "
        f"{a['five_xx']['cost']}. Tracebacks in the gunicorn and worker logs: {a['tracebacks']}.",
    ]
    for line in a["server_errors"] + a["worker_errors"]:
        lines.append(f"    {line[:200]}")
    lines += ["", "## Notes (automatic)", ""]
    lines += [f"- {note}" for note in auto_notes(drill, a)]
    return lines


def profile_lines(cost: dict[str, Any]) -> list[str]:
    django = cost.get("django")
    if not django:
        return []
    return [
        "The Django part alone (the same requests through `fathom.wsgi.application` in one process, no gunicorn, "
        "no socket; CPU time per request):",
        "",
        *table(
            ["request", "CPU ms/request", "answers"],
            [
                [label, f"{django[key][0]:.2f}", ", ".join(f"{k}: {v}" for k, v in django[key][1].items())]
                for key, label in (
                    ("banned", "banned"),
                    ("banned_no_metrics", "banned, traffic counter (metrics.record) stubbed out"),
                    ("accepted", "accepted (fresh IP each)"),
                )
            ],
        ),
        "",
    ]


def return_lines(a: dict[str, Any]) -> list[str]:
    ret = a.get("return")
    if not ret:
        return []
    counts = ", ".join(f"{k}: {share(v, ret['requests'])}" for k, v in sorted(ret["counts"].items()))
    again = "**no**"
    if ret["rebanned"]:
        created, expires = ret["ban_after"]
        again = f"yes (new Ban row {created:%H:%M:%S} UTC, expires {expires:%H:%M:%S} UTC)"
    return [
        "## The flood IP comes back after its auto-ban expired",
        "",
        f"The Ban row's expiry was moved to the past and `manage.py expire_bans` run (what the scheduler does an "
        f"hour after an auto-ban), then {FLOOD_IP} flooded customer0 again, 2 connections for {ret['seconds']:g} s.",
        "",
        f"- Requests: {ret['requests']} ({counts}); "
        f"{'first 403 ' + secs(ret['first_403']) + ' after it started' if ret['first_403'] is not None else 'no 403'}.",
        f"- FlaggedIP (status, score, times_banned) before: {ret['flag_before']}, after: {ret['flag_after']}.",
        f"- Banned again: {again}.",
        f"- Event rows written by the returning flood: {ret['events']}.",
        "",
    ]


def auto_notes(drill: Drill, a: dict[str, Any]) -> list[str]:
    notes = []
    att = a["attack"]
    failed = {k: v for k, v in att["counts"].items() if k != ACCEPTED}
    if att["requests"] and att["ok"] / att["requests"] < 0.99:
        notes.append(
            f"Legit success missed 99 %: the failed legit requests were {failed}. Errors/timeouts mean the two sync "
            "workers were saturated (a closed-loop flood keeps both busy until it is banned, and still costs a "
            "request each after); 403/429/202-dropped mean a legit visitor was misjudged."
        )
    elif failed:
        notes.append(f"Legit requests that were not accepted under attack: {failed}.")
    for name, p in a["patterns"].items():
        for ip, v in p["ips"].items():
            if v["events_after_ban"]:
                notes.append(
                    f"{name} {ip}: {v['events_after_ban']} hits written with a timestamp after the ban row "
                    f"({v['accepted_after_ban']} answers 202 after it): requests served by a worker whose ban "
                    "snapshot was up to 1 s old (bans.CHECK_EVERY), and ingested before the Celery worker's own "
                    "snapshot saw the ban."
                )
            if ip not in a["bans"] and v["events"]:
                notes.append(
                    f"{name} {ip} was never banned (score {v['score']}, reasons {v['reasons'] or '-'}) and got "
                    f"{v['events']} hits into the stats."
                )
    traffic_s = drill.baseline + drill.duration
    for row in a["false_positive_rows"]:
        reasons = row["reasons"]
        per_minute = a["group_hits_per_minute"].get(row["group"], 0.0)
        why = []
        if "rate" in reasons:
            why.append(
                f"`rate` (security/guards.py, after_collector_hit) counts hits per visitor hash (site + IP + "
                f"User-Agent) per minute; people behind one NAT address with the same browser build are one visitor "
                f"hash, here ~{per_minute:.0f} hits/min from the group against DETECT_HUMAN_MAX_PER_MINUTE"
            )
        if "many_sites" in reasons:
            why.append(
                "`many_sites` counts distinct sites per IP per hour: a carrier NAT address reaches more than "
                "DETECT_MAX_SITES_PER_HOUR customer sites within minutes, once per hour"
            )
        other = sorted(set(reasons) - {"rate", "many_sites"})
        if other:
            why.append(f"also {', '.join(other)}")
        projection = ""
        if row["score"] and set(reasons) == {"rate"} and not row["banned"]:
            minutes = 100 / row["score"] * traffic_s / 60
            projection = (
                f" At this pace (score {row['score']} in {traffic_s:.0f} s) it reaches 100 in ~{minutes:.0f} min."
            )
        notes.append(
            f"False positive: legit {GROUPS[row['group']]} ({row['ip']}) flagged, score {row['score']}"
            f"{', BANNED' if row['banned'] else ''}: {'; '.join(why)}.{projection} Points add up in the FlaggedIP "
            "row (security/detectors.py, flag()) with no decay while the row lives (FLAG_EXPIRY_DAYS, renewed by "
            "every flag), so a busy NAT address crosses AUTO_BAN_SCORE sooner or later, and the auto-ban then "
            "blocks everyone behind it."
        )
    ret = a.get("return")
    if ret and not ret["rebanned"]:
        notes.append(
            f"The returning flood IP was not banned again ({ret['events']} more hits written in {ret['seconds']:g} s, "
            "then 429s only): expire_bans() marks the FlaggedIP row of an expired /32 ban `dismissed` "
            "(security/services.py, expire_bans), and flag() auto-bans only rows with status `open` "
            "(security/detectors.py, `should_ban = row.status == FlaggedIP.Status.OPEN and ...`). As every new "
            "flag renews the row's 7-day expiry, a persistent attacker is never auto-banned again and the x4 "
            "escalation of auto_ban_duration() is never reached; it keeps getting "
            f"COLLECTOR_SITE_RATE={drill.results['knobs']['COLLECTOR_SITE_RATE']} hits per site into the stats."
        )
    body = a["patterns"].get("body", {}).get("ips", {})
    quiet = [ip for ip, v in body.items() if ip not in a["bans"] and not v["score"]]
    if quiet:
        notes.append(
            f"Body attackers {', '.join(quiet)} were never flagged: 400/413 answers do not feed any detector "
            "(only 429s do), so a client that stays under COLLECTOR_RATE can send malformed bodies forever. They "
            "cost a cheap request each and write nothing."
        )
    django = drill.results["cost"].get("django")
    if django:
        counter = django["banned"][0] - django["banned_no_metrics"][0]
        cost = drill.results["cost"]
        without = (cost["banned"]["cpu_ms"] - counter) / cost["accepted"]["cpu_ms"]
        notes.append(
            f"Of a banned request's {cost['banned']['cpu_ms']:.2f} ms in gunicorn, {django['banned'][0]:.2f} ms is "
            f'Django, and {counter:.2f} ms of that is the traffic counter (`metrics.record("banned")` in '
            "security/middleware.py, BanMiddleware: one Redis pipeline round trip per banned request). Counting "
            "banned requests in process memory and adding them to Redis once a second would take the ratio from "
            f"{a['cost_ratio_cpu']:.2f} to about {without:.2f}; the rest is gunicorn's own per-request work."
        )
    if a["cost_ratio_cpu"] > 1 / 3:
        notes.append(
            f"A banned request costs {a['cost_ratio_cpu']:.2f} of an accepted one in gunicorn CPU: the fixed cost "
            "of a sync worker request (accept, HTTP parsing, WSGI environ, Django's handler and middleware chain) "
            "dominates a bare 403. What would fix it: answer banned IPs before Python (the WAF IP set that "
            "security.waf syncs, or the proxy), not a faster 403 in Django."
        )
    if any(s["unexplained"] for s in a["sites"]):
        notes.append(
            "Some customer sites' HourlyTotal pageviews differ from legit 202 pageviews + attack rows: a lost or "
            "double-counted hit, or hits still queued when the rows were counted (see the drain line)."
        )
    if not notes:
        notes.append("Nothing unexpected.")
    return notes


def write_markdown(path: Path, lines: list[str]) -> None:
    analysis = [ANALYSIS_START, "", "## Analysis", "", "(not written yet)", "", ANALYSIS_END]
    if path.exists():
        old = path.read_text()
        start, end = old.find(ANALYSIS_START), old.find(ANALYSIS_END)
        if start != -1 and end > start:
            analysis = old[start : end + len(ANALYSIS_END)].splitlines()
    path.write_text("\n".join([*lines, "", *analysis, ""]))


def print_summary(drill: Drill, a: dict[str, Any]) -> None:
    base, att = a["baseline"], a["attack"]
    print()
    for phase, groups in drill.results["cpu_groups"].items():
        print(f"  CPU cores {phase}: " + ", ".join(f"{g} {v:.2f}" for g, v in groups.items()))
    print("== legit traffic ==")
    for name, s in (("baseline", base), ("attack", att)):
        others = {k: v for k, v in s["counts"].items() if k != ACCEPTED}
        print(
            f"  {name:<8} {s['requests']:>6} requests  success {share(s['ok'], s['requests'])}  "
            f"p50 {ms(s['p50'])} ms  p95 {ms(s['p95'])} ms  p99 {ms(s['p99'])} ms  {others or ''}"
        )
    for group, g in a["groups"].items():
        s = g["attack"]
        print(f"    {group:<9} under attack: {s['requests']:>5} requests  success {share(s['ok'], s['requests'])}")
    print("== attack patterns ==")
    for name, p in a["patterns"].items():
        counts = ", ".join(f"{k} {share(v, p['requests'])}" for k, v in sorted(p["counts"].items()))
        print(f"  {name:<6} {p['requests']:>6} requests: {counts}")
        for ip, v in p["ips"].items():
            print(
                f"      {ip:<12} flagged {secs(v['flag_poll'])} banned {secs(v['ban_poll'])} "
                f"(row {secs(v['ban_db'])}) first 403 {secs(v['first_403'])} score {v['score']} "
                f"accepted {v['accepted']} rows {v['events']} rows after ban {v['events_after_ban']}"
            )
    print("== customer stats ==")
    for s in a["sites"]:
        print(
            f"  {s['domain']:<20} HourlyTotal pv {s['hourly_pv']:>6}  legit 202 pv {s['legit_pv']:>6}  "
            f"attack rows {s['attack_pv']:>5}  unexplained {s['unexplained']}"
        )
    cost = drill.results["cost"]
    print("== cost ==")
    for mode in ("banned", "accepted"):
        c = cost[mode]
        print(
            f"  {mode:<8} {c['rps']:7.0f} req/s  p50 {ms(c['p50'])} ms  p95 {ms(c['p95'])} ms  "
            f"gunicorn CPU {c['cpu_ms']:.2f} ms/request"
        )
    print(f"  ingest CPU per accepted hit: {cost['ingest_cpu_ms']:.2f} ms")
    print("== false positives ==")
    for row in a["false_positive_rows"]:
        print(f"  {row['ip']} ({row['group']}): score {row['score']} {row['status']} {row['reasons']}")
    print(
        f"  legit flagged {a['false_flags'] or 0}, legit banned {a['false_bans'] or 0}, other {a['stray_flags'] or 0}"
    )
    print("== targets ==")
    for name, value, ok in a["targets"]:
        print(f"  [{'MET' if ok else 'MISSED'}] {name}: {value}")
    print("== notes ==")
    for note in auto_notes(drill, a):
        print(f"  - {note}")
    print(f"  5xx: {a['five_xx']}, tracebacks in logs: {a['tracebacks']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, help="attack phase seconds (default 45, --quick 20)")
    parser.add_argument("--baseline", type=float, help="baseline phase seconds (default 30, --quick 10)")
    parser.add_argument("--users", type=int, help="legit client IPs (default 300, --quick 200)")
    parser.add_argument("--cost-seconds", type=float, help="seconds per cost measurement (default 8, --quick 3)")
    parser.add_argument("--quick", action="store_true", help="short phases, to try the script (~1.5 min)")
    parser.add_argument("--output", type=Path, default=RESULTS_MD, help=f"markdown report (default {RESULTS_MD})")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        help="first wait up to this many seconds for the box to be idle (load < 0.8, no other MariaDB queries)",
    )
    parser.add_argument("--no-nat", action="store_true", help="no legit people behind shared (NAT) addresses")
    parser.add_argument("--no-write", action="store_true", help="print only, do not write the markdown report")
    args = parser.parse_args(argv)
    quick = args.quick
    drill = Drill(
        baseline=args.baseline or (10.0 if quick else 30.0),
        duration=args.duration or (20.0 if quick else 45.0),
        users=args.users or (200 if quick else 300),
        cost_seconds=args.cost_seconds or (3.0 if quick else 8.0),
        gap=(8.0, 20.0),
        nat=not args.no_nat,
        return_seconds=5.0 if quick else 10.0,
        command=shlex.join([".venv/bin/python", "bench/attack.py", *(argv if argv is not None else sys.argv[1:])]),
        output=args.output,
    )
    if min(drill.baseline, drill.duration, drill.cost_seconds) <= 0 or drill.users <= 0:
        parser.error("durations and --users must be positive")
    if drill.baseline + drill.duration > 600:
        parser.error("baseline + duration is capped at 600 s")
    if args.quiet_wait > 0:
        log(f"waiting up to {args.quiet_wait:g} s for the box to be idle")
    drill.results["box_at_start"] = wait_for_quiet(args.quiet_wait) if args.quiet_wait > 0 else box_is_quiet()[1]
    log(f"box at the start: {drill.results['box_at_start']}")
    drill.started = time.monotonic()  # the time budget of the drains counts from here
    drill.results["machine"] = machine()
    try:
        drill.run()
    finally:
        drill.cleanup()
    a = analyse(drill)
    print_summary(drill, a)
    if not args.no_write:
        write_markdown(drill.output, report_lines(drill, a))
        log(f"report written to {drill.output}")
    log(f"total {time.monotonic() - drill.started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
