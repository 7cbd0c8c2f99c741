"""Errors the CLI reports as one line instead of a traceback."""


class LakehouseError(Exception):
    """Base class: anything raised as a LakehouseError is shown to the user as one line."""


class ConfigError(LakehouseError):
    """A setting is missing or invalid; the message names the setting."""


class ServiceError(LakehouseError):
    """A local service could not be started, stopped or reached."""


class ReconciliationError(LakehouseError):
    """A run's counts do not add up."""


class TransientError(LakehouseError):
    """Trying again later may succeed: another run holds a lock, a service is not reachable yet.
    The CLI exits with its own code for these, so a scheduler retries them and nothing else."""


class StepLockedError(TransientError):
    """Another run of the same step holds its lock."""


class CheckFailedError(LakehouseError):
    """A data check failed (a quality gate, a dbt test): the data, not the run, is wrong, so
    running the same command again would fail the same way."""
