# The fault suite (pipelines/bench/chaos.py); included by the root Makefile, so $(VENV) and the
# `setup` target come from there. `make test` runs its short version (pytest marker `chaos`).

CHAOS_ARGS ?= --trials 50
CHAOS_SPARK_STAGES := spark-landing,spark-postgres,spark-silver,spark-scd2-current,spark-backfill,spark-optimize,spark-vacuum
CHAOS_SPARK_ARGS ?= --trials 10

.PHONY: chaos chaos-spark

chaos: setup ## Fault suite: SIGKILL each covered embedded stage at random moments, concurrent writers, a full disk, Kafka/S3/PostgreSQL servers killed and restarted, gold build and publication killed (50 trials each), compared with an uninterrupted run; report in .state/chaos/report.md
	cd pipelines && $(VENV)/bin/python -m bench.chaos $(CHAOS_ARGS)

chaos-spark: setup jars-spark ## Fault suite's Spark stages: every `lakehouse spark` job SIGKILLed with its JVM and rerun (CHAOS_SPARK_ARGS, default 10 trials each); report in .state/chaos/report.md
	cd pipelines && $(VENV)/bin/python -m bench.chaos --stages $(CHAOS_SPARK_STAGES) $(CHAOS_SPARK_ARGS)

# the Kafka stages run the project's Apache Kafka broker
chaos: jars-kafka
