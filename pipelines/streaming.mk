# Streaming (Kafka -> bronze exactly once, speed layer): included by the root Makefile before its
# rules, so $(LAKEHOUSE), $(VENV) and the `setup` target come from there.

PIPELINE_TEST_DEPS += setup-streaming

.PHONY: setup-streaming demo-stream bench-stream

setup-streaming: ## Install kcat (Debian) for the streaming tests, if missing
	@command -v kcat >/dev/null 2>&1 || (apt-get update && apt-get install -y kcat)

demo-stream: setup ## Streaming demo: local Kafka broker, a burst of events with faults, Kafka -> bronze + speed layer, silver
	$(LAKEHOUSE) stream demo

bench-stream: setup ## Streaming bench: Kafka -> bronze records/s, freshness, speed-layer p95 vs a kafka-python consumer
	cd pipelines && $(VENV)/bin/python -m bench.streaming $(BENCH_ARGS)
