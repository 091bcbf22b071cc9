# `make demo` and `make test` each do all the set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONNECTOR_DIRS := $(patsubst %/pyproject.toml,%,$(wildcard connectors/*/pyproject.toml))
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-long lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml $(wildcard connectors/*/pyproject.toml)
	$(BIN)/python -m pip install -q -e '.[test]' $(foreach d,$(CONNECTOR_DIRS),-e '$(d)[test]')
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/erasure demo

lint: install
	$(BIN)/ruff check src tests connectors bench

test: lint
	$(BIN)/python -m pytest

# The model-based tests (tests/test_model.py, tests/test_model_engine.py) explore 5000
# random worlds each instead of the few fixed ones `make test` runs; a failure prints the
# shrunk world.
test-long: install
	ERASURE_MODEL_EXAMPLES=5000 $(BIN)/python -m pytest tests/test_model.py tests/test_model_engine.py

bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .erasure .erasure-demo .pytest_cache .ruff_cache
