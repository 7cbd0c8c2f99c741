# The Spark jobs (lakehouse spark ...) tested against the embedded engine; included by the root
# Makefile, so $(VENV), $(PYTEST) and `setup` come from there. `make test` runs the short part
# (each Spark job against the embedded one on the same input, the ownership guard); the long
# tests (engine switch mid-history, SIGKILL + rerun, S3A, the whole silver job's MERGEs from PostgreSQL, the engine setting through the CLI, OPTIMIZE/VACUUM/RESTORE,
# backfill against the embedded backfill, dbt gold on Spark-written silver, the PostgreSQL extract
# over JDBC against the embedded extract; Kafka -> bronze on Structured Streaming: parity, hand-over
# both ways, SCRAM + TLS, SIGKILL of the job's process tree; the fault suite's Spark stages, two
# trials each) are marked spark_long.

.PHONY: test-spark

test-spark: setup jars-spark jars-kafka ## Every Spark job test, the long ones included (parity, engine switch, SIGKILL + rerun, S3A, MERGE, maintenance, backfill, gold, JDBC extract, Kafka streaming)
	cd pipelines && $(PYTEST) -q -m spark --durations=10
