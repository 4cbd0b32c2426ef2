# Evidence Locker — two commands: `make run` and `make test`. Everything else is set up by them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The OpenID Connect provider the sign-in tests run (npm's oidc-provider, installed project-local).
OIDC_PROVIDER := tests/oidc_provider
OIDC_STAMP := $(OIDC_PROVIDER)/node_modules/.installed
export LOCKER_DATA_DIR ?= $(CURDIR)/var

.PHONY: run test lint typecheck unit bench clean system-deps

$(STAMP): pyproject.toml setup.py src/evidence_locker/audit/_chainwalk.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(OIDC_STAMP): $(OIDC_PROVIDER)/package.json $(OIDC_PROVIDER)/package-lock.json
	npm ci --prefix $(OIDC_PROVIDER) --no-audit --no-fund --loglevel=error
	touch $@

## run: set up, migrate, create the demo force, dock demo footage, serve on http://127.0.0.1:8000
run: $(STAMP)
	$(BIN)/locker demo --host 127.0.0.1 --port 8000

## system-deps: what tests need from Debian (Chromium, PostgreSQL, Redis, Node.js, npm, and the
## compiler and headers the audit walk's C part builds with)
system-deps:
	scripts/system-deps.sh

## test: set up everything, lint, type-check and run every test
test: system-deps $(STAMP) $(OIDC_STAMP) lint typecheck
	scripts/test.sh

unit: $(STAMP) $(OIDC_STAMP)
	$(BIN)/pytest -q -m "not browser and not slow"

lint: $(STAMP)
	$(BIN)/ruff check --no-cache src tests $(wildcard bench)

typecheck: $(STAMP)
	$(BIN)/mypy

## bench: ingest benchmark against the physical limit and a peer tus server (not part of test)
bench: $(STAMP)
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache $(OIDC_PROVIDER)/node_modules
