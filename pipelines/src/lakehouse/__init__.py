"""Ampere Lakehouse pipelines: generator, bronze and silver on the embedded engine."""

__version__ = "0.1.0"
