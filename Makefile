# ml-connector — two commands on a fresh machine:
#   make run    set up, then serve the console + worker + sandbox systems with a demo tenant
#   make test   set up, then run the whole suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test setup lint format migrate benchmark clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PIP) install --quiet -e ".[test,agent,browser]"
	touch $(STAMP)

setup: $(STAMP)

.env:
	$(PY) -m integrations.cli.dotenv > .env
	@echo "Wrote .env with fresh SECRET_KEY and FERNET_KEYS (keep it; it decrypts your secrets)."

migrate: setup .env
	$(PY) manage.py migrate --noinput
	$(PY) manage.py createcachetable

run: migrate
	$(PY) manage.py connector demo --port $(PORT)
	@echo ""
	@echo "  ml-connector console: http://$(HOST):$(PORT)/admin/   health: http://$(HOST):$(PORT)/healthz"
	@echo "  playground (simulated systems): http://$(HOST):$(PORT)/playground/"
	@echo ""
	SANDBOX_PLAYGROUND=true CONSOLE_HOST=$(HOST) CONSOLE_PORT=$(PORT) $(VENV)/bin/honcho start -f Procfile

test: setup
	$(PY) -m pytest -q -n 2 $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

format: setup
	$(VENV)/bin/ruff format .

# Benchmarks (never in CI): installs the `bench` extra (gunicorn), then runs every benchmark and writes
# var/benchmarks/report.md + report.json. `make benchmark BENCH_ARGS=--quick` is a small smoke run.
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PIP) install --quiet -e ".[test,agent,browser,bench]"
	touch $(BENCH_STAMP)

benchmark: $(BENCH_STAMP)
	$(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
