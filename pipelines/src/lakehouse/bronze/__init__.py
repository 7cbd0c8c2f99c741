"""Bronze: raw data kept as it arrived, each input exactly once.

Landing files, incremental extracts of the PostgreSQL source, and the Kafka sink. Imports only
the core tier.
"""
