"""The drill itself: its world set up (database, gunicorn, a Celery worker), the traffic phases
(baseline, attack, cost, the returning flood) and what reached the database, in Drill.results."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import subprocess
import time
from collections import Counter
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    PYTHON,
    ROOT,
    BenchDatabase,
    Service,
    flush_redis,
    free_port,
    http_status,
    log,
    percentile,
    queue_depth,
    start_celery_worker,
    start_gunicorn,
)
from bench.drill.config import (
    ATTACKER_UA,
    COST_SITE,
    CUSTOMER_SITES,
    FALLBACK_BANNED_IP,
    FLOOD_IP,
    LEGIT_UAS,
    REDIS_URL,
    WARMUP_IP,
)
from bench.drill.fmt import ms
from bench.drill.procstat import all_cpu, box_cpu, busy_share, children, cpu_by_group, proc_cpu_seconds, proc_cpu_split
from bench.drill.traffic import (
    attack_plan,
    attack_process,
    cost_lane,
    dumps,
    headers_for,
    legit_stream,
    legit_users,
    post,
)
from bench.drill.world import Poller, app_knobs, drill_database, wait_drained

# The drill's FlaggedIP and Ban rows, as the report reads them.
FLAGS_SQL = "SELECT ip, score, status, reasons, first_seen, times_banned FROM security_flaggedip"
BANS_SQL = "SELECT network, created_at, expires_at, reason, source FROM security_ban"
FLAG_OF_IP_SQL = "SELECT status, score, times_banned FROM security_flaggedip WHERE ip = %s"

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
    db: BenchDatabase = field(default_factory=drill_database)
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
        log(f"redis db 11: flushed ({flush_redis(REDIS_URL)} keys)")
        domains = [*CUSTOMER_SITES, COST_SITE]
        self.db.create(*domains)
        self.sites = [(self.db.sites[domain][1], domain) for domain in domains]
        self.site_ids = {domain: self.db.sites[domain][0] for domain in domains}
        log(f"sites: {', '.join(f'{d}={p}' for p, d in self.sites)}")
        self.results["knobs"] = app_knobs(self.db)
        env = self.db.env()
        self.server = start_gunicorn("attack-gunicorn", env, self.port, workers=2)
        self.worker = start_celery_worker("attack-drill", env)
        self.wait_ready()
        self.warm_up()

    def wait_ready(self) -> None:
        assert self.server is not None
        headers = {"X-Forwarded-For": WARMUP_IP}
        self.server.wait_ready(lambda: http_status(self.port, "GET", "/readyz", headers=headers) == 200)
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
                    service.stop(timeout=20)
                if "server_log" in self.results:  # read into the results: the file is not needed
                    service.logfile.unlink(missing_ok=True)
        with contextlib.suppress(Exception):
            self.db.drop()
        with contextlib.suppress(Exception):
            log(f"redis db 11: flushed ({flush_redis(REDIS_URL)} keys)")

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
        poller = Poller(self.db)
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
            queued_at_end = queue_depth(REDIS_URL)
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
        self.results["flags_attack"] = self.db.query(FLAGS_SQL)
        self.results["bans_attack"] = self.db.query(BANS_SQL)
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
        banned = {row[0].removesuffix("/32") for row in self.db.query("SELECT network FROM security_ban")}
        banned_ip = FLOOD_IP
        if FLOOD_IP not in banned:
            banned_ip = FALLBACK_BANNED_IP
            self.db.manage("ban", banned_ip, "--reason", "attack drill: cost phase", "--for", "1h")
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
                        "p50": percentile(latencies, 50),
                        "p95": percentile(latencies, 95),
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
            queued = queue_depth(REDIS_URL)[0]  # the worker is paused: one message per hit of this phase
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

    def profile(self, banned_ip: str, site: tuple[str, str]) -> dict[str, Any] | None:
        """CPU ms of the Django part of each request type, in one process without gunicorn."""
        try:
            out = subprocess.run(
                [str(PYTHON), "-c", PROFILE_CODE, banned_ip, site[0], site[1], ATTACKER_UA],
                cwd=ROOT,
                env=self.db.env(),
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
        self.db.execute(
            "UPDATE security_ban SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND WHERE network = %s",
            [f"{FLOOD_IP}/32"],
        )
        expired = self.db.manage("expire_bans").strip()
        before = self.db.query(FLAG_OF_IP_SQL, [FLOOD_IP])
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
        after_flag = self.db.query(FLAG_OF_IP_SQL, [FLOOD_IP])
        after_ban = self.db.query(
            "SELECT created_at, expires_at FROM security_ban WHERE network = %s", [f"{FLOOD_IP}/32"]
        )
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
        r["flags"] = self.db.query(FLAGS_SQL)
        r["bans"] = self.db.query(BANS_SQL)
        r["attack_events"] = self.db.query(
            "SELECT site_id, path, name, ts FROM collector_event WHERE path LIKE %s", ["/attack-%"]
        )
        r["hourly"] = self.db.query(
            "SELECT site_id, SUM(pageviews), SUM(events) FROM collector_hourlytotal GROUP BY site_id"
        )
        assert self.server is not None
        assert self.worker is not None
        r["server_log"] = self.server.log_text()
        r["worker_log"] = self.worker.log_text()
