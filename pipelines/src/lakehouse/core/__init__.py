"""The core tier: what every layer stands on and nothing above it.

Settings, storage (local folder or S3), Delta helpers, reconciliation, data-quality results,
lineage, metrics, errors, and the event contract with its reference data. The core imports no
layer and no application module.
"""
