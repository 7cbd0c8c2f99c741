# dbt fragment of the root Makefile (included before its rules).
# dbt runs in its own virtualenv, .venv-dbt/, installed from the hashed lock dbt/requirements.lock.
DBT_VENV    := $(ROOT)/.venv-dbt
DBT         := $(DBT_VENV)/bin/dbt
DBT_DIR     := $(ROOT)/dbt
DBT_SELECT  ?=
export DBT_PROFILES_DIR := $(DBT_DIR)

PIPELINE_TEST_DEPS += setup-dbt
LINT_DEPS += lint-dbt

.PHONY: setup-dbt setup-chromium lint-dbt dbt-build dbt-docs gold gold-report bench-gold

# --compile-bytecode: every dbt process (each gold task, each gate) imports dbt; without .pyc files
# (PYTHONDONTWRITEBYTECODE, read-only images) it would compile dbt's modules on every start.
$(DBT_VENV)/.stamp: $(DBT_DIR)/requirements.lock $(DBT_DIR)/dbt.mk | $(UV)
	@echo "==> installing dbt and its locked dependencies into .venv-dbt"
	$(UV) venv --quiet --allow-existing --python 3.11 $(DBT_VENV)
	$(UV) pip sync --quiet --require-hashes --compile-bytecode --python $(DBT_VENV)/bin/python $(DBT_DIR)/requirements.lock
	@# DuckDB extensions cannot be downloaded here: install the delta extension from its PyPI package
	$(DBT_VENV)/bin/python -c "import duckdb; from duckdb_extensions import import_extension; import_extension('delta', con=duckdb.connect())"
	@touch $@

setup-dbt: $(DBT_VENV)/.stamp setup-chromium ## Create .venv-dbt (dbt-core 1.11, dbt-duckdb, dbt-postgres) and the report test's chromium

setup-chromium: ## Install Debian chromium for the HTML report test (idempotent)
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "==> installing Debian chromium (headless rendering test of the HTML report)"; \
	    apt-get -o DPkg::Lock::Timeout=600 update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium >/dev/null \
	    || echo "warning: chromium could not be installed: the report rendering test will be skipped"; \
	  else echo "warning: chromium missing and not root: the report rendering test will be skipped"; fi; }

lint-dbt: setup $(DBT_VENV)/.stamp ## Parse the dbt project (Jinja, YAML, refs, contracts); ruff over its Python (runner, plugin)
	cd $(DBT_DIR) && $(DBT) parse --quiet --target-path $(STATE)/dbt/parse-target --log-path $(STATE)/dbt/logs
	$(VENV)/bin/ruff check --config pipelines/pyproject.toml $(DBT_DIR)/scripts $(DBT_DIR)/plugins && $(VENV)/bin/ruff format --config pipelines/pyproject.toml --check $(DBT_DIR)/scripts $(DBT_DIR)/plugins

dbt-build: setup setup-dbt ## Gold: dbt build (seed, snapshot, run, test) over silver (DBT_SELECT=model+ to narrow)
	$(LAKEHOUSE) gold build $(if $(DBT_SELECT),--select $(DBT_SELECT))

dbt-docs: setup setup-dbt ## Generate the dbt docs site (<state>/gold/<lake-id>/target/index.html)
	$(LAKEHOUSE) gold docs

gold: setup setup-dbt ## Gold end to end: gate silver, dbt build, gate gold, publish to PostgreSQL (stops at the first failure)
	$(LAKEHOUSE) gold run

gold-report: setup ## Write the static HTML report (<state>/gold/<lake-id>/report/index.html)
	$(LAKEHOUSE) gold report

bench-gold: setup setup-dbt ## Benchmark: gold build on 10M events, p95 of the dashboard queries on PostgreSQL (BENCH_ARGS=--events N)
	cd pipelines && $(VENV)/bin/python -m bench.gold $(BENCH_ARGS)

# `make demo` runs the gold stage too: it needs .venv-dbt (the root Makefile's demo target
# should list $(DEMO_DEPS) among its prerequisites).
DEMO_DEPS += setup-dbt
