# One entry point for people and CI. `make up` starts the local system, `make test` tests it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOAD_TOOLS := deploy/load/node_modules/.installed

.PHONY: up down status test unit bench venv lock load-tools clean

# Exactly the versions in the lock, checked against their hashes, so two machines a month apart
# run the same code; then this project itself, editable, with nothing more resolved.
$(STAMP): pyproject.toml requirements-test.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements-test.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

# After a change to the dependencies in pyproject.toml: the runtime lock (the image installs it)
# and the test lock (make and CI install it), the second held to the versions of the first.
lock: $(STAMP)
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra test --python-version 3.11 --generate-hashes \
	  -c requirements.lock -o requirements-test.lock

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
	$(BIN)/python -m pytest -ra $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/python -m pytest -ra tests/unit

# The guide's load tests against the local system (started if needed); the report lands in docs/.
bench: $(STAMP) $(LOAD_TOOLS)
	$(BIN)/points up
	$(BIN)/points bench --report docs/benchmarks.md

clean: down
	rm -rf .state
