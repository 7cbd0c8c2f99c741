"""Gold layer: the dbt project in dbt/ (DuckDB over the silver Delta tables), published to
PostgreSQL schema `gold`, with KPIs and a static HTML report."""
