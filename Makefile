# event-manager developer commands (GNU make).
#
# Only python3 (3.11+) with its venv module is needed: when `uv` is not on PATH, it is installed
# once into .tools/ (a venv inside the checkout) and used from there.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules

PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS_UV := .tools/bin/uv

# UV: the uv on PATH if there is one, else .tools/bin/uv (built by the file target below).
UV_ON_PATH := $(shell command -v uv 2>/dev/null)
ifneq ($(UV_ON_PATH),)
UV := $(UV_ON_PATH)
UV_DEP :=
else
UV := $(TOOLS_UV)
UV_DEP := $(TOOLS_UV)
endif

UV_RUN := $(UV) run --frozen

.PHONY: help install run test fuzz lint format migrate worker create-admin client bench clean

help: ## List the targets
	@echo "event-manager: make <target>"
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' \
		$(MAKEFILE_LIST)
	@echo
	@echo "uv: $(UV)"

# Done once: a venv in .tools holding the pinned uv. Nothing is installed outside the checkout.
$(TOOLS_UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --disable-pip-version-check --quiet uv==$(UV_VERSION)

install: $(UV_DEP) ## Create/refresh .venv from uv.lock (uv sync --frozen)
	$(UV) sync --frozen

run: install ## Serve the API on http://127.0.0.1:8000 (embedded PostgreSQL unless DATABASE_URL)
	$(UV_RUN) event-manager serve

test: install ## Run the test suite with coverage (fails under 90 %)
	$(UV_RUN) pytest --cov=api --cov-report=term-missing --cov-fail-under=90

# A longer Schemathesis run (VAL-1) than the one in `make test`; same fixed seed.
FUZZ_MAX_EXAMPLES ?= 200
FUZZ_STATEFUL_EXAMPLES ?= 50
fuzz: export FUZZ_MAX_EXAMPLES := $(FUZZ_MAX_EXAMPLES)
fuzz: export FUZZ_STATEFUL_EXAMPLES := $(FUZZ_STATEFUL_EXAMPLES)
fuzz: install ## Longer Schemathesis run as every role (FUZZ_MAX_EXAMPLES=200)
	$(UV_RUN) pytest --no-cov -p no:cacheprovider tests/test_schemathesis.py

# Redocly's OpenAPI linter, fetched from the npm registry by npx (Node.js 20+); its rules are in
# redocly.yaml. It reads the test deployment's document (ENVIRONMENT=test adds the test clock's
# routes to it), written to a temporary file; the secret only lets the settings load.
REDOCLY := npx --yes @redocly/cli@2.77.0

lint: install ## ruff check, ruff format --check, mypy, and Redocly's lint of the OpenAPI document
	$(UV_RUN) ruff check .
	$(UV_RUN) ruff format --check .
	$(UV_RUN) mypy api tests bench
	dir="$$(mktemp -d)"; trap 'rm -rf "$$dir"' EXIT; \
	ENVIRONMENT=test SECRET_KEY=openapi-lint-only-not-a-real-secret-0123456789 \
		$(UV_RUN) event-manager openapi --output "$$dir/openapi.json" >/dev/null; \
	$(REDOCLY) lint --config redocly.yaml "$$dir/openapi.json"

format: install ## Sort imports and format the code with ruff
	$(UV_RUN) ruff check --select I --fix .
	$(UV_RUN) ruff format .

migrate: install ## Apply the database migrations (alembic upgrade head)
	$(UV_RUN) event-manager migrate

worker: install ## Run the mail/notification job worker
	$(UV_RUN) event-manager worker

# The values reach the command through the environment, unexpanded, so passwords containing
# $, quotes or spaces arrive intact. Without PASSWORD the command asks for it (hidden, twice),
# which keeps it out of the shell history.
create-admin: export CREATE_ADMIN_EMAIL = $(value EMAIL)
create-admin: export CREATE_ADMIN_PASSWORD = $(value PASSWORD)
create-admin: install ## Create an admin: make create-admin EMAIL=... (asks for the password)
	@if [ -z "$$CREATE_ADMIN_EMAIL" ]; then \
		echo "usage: make create-admin EMAIL=admin@example.com [PASSWORD=...]" >&2; exit 2; \
	fi
	$(UV_RUN) event-manager create-admin --email "$$CREATE_ADMIN_EMAIL" \
		$${CREATE_ADMIN_PASSWORD:+--password "$$CREATE_ADMIN_PASSWORD"}

# The Python client, generated from the OpenAPI document by openapi-python-client (settings in
# clients/openapi-python-client.yaml). uv runs the generator in a tool environment of its own: it
# pins an older typer than ours, so it cannot be a dev dependency. That environment is pinned
# whole by clients/generator-constraints.txt. Any generator warning fails.
OPENAPI_DOCUMENT ?= clients/openapi.json
CLIENT_DIR ?= clients/python
OPENAPI_PYTHON_CLIENT := openapi-python-client==0.29.1
client: install ## Generate the Python client into clients/python/ (package event_manager_client)
	$(UV_RUN) event-manager openapi --output '$(OPENAPI_DOCUMENT)'
	$(UV) tool run --from $(OPENAPI_PYTHON_CLIENT) --constraints clients/generator-constraints.txt \
		openapi-python-client generate \
		--path '$(OPENAPI_DOCUMENT)' --config clients/openapi-python-client.yaml --meta uv \
		--output-path '$(CLIENT_DIR)' --overwrite --fail-on-warning

# BENCH_SECONDS, BENCH_SCALE, BENCH_WORKERS, ... reach it through the environment (bench/README.md);
# BASELINE=<rev> (or BENCH_BASELINE) also measures that revision, built under .bench/, paired;
# GROWTH=1 measures 10x the data against 1x instead.
bench: install ## Benchmarks against a raw ceiling (needs wrk; BASELINE=<rev>; GROWTH=1)
	$(UV_RUN) python -m bench $(if $(GROWTH),--growth,) $(if $(BASELINE),--baseline '$(BASELINE)',)

clean: ## Remove caches and coverage output (never .data/, .venv/ or .tools/)
	rm -rf .pytest_cache .mypy_cache .ruff_cache htmlcov .coverage .coverage.*
	find . -path ./.venv -prune -o -path ./.tools -prune -o -path ./.data -prune -o \
		-path ./.git -prune -o -type d -name __pycache__ -exec rm -rf {} +
