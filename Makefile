# workfleet developer commands. Everything installs into ./.venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test chaos lint bench format clean

$(STAMP): pyproject.toml plugins/workfleet-examples/pyproject.toml
	@echo "make: creating $(VENV) (1/3)"
	$(PYTHON) -m venv $(VENV)
	@echo "make: upgrading pip (2/3)"
	$(BIN)/pip install --quiet --upgrade pip
	@echo "make: installing workfleet, its tools and the example plugins (3/3; first time: a minute or two)"
	$(BIN)/pip install --quiet -e '.[dev]' -e plugins/workfleet-examples
	touch $(STAMP)
	@echo "make: $(VENV) is ready"

## run: a worker with the example plugins on an embedded Postgres (or $$DATABASE_URL);
##      flags of `workfleet dev` in ARGS, e.g. make run ARGS='--no-demo --reload'
ARGS ?=
run: $(STAMP)
	$(BIN)/workfleet dev $(ARGS)

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

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest-pg .mypy_cache .ruff_cache .pytest_cache
