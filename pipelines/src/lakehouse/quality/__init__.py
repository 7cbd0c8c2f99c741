"""Data-quality gates between layers: each layer's contracts and dbt tests, results kept with
history in ops.quality_results (Delta) and published to PostgreSQL ops.quality_results."""
