# Two commands: `make run` (app + demo data on SQLite, tasks inline) and `make test` (everything CI runs).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
MARIADB_URL ?= mysql://root@127.0.0.1:3306/test
REDIS ?= redis://127.0.0.1:6379

.PHONY: setup system venv run test lint check-migrations test-sqlite test-chdb test-mariadb services bench package clean

setup: system venv

system:
	bash scripts/install-system.sh

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

run: setup
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	@echo ""
	@echo "  Open http://127.0.0.1:8000/  (demo login: demo / demo-password)"
	@echo ""
	$(PY) manage.py runserver 127.0.0.1:8000

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

check-migrations:
	$(PY) manage.py makemigrations --check --dry-run --settings=fathom.test_settings
	$(PY) manage.py spectacular --validate --fail-on-warn --settings=fathom.test_settings --file /dev/null

# The whole suite on the embedded default (SQLite, local-memory cache, inline tasks)...
test-sqlite:
	$(VENV)/bin/pytest -p no:cacheprovider

# ...the stats tests (marked `analytics`) again on the ClickHouse store, embedded (chdb): the
# same assertions, so both backends give the same answers...
test-chdb:
	FATHOM_TEST_ANALYTICS=chdb $(VENV)/bin/pytest -p no:cacheprovider -m analytics

# ...and again on real MariaDB with Redis as the cache.
test-mariadb: services
	DATABASE_URL=$(MARIADB_URL) REDIS_URL=$(REDIS)/1 $(VENV)/bin/pytest -p no:cacheprovider

test: setup lint check-migrations test-sqlite test-chdb test-mariadb

# MariaDB and Redis are started by this machine kind; start them if they are not running.
services:
	@bash scripts/ensure-services.sh

bench: setup services
	bash scripts/install-system.sh --bench
	$(PY) bench/run_all.py

# The three Lambda zips, build/{production,production_worker,production_commands}.zip: Linux
# wheels for the python3.11 runtime, collectstatic, offline `zappa package` (docs/deploy.md).
package: venv
	bash scripts/package.sh

clean:
	rm -rf $(VENV) staticfiles db.sqlite3 artifacts build
