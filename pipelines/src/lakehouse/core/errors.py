"""Errors the CLI reports as one line instead of a traceback."""


class LakehouseError(Exception):
    """Base class: anything raised as a LakehouseError is shown to the user as one line."""


class ConfigError(LakehouseError):
    """A setting is missing or invalid; the message names the setting."""


class ServiceError(LakehouseError):
    """A local service could not be started, stopped or reached."""


class ReconciliationError(LakehouseError):
    """A run's counts do not add up."""
