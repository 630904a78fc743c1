# recs: two commands. `make run` installs, materializes every asset on the embedded defaults and
# serves the UI; `make test` installs with dev extras, makes sure the services answer, runs all tests.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export PYTHONHASHSEED ?= 0
export BENTOML_HOME ?= $(CURDIR)/.bentoml

.PHONY: run test install system-deps services dagster-home materialize serve ui lint clean

run: install dagster-home
	$(MAKE) materialize || echo "Some assets failed to materialize: the Runs page in the UI says why."
	$(MAKE) serve

# The floors first (import-linter contracts in pyproject.toml), then every test; a missing
# MovieLens copy is an error here (the quick `.venv/bin/pytest` skips those cases instead).
test: install services
	$(BIN)/lint-imports
	RECS_REQUIRE_ML100K=1 $(BIN)/pytest -q -m "slow or not slow"

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

# Every asset except those fed by live traffic (served lists, feedback), which the service
# writes once it answers requests: materialize them from the UI once traffic has flowed.
LIVE_TRAFFIC_ASSETS := not key:online_quality and not key:prediction_drift and not key:ab_test_report
# raw_interactions has one partition per UTC day: one run covers every day the source holds.
materialize: dagster-home
	$(BIN)/dagster asset materialize -m recs_assets.definitions --select '$(LIVE_TRAFFIC_ASSETS)' \
		--partition-range "$$($(BIN)/recs partition-range)"

serve: dagster-home
	bash scripts/serve.sh

ui: dagster-home
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

lint:
	$(BIN)/lint-imports
	$(BIN)/ruff check recs_assets tests bench bento feature_repo
	$(BIN)/ruff format --check recs_assets tests bench bento feature_repo

clean:
	rm -rf .dagster_home .data .mlflow .bentoml
