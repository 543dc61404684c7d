"""The built Lambda zips, unzipped and driven through their real entry point, offline.

`scripts/package.sh` builds build/{production,production_worker,production_commands}.zip
(reused when nothing that goes into them changed). Each zip is unzipped to a temporary
directory and run by a driver subprocess with this venv's base CPython 3.11 (the runtime's
version) started with `-S -I -B` and an empty environment plus the stage's
aws_environment_variables: only the zip's contents and the standard library are importable,
as on Lambda. The driver imports `fathom.lambda_handler` and calls `handler(event, context)`
the way Lambda does with Handler `fathom.lambda_handler.handler`.

The functions talk to a MariaDB database migrated by the package itself, to Redis, and to SQS
and WAF served by moto in server mode (AWS_ENDPOINT_URL_SQS / _WAFV2), so the web function's
Celery publish, the worker's SQS batches (real kombu messages, a poison message, a countdown,
duplicates) and the scheduled commands all run end to end.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from testing import REGION, require_service

ROOT = Path(__file__).resolve().parents[2]
EVENTS = Path(__file__).resolve().parent / "events"
BUILD = ROOT / "build"
STAGES = ("production", "production_worker", "production_commands")
STAMP = BUILD / "package-inputs.sha256"
LAMBDA_LIMIT = 262_144_000  # 250 MB unzipped
AL2_GLIBC = (2, 26)  # the python3.11 runtime is Amazon Linux 2...
AL2_GLIBCXX = (3, 4, 24)  # ...with GCC 7's libstdc++
WEB_HOSTS = (
    "collector.example.net",
    "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
    "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws",
)
REAL_CLIENT = "198.51.100.7"  # what the ALB appends in the recorded events

pytestmark = pytest.mark.services


# --------------------------------------------------------------------------------------------
# Build and unzip
# --------------------------------------------------------------------------------------------


def package_inputs_digest() -> str:
    """Everything that goes into the zips: project code (not tests), settings, requirements, script."""
    digest = hashlib.sha256()
    files = [ROOT / name for name in ("manage.py", "zappa_settings.json", "requirements-lambda.txt")]
    files.append(ROOT / "scripts" / "package.sh")
    for app in ("sites", "analytics", "collector", "dashboard", "security", "fathom"):
        for path in (ROOT / app).rglob("*"):
            parts = path.relative_to(ROOT).parts
            if path.is_file() and "tests" not in parts and "__pycache__" not in parts and path.suffix != ".pyc":
                files.append(path)
    for path in sorted(files):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@pytest.fixture(scope="session")
def package_zips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three zips, built unless build/ has them for the current inputs, then hard-linked
    (or copied) out of build/ so a concurrent build cannot change them under this session."""
    BUILD.mkdir(exist_ok=True)
    kept = tmp_path_factory.mktemp("lambda-zips")
    zips = {}
    with (BUILD / ".package.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be building: wait for it
        digest = package_inputs_digest()
        built = {stage: BUILD / f"{stage}.zip" for stage in STAGES}
        fresh = all(z.exists() for z in built.values()) and STAMP.exists() and STAMP.read_text().strip() == digest
        if not fresh:
            started = time.monotonic()
            subprocess.run(
                ["bash", str(ROOT / "scripts" / "package.sh"), *STAGES],
                cwd=ROOT,
                check=True,
                timeout=900,
                env={**os.environ, "PACKAGE_LOCK_HELD": "1"},
            )
            print(f"package.sh built {len(STAGES)} zips in {time.monotonic() - started:.0f} s", file=sys.stderr)
            STAMP.write_text(digest + "\n")
        for stage, path in built.items():
            zips[stage] = kept / path.name
            try:
                os.link(path, zips[stage])
            except OSError:
                shutil.copyfile(path, zips[stage])
    return zips


@pytest.fixture(scope="session")
def unzipped(package_zips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each stage unzipped outside the project (zappa would package anything left inside it)."""
    roots = {}
    for stage, path in package_zips.items():
        root = tmp_path_factory.mktemp(f"lambda-{stage}")
        with zipfile.ZipFile(path) as zf:
            zf.extractall(root)
        roots[stage] = root
    return roots


# --------------------------------------------------------------------------------------------
# Services: MariaDB database, Redis prefix, moto server (SQS, WAF)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def services() -> None:
    require_service("MariaDB", "127.0.0.1", 3306)
    require_service("Redis", "127.0.0.1", 6379)


@pytest.fixture(scope="session")
def database(services: None) -> Iterator[str]:
    import MySQLdb

    name = f"pkg_test_{os.getpid()}"
    conn = MySQLdb.connect(host="127.0.0.1", port=3306, user="root")
    conn.cursor().execute(f"DROP DATABASE IF EXISTS {name}")
    conn.cursor().execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    yield name
    conn.cursor().execute(f"DROP DATABASE IF EXISTS {name}")
    conn.close()


def sql(database: str, query: str, params: tuple = ()) -> list[tuple]:
    """A fresh autocommit connection per query: never a stale snapshot of what the functions wrote."""
    import MySQLdb

    conn = MySQLdb.connect(host="127.0.0.1", port=3306, user="root", database=database, autocommit=True)
    try:
        cursor = conn.cursor()
        cursor.execute(query, params)
        return list(cursor.fetchall())
    finally:
        conn.close()


AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
}


@pytest.fixture(scope="session")
def aws() -> Iterator[SimpleNamespace]:
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per moto request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    keys = {"region_name": REGION, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    sqs = boto3.client("sqs", endpoint_url=endpoint, **keys)
    waf = boto3.client("wafv2", endpoint_url=endpoint, **keys)
    queues = {}
    for name in ("fathom-ingest", "fathom-default"):
        url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "720"})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        queues[name.split("-")[1]] = SimpleNamespace(url=url, arn=arn)
    ipsets = {
        version: waf.create_ip_set(
            Name=f"fathom-bans-{version.lower()}", Scope="REGIONAL", IPAddressVersion=version, Addresses=[]
        )["Summary"]
        for version in ("IPV4", "IPV6")
    }
    yield SimpleNamespace(endpoint=endpoint, sqs=sqs, waf=waf, queues=queues, ipsets=ipsets)
    server.stop()


@contextlib.contextmanager
def aws_env_for_this_process(aws: SimpleNamespace) -> Iterator[None]:
    """Point this process's boto3 (kombu's publisher) at the moto server, only for the block:
    other test modules mock AWS in-process with moto's decorator."""
    env = {**AWS_TEST_ENV, "AWS_ENDPOINT_URL_SQS": aws.endpoint}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield


# --------------------------------------------------------------------------------------------
# The driver: the unzipped package, alone, in a subprocess
# --------------------------------------------------------------------------------------------

DRIVER = r"""
import importlib, io, json, os, sys, sysconfig, traceback, uuid

root = os.path.realpath(sys.argv[1])
stage = sys.argv[2]
sys.path.insert(0, root)  # what Lambda does: the task root first
os.chdir(root)
protocol = sys.stdout
sys.stdout = sys.stderr  # anything printed goes to the log, not into the protocol


class Context:
    function_name = "fathom-" + stage.replace("_", "-")
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + function_name
    log_group_name = "/aws/lambda/" + function_name
    log_stream_name = "2026/11/26/[$LATEST]0123456789abcdef"

    def __init__(self):
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self):
        return 60_000


def provenance():
    # The analytics store's client and its compiled parts load from the zip; the embedded engine
    # (chdb, dev/test only) is not there at all.
    import clickhouse_connect
    from clickhouse_connect.driver import httpclient
    from clickhouse_connect.driverc import buffer, dataconv
    import lz4.frame
    from backports import zstd
    import importlib.util
    stdlib = {os.path.realpath(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib")}
    outside = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not path or name in ("__main__", "__mp_main__"):  # this driver
            continue
        path = os.path.realpath(path)
        if path.startswith(root + os.sep):
            continue
        if any(path.startswith(s + os.sep) for s in stdlib) and "site-packages" not in path:
            continue
        outside.append([name, path])
    mysqldb = sys.modules.get("MySQLdb")
    import re2
    return {
        "outside": outside,
        "sys_path": sys.path,
        "MySQLdb": getattr(mysqldb, "__name__", None),
        "MySQLdb_file": getattr(mysqldb, "__file__", None),
        # Django imports MySQLdb.constants etc.: with PyMySQL those are pymysql's modules.
        "mysqlclient_loaded": "MySQLdb._mysql" in sys.modules
        or any("/MySQLdb/" in (getattr(m, "__file__", None) or "") for m in list(sys.modules.values())),
        "re2": re2.__file__,
        "clickhouse": [m.__file__ for m in (clickhouse_connect, httpclient, buffer, dataconv, lz4.frame, zstd)],
        "chdb_importable": importlib.util.find_spec("chdb") is not None,
    }


def run(request):
    op = request["op"]
    if op == "invoke":
        module = importlib.import_module("fathom.lambda_handler")
        return module.handler(request["event"], Context())
    if op == "manage":
        importlib.import_module("fathom.lambda_handler")  # PyMySQL as MySQLdb, django settings
        import django
        from django.core.management import call_command

        django.setup()
        out = io.StringIO()
        call_command(*request["args"], stdout=out, stderr=sys.stderr)  # the answer is stdout; notes go to the log
        return out.getvalue()
    if op == "bot":
        importlib.import_module("fathom.lambda_handler")
        from collector.enrich import parse_agent

        return [parse_agent(ua).bot for ua in request["agents"]]
    if op == "provenance":
        return provenance()
    raise ValueError(op)


for line in sys.stdin:
    request = json.loads(line)
    try:
        response = {"ok": True, "result": run(request)}
    except BaseException as exc:
        response = {"ok": False, "error": type(exc).__name__ + ": " + str(exc), "traceback": traceback.format_exc()}
    protocol.write(json.dumps(response, default=str) + "\n")
    protocol.flush()
"""


def stage_environment(stage: str) -> dict[str, str]:
    """The Lambda environment variables of a stage, as `zappa deploy` would set them."""
    settings = json.loads((ROOT / "zappa_settings.json").read_text())
    merged: dict[str, str] = {}
    config: dict[str, Any] | None = settings[stage]
    chain = []
    while config is not None:
        chain.append(config)
        config = settings.get(config["extends"]) if "extends" in config else None
    for config in reversed(chain):
        merged.update(config.get("aws_environment_variables") or {})
    return merged


class Driver:
    def __init__(self, stage: str, root: Path, env: dict[str, str], log: Path) -> None:
        self.stage, self.log = stage, log
        script = log.with_suffix(".driver.py")
        script.write_text(DRIVER)
        python = Path(sys.base_prefix) / "bin" / "python3.11"  # not the venv: it has the dev packages
        self.proc = subprocess.Popen(
            [str(python), "-S", "-I", "-B", str(script), str(root), stage],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            env=env,
            cwd=root,
            text=True,
        )

    def call(self, **request: Any) -> Any:
        assert self.proc.stdin
        assert self.proc.stdout
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            pytest.fail(f"{self.stage} driver died:\n{self.log.read_text()[-4000:]}")
        response = json.loads(line)
        if not response["ok"]:
            raise DriverError(response["error"], response["traceback"])
        return response["result"]

    def invoke(self, event: dict[str, Any]) -> Any:
        return self.call(op="invoke", event=event)

    def manage(self, *args: str) -> str:
        return self.call(op="manage", args=list(args))

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


class DriverError(Exception):
    pass


@pytest.fixture(scope="session")
def drivers(
    unzipped: dict[str, Path], database: str, aws: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Driver]]:
    logs = tmp_path_factory.mktemp("lambda-logs")
    prefix = f"pkgtest{os.getpid()}"
    started = {}
    for stage, root in unzipped.items():
        env = {
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "TZ": "UTC",
            "LAMBDA_TASK_ROOT": str(root),
            "AWS_LAMBDA_FUNCTION_NAME": f"fathom-{stage.replace('_', '-')}",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
            **AWS_TEST_ENV,
            **stage_environment(stage),
            # Set out of band in production (docs/deploy.md): secrets and this machine's services.
            "SECRET_KEY": "package-test-secret-key-" + "x" * 40,
            "DATABASE_URL": f"mysql://root@127.0.0.1:3306/{database}",
            "REDIS_URL": "redis://127.0.0.1:6379/12",
            "CACHE_KEY_PREFIX": prefix,
            # The REPLACE-ME placeholders, filled with this test's hosts, queues and IP sets.
            "ALLOWED_HOSTS": ",".join(WEB_HOSTS),
            "SQS_INGEST_QUEUE_URL": aws.queues["ingest"].url,
            "SQS_DEFAULT_QUEUE_URL": aws.queues["default"].url,
            "WAF_IPSET_V4_ARN": aws.ipsets["IPV4"]["ARN"],
            "WAF_IPSET_V6_ARN": aws.ipsets["IPV6"]["ARN"],
            "AWS_ENDPOINT_URL_SQS": aws.endpoint,
            "AWS_ENDPOINT_URL_WAFV2": aws.endpoint,
        }
        assert env["CELERY_BROKER_URL"] == "sqs://"
        assert env["TRUSTED_PROXY_HOPS"] == "1"
        assert "DEBUG" not in env
        started[stage] = Driver(stage, root, env, logs / f"{stage}.log")
    try:
        started["production_commands"].manage("migrate", "--noinput", "-v", "0")
        yield started
    finally:
        for driver in started.values():
            driver.close()
        with contextlib.suppress(Exception):
            import redis

            client = redis.Redis.from_url("redis://127.0.0.1:6379/12")
            keys = list(client.scan_iter(f"{prefix}:*"))
            if keys:
                client.delete(*keys)


@pytest.fixture(scope="session")
def web(drivers: dict[str, Driver]) -> Driver:
    return drivers["production"]


@pytest.fixture(scope="session")
def worker(drivers: dict[str, Driver]) -> Driver:
    return drivers["production_worker"]


@pytest.fixture(scope="session")
def commands(drivers: dict[str, Driver]) -> Driver:
    return drivers["production_commands"]


@pytest.fixture(scope="session")
def site_id(web: Driver) -> str:
    return web.manage("createsite", "example.com").strip()


# --------------------------------------------------------------------------------------------
# Events: W2's recorded payloads (fathom/tests/events), varied per test
# --------------------------------------------------------------------------------------------


def recorded(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text())


def alb(method: str, path: str, *, body: str = "", headers: dict[str, str] | None = None) -> dict[str, Any]:
    event = recorded("alb_post_event" if method == "POST" else "alb_get_healthz")
    event["httpMethod"], event["path"] = method, path
    multi = event["multiValueHeaders"]
    if method != "POST":
        multi["user-agent"] = recorded("alb_post_event")["multiValueHeaders"]["user-agent"]
        multi["x-forwarded-for"] = [REAL_CLIENT]
    for key, value in (headers or {}).items():
        multi[key] = [value]
    if method == "POST":
        multi["content-length"] = [str(len(body.encode()))]
        event["body"], event["isBase64Encoded"] = base64.b64encode(body.encode()).decode(), True
    return event


def hit_body(site_id: str, url: str = "https://example.com/pricing?utm_source=newsletter") -> str:
    return json.dumps({"n": "pageview", "u": url, "sid": site_id, "r": "https://duckduckgo.com/"})


def body_text(response: dict[str, Any]) -> str:
    body = response.get("body") or ""
    if not response.get("isBase64Encoded"):
        return body
    raw = base64.b64decode(body)
    if header(response, "content-encoding") == "gzip":
        raw = gzip.decompress(raw)
    return raw.decode()


def header(response: dict[str, Any], name: str) -> str:
    if "multiValueHeaders" in response:
        values = {k.lower(): v for k, v in response["multiValueHeaders"].items()}.get(name, [""])
        return values[0]
    return {k.lower(): v for k, v in (response.get("headers") or {}).items()}.get(name, "")


def scheduled(command: str, *args: str) -> dict[str, Any]:
    event = recorded("scheduled_rotate_salts")
    event["kwargs"] = {"command": command, "args": list(args)}
    event["resources"] = [f"arn:aws:events:us-east-1:123456789012:rule/fathom-production-commands-{command}"]
    return event


def receive(aws: SimpleNamespace, queue: str, expected: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Up to `expected` messages, as Lambda's poller would receive them."""
    url, messages = aws.queues[queue].url, []
    deadline = time.monotonic() + timeout
    while len(messages) < expected and time.monotonic() < deadline:
        got = aws.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["All"], VisibilityTimeout=60
        )
        messages += got.get("Messages", [])
    return messages


def records(aws: SimpleNamespace, queue: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The Lambda SQS event for these messages (recorded sqs_batch.json as the template)."""
    template = recorded("sqs_batch")["Records"][0]
    out = []
    for message in messages:
        record = json.loads(json.dumps(template))
        record.update(
            messageId=message["MessageId"],
            receiptHandle=message["ReceiptHandle"],
            body=message["Body"],
            md5OfBody=message["MD5OfBody"],
            eventSourceARN=aws.queues[queue].arn,
        )
        record["attributes"].update(
            {k: v for k, v in message.get("Attributes", {}).items() if k in record["attributes"]}
        )
        out.append(record)
    return {"Records": out}


def delete(aws: SimpleNamespace, queue: str, messages: list[dict[str, Any]]) -> None:
    """What Lambda does with the messages of a batch that are not in batchItemFailures."""
    for message in messages:
        aws.sqs.delete_message(QueueUrl=aws.queues[queue].url, ReceiptHandle=message["ReceiptHandle"])


def celery_payload(body: str) -> tuple[dict[str, Any], list[Any]]:
    """(headers, args) of a kombu SQS message body (base64 JSON envelope, base64 [args, kwargs, embed])."""
    envelope = json.loads(base64.b64decode(body))
    args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
    return envelope["headers"], args


def event_count(database: str) -> int:
    return sql(database, "SELECT COUNT(*) FROM collector_event")[0][0]


# --------------------------------------------------------------------------------------------
# The zips themselves
# --------------------------------------------------------------------------------------------


def test_the_zips_hold_the_runtime_only_and_fit_lambda(package_zips, unzipped):
    contents = {}
    for stage, path in package_zips.items():
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
        names = {i.filename for i in infos}
        unzipped_bytes = sum(i.file_size for i in infos)
        print(f"{stage}: {path.stat().st_size / 2**20:.1f} MiB zipped, {unzipped_bytes / 1e6:.1f} MB unzipped")
        assert unzipped_bytes < LAMBDA_LIMIT / 2, "well below Lambda's 250 MB"
        # The app, Django's staticfiles app (an `exclude` of "staticfiles" used to delete it),
        # collectstatic's output for WhiteNoise, PyMySQL, and RE2's wheel.
        for required in (
            "fathom/lambda_handler.py",
            "fathom/lambda_sqs.py",
            "fathom/deploy_hooks.py",
            "manage.py",
            "django/contrib/staticfiles/__init__.py",
            "botocore/docs/__init__.py",
            "staticfiles/dashboard/app.css",
            "staticfiles/admin/css/base.css",
            "staticfiles/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
            "pymysql/__init__.py",
            "re2/__init__.py",
            "clickhouse_connect/__init__.py",
        ):
            assert required in names, f"{stage} lacks {required}"
        forbidden = [
            n
            for n in names
            if n.startswith((".venv/", "MySQLdb/", "_pytest/", "pytest/", "moto/", "playwright/", "ruff", "zappa/"))
            or n.startswith(("bench/", "docs/", "artifacts/", "build/", ".ci/", "scripts/", "bin/", "pycurl"))
            # The embedded ClickHouse engine and what it brings (~0.5 GB) are dev/test only.
            or n.startswith(("chdb/", "chdb-", "pandas/", "pyarrow/", "numpy/"))
            or "/tests/" in n
            or n == "testing.py"
            or n.endswith((".pyc", "conftest.py", "db.sqlite3", "zappa_settings.json"))
        ]
        assert not forbidden, forbidden[:10]
        wheels = [n for n in names if n.endswith(".dist-info/METADATA")]
        assert not [n for n in wheels if n.startswith(("mysqlclient", "gunicorn", "zappa", "pycurl"))]
        contents[stage] = {
            i.filename: i.CRC for i in infos if i.filename not in ("zappa_settings.py", "package_info.json")
        }
    # One build for the three functions: only Zappa's generated settings differ.
    assert contents["production"] == contents["production_worker"] == contents["production_commands"]

    # Every compiled module loads on the python3.11 runtime (Amazon Linux 2: glibc 2.26, GCC 7).
    root = unzipped["production"]
    shared = [p for p in root.rglob("*.so*") if p.is_file()]
    assert any(p.name.startswith("_re2") for p in shared)
    for path in shared:
        data = path.read_bytes()
        glibc = [tuple(map(int, v)) for v in re.findall(rb"GLIBC_(\d+)\.(\d+)", data)]
        assert max(glibc, default=(0, 0)) <= AL2_GLIBC, f"{path.relative_to(root)} needs glibc {max(glibc)}"
        glibcxx = [tuple(map(int, v)) for v in re.findall(rb"GLIBCXX_(\d+)\.(\d+)\.(\d+)", data)]
        assert max(glibcxx, default=(0, 0, 0)) <= AL2_GLIBCXX, f"{path.relative_to(root)} needs {max(glibcxx)}"


def test_only_the_zip_is_importable_and_mysqldb_is_pymysql(web, worker, commands):
    web.invoke(alb("GET", "/readyz"))  # the database driver loaded and used
    for driver in (web, worker, commands):
        assert driver.invoke(recorded("keep_warm")) == {"warm": True}  # the entry point imported
        facts = driver.call(op="provenance")
        assert facts["outside"] == [], f"{driver.stage} imported from outside its zip: {facts['outside'][:5]}"
        assert not [p for p in facts["sys_path"] if "/work/" in p or ".venv" in p or "site-packages" in p]
        assert facts["MySQLdb"] == "pymysql", f"{driver.stage}: MySQLdb is {facts['MySQLdb']} ({facts['MySQLdb_file']})"
        assert not facts["mysqlclient_loaded"]
        assert facts["re2"].startswith(str(driver.proc.args[-2]))
        assert all(path.startswith(str(driver.proc.args[-2])) for path in facts["clickhouse"]), facts["clickhouse"]
        assert not facts["chdb_importable"]


def test_re2_from_the_pinned_wheel_runs_the_bot_detection(web):
    agents = [
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
        recorded("alb_post_event")["multiValueHeaders"]["user-agent"][0],
    ]
    assert web.call(op="bot", agents=agents) == [True, True, False]


# --------------------------------------------------------------------------------------------
# Web function: ALB, API Gateway v2, function URL, keep-warm
# --------------------------------------------------------------------------------------------


def test_keep_warm_pings_return_at_once(web):
    started = time.monotonic()
    assert web.invoke(recorded("keep_warm")) == {"warm": True}
    assert time.monotonic() - started < 1.0


def test_alb_get_script_js(web):
    response = web.invoke(alb("GET", "/script.js"))
    assert response["statusCode"] == 200
    assert header(response, "content-type").startswith("application/javascript")
    assert "/api/event" in body_text(response)


def test_alb_dashboard_page_and_static_files_with_debug_off(web):
    login = web.invoke(alb("GET", "/accounts/login/", headers={"accept": "text/html"}))
    assert login["statusCode"] == 200
    assert header(login, "content-type").startswith("text/html")
    page = body_text(login)
    assert "<form" in page
    assert "csrfmiddlewaretoken" in page
    assert "/static/dashboard/app.css" in page
    # WhiteNoise serves collectstatic's output from the zip (DEBUG is off: no finders).
    css = web.invoke(alb("GET", "/static/dashboard/app.css"))
    assert css["statusCode"] == 200
    assert header(css, "content-type").startswith("text/css")
    assert header(css, "content-encoding") == "gzip"  # the recorded request accepts gzip: the .gz twin
    assert len(body_text(css)) > 100
    swagger = web.invoke(alb("GET", "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css"))
    assert swagger["statusCode"] == 200
    # The dashboard itself needs a login.
    dashboard = web.invoke(alb("GET", "/"))
    assert dashboard["statusCode"] in (200, 302)


@pytest.mark.parametrize("name", ["apigw_v2_get_healthz", "function_url_get_healthz"])
def test_api_gateway_v2_and_function_url_events(web, name):
    response = web.invoke(recorded(name))
    assert response["statusCode"] == 200
    assert json.loads(body_text(response)) == {"status": "ok"}


def test_alb_post_is_published_to_sqs_and_the_worker_writes_it(web, worker, aws, database, site_id):
    before = event_count(database)
    response = web.invoke(alb("POST", "/api/event", body=hit_body(site_id)))
    assert response["statusCode"] == 202, body_text(response)

    messages = receive(aws, "ingest", 1)
    assert len(messages) == 1
    headers, args = celery_payload(messages[0]["Body"])
    assert headers["task"] == "collector.tasks.ingest_hits"
    assert len(args[0]) == 1
    # Neither the IP nor the User-Agent leaves the web function.
    assert REAL_CLIENT not in json.dumps(args)
    assert "Chrome/131" not in json.dumps(args)

    result = worker.invoke(records(aws, "ingest", messages))
    assert result == {"batchItemFailures": []}
    delete(aws, "ingest", messages)
    assert event_count(database) == before + 1
    assert sql(database, "SELECT path, referrer_source FROM collector_event ORDER BY id DESC LIMIT 1") == [
        ("/pricing", "DuckDuckGo")
    ]


# --------------------------------------------------------------------------------------------
# Worker function: SQS batches of real Celery messages
# --------------------------------------------------------------------------------------------


_publisher: dict[str, Any] = {}


def publish_ingest(aws: SimpleNamespace, hits: list[dict[str, Any]], **options: Any) -> str:
    """Publish ingest_hits through Celery + kombu's SQS transport, as the web function does."""
    from celery import Celery

    with aws_env_for_this_process(aws):
        app = _publisher.get(aws.endpoint)
        if app is None:
            app = _publisher[aws.endpoint] = Celery("pkgtest", broker="sqs://", set_as_current=False)
            app.conf.broker_transport_options = {
                "region": REGION,
                "predefined_queues": {
                    "ingest": {"url": aws.queues["ingest"].url},
                    "default": {"url": aws.queues["default"].url},
                },
            }
            app.conf.task_serializer = "json"
        result = app.send_task("collector.tasks.ingest_hits", args=[hits], queue="ingest", **options)
    return result.id


def fresh_hits(template: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same hit with a new id (and so a new row)."""
    return [{**hit, "id": hit["id"][:12] + uuid.uuid4().hex[:20]} for hit in template]


def test_sqs_batch_with_poison_countdown_and_duplicates(web, worker, aws, database, site_id):
    # A real message from the web function: its hits are the template for the others.
    assert web.invoke(alb("POST", "/api/event", body=hit_body(site_id, "https://example.com/a")))["statusCode"] == 202
    (real,) = receive(aws, "ingest", 1)
    _, (template,) = celery_payload(real["Body"])
    # A duplicate publish of the same hits (a client retry after a lost 202).
    aws.sqs.send_message(QueueUrl=aws.queues["ingest"].url, MessageBody=real["Body"])
    # Poison: not a Celery message at all.
    aws.sqs.send_message(QueueUrl=aws.queues["ingest"].url, MessageBody="not a celery message")
    # A retry with a countdown: Celery only writes an eta; the worker must delay it in SQS.
    delayed_hits = fresh_hits(template)
    delayed_id = publish_ingest(aws, delayed_hits, countdown=6)
    # And one ordinary message published through kombu.
    publish_ingest(aws, fresh_hits(template))

    messages = [real, *receive(aws, "ingest", 4)]
    assert len(messages) == 5
    poison = next(m["MessageId"] for m in messages if m["Body"] == "not a celery message")
    before = event_count(database)

    result = worker.invoke(records(aws, "ingest", messages))

    assert result == {"batchItemFailures": [{"itemIdentifier": poison}]}
    # The real hit once (duplicate ignored), the kombu one; the delayed one not yet.
    assert event_count(database) == before + 2
    assert sql(database, "SELECT COUNT(*) FROM collector_event WHERE hit_id = %s", (delayed_hits[0]["id"],)) == [(0,)]
    delete(aws, "ingest", [m for m in messages if m["MessageId"] != poison])

    # The countdown message was published again with DelaySeconds, same task id.
    attributes = aws.sqs.get_queue_attributes(QueueUrl=aws.queues["ingest"].url, AttributeNames=["All"])["Attributes"]
    assert int(attributes["ApproximateNumberOfMessagesDelayed"]) >= 1
    again = receive(aws, "ingest", 1, timeout=15)
    assert len(again) == 1
    headers, _ = celery_payload(again[0]["Body"])
    assert headers["id"] == delayed_id
    assert worker.invoke(records(aws, "ingest", again)) == {"batchItemFailures": []}
    delete(aws, "ingest", again)
    assert event_count(database) == before + 3

    # Lambda delivers the same record again (at-least-once): nothing new is written.
    assert worker.invoke(records(aws, "ingest", [real])) == {"batchItemFailures": []}
    assert event_count(database) == before + 3

    # The poison message comes back after its visibility timeout (then the DLQ after maxReceiveCount).
    aws.sqs.change_message_visibility(
        QueueUrl=aws.queues["ingest"].url,
        ReceiptHandle=next(m["ReceiptHandle"] for m in messages if m["MessageId"] == poison),
        VisibilityTimeout=0,
    )
    back = receive(aws, "ingest", 1)
    assert [m["MessageId"] for m in back] == [poison]
    assert int(back[0]["Attributes"]["ApproximateReceiveCount"]) == 2
    assert worker.invoke(records(aws, "ingest", back)) == {"batchItemFailures": [{"itemIdentifier": poison}]}
    delete(aws, "ingest", back)


# --------------------------------------------------------------------------------------------
# Client IP through the ALB, bans, and the WAF sync on the default queue
# --------------------------------------------------------------------------------------------


def test_a_spoofed_x_forwarded_for_does_not_change_the_client_ip(web, worker, aws):
    banned = "192.0.2.66"
    assert "banned 192.0.2.66/32" in web.manage("ban", banned, "--reason", "package test")
    # The banned client puts an innocent address first: the ALB appends the real one, which counts.
    spoofed = web.invoke(alb("GET", "/script.js", headers={"x-forwarded-for": f"203.0.113.99, {banned}"}))
    assert spoofed["statusCode"] == 403
    # An innocent client whose request claims to come from the banned address is served.
    innocent = web.invoke(alb("GET", "/script.js", headers={"x-forwarded-for": f"{banned}, 203.0.113.50"}))
    assert innocent["statusCode"] == 200

    # The ban queued a WAF sync on the default queue; the worker runs it against WAF (moto).
    messages = receive(aws, "default", 1)
    assert [celery_payload(m["Body"])[0]["task"] for m in messages] == ["security.tasks.sync_waf_task"]
    assert worker.invoke(records(aws, "default", messages)) == {"batchItemFailures": []}
    delete(aws, "default", messages)
    ipset = aws.ipsets["IPV4"]
    addresses = aws.waf.get_ip_set(Name=ipset["Name"], Scope="REGIONAL", Id=ipset["Id"])["IPSet"]["Addresses"]
    assert addresses == [f"{banned}/32"]


# --------------------------------------------------------------------------------------------
# Commands function: EventBridge schedules
# --------------------------------------------------------------------------------------------


def test_scheduled_rotate_salts_creates_today_and_purges_old(commands, database):
    sql(
        database,
        "INSERT INTO collector_salt (day, value, created_at) VALUES (DATE_SUB(UTC_DATE(), INTERVAL 3 DAY), %s, UTC_TIMESTAMP())",
        ("x" * 64,),
    )
    result = commands.invoke(recorded("scheduled_rotate_salts"))
    assert result["command"] == "rotate_salts"
    assert result["ok"] is True
    days = [row[0] for row in sql(database, "SELECT DATEDIFF(UTC_DATE(), day) FROM collector_salt ORDER BY day")]
    assert 0 in days
    assert all(d <= 1 for d in days)


@pytest.mark.parametrize("name", ["scheduled_sync_waf", "scheduled_expire_bans", "scheduled_send_reports"])
def test_the_other_schedules_run(commands, name):
    result = commands.invoke(recorded(name))
    assert result["ok"] is True
    assert result["command"] == recorded(name)["kwargs"]["command"]


def test_the_real_schedules_name_allowed_commands_only(commands):
    settings = json.loads((ROOT / "zappa_settings.json").read_text())
    for event in settings["production_commands"]["events"]:
        assert event["function"] == "fathom.lambda_handler.handler"
        kwargs = event["kwargs"]
        result = commands.invoke(scheduled(kwargs["command"], *kwargs["args"]))
        assert result["ok"] is True, event
    with pytest.raises(DriverError, match="not allowed"):
        commands.invoke(scheduled("migrate"))
