"""Benchmarks for the pipeline package (`make bench` runs `python -m bench.bronze_silver`)."""
