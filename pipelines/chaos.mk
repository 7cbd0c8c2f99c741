# The fault suite (pipelines/bench/chaos.py); included by the root Makefile, so $(VENV) and the
# `setup` target come from there. `make test` runs its short version (pytest marker `chaos`).

CHAOS_ARGS ?= --trials 50

.PHONY: chaos

chaos: setup ## Fault suite: SIGKILL each covered stage at random moments, concurrent writers, a full disk, Kafka/S3/PostgreSQL servers killed and restarted, gold build and publication killed (50 trials each), compared with an uninterrupted run; report in .state/chaos/report.md
	cd pipelines && $(VENV)/bin/python -m bench.chaos $(CHAOS_ARGS)

# the Kafka stages run the project's Apache Kafka broker
chaos: jars-kafka
