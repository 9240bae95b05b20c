# Quick start: `make up` runs the whole system locally, `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test lint typecheck pytest up bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest

test: lint typecheck pytest

up: install
	$(BIN)/journeys up

# Benchmarks against bare Temporal (bench/README.md); not part of `make test`.
# `make bench QUICK=1` runs small sizes in a few minutes; BENCH_ARGS passes more options.
bench: install
	$(BIN)/python -m bench $(if $(QUICK),--quick) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .journeys .mypy_cache .pytest_cache .ruff_cache
