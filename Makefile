# Evidence Locker — two commands: `make run` and `make test`. Everything else is set up by them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export LOCKER_DATA_DIR ?= $(CURDIR)/var

.PHONY: run test lint typecheck unit bench clean system-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## run: set up, migrate, create the demo force, dock demo footage, serve on http://127.0.0.1:8000
run: $(STAMP)
	$(BIN)/locker demo --host 127.0.0.1 --port 8000

## system-deps: what tests need from Debian (Chromium for the browser tests)
system-deps:
	scripts/system-deps.sh

## test: set up everything, lint, type-check and run every test
test: $(STAMP) system-deps lint typecheck
	scripts/test.sh

unit: $(STAMP)
	$(BIN)/pytest -q -m "not browser and not slow"

lint: $(STAMP)
	$(BIN)/ruff check --no-cache src tests $(wildcard bench)

typecheck: $(STAMP)
	$(BIN)/mypy

## bench: ingest benchmark against the physical limit and a peer tus server (not part of test)
bench: $(STAMP)
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
