# recs: two commands. `make run` installs, materializes every asset on the embedded defaults and
# serves the UI; `make test` installs with dev extras, makes sure the services answer, runs all tests.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export PYTHONHASHSEED ?= 0

.PHONY: run test install system-deps services dagster-home materialize ui lint clean

run: install dagster-home materialize ui

test: install services
	$(BIN)/pytest -q

install: system-deps $(VENV)/.installed

system-deps:
	bash scripts/install_system_deps.sh

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

services:
	bash scripts/ensure_services.sh

dagster-home:
	$(BIN)/recs dagster-home

materialize: dagster-home
	$(BIN)/dagster asset materialize -m recs_assets.definitions --select '*'

ui: dagster-home
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

lint:
	$(BIN)/ruff check recs_assets tests bench bento
	$(BIN)/ruff format --check recs_assets tests bench bento

clean:
	rm -rf .dagster_home .data mlruns
