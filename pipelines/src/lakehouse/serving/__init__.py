"""Serving: the read-only HTTP API, Parquet snapshots and the SQL shell over the lake."""
