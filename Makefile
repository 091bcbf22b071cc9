# `make demo` and `make test` each do all the set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONNECTOR_DIRS := $(patsubst %/pyproject.toml,%,$(wildcard connectors/*/pyproject.toml))
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-long lint typecheck bench clean dovecot chromium

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

# mypy over src/erasure and every connectors/*/src ([tool.mypy] in pyproject.toml)
typecheck: install
	$(BIN)/mypy

# The mail connector's IMAP tests run against a real Dovecot; as root (CI) it is installed
# where missing, otherwise those tests skip and say how to enable them.
dovecot:
	@if ! command -v dovecot >/dev/null 2>&1 && [ ! -x /usr/sbin/dovecot ] && [ "$$(id -u)" = 0 ]; then \
		(DEBIAN_FRONTEND=noninteractive apt-get install -y -q dovecot-imapd >/dev/null 2>&1 || \
		 (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q dovecot-imapd >/dev/null)) \
		|| echo "warning: could not install dovecot-imapd; the IMAP tests will skip"; \
	fi

# The access package's page is checked in headless Chromium (Debian's package); as root it
# is installed where missing, otherwise that test skips and says how to enable it.
chromium:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ]; then \
		(DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
		 (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null)) \
		|| echo "warning: could not install chromium; the package page test will skip"; \
	fi

# The suite runs on as many pytest-xdist workers as the machine has cores (2 here, where it
# takes about half the serial time); PYTEST_WORKERS=0 runs it in one process. Every test
# makes its own databases, schemas, ports and folders, so workers never share state; a
# module whose tests share processes (tests/test_distributed.py: Celery workers) is one
# xdist_group, run on one worker in order.
PYTEST_WORKERS ?= auto
test: lint typecheck dovecot chromium
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup

# The model-based tests (tests/test_model.py, tests/test_model_engine.py) explore 5000
# random worlds each instead of the few fixed ones `make test` runs; a failure prints the
# shrunk world. schemathesis tries 200 examples per API operation instead of a few; 100
# clients submit 1,000 requests to one serve (10 submit 100 in `make test`). The CLI tests
# run each command in the test's process in `make test` (tests/clihelpers.py), here each as
# a real `erasure` process again.
test-long: install dovecot
	ERASURE_MODEL_EXAMPLES=5000 ERASURE_SHRED_SUBJECTS=1000 $(BIN)/python -m pytest tests/test_model.py tests/test_model_engine.py tests/test_shredding.py
	ERASURE_MAIL_LONG=1 $(BIN)/python -m pytest connectors/mail/tests/test_mail_big.py connectors/mail/tests/test_mail_imap.py
	ERASURE_API_FUZZ_EXAMPLES=200 ERASURE_API_FUZZ_SEED=random ERASURE_API_LOAD=1 $(BIN)/python -m pytest tests/test_api_schema.py tests/test_api_load.py
	ERASURE_CONTRACT_POPULATION=2500 $(BIN)/python -m pytest -k large_population tests/test_memory_contract.py $(wildcard connectors/*/tests/test_*contract*.py)
	ERASURE_KIT_LONG=1 $(BIN)/python -m pytest -k pip tests/test_docs.py tests/test_scaffold.py
	ERASURE_CELERY_SUBJECTS=1000 $(BIN)/python -m pytest tests/test_distributed.py
	ERASURE_TEST_SUBPROCESS=1 $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(shell grep -l clihelpers tests/test_*.py connectors/*/tests/test_*.py)

bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .erasure .erasure-demo .pytest_cache .ruff_cache .mypy_cache
