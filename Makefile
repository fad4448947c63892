# Drumbeat. `make run` serves on http://127.0.0.1:5000; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := wsgi.py

.PHONY: run test test-sqlite test-postgres lint fmt install install-dev bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.runtime $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

# The web server and the campaign worker together; Ctrl-C stops both.
run: install
	$(BIN)/flask db upgrade
	$(BIN)/flask bootstrap
	@trap 'kill $$worker 2>/dev/null; wait $$worker 2>/dev/null' EXIT INT TERM; \
	$(BIN)/flask worker & worker=$$!; \
	$(BIN)/flask run --host 127.0.0.1 --port 5000

LINTED := webapp tests migrations bench wsgi.py

lint: install-dev
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

fmt: install-dev
	$(BIN)/ruff check --fix $(LINTED)
	$(BIN)/ruff format $(LINTED)

test-sqlite: install-dev
	env -u TEST_DATABASE_URL $(BIN)/pytest -n 2

test-postgres: install-dev
	@test -n "$$TEST_DATABASE_URL" || { echo "TEST_DATABASE_URL is not set"; exit 1; }
	$(BIN)/pytest -n 2

# The whole suite on SQLite, then on PostgreSQL whenever TEST_DATABASE_URL is set.
test: lint test-sqlite
	@if [ -n "$$TEST_DATABASE_URL" ]; then $(MAKE) --no-print-directory test-postgres; \
	else echo "TEST_DATABASE_URL not set: PostgreSQL leg not run"; fi

bench: install-dev
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# A PNG of every dashboard page (demo data, Debian's chromium) in docs/screenshots/.
.PHONY: screenshots
screenshots: install-dev
	$(BIN)/python -m tests.e2e.screenshots
