# workfleet developer commands. Everything installs into ./.venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := requirements.lock

.PHONY: run test chaos lint bench bench-api format clean lock image image-test

# The runtime dependencies are pinned by $(LOCK) (as in the image); dev tools float.
$(STAMP): pyproject.toml plugins/workfleet-examples/pyproject.toml $(LOCK)
	@echo "make: creating $(VENV) (1/3)"
	$(PYTHON) -m venv $(VENV)
	@echo "make: upgrading pip (2/3)"
	$(BIN)/pip install --quiet --upgrade pip
	@echo "make: installing workfleet, its tools and the example plugins (3/3; first time: a minute or two)"
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[dev]' -e plugins/workfleet-examples
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

## lock: re-resolve the runtime dependencies (plus pgserver for make run) into requirements.lock
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet '.[embedded]'
	{ echo "# Runtime dependencies of workfleet (and pgserver, for make run), pinned."; \
	  echo "# Used as a constraints file by the Dockerfile and the dev venv. Refresh: make lock"; \
	  .lock-venv/bin/pip freeze --exclude workfleet; } > $(LOCK)
	rm -rf .lock-venv

## image: build workfleet:VERSION and workfleet-examples:VERSION (docker if an engine answers, else podman)
image: $(STAMP)
	$(BIN)/python -m tests.container.images build

## image-test: build the images with podman and run the container suite (tests/container)
image-test: $(STAMP)
	$(BIN)/python -m tests.container.images build --engine podman
	WORKFLEET_CONTAINER_TESTS=1 $(BIN)/pytest -m container tests/container

## bench: the benchmark suite W1-W9 beside pgqueuer and the raw-SQL ceiling (prints a table)
bench: $(STAMP)
	$(BIN)/python -m benchmarks

## bench-api: the REST API and console with 1,000,000 runs (p50/p99 per page, POST req/s)
bench-api: $(STAMP)
	$(BIN)/python -m benchmarks.api

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest-pg .mypy_cache .ruff_cache .pytest_cache .lock-venv
