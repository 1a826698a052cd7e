# The README names these targets. Each one sets up what it needs on a fresh machine.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test demo lint format typecheck bench profile compose-smoke clean

$(STAMP): requirements/base.txt requirements/dev.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is required (looked for $(PYTHON))."; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.txt
	touch $(STAMP)

# Development settings for manage.py commands run by hand in this checkout (git-ignored).
.env:
	printf '# Development only: production sets DEBUG=false and real secrets.\nDEBUG=true\n' > .env

## run: the broker (web, worker and beat) on SQLite and the filesystem broker, no server needed
run: $(STAMP) .env
	./scripts/run-dev

## test: the test suite against PostgreSQL and Redis on 127.0.0.1 (started if they are not running),
## on two workers: the end-to-end modules on one, the other modules on whichever is free (tests/parallel.py)
TEST_WORKERS ?= 2
test: $(STAMP)
	./scripts/ensure-services
	./scripts/ensure-browser
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

## demo: the broker wired to the fake Zoom and fake Recall, with a walk-through
demo: $(STAMP) .env
	./scripts/demo

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

## typecheck: mypy with django-stubs over the apps and brokerproject ([tool.mypy] in pyproject.toml)
# The django-stubs plugin imports the settings; DEBUG=true lets them load without production secrets.
typecheck: $(STAMP)
	DEBUG=true $(PY) -m mypy

bench: $(STAMP)
	./scripts/ensure-services
	command -v wrk >/dev/null 2>&1 || { echo "Installing wrk (the load generator) with apt-get."; apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }; }
	$(PY) bench/callbacks.py
	$(PY) bench/intake.py
	$(PY) bench/run.py
	$(PY) bench/overview.py
	$(PY) bench/presence.py --quick

## profile: flame graphs of a gunicorn worker serving token callbacks (bench/flamegraph-*.svg, py-spy)
profile: $(STAMP)
	./scripts/ensure-services
	command -v wrk >/dev/null 2>&1 || { apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }; }
	$(PY) bench/profile.py

## compose-smoke: build the image, start docker/docker-compose.yml for real, check it, tear it down (needs Docker)
compose-smoke:
	./scripts/compose-smoke

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
