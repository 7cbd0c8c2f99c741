# The engine benchmark (pipelines/bench/engines.py); included by the root Makefile, so $(VENV) and
# the `setup` and `jars-spark` targets come from there.

BENCH_EVENTS ?= 1000000
BENCH_ENGINES_ARGS ?=

.PHONY: bench-engines

bench-engines: setup jars-spark jars-kafka ## Embedded engine vs delta-spark local[2]: silver events and Kafka -> bronze (BENCH_EVENTS, default 1M), 1M-row MERGEs, continuous Kafka -> bronze freshness; report in .state/bench/engines.md
	cd pipelines && $(VENV)/bin/python -m bench.engines --events $(BENCH_EVENTS) $(BENCH_ENGINES_ARGS)

BENCH_GROWTH_SIZES ?= 1000000,10000000,30000000,100000000

.PHONY: bench-growth

bench-growth: setup ## Embedded engine landing -> bronze -> silver at growing sizes (BENCH_GROWTH_SIZES): time, peak RSS, disk per layer; keeps 12 GiB free; report in .state/bench/growth.md
	cd pipelines && $(VENV)/bin/python -m bench.growth --sizes $(BENCH_GROWTH_SIZES)
