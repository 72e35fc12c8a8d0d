# loyalty-stream — `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Figure q's interpreter: the `bench` extra (Quix Streams) apart from the tested versions.
QUIX_VENV := $(VENV)/quix
QUIX_STAMP := $(QUIX_VENV)/.installed

.PHONY: help venv lock run stop test lint fmt typecheck unit bench bench-state bench-scale kafka-up kafka-down kafka-reset kafka-status registry-up registry-down registry-status sandbox worker clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is required (set PYTHON=python3.11)")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# pip's and setuptools' chatter goes to a log, shown only when the install fails.
	@$(PY) -m pip install --upgrade pip -e '.[dev,rocksdb]' > $(VENV)/pip.log 2>&1 \
		|| { tail -40 $(VENV)/pip.log; exit 1; }
	@touch $@
	@echo "venv: $(VENV) ready"

venv: $(STAMP) ## Create the virtualenv and install the package with dev tools

# The image's exact dependencies (Dockerfile): every platform, Python 3.11, with hashes.
# tests/deploy/test_dockerfile.py checks them against pyproject.toml.
LOCK_ARGS := --generate-hashes --universal --python-version 3.11 --quiet --custom-compile-command 'make lock'
lock: $(STAMP) ## Re-resolve requirements.lock (runtime) and requirements-build.lock (wheel build) with uv
	@$(VENV)/bin/uv pip compile pyproject.toml --extra rocksdb $(LOCK_ARGS) -o requirements.lock
	@$(PY) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' \
		| $(VENV)/bin/uv pip compile - $(LOCK_ARGS) -o requirements-build.lock

run: $(STAMP) ## Start Kafka, the Ometria stand-in and the worker; send samples; show what Ometria got
	@bash deploy/local/run.sh

stop: ## Stop the worker and stand-in started by `make run` (Kafka keeps running)
	@bash deploy/local/run.sh stop

test: $(STAMP) ## The whole suite: lint, types, unit and integration tests (starts Kafka and the registry itself)
	@bash deploy/local/test.sh

unit: $(STAMP) ## Only the tests that need no broker
	@$(PY) -m pytest -q -m "not integration"

bench: $(STAMP) ## Throughput, delivery and state figures on the local Kafka (ARGS="--only a,b,c --events 20000")
	@PY=$(PY) bash bench/bench.sh $(ARGS)

bench-state: $(STAMP) ## State at scale: f, i and j (the trigger scan) with 1,000,000 profiles, once each (about 11 minutes)
	@PY=$(PY) bash bench/bench.sh --only f,i,j --profiles 1000000 --repeat 1 $(ARGS)

$(QUIX_STAMP): pyproject.toml | $(STAMP)
	@test -x $(QUIX_VENV)/bin/python || $(PYTHON) -m venv $(QUIX_VENV)
	@$(QUIX_VENV)/bin/python -m pip install --upgrade pip -e '.[bench]' > $(QUIX_VENV)/pip.log 2>&1 \
		|| { tail -40 $(QUIX_VENV)/pip.log; exit 1; }
	@touch $@

bench-scale: $(STAMP) $(QUIX_STAMP) ## Scale figures: c vs b and Quix Streams (q), CPU per event, 1M customers, recovery, takeover (under 10 minutes)
	@PY=$(PY) bash bench/bench.sh --scale --quix-python $(QUIX_VENV)/bin/python $(ARGS)

lint: $(STAMP) ## ruff lint and format check
	@$(PY) -m ruff check . && $(PY) -m ruff format --check .

fmt: $(STAMP) ## Format and auto-fix with ruff
	@$(PY) -m ruff format . && $(PY) -m ruff check --fix .

typecheck: $(STAMP) ## mypy --strict on stream/
	@$(PY) -m mypy stream

kafka-up: ## Start the local Apache Kafka (idempotent)
	@bash deploy/local/kafka.sh up

kafka-down: ## Stop the local Apache Kafka (idempotent)
	@bash deploy/local/kafka.sh down

kafka-reset: ## Stop Kafka and wipe its data (keeps the jars)
	@bash deploy/local/kafka.sh reset

kafka-status: ## Is the local Kafka running?
	@bash deploy/local/kafka.sh status || true

registry-up: ## Start the local Apicurio Registry (Schema Registry for the tests; idempotent)
	@bash deploy/local/registry.sh up

registry-down: ## Stop the local Apicurio Registry (idempotent)
	@bash deploy/local/registry.sh down

registry-status: ## Is the local Apicurio Registry running?
	@bash deploy/local/registry.sh status || true

sandbox: $(STAMP) ## Run the Ometria stand-in in the foreground
	@$(PY) -m stream sandbox

worker: $(STAMP) ## Run the worker in the foreground (configure with STREAM_* variables)
	@$(PY) -m stream worker

clean: ## Remove run state and caches (not the venv or the Kafka jars)
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache .hypothesis
