"""Fault tolerance of the collector.

1. Database down: the collector keeps answering 202 without a single query, the queued hits
   survive the worker's failed attempts (the task retries, the hits go back to the broker),
   and once the database is back every hit is written exactly once, even when delivered twice.
2. Broker unreachable (connection refused, a server that accepts and never answers, a server
   that never completes the TCP handshake): the collector answers 503 with Retry-After within
   a bounded time instead of hanging.
3. Privacy: nothing queued carries a client IP or a User-Agent.
4. A poison hit among good ones: the worker's task writes the others and neither fails nor
   retries (the other paths: test_poison.py, fathom/tests/test_lambda_sqs.py).

On MariaDB the outage is real: the test's connection goes through a TCP proxy that is stopped
(listener closed, connections dropped) and started again. SQLite has no server to take away, so
there every statement is made to raise OperationalError, which is what an outage looks like to
the code; in both cases `django_assert_num_queries(0)` proves the request path never tried.

The worker is not started: each queued message is run through `trace_task_ret`, the function a
prefork worker child runs, so the task sees a real (non-eager) request and `self.retry()` really
publishes the retry to the broker, as in production. (`ingest_hits.apply()` would be eager, and
an eager task re-raises database errors instead of retrying.)
"""

from __future__ import annotations

import ast
import base64
import json
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest
import redis
from celery.app.trace import trace_task_ret
from celery.exceptions import Retry
from django.db import OperationalError, close_old_connections, connection
from django.db.models import Sum
from django.test import Client

from collector.models import DailyBreakdown, Event, HourlyTotal, Visit
from fathom.celery import app
from testing import CHROME_UA, FIREFOX_UA, IPHONE_UA, reset_celery_connections, send

BOUND_SECONDS = 5.0  # BROKER_TIMEOUT is 1 s; a correctness bound, not a benchmark
# Several visitors: (client IP, User-Agent).
VISITORS = [
    ("203.0.113.10", CHROME_UA),
    ("203.0.113.77", IPHONE_UA),
    ("198.51.100.23", CHROME_UA),
    ("2001:db8::5", FIREFOX_UA),
    ("192.0.2.200", IPHONE_UA),
]
PATHS = ["/", "/pricing", "/blog/faults", "/docs/install", "/about"]
OUTAGE_HITS = 20


# -- a TCP proxy that can be "stopped" like a database server ----------------------------------


class TcpProxy:
    """127.0.0.1:<random port> -> upstream. stop() closes the listener and drops every
    connection (clients see refused/lost connections); start() listens on the same port again."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self.accepted = 0
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._stopping.clear()
        self._thread = threading.Thread(target=self._accept_loop, args=(listener,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            server.settimeout(None)
            with self._lock:
                self._sockets.update((client, server))
                self.accepted += 1
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class DatabaseOutage:
    """Take the default database away from this process and give it back."""

    def __init__(self) -> None:
        self.vendor = connection.vendor
        self.proxy: TcpProxy | None = None
        self._saved: dict[str, Any] = {}
        self._wrapper: Callable[..., Any] | None = None

    def install(self) -> None:
        if self.vendor == "mysql":
            settings_dict = connection.settings_dict
            self._saved = {"HOST": settings_dict["HOST"], "PORT": settings_dict["PORT"]}
            host = settings_dict["HOST"] or "127.0.0.1"
            if host == "localhost":  # mysqlclient would use the Unix socket, bypassing the proxy
                host = "127.0.0.1"
            self.proxy = TcpProxy((host, int(settings_dict["PORT"] or 3306)))
            self.proxy.start()
            connection.close()
            settings_dict["HOST"], settings_dict["PORT"] = "127.0.0.1", self.proxy.port

    def uninstall(self) -> None:
        self.up()
        if self.proxy is not None:
            connection.close()
            connection.settings_dict.update(self._saved)
            self.proxy.stop()
            self.proxy = None

    def down(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        else:

            def unreachable(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
                raise OperationalError("database unreachable (simulated outage)")

            self._wrapper = unreachable
            connection.execute_wrappers.append(unreachable)

    def up(self) -> None:
        if self.proxy is not None and self.proxy._listener is None:
            self.proxy.start()
        if self._wrapper is not None:
            connection.execute_wrappers.remove(self._wrapper)
            self._wrapper = None


@pytest.fixture
def db_outage(transactional_db: None) -> Iterator[DatabaseOutage]:
    outage = DatabaseOutage()
    outage.install()
    try:
        yield outage
    finally:
        outage.uninstall()


# -- broker helpers ----------------------------------------------------------------------------


@contextmanager
def celery_broker(url: str, settings: Any) -> Iterator[None]:
    old = {key: app.conf[key] for key in ("broker_url", "task_always_eager")}
    app.conf.broker_url = url
    app.conf.task_always_eager = False
    settings.CELERY_TASK_ALWAYS_EAGER = False
    reset_celery_connections(app)
    try:
        yield
    finally:
        app.conf.broker_url = old["broker_url"]
        app.conf.task_always_eager = old["task_always_eager"]
        reset_celery_connections(app)


@contextmanager
def refusing() -> Iterator[str]:
    """Nothing listens there: connection refused."""
    yield "redis://127.0.0.1:1/0"


@contextmanager
def never_answering() -> Iterator[str]:
    """A TCP server on 127.0.0.1 that accepts connections and never sends a byte (socket_timeout)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.05)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(client)  # keep it open, read nothing, answer nothing

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()
        for client in held:
            client.close()


@contextmanager
def never_accepting() -> Iterator[str]:
    """A listener whose accept queue is full: the kernel drops new SYNs, so connect() itself
    hangs, as with a firewalled or vanished host (socket_connect_timeout)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    fillers: list[socket.socket] = []
    try:
        for _ in range(16):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.settimeout(0.2)
            try:
                filler.connect(address)
            except TimeoutError:
                filler.close()
                break
            fillers.append(filler)
        else:
            pytest.skip("this kernel keeps accepting connections past the listen backlog")
        yield f"redis://127.0.0.1:{address[1]}/0"
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def run_as_worker(raw: bytes) -> tuple[bool, Any]:
    """Execute one raw Redis message the way a prefork worker child does (trace_task_ret, not
    eager), closing unusable database connections around it like Celery's Django fixup.

    Returns (failed, result): the task's return value, or the ExceptionInfo when it failed/retried."""
    envelope = json.loads(raw)
    headers = envelope["headers"]
    properties = envelope["properties"]
    request = dict(
        headers,
        delivery_info=properties.get("delivery_info") or {},
        reply_to=properties.get("reply_to"),
        correlation_id=properties.get("correlation_id"),
    )
    body = base64.b64decode(envelope["body"])
    close_old_connections()
    try:
        failed, result, _runtime = trace_task_ret(
            headers["task"],
            headers["id"],
            request,
            body,
            envelope["content-type"],
            envelope["content-encoding"],
            app=app,
        )
    finally:
        close_old_connections()
    if failed:
        return True, result
    return False, ast.literal_eval(result)  # the pool hands back the repr of the return value


def take_all(client: Any, queue: str = "ingest") -> list[bytes]:
    """Consume (remove) the messages waiting now, oldest first, as a worker would."""
    taken = []
    for _ in range(client.llen(queue)):
        raw = client.rpop(queue)
        if raw is None:
            break
        taken.append(raw)
    return taken


def decoded(raw: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    envelope = json.loads(raw)
    args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
    return envelope["headers"], args[0]


def hit_ids(messages: list[bytes]) -> list[str]:
    return [hit["id"] for raw in messages for hit in decoded(raw)[1]]


def rollup_snapshot() -> dict[str, Any]:
    return {
        "events": Event.objects.count(),
        "visits": sorted(Visit.objects.values_list("visitor_id", "pageviews", "started", "last_seen")),
        "hourly": sorted(
            HourlyTotal.objects.values_list(
                "day", "hour", "visitors", "new_visitors", "visits", "pageviews", "bounces", "events"
            )
        ),
        "daily": sorted(DailyBreakdown.objects.values_list("dim", "day", "value", "visitors", "visits", "pageviews")),
    }


def assert_private(raw: bytes) -> None:
    """Neither the raw message nor its decoded body may carry a client IP or a User-Agent."""
    envelope = json.loads(raw)
    texts = [raw, base64.b64decode(envelope["body"]), json.dumps(envelope["headers"]).encode()]
    for text in texts:
        for ip, agent in VISITORS:
            assert ip.encode() not in text
            assert agent.encode() not in text
        assert b"Mozilla/" not in text


# -- 1. database down --------------------------------------------------------------------------


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_database_outage_keeps_collecting_and_loses_nothing(
    site: Any, db_outage: DatabaseOutage, redis_broker: Any, redis_url: str, django_assert_num_queries: Any
) -> None:
    queue = redis.Redis.from_url(redis_url)  # the broker's Redis database (conftest's redis_broker)

    def post(number: int, ip: str, agent: str, path: str) -> Any:
        body = {"n": "pageview", "u": f"https://example.com{path}?n={number}", "d": "example.com", "w": 1280}
        return send(Client(REMOTE_ADDR=ip, HTTP_USER_AGENT=agent), body)

    # Warm the caches (site and salts) while the database is up: one ordinary hit.
    warm = post(0, *VISITORS[0], "/")
    assert warm.status_code == 202
    if db_outage.proxy is not None:
        assert db_outage.proxy.accepted >= 1, "the test's database connection must go through the proxy"
    total = 1 + OUTAGE_HITS

    with django_assert_num_queries(0):
        db_outage.down()
        for number in range(1, OUTAGE_HITS + 1):
            ip, agent = VISITORS[number % len(VISITORS)]
            response = post(number, ip, agent, PATHS[number % len(PATHS)])
            assert response.status_code == 202, response.content

    originals = redis_broker.raw()
    assert len(originals) == total
    for raw in originals:
        assert_private(raw)
    expected_ids = hit_ids(originals)
    assert len(set(expected_ids)) == total

    # A worker running while the database is still down: every task retries, none is lost.
    consumed = take_all(queue)
    assert len(consumed) == total
    for raw in consumed:
        failed, info = run_as_worker(raw)
        assert failed
        assert issubclass(info.type, Retry), info.traceback
        assert isinstance(info.exception.exc.exc, OperationalError), info.traceback
    retried = redis_broker.raw()
    assert len(retried) == total, "each failed task must be back in the queue"
    for raw in retried:
        assert_private(raw)
        headers, _hits = decoded(raw)
        assert headers["retries"] == 1
        assert headers["eta"], "a retry waits (countdown) before the next attempt"
    assert sorted(hit_ids(retried)) == sorted(expected_ids)

    # The database is back: the worker writes every hit once.
    db_outage.up()
    assert Event.objects.count() == 0
    assert not HourlyTotal.objects.exists()
    assert not Visit.objects.exists()
    consumed = take_all(queue)
    assert len(consumed) == total
    for raw in consumed:
        failed, result = run_as_worker(raw)
        assert not failed, result.traceback
        assert result["written"] == 1
    assert queue.llen("ingest") == 0
    assert sorted(Event.objects.values_list("hit_id", flat=True)) == sorted(expected_ids)
    assert HourlyTotal.objects.aggregate(n=Sum("pageviews"))["n"] == total
    assert Visit.objects.count() == len(VISITORS)
    assert HourlyTotal.objects.aggregate(n=Sum("new_visitors"))["n"] == len(VISITORS)
    before = rollup_snapshot()

    # Redelivery (a worker crashed before acking, a retry raced the original): no double count.
    for raw in originals + retried:
        failed, result = run_as_worker(raw)
        assert not failed, result.traceback
        assert result["written"] == 0
        assert result["duplicates"] == 1
    assert Event.objects.count() == total
    assert HourlyTotal.objects.aggregate(n=Sum("pageviews"))["n"] == total
    assert rollup_snapshot() == before


# -- 2. broker unreachable ---------------------------------------------------------------------


class Hung(BaseException):
    """Raised by the watchdog; a BaseException so `except Exception` in the app cannot swallow it."""


@contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    """Turn a hang into a test failure instead of a stuck test run (main thread only: SIGALRM)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def fire(signum: int, frame: Any) -> None:
        raise Hung

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except Hung:
        pytest.fail(f"the request was still waiting on the broker after {seconds:.0f} s")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _assert_fails_fast(browser_client: Any) -> None:
    body = {"n": "pageview", "u": "https://example.com/", "d": "example.com"}
    for _ in range(2):  # the second request must not get stuck on a half-open pooled connection
        started = time.monotonic()
        with watchdog(2 * BOUND_SECONDS):
            response = send(browser_client, body)
        elapsed = time.monotonic() - started
        assert response.status_code == 503, response.content
        assert response.json()["error"]
        assert int(response["Retry-After"]) > 0
        assert elapsed < BOUND_SECONDS, f"the collector waited {elapsed:.1f} s on a dead broker"


@pytest.mark.parametrize("dead_broker", [refusing, never_answering, never_accepting])
@pytest.mark.django_db
def test_unreachable_broker_gives_503_fast(
    dead_broker: Callable[[], Any], site: Any, browser_client: Any, settings: Any
) -> None:
    with dead_broker() as url, celery_broker(url, settings):
        _assert_fails_fast(browser_client)
    assert Event.objects.count() == 0


# -- 4. a poison hit among good ones -----------------------------------------------------------


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("poison", ["lone surrogate in the path", "a value the database refuses"])
def test_the_worker_task_drops_a_poison_hit_writes_its_batch_mates_and_does_not_retry(
    site: Any, redis_broker: Any, redis_url: str, poison: str, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    from collector import ingest
    from collector.tasks import ingest_hits

    queue = redis.Redis.from_url(redis_url)
    ip, agent = VISITORS[0]
    body = {"n": "pageview", "u": "https://example.com/first", "d": "example.com"}
    assert send(Client(REMOTE_ADDR=ip, HTTP_USER_AGENT=agent), body).status_code == 202
    (template,) = decoded(take_all(queue)[0])[1]
    mates = [{**template, "id": f"{n:032x}", "p": f"/mate-{n}", "ts": template["ts"] + n} for n in (1, 2)]
    poison_hit = {**template, "id": "poison-1", "p": "/poison"}
    if poison == "lone surrogate in the path":
        poison_hit["p"] = "/poison-\ud800"
    else:  # the Event row of this hit gets a NULL hostname: every database refuses it
        real_row = ingest.event_row
        index = ingest.EVENT_COLUMNS.index("hostname")

        def row(hit: dict[str, Any], **kwargs: Any) -> tuple:
            values = real_row(hit, **kwargs)
            return (*values[:index], None, *values[index + 1 :]) if hit["id"] == "poison-1" else values

        monkeypatch.setattr(ingest, "event_row", row)
    ingest_hits.apply_async(([mates[0], poison_hit, mates[1]],), argsrepr="<3 hits>")
    (raw,) = take_all(queue)

    failed, result = run_as_worker(raw)

    assert not failed, result.traceback  # neither a failure nor a retry
    assert (result["written"], result["dropped"]) == (2, 1)
    assert queue.llen("ingest") == 0  # no retry was published
    assert sorted(Event.objects.values_list("path", flat=True)) == ["/mate-1", "/mate-2"]
    assert HourlyTotal.objects.aggregate(n=Sum("pageviews"))["n"] == 2
    assert "poison-1" in caplog.text
    assert "/poison" not in caplog.text
    assert "\\ud800" not in caplog.text

    # The next message is written as usual.
    ingest_hits.apply_async(([{**template, "id": f"{3:032x}", "p": "/next", "ts": template["ts"] + 3}],))
    (raw,) = take_all(queue)
    failed, result = run_as_worker(raw)
    assert not failed
    assert result["written"] == 1
    assert Event.objects.count() == 3
