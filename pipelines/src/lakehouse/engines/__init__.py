"""Execution engines for the shared transformations (SQL kept in DuckDB's dialect, see silver.events_sql).

* `duckdb_engine` — the embedded default: one Python process, delta-rs for Delta I/O, DuckDB over
  Arrow for the SQL. Its JSON primitive builds the `parsed` relation the shared SQL reads.
* `spark_engine` — the distributed engine's seam: the same SQL transpiled to Spark SQL with
  SQLGlot, and Spark's equivalent JSON primitive. pyspark is imported lazily (dev extra only).
  It returns DataFrames; the delta-spark writers come with the Spark executor.

tests/test_parity.py runs both on the same bronze rows and requires identical output.
"""
