# One entry point for people and CI. `make up` starts the local system, `make test` tests it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOAD_TOOLS := deploy/load/node_modules/.installed

.PHONY: up down status test unit bench venv load-tools clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# The pinned artillery that runs the deployment guide's load scripts (deploy/load). Playwright, which
# artillery carries for browser scenarios we do not use, would try to download a browser: skipped.
$(LOAD_TOOLS): deploy/load/package.json deploy/load/package-lock.json
	cd deploy/load && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
	touch $(LOAD_TOOLS)

load-tools: $(LOAD_TOOLS)

up: $(STAMP)
	$(BIN)/points up

down: $(STAMP)
	$(BIN)/points down

status: $(STAMP)
	$(BIN)/points status

# The whole suite; the fixtures start (and stop) the Kafka, PostgreSQL and services it needs.
test: $(STAMP) $(LOAD_TOOLS)
	$(BIN)/python -m pytest -ra

unit: $(STAMP)
	$(BIN)/python -m pytest -ra tests/unit

# The guide's load tests against the local system (started if needed); the report lands in docs/.
bench: $(STAMP) $(LOAD_TOOLS)
	$(BIN)/points up
	$(BIN)/points bench --report docs/benchmarks.md

clean: down
	rm -rf .state
