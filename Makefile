# One entry point for people and CI. `make up` starts the local system, `make test` tests it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up down status test unit venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

up: $(STAMP)
	$(BIN)/points up

down: $(STAMP)
	$(BIN)/points down

status: $(STAMP)
	$(BIN)/points status

# The whole suite; the fixtures start (and stop) the Kafka, PostgreSQL and services it needs.
test: $(STAMP)
	$(BIN)/python -m pytest -ra

unit: $(STAMP)
	$(BIN)/python -m pytest -ra tests/unit

clean: down
	rm -rf .state
