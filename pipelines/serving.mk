# Serving fragment of the root Makefile (included before its rules, so $(LAKEHOUSE), $(VENV) and
# `setup` come from there): the read-only HTTP API, snapshots, the SQL shell, and their benchmark.
SERVE_ARGS ?=

.PHONY: serve snapshot sql setup-wrk bench-serve

serve: setup ## The read-only HTTP API on 127.0.0.1 (serving.port, 28180); SERVE_ARGS="--port N --workers N"
	$(LAKEHOUSE) serve $(SERVE_ARGS)

snapshot: setup ## Parquet snapshots of the latest silver and gold tables with a manifest (<state>/snapshots)
	$(LAKEHOUSE) snapshot

sql: setup ## DuckDB over the lake, read-only, every table by name (interactive)
	$(LAKEHOUSE) sql

setup-wrk: ## Install wrk (Debian) for the serving benchmark, if missing
	@command -v wrk >/dev/null 2>&1 || (apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq wrk >/dev/null)

bench-serve: setup setup-dbt setup-wrk ## API p50/p95/p99 and requests/s, cached (304) and uncached, at 1/8/32 clients (.state/bench/serve.md)
	cd pipelines && $(VENV)/bin/python -m bench.serving $(BENCH_ARGS)
