"""The drill's traffic: one POST /api/event, legit visitors (open loop, on a schedule), the
attackers' lanes (closed loop or paced) and the cost phase's lanes."""

from __future__ import annotations

import heapq
import http.client
import ipaddress
import itertools
import json
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.drill.config import (
    ACCEPTED,
    ATTACKER_UA,
    BODY_IPS,
    BOT_IPS,
    BOT_UAS,
    CGNAT_IP,
    CGNAT_PEOPLE,
    COST_NET,
    CUSTOMER_SITES,
    ERROR,
    EVENTS,
    FLOOD_IP,
    LEGIT_SITE_WEIGHTS,
    LEGIT_UAS,
    OFFICE_IP,
    OFFICE_PEOPLE,
    PAGES,
    REFERRERS,
    SPOOF_IP,
    SWEEP_IP,
    TIMEOUT,
    WIDTHS,
)
from collector.payload import ENGAGEMENT

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
                data = {"n": ENGAGEMENT, "u": user["url"], "sd": rng.randint(5, 100), "e": rng.randint(1000, 90_000)}
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
