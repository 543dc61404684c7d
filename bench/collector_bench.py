"""Collector throughput: POST /api/event against POST /bench/bare on the same gunicorn server.

For each worker count: start gunicorn (sync workers, DEBUG off, Redis db 13 as cache and broker,
a MariaDB bench database), warm both endpoints up, then load each for a fixed time and report
requests/s, latency p50/p99, the statuses seen (the collector must answer 202, the bare view 204)
and the ratio collector/bare. The hits the collector queued are counted in Redis and flushed.

The load generator is wrk when installed (apt-get install -y wrk), else a Python generator
(processes with http.client). Both run on the same 2 cores as the server.

Per-IP rate limits and detectors exist: by default every request carries X-Forwarded-For with one
of 8,192 client addresses (198.18.0.0/15, the benchmarking range; only header text) and the server
runs with TRUSTED_PROXY_HOPS=1, as behind a load balancer. --clients 0 sends everything from
127.0.0.1, which the limits then answer with 429 (counted as non-202).

    .venv/bin/python bench/collector_bench.py                  # own database, workers 1 then 2
    .venv/bin/python bench/collector_bench.py --workers 2 --duration 5
    .venv/bin/python bench/collector_bench.py --quick          # 1 worker, 3 s per endpoint: tries the script
    .venv/bin/python bench/collector_bench.py --sqlite --quick # a SQLite file instead of MariaDB
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    CHROME_UA,
    BenchDatabase,
    Service,
    flush_redis,
    free_port,
    log,
    percentile,
    queue_depth,
    start_gunicorn,
)

WRK_SCRIPT = Path(__file__).resolve().parent / "wrk_post.lua"
PAGES = 2000
# Per-IP limits (COLLECTOR_RATE, COLLECTOR_SITE_RATE) and the per-visitor detector
# (DETECT_HUMAN_MAX_PER_MINUTE) must not fire: at 1,000 req/s each of 8,192 clients sends ~7/min.
DEFAULT_CLIENTS = 8192
COLLECTOR = ("/api/event", 202)
BARE = ("/bench/bare", 204)


def body_for(site: str, k: int) -> bytes:
    return json.dumps(
        {"n": "pageview", "u": f"https://bench.example/page-{k}", "sid": site, "r": "https://www.google.com/"},
        separators=(",", ":"),
    ).encode()


class Server:
    """gunicorn with sync workers, started and stopped by this process (by its own pid)."""

    def __init__(self, db: BenchDatabase, workers: int, clients: int = 0) -> None:
        self.db = db
        self.workers = workers
        self.clients = clients
        self.port = free_port()
        self.service: Service | None = None

    def __enter__(self) -> Server:
        env = self.db.env(ROOT_URLCONF="bench.bench_urls")
        if self.clients:
            env["TRUSTED_PROXY_HOPS"] = "1"  # as behind one load balancer: the client is in X-Forwarded-For
        self.service = start_gunicorn(f"bench-gunicorn-{self.port}", env, self.port, self.workers)
        try:
            self.service.wait_ready(lambda: self.request(BARE[0], b"{}")[0] == BARE[1])
        except RuntimeError:
            self.stop()
            raise
        log(f"gunicorn: {self.workers} sync worker(s) on 127.0.0.1:{self.port} (pid {self.service.pid})")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def request(self, path: str, body: bytes) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": "text/plain", "User-Agent": CHROME_UA})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


# -- load generators -----------------------------------------------------------------------------


def run_wrk(server: Server, path: str, expect: int, seconds: float, connections: int) -> dict[str, Any]:
    env = dict(
        os.environ,
        BENCH_SID=server.db.site_public_id,
        BENCH_EXPECT=str(expect),
        BENCH_PAGES=str(PAGES),
        BENCH_CLIENTS=str(server.clients),
    )
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "-s",
        str(WRK_SCRIPT),
        server.url(path),
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    line = next((item for item in out.splitlines() if item.startswith("BENCH_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    raw = json.loads(line.removeprefix("BENCH_RESULT "))
    errors = raw["errors"]
    return {
        "requests": raw["requests"],
        "seconds": raw["duration_us"] / 1e6,
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "statuses": {int(k): v for k, v in raw["statuses"].items()},
        "unexpected": raw["unexpected"],
        "socket_errors": errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
    }


def client_address(i: int) -> str:
    """Client number i as an address of 198.18.0.0/15 (set aside for benchmarks), as wrk_post.lua."""
    return f"198.18.{(i // 256) % 256}.{i % 256}"


def _python_worker(args: tuple[int, str, int, str, float, int]) -> dict[str, Any]:
    port, path, clients, site, seconds, offset = args
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    bodies = [body_for(site, k) for k in range(1, PAGES + 1)]
    headers = {"Content-Type": "text/plain", "User-Agent": CHROME_UA, "Accept": "*/*"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    deadline = time.perf_counter() + seconds
    i = offset
    while len(latencies) < 2_000_000:  # bounded in count as well as in time
        start = time.perf_counter()
        if start >= deadline:
            break
        i += 1
        try:
            # Keep-alive when the server allows it; gunicorn's sync workers close, and
            # http.client then reconnects on the next request.
            if clients:
                headers["X-Forwarded-For"] = client_address(i % clients)
            conn.request("POST", path, body=bodies[i % PAGES], headers=headers)
            response = conn.getresponse()
            response.read()
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            continue
        latencies.append(time.perf_counter() - start)
        statuses[response.status] = statuses.get(response.status, 0) + 1
    conn.close()
    return {"latencies": latencies, "statuses": statuses, "errors": errors}


def run_python(server: Server, path: str, expect: int, seconds: float, connections: int) -> dict[str, Any]:
    site = server.db.site_public_id
    jobs = [(server.port, path, server.clients, site, seconds, n * 7919) for n in range(connections)]
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(connections) as pool:
        parts = pool.map(_python_worker, jobs)
    elapsed = time.perf_counter() - started
    latencies = sorted(x for part in parts for x in part["latencies"])
    statuses: dict[int, int] = {}
    for part in parts:
        for code, n in part["statuses"].items():
            statuses[code] = statuses.get(code, 0) + n

    def pct(q: float) -> float:
        return percentile(latencies, q) * 1000 if latencies else 0.0

    return {
        "requests": len(latencies),
        "seconds": min(elapsed, seconds) if latencies else elapsed,
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "max_ms": latencies[-1] * 1000 if latencies else 0.0,
        "statuses": statuses,
        "unexpected": sum(n for code, n in statuses.items() if code != expect),
        "socket_errors": sum(part["errors"] for part in parts),
    }


def pick_loadgen(choice: str) -> str:
    if choice == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    if choice == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install -y wrk, or use --loadgen python")
    return choice


def measure(server: Server, target: tuple[str, int], seconds: float, connections: int, loadgen: str) -> dict[str, Any]:
    path, expect = target
    run = run_wrk if loadgen == "wrk" else run_python
    result = run(server, path, expect, seconds, connections)
    result["rps"] = result["requests"] / result["seconds"] if result["seconds"] else 0.0
    result["path"] = path
    result["expect"] = expect
    return result


def bench_workers(
    db: BenchDatabase,
    workers: int,
    duration: float,
    warmup: float,
    connections: int,
    loadgen: str,
    clients: int = DEFAULT_CLIENTS,
) -> dict[str, Any]:
    flush_redis()
    with Server(db, workers, clients) as server:
        status, body = server.request(COLLECTOR[0], body_for(db.site_public_id, 1))
        if status != COLLECTOR[1]:
            raise RuntimeError(f"/api/event answered {status} {body[:200]!r} before the run")
        accepted = 1
        if warmup > 0:
            measure(server, BARE, warmup, connections, loadgen)
            accepted += measure(server, COLLECTOR, warmup, connections, loadgen)["statuses"].get(202, 0)
        bare = measure(server, BARE, duration, connections, loadgen)
        collector = measure(server, COLLECTOR, duration, connections, loadgen)
        accepted += collector["statuses"].get(202, 0)
    queued = queue_depth()[0]
    flushed = flush_redis()
    ratio = collector["rps"] / bare["rps"] if bare["rps"] else 0.0
    result = {
        "workers": workers,
        "connections": connections,
        "clients": clients,
        "loadgen": loadgen,
        "bare": bare,
        "collector": collector,
        "ratio": ratio,
        "accepted_202": accepted,
        "queued_messages": queued,
        "redis_keys_flushed": flushed,
    }
    print_result(result)
    return result


def print_result(r: dict[str, Any]) -> None:
    for name in ("bare", "collector"):
        m = r[name]
        others = {code: n for code, n in m["statuses"].items() if code != m["expect"]}
        print(
            f"  w={r['workers']} {m['path']:<12} {m['rps']:8.0f} req/s  p50 {m['p50_ms']:6.2f} ms  "
            f"p99 {m['p99_ms']:6.2f} ms  requests {m['requests']:>7}  non-{m['expect']}: {m['unexpected']}"
            f"{' ' + str(others) if others else ''}  socket errors: {m['socket_errors']}",
            flush=True,
        )
    verdict = "OK" if r["ratio"] >= 0.7 else "BELOW TARGET"
    print(
        f"  w={r['workers']} collector/bare = {r['ratio']:.2f} (target >= 0.70: {verdict}); "
        f"hits queued in Redis: {r['queued_messages']} for {r['accepted_202']} answers 202 incl. warmup"
        f" ({queue_check(r)})",
        flush=True,
    )


def queue_check(r: dict[str, Any]) -> str:
    """Every 202 must have queued its hit; a few more are queued by requests still in flight when
    the load generator stopped (at most one per connection and run)."""
    extra = r["queued_messages"] - r["accepted_202"]
    if 0 <= extra <= 2 * r["connections"]:
        return f"OK, {extra} more from requests in flight at the end of a run" if extra else "OK"
    return "MISMATCH"


def bench_collector(
    db: BenchDatabase,
    workers: list[int],
    duration: float = 10,
    warmup: float = 2,
    connections_per_worker: int = 2,
    loadgen: str = "auto",
    clients: int = DEFAULT_CLIENTS,
) -> list[dict[str, Any]]:
    loadgen = pick_loadgen(loadgen)
    log(
        f"collector bench: loadgen={loadgen}, {duration:g} s per endpoint after {warmup:g} s warmup, "
        f"{connections_per_worker} connections per worker, "
        + (f"{clients} client addresses in X-Forwarded-For (TRUSTED_PROXY_HOPS=1)" if clients else "direct clients")
    )
    return [
        bench_workers(db, n, duration, warmup, max(1, n * connections_per_worker), loadgen, clients) for n in workers
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2", help="comma-separated gunicorn worker counts (default 1,2)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per endpoint (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warmup seconds per endpoint (default 2)")
    parser.add_argument("--connections-per-worker", type=int, default=2)
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--clients",
        type=int,
        default=DEFAULT_CLIENTS,
        help=f"distinct client addresses sent in X-Forwarded-For with TRUSTED_PROXY_HOPS=1 (default "
        f"{DEFAULT_CLIENTS}); 0 = no header, every request from 127.0.0.1 (per-IP rate limits then answer 429)",
    )
    parser.add_argument("--database", help="use this existing bench_* database instead of creating one")
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file in the temp directory, not MariaDB")
    parser.add_argument("--quick", action="store_true", help="1 worker, 3 s per endpoint after 1 s: tries the script")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.workers, args.duration, args.warmup = "1", 3.0, 1.0

    own = args.database is None
    db = BenchDatabase(args.database or "bench_collector", engine="sqlite" if args.sqlite else "mariadb")
    try:
        db.create() if own else db.attach()
        results = bench_collector(
            db,
            [int(x) for x in args.workers.split(",")],
            args.duration,
            args.warmup,
            args.connections_per_worker,
            args.loadgen,
            args.clients,
        )
    finally:
        flush_redis()
        if own:
            db.drop()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
