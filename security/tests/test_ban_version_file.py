"""Ban changes reach other processes on the local-memory cache too (local runs), through the
version file, without adding SQL to the request path. With a shared cache nothing changes."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from security import bans
from security.models import Ban
from security.services import ban_network
from testing import CHROME_UA

ROOT = Path(django_settings.BASE_DIR)
IP = "203.0.113.7"

# The "running server": a second Django process on the same database and the local-memory cache,
# answering one question per line on stdin.
PROBE = r"""
import sys

import django

django.setup()
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from security.bans import is_banned

print("ready", flush=True)
for line in sys.stdin:
    command, ip, *rest = line.split()
    if command == "is_banned":
        print(int(is_banned(ip)), flush=True)
    else:  # get IP PATH
        with CaptureQueriesContext(connection) as queries:
            response = Client(REMOTE_ADDR=ip).get(rest[0])
        print(response.status_code, len(queries.captured_queries), flush=True)
"""


def local_env(database: Path) -> dict[str, str]:
    """`make run`'s environment: DEBUG, SQLite, no Redis, no broker, nothing set for the file."""
    drop = ("REDIS_URL", "CELERY_BROKER_URL", "DATABASE_URL", "BAN_VERSION_FILE", "DJANGO_SETTINGS_MODULE")
    env = {key: value for key, value in os.environ.items() if key not in drop and not key.startswith("WAF_")}
    env.update(
        DJANGO_SETTINGS_MODULE="fathom.settings",
        DEBUG="1",
        DATABASE_URL=f"sqlite:///{database}",
        ALLOWED_HOSTS="testserver",
        PYTHONUNBUFFERED="1",
    )
    return env


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class Probe:
    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", PROBE],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self._next(timeout=60) == "ready"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def _next(self, timeout: float = 10) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("the probe process did not answer") from None

    def ask(self, line: str) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return self._next()

    def wait_for(self, question: str, answer: str, limit: float = 5.0) -> float:
        """Seconds until the probe gives this answer (asking every 50 ms)."""
        start = time.monotonic()
        while self.ask(question) != answer:
            assert time.monotonic() - start < limit, f"{question!r} never answered {answer!r}"
            time.sleep(0.05)
        return time.monotonic() - start

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def test_a_ban_made_by_another_process_reaches_a_running_one_within_a_second(tmp_path):
    database = tmp_path / "db.sqlite3"
    env = local_env(database)
    manage(env, "migrate", "--noinput", "-v", "0")
    probe = Probe(env)
    try:
        assert probe.ask(f"is_banned {IP}") == "0"  # its snapshot is loaded
        assert probe.ask(f"get {IP} /script.js").split()[0] == "200"

        assert manage(env, "ban", IP, "--reason", "from another process").startswith(f"banned {IP}/32")
        waited = probe.wait_for(f"is_banned {IP}", "1")
        assert waited < 1.5
        assert probe.ask(f"get {IP} /script.js") == "403 0"  # warm: a bare 403 and no SQL
        assert probe.ask(f"get {IP} /accounts/login/") == "403 0"
        assert probe.ask("get 203.0.113.8 /accounts/login/").split()[0] == "200"

        manage(env, "unban", IP)
        assert probe.wait_for(f"is_banned {IP}", "0") < 1.5
        assert probe.ask(f"get {IP} /script.js").split()[0] == "200"
    finally:
        probe.close()
    # The default place of the version file: next to the SQLite database.
    assert (tmp_path / "db.sqlite3.ban-version").is_file()


@pytest.fixture
def local_cache(settings: Any) -> None:
    """The local-memory cache of local runs, whatever the suite runs on (REDIS_URL too)."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "ban-version-file"}
    }


@pytest.mark.django_db
@pytest.mark.usefixtures("local_cache")
def test_the_version_file_is_replaced_whole_on_each_bump(tmp_path, settings):
    settings.BAN_VERSION_FILE = str(tmp_path / "var" / "ban-version")  # its folder is made on demand
    bans.bump_version()
    first = os.stat(settings.BAN_VERSION_FILE)
    first_token = Path(settings.BAN_VERSION_FILE).read_text()
    bans.bump_version()
    second = os.stat(settings.BAN_VERSION_FILE)
    assert len(first_token) == 32
    assert Path(settings.BAN_VERSION_FILE).read_text() != first_token
    assert first.st_ino != second.st_ino  # a new file renamed over the old one, never rewritten in place
    assert os.listdir(tmp_path / "var") == ["ban-version"]  # no temporary file left behind


@pytest.mark.django_db
@pytest.mark.usefixtures("local_cache")
def test_a_version_file_written_elsewhere_reloads_the_snapshot_and_a_warm_ban_costs_no_query(tmp_path, settings):
    settings.BAN_VERSION_FILE = str(tmp_path / "ban-version")
    banned = Client(HTTP_USER_AGENT=CHROME_UA, REMOTE_ADDR=IP)
    assert banned.get("/script.js").status_code == 200  # snapshot loaded, no file yet
    Ban.objects.create(network=IP)  # as another process would write it...
    tmp = tmp_path / "ban-version.new"
    tmp.write_text("another process")
    os.replace(tmp, settings.BAN_VERSION_FILE)  # ...and announce it
    bans._State.checked_at = 0.0  # a second has passed
    assert banned.get("/script.js").status_code == 403

    bans._State.checked_at = 0.0  # the next look: the file is stat'ed, the database is not asked
    with CaptureQueriesContext(connection) as queries:
        for path in ("/script.js", "/api/event", "/accounts/login/"):
            assert banned.get(path).status_code == 403
    assert queries.captured_queries == []


@pytest.mark.django_db
@pytest.mark.usefixtures("local_cache")
def test_an_unwritable_version_file_is_logged_and_the_ban_still_applies_here(tmp_path, settings, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    settings.BAN_VERSION_FILE = str(blocker / "ban-version")
    ban_network(network=IP)
    bans.bump_version()
    assert "could not write the ban version file" in caplog.text
    assert bans.is_banned(IP)


@pytest.mark.django_db
@pytest.mark.usefixtures("redis_cache")
def test_with_a_shared_cache_no_file_is_used(tmp_path, settings, monkeypatch):
    settings.BAN_VERSION_FILE = str(tmp_path / "ban-version")
    assert not bans.cache_is_local()
    looked: list[Any] = []
    monkeypatch.setattr(bans, "_file_version", lambda: looked.append("stat"))
    ban_network(network=IP)
    bans.bump_version()
    assert bans.is_banned(IP)
    assert not Path(settings.BAN_VERSION_FILE).exists()
    assert looked == []
