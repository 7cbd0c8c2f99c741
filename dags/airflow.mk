# Airflow fragment of the root Makefile (included before its rules).
# Airflow 3 runs in its own virtualenv, .venv-airflow/, from the hashed lock dags/requirements.lock
# (recompile: `uv pip compile --python-version 3.11 --generate-hashes dags/requirements.in -o dags/requirements.lock`).
AIRFLOW_VENV := $(ROOT)/.venv-airflow
AIRFLOW_PORT ?= 8080
export AIRFLOW_PORT

PIPELINE_TEST_DEPS += setup-airflow
LINT_DEPS += lint-dags

.PHONY: setup-airflow airflow airflow-stop airflow-status bench-airflow lint-dags test-airflow

# --compile-bytecode: every `airflow` command and every task process imports Airflow; without .pyc
# files (PYTHONDONTWRITEBYTECODE, read-only images) it would compile those modules on every start.
$(AIRFLOW_VENV)/.stamp: dags/requirements.lock dags/airflow.mk | $(UV)
	@echo "==> installing Airflow 3 and its locked dependencies into .venv-airflow"
	$(UV) venv --quiet --allow-existing --python 3.11 $(AIRFLOW_VENV)
	$(UV) pip sync --quiet --require-hashes --compile-bytecode --python $(AIRFLOW_VENV)/bin/python dags/requirements.lock
	@touch $@

setup-airflow: $(AIRFLOW_VENV)/.stamp ## Create .venv-airflow (Airflow 3, OpenLineage + Kubernetes providers)

airflow: setup setup-airflow ## Start Airflow on 127.0.0.1:8080 (metadata DB in the local PostgreSQL), DAGs loaded
	bash dags/airflow-local.sh start

airflow-stop: ## Stop the local Airflow processes started by `make airflow`
	bash dags/airflow-local.sh stop

airflow-status: ## Show the local Airflow processes
	bash dags/airflow-local.sh status

bench-airflow: setup setup-airflow setup-dbt ## Wall time of lakehouse_pipeline run as `make airflow` runs it (dbt fan-out, Kafka on), per task
	cd pipelines && $(VENV)/bin/python -m bench.airflow_dag $(BENCH_ARGS)

lint-dags: setup ## ruff over dags/ (the pipeline package's ruff settings)
	$(VENV)/bin/ruff check --config pipelines/pyproject.toml dags && $(VENV)/bin/ruff format --config pipelines/pyproject.toml --check dags

test-airflow: setup setup-airflow setup-dbt setup-dashboard-browser ## Every DAG under a real Airflow (as `make airflow` starts it; files, PostgreSQL, Kafka on), a screenshot of the run grid; not part of `make test`
	cd pipelines && $(PYTEST) -q -m airflow_live --durations=10
