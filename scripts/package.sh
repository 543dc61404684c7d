#!/usr/bin/env bash
# Build the Lambda zips, offline, with `zappa package`: build/<stage>.zip for each stage.
#
#   bash scripts/package.sh                       # production, production_worker, production_commands
#   bash scripts/package.sh production_worker     # just one stage
#
# 1. build/lambda-venv/lib/python3.11/site-packages: requirements-lambda.txt installed with
#    `pip install --target` as Linux wheels for the Lambda runtime (CPython 3.11, x86_64, manylinux
#    <= 2_26: the python3.11 runtime is Amazon Linux 2, glibc 2.26), never the dev venv (which
#    has pytest, playwright, moto and a mysqlclient linked against this machine's libmariadb).
#    Needs PyPI (or the configured index); skipped when requirements-lambda.txt is unchanged.
# 2. collectstatic into STATIC_ROOT (./staticfiles), run on that site-packages alone, so
#    WhiteNoise serves the dashboard, admin and Swagger UI assets from the zip with DEBUG off.
# 3. `zappa package STAGE -j -o build/STAGE.zip` with VIRTUAL_ENV=build/lambda-venv, under
#    `unshare -n` (no network at all) when the kernel allows it: zappa must not need AWS or PyPI.
# 4. Prints each zip's zipped / unzipped size and fails above Lambda's 250 MB unzipped limit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PY:-$ROOT/.venv/bin/python}
ZAPPA=${ZAPPA:-$ROOT/.venv/bin/zappa}
LAMBDA_VENV=$ROOT/build/lambda-venv
SITE=$LAMBDA_VENV/lib/python3.11/site-packages
STAGES=("$@")
[ ${#STAGES[@]} -gt 0 ] || STAGES=(production production_worker production_commands)
LIMIT=262144000  # Lambda: 250 MB unzipped (function code and layers)

[ -x "$PY" ] || { echo "no $PY: run 'make venv' first" >&2; exit 1; }
[ -x "$ZAPPA" ] || { echo "no $ZAPPA: run 'make venv' first" >&2; exit 1; }
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), "zappa must run on Python 3.11, the runtime the zip targets"'
start=$(date +%s)
mkdir -p build
# One build at a time (several test runs may share this checkout); the zips are replaced
# atomically. fathom/tests/test_package.py holds the lock itself and sets PACKAGE_LOCK_HELD.
if [ -z "${PACKAGE_LOCK_HELD:-}" ]; then
  exec 9>build/.package.lock
  flock 9
fi
rm -f build/package-inputs.sha256  # the test's "inputs unchanged" stamp: this build may differ

# --- 1. runtime-only site-packages for the Lambda platform ----------------------------------
# The platform tags the python3.11 runtime (Amazon Linux 2, glibc 2.26) can load, listed one by
# one (pip does not fall back from manylinux_2_26 to older tags by itself).
PIP_PLATFORM=(--only-binary=:all: --implementation cp --python-version 3.11 --abi cp311
  --platform manylinux_2_26_x86_64 --platform manylinux_2_25_x86_64 --platform manylinux_2_24_x86_64
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64)
SDIST_ONLY=(crawler-user-agents referer-parser)  # pure Python, published as sdists only
stamp="$(cat requirements-lambda.txt; echo "${PIP_PLATFORM[*]} ${SDIST_ONLY[*]}")"
stamp=$(printf '%s' "$stamp" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$LAMBDA_VENV/.requirements.sha256" 2>/dev/null)" != "$stamp" ]; then
  echo "== installing requirements-lambda.txt for cp311 manylinux<=2_26 x86_64 into $SITE"
  rm -rf "$LAMBDA_VENV"
  mkdir -p "$SITE"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  grep -v -E "^($(IFS='|'; echo "${SDIST_ONLY[*]}"))==" requirements-lambda.txt >"$tmp/binary.txt"
  grep -E "^($(IFS='|'; echo "${SDIST_ONLY[*]}"))==" requirements-lambda.txt >"$tmp/sdist.txt"
  # Pass 1: everything that has wheels, as wheels for the Lambda platform (dependencies resolved).
  "$PY" -m pip install -q --disable-pip-version-check --no-compile --no-warn-script-location \
    "${PIP_PLATFORM[@]}" --target "$SITE" -r "$tmp/binary.txt" 2> >(grep -v "is ignored: it is neither" >&2)
  # Pass 2: the two sdist-only pure-Python packages (no dependencies of their own).
  "$PY" -m pip install -q --disable-pip-version-check --no-compile --no-warn-script-location \
    --no-deps --target "$SITE" -r "$tmp/sdist.txt" 2> >(grep -v "is ignored: it is neither" >&2)
  rm -rf "$SITE/bin"  # console scripts pip wrote for this machine's Python
  # Anything compiled must be a manylinux wheel, and the MySQL C client must not be there.
  if ls "$SITE"/*.dist-info/WHEEL >/dev/null && grep -l "^Tag: .*linux_x86_64$" "$SITE"/*.dist-info/WHEEL | xargs -r grep -L "manylinux" | grep .; then
    echo "a locally built linux_x86_64 wheel is in the Lambda site-packages" >&2; exit 1
  fi
  if [ -e "$SITE/MySQLdb" ]; then echo "MySQLdb (mysqlclient) must not be in the Lambda package" >&2; exit 1; fi
  echo "$stamp" >"$LAMBDA_VENV/.requirements.sha256"
else
  echo "== $SITE is up to date with requirements-lambda.txt"
fi

# --- 2. collectstatic, with only the Lambda site-packages importable ------------------------
echo "== collectstatic into ./staticfiles"
env -i PATH=/usr/bin:/bin HOME="$ROOT/build" DJANGO_SETTINGS_MODULE=fathom.settings \
  SECRET_KEY=collectstatic-only ALLOW_LOCMEM_CACHE=1 \
  "$PY" -S -I -B -c "import sys; sys.path[:0] = ['$SITE', '$ROOT']
from django.core.management import execute_from_command_line
execute_from_command_line(['manage.py', 'collectstatic', '--noinput', '--clear', '-v0'])"
test -f staticfiles/dashboard/app.css

# --- 3. zappa package, offline ---------------------------------------------------------------
NET=()
if unshare -n true 2>/dev/null; then
  NET=(unshare -n)
  echo "== zappa package under 'unshare -n' (no network)"
else
  echo "== zappa package (unshare -n unavailable: offline not enforced; use_precompiled_packages is off and -j skips the update check)"
fi
for stage in "${STAGES[@]}"; do
  out=$ROOT/build/$stage.zip
  rm -f "$out.partial.zip"
  t0=$(date +%s)
  env AWS_DEFAULT_REGION=us-east-1 VIRTUAL_ENV="$LAMBDA_VENV" ${NET[@]+"${NET[@]}"} "$ZAPPA" package "$stage" -j -o "$out.partial.zip" \
    >"$ROOT/build/$stage.log" 2>&1 || { cat "$ROOT/build/$stage.log" >&2; exit 1; }
  mv -f "$out.partial.zip" "$out"
  echo "   $stage: $(( $(date +%s) - t0 )) s"
done

# --- 4. sizes and sanity checks --------------------------------------------------------------
"$PY" - "$LIMIT" "${STAGES[@]}" <<'EOF'
import sys
import zipfile
from pathlib import Path

limit, stages = int(sys.argv[1]), sys.argv[2:]
print(f"{'stage':<22} {'zipped':>12} {'unzipped':>12} {'files':>7}")
failed = False
for stage in stages:
    path = Path("build") / f"{stage}.zip"
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        names = {i.filename for i in infos}
    unzipped = sum(i.file_size for i in infos)
    print(f"{stage:<22} {path.stat().st_size / 2**20:>8.1f} MiB {unzipped / 1e6:>9.1f} MB {len(infos):>7}")
    must = ["fathom/lambda_handler.py", "manage.py", "django/contrib/staticfiles/__init__.py",
            "staticfiles/dashboard/app.css", "pymysql/__init__.py", "re2/__init__.py", "zappa_settings.py"]
    must_not = (".venv/", "MySQLdb/", "build/", "bench/", "docs/", "artifacts/", "_pytest/", "moto/", "zappa/",
                "playwright/", "conftest.py", "testing.py", "db.sqlite3")
    problems = [f"missing {m}" for m in must if m not in names]
    problems += [f"contains {n}" for n in names if n.startswith(must_not) or "/tests/" in n]
    if unzipped >= limit:
        problems.append(f"unzipped {unzipped} bytes >= Lambda's limit {limit}")
    for p in problems[:10]:
        print(f"   {stage}: {p}", file=sys.stderr)
    failed |= bool(problems)
sys.exit(1 if failed else 0)
EOF
echo "== built in $(( $(date +%s) - start )) s"
