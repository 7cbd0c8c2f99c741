"""Silver: validated, conformed and deduplicated tables built from bronze.

The events transform is SQL written once (`events_sql`) and run by each engine: the embedded
engine here, Apache Spark in `silver.spark`. Imports the core tier and bronze.
"""
