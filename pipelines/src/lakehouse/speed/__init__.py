"""The speed layer: one-minute windows over the Kafka stream into PostgreSQL realtime.*.

Classifies each record with silver's own contract. Imports the core tier, bronze and silver.
"""
