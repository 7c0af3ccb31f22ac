# workfleet developer commands. Everything installs into ./.venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test chaos lint bench bench-api format clean

$(STAMP): pyproject.toml plugins/workfleet-examples/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -e plugins/workfleet-examples
	touch $(STAMP)

## run: a worker with the example plugins on an embedded Postgres (or $$DATABASE_URL)
run: $(STAMP)
	$(BIN)/workfleet dev

## test: the whole suite against real PostgreSQL ($$WORKFLEET_TEST_DATABASE_URL, else embedded)
test: $(STAMP)
	$(BIN)/pytest

## chaos: only the fault-injection scenarios (also part of make test)
chaos: $(STAMP)
	$(BIN)/pytest -m chaos

## lint: ruff, formatting, mypy --strict and the import-layer contracts
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## bench: the benchmark suite W1-W6 beside pgqueuer and the raw-SQL ceiling (prints a table)
bench: $(STAMP)
	$(BIN)/python -m benchmarks

## bench-api: the REST API and console with 1,000,000 runs (p50/p99 per page, POST req/s)
bench-api: $(STAMP)
	$(BIN)/python -m benchmarks.api

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest-pg .mypy_cache .ruff_cache .pytest_cache
