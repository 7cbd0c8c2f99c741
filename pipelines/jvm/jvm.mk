# JVM bundles (pipelines/jvm/<bundle>/pom.xml + jars.lock.json) resolved from Maven Central into
# .state/jvm/<bundle>/ by pipelines/jvm/resolve.py; included by the root Makefile, so $(VENV),
# $(STATE) and the `setup` target come from there. Needs Java 17 and Maven (`mvn`) on PATH.

JVM_RESOLVE := python3 pipelines/jvm/resolve.py --state $(STATE)/jvm
# pyspark's own jars: the spark bundle must not ship a second copy of any of them
PYSPARK_JARS = $(shell $(VENV)/bin/python -c "import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), 'jars'))")

PIPELINE_TEST_DEPS += jars-spark jars-kafka
# the demo's local broker is Apache Kafka
DEMO_DEPS += jars-kafka
demo-stream services-up: jars-kafka

.PHONY: jars jars-spark jars-kafka jvm-lock

jars: jars-spark jars-kafka ## Resolve every JVM bundle into .state/jvm (pinned, SHA-256 checked; no-op when complete)

jars-spark: setup ## Jars Spark needs beside pyspark (delta-spark, hadoop-aws + AWS SDK, Kafka connector, JDBC, OpenLineage) into .state/jvm/spark
	@$(JVM_RESOLVE) spark --provided-by "$(PYSPARK_JARS)"

jars-kafka: ## Apache Kafka broker, storage and console tools with a log4j2 backend into .state/jvm/kafka
	@$(JVM_RESOLVE) kafka

jvm-lock: setup ## Re-resolve every JVM bundle from its pom.xml and rewrite its jars.lock.json (on purpose only)
	@$(JVM_RESOLVE) spark --lock --provided-by "$(PYSPARK_JARS)"
	@$(JVM_RESOLVE) kafka --lock
