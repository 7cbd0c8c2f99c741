# Dashboards fragment of the root Makefile (included before its rules): the Grafana dashboard
# rendered from dashboards/lakehouse-overview.yaml, and Apache Superset on the laptop.
# Superset runs in its own virtualenv, .venv-superset/, from the hashed lock
# dashboards/superset/requirements.lock (recompile: `uv pip compile --python-version 3.11
# --generate-hashes dashboards/superset/requirements.in -o dashboards/superset/requirements.lock`).
SUPERSET_VENV  := $(ROOT)/.venv-superset
DASHBOARD_PORT ?= 28088
export DASHBOARD_PORT
BROWSER_DIR    := $(ROOT)/dashboards/browser

PIPELINE_TEST_DEPS += setup-superset setup-dashboard-browser
LINT_DEPS += lint-dashboards

.PHONY: setup-superset setup-dashboard-browser dashboard dashboard-stop dashboard-status dashboard-check dashboards-render lint-dashboards

# --compile-bytecode: provisioning and the server import all of Superset; without .pyc files every
# start would compile it first.
$(SUPERSET_VENV)/.stamp: dashboards/superset/requirements.lock dashboards/dashboards.mk | $(UV)
	@echo "==> installing Apache Superset and its locked dependencies into .venv-superset"
	$(UV) venv --quiet --allow-existing --python 3.11 $(SUPERSET_VENV)
	$(UV) pip sync --quiet --require-hashes --compile-bytecode --python $(SUPERSET_VENV)/bin/python dashboards/superset/requirements.lock
	@touch $@

# playwright-core from npm (package-lock.json, with integrity hashes) drives Debian's chromium;
# --ignore-scripts: it has no install step to run, and must not try to download a browser.
$(BROWSER_DIR)/node_modules/.stamp: $(BROWSER_DIR)/package-lock.json
	@echo "==> installing playwright-core (npm ci) for the dashboard's browser check"
	cd $(BROWSER_DIR) && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

setup-superset: $(SUPERSET_VENV)/.stamp ## Create .venv-superset (Apache Superset 6.1 from PyPI, locked with hashes)

setup-dashboard-browser: $(BROWSER_DIR)/node_modules/.stamp setup-chromium ## playwright-core (npm) and Debian chromium for the dashboard's browser check

dashboard: setup setup-superset ## Superset on 127.0.0.1:28088 (DASHBOARD_PORT) with the lakehouse dashboard, provisioned as code (after make demo)
	$(VENV)/bin/python dashboards/local.py start

dashboard-stop: ## Stop the Superset server `make dashboard` started (by its pid)
	@if [ -x $(VENV)/bin/python ]; then $(VENV)/bin/python dashboards/local.py stop; fi

dashboard-status: setup ## Is the laptop dashboard running, and where
	$(VENV)/bin/python dashboards/local.py status

dashboard-check: setup setup-dashboard-browser ## Open the running dashboard in headless Chromium: every chart drew data; screenshot in .state/dashboards/
	$(VENV)/bin/python dashboards/local.py check

dashboards-render: setup ## Write the Grafana dashboard JSON (ansible/roles/platform/files/dashboards/) from dashboards/lakehouse-overview.yaml
	$(VENV)/bin/python dashboards/render.py grafana

lint-dashboards: setup ## ruff and mypy over dashboards/; the committed Grafana JSON is the rendering of the definition
	$(VENV)/bin/ruff check --config pipelines/pyproject.toml dashboards && $(VENV)/bin/ruff format --config pipelines/pyproject.toml --check dashboards
	$(VENV)/bin/mypy --config-file pipelines/pyproject.toml dashboards/render.py dashboards/local.py
	$(VENV)/bin/python dashboards/render.py grafana --check
