# Ampere Lakehouse — the front door. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ROOT      := $(CURDIR)
VENV      := $(ROOT)/.venv
STATE     := $(ROOT)/.state
LAKEHOUSE := $(VENV)/bin/lakehouse
PYTEST    := $(VENV)/bin/pytest
UV        := $(shell command -v uv 2>/dev/null || echo $(STATE)/bootstrap/bin/uv)
ENV       ?= local
export LAKEHOUSE_ENV := $(ENV)
export UV_PROJECT_ENVIRONMENT := $(VENV)

# Fragments from the parts that bring their own tools. They may append to:
#   PIPELINE_TEST_DEPS  targets `make test-pipelines` needs first (e.g. a dbt virtualenv)
#   LINT_DEPS           extra lint targets run by `make lint`
PIPELINE_TEST_DEPS :=
LINT_DEPS :=
DEMO_DEPS :=
-include terraform/terraform.mk
-include ansible/ansible.mk
-include dbt/dbt.mk
-include dags/airflow.mk
-include pipelines/streaming.mk
-include pipelines/jvm/jvm.mk
-include pipelines/serving.mk
-include pipelines/spark.mk
-include dashboards/dashboards.mk
-include pipelines/chaos.mk
-include pipelines/image/image.mk
-include pipelines/image/spark/spark-image.mk
-include pipelines/bench-engines.mk
-include pipelines/dev-shaped.mk

.PHONY: help setup demo test test-pipelines test-fast lint lint-python bench clean services-up services-down status fmt

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | sort | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2}'

$(UV):
	@python3 -m venv $(STATE)/bootstrap && $(STATE)/bootstrap/bin/pip install -q uv==0.13.9

$(VENV)/.stamp: pipelines/pyproject.toml pipelines/uv.lock | $(UV)
	@echo "==> installing the pipeline package and its locked dependencies into .venv"
	cd pipelines && $(UV) sync --locked --extra dev --quiet --compile-bytecode
	@touch $@

setup: $(VENV)/.stamp ## Create .venv from the lock file (idempotent)

demo: setup $(DEMO_DEPS) ## The main job on the embedded default: generator, bronze, silver, gold (dbt), publish, report
	$(LAKEHOUSE) demo

status: setup ## Show which local services run where
	$(LAKEHOUSE) services status

services-up: setup ## Start the local services (PostgreSQL; SeaweedFS S3 when the lake is s3://)
	$(LAKEHOUSE) services start

services-down: setup ## Stop the local services this project started
	$(LAKEHOUSE) services stop

test: test-pipelines test-terraform test-ansible ## Run the whole test suite (slow integration tests included)

test-pipelines: setup $(PIPELINE_TEST_DEPS) ## Run the pipeline package's tests (real PostgreSQL, SeaweedFS, PySpark)
	cd pipelines && LAKEHOUSE_TESTS_STRICT=1 $(PYTEST) -q --durations=15 -m "not spark_long"

test-fast: setup $(PIPELINE_TEST_DEPS) ## Pipeline tests without the slow integration ones
	cd pipelines && $(PYTEST) -q -m "not slow"

lint: lint-python lint-terraform lint-ansible $(LINT_DEPS) ## Run every linter

lint-python: setup ## ruff, mypy and the import contract (lint-imports) over the pipeline package
	cd pipelines && $(VENV)/bin/ruff check src tests bench && $(VENV)/bin/ruff format --check src tests bench && $(VENV)/bin/mypy
	cd pipelines && $(VENV)/bin/lint-imports --no-cache

fmt: setup ## Format Python code with ruff
	cd pipelines && $(VENV)/bin/ruff format src tests bench && $(VENV)/bin/ruff check --fix src tests bench

bench: setup ## Benchmarks: bronze->silver on 1M and 10M events vs PySpark local[2] and a DuckDB floor
	cd pipelines && $(VENV)/bin/python -m bench.bronze_silver $(BENCH_ARGS)

clean: ## Stop local services and remove the local state, lake and virtualenvs
	-@[ -x $(VENV)/bin/python ] && $(VENV)/bin/python dashboards/local.py stop || true
	-@[ -x $(LAKEHOUSE) ] && $(LAKEHOUSE) services stop || true
	-@bash dags/airflow-local.sh stop 2>/dev/null || true
	rm -rf $(STATE) $(VENV) .venv-terraform .venv-ansible .venv-dbt .venv-airflow .venv-superset dashboards/browser/node_modules pipelines/.pytest_cache pipelines/.mypy_cache pipelines/.ruff_cache


