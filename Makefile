# Thorn: the README's two commands, and the steps they are made of.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test venv lint types contracts pytest bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[all,dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python example/demo.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

# The core suite runs without Django configured (it must not need it); the
# Django suite runs once on SQLite and once on a PostgreSQL server that the
# tests start themselves; the end-to-end suite drives the example project in
# headless Chromium.
pytest: $(STAMP)
	$(BIN)/pytest -q --ignore=tests/django --ignore=tests/e2e $(PYTEST_ARGS)
	$(BIN)/pytest -q tests/django --ds=testproject.settings $(PYTEST_ARGS)
	THORN_TEST_DB=postgresql $(BIN)/pytest -q tests/django --ds=testproject.settings $(PYTEST_ARGS)
	$(BIN)/pytest -q tests/e2e $(PYTEST_ARGS)

test: lint types contracts pytest

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist
