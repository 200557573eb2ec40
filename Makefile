# Every target creates or reuses .venv and installs the project first, so a fresh clone needs
# nothing but Python 3.11+ and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sovereign-installed

.PHONY: install run test test-fast lint format bench controls chaos clean

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres,ibkr]'
	@touch $(STAMP)

install: $(STAMP)

## run: the autonomous loop on the embedded default (paper exchange, bundled data, SQLite)
run: install
	$(BIN)/sovereign run $(ARGS)

## test: the whole suite (unit, integration on loopback, property, crash tests)
test: install
	$(BIN)/python -m pytest -n 2 -q

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

format: install
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

## bench: reproducible speed measurements (median of several runs, printed)
bench: install
	$(BIN)/python -m benchmarks

## controls: every negative and positive control of the validator and the gate (full markets)
controls: install
	$(BIN)/sovereign gate controls

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
