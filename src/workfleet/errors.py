"""One root exception; messages a human can act on; driver errors kept as ``__cause__``."""

from __future__ import annotations


class WorkfleetError(Exception):
    """Root of every error workfleet raises on purpose."""


class ConfigError(WorkfleetError):
    """Invalid configuration. ``env_var`` names the variable at fault when there is one."""

    def __init__(self, message: str, env_var: str | None = None) -> None:
        super().__init__(message)
        self.env_var = env_var


class PluginError(WorkfleetError):
    """A plugin could not be found, imported or validated.

    ``distribution`` and ``entry_point`` identify the package so the operator knows what to fix.
    """

    def __init__(
        self, message: str, *, distribution: str | None = None, entry_point: str | None = None
    ) -> None:
        super().__init__(message)
        self.distribution = distribution
        self.entry_point = entry_point


class StoreError(WorkfleetError):
    """The database could not do what was asked (connectivity, missing schema, constraint)."""


class StoreDataError(StoreError):
    """The database rejected what a statement was given or found (a value out of range, a
    constraint, a size limit): retrying the same statement fails the same way, so a batch
    splits and writes its rows one by one, and the bad ones fail with this error."""


class PermissionDeniedError(StoreError):
    """The connected role lacks a grant the statement needs (docs/security.md lists what each
    least-privilege role may do). The database was reached: retrying changes nothing."""


class SchemaNotReadyError(StoreError):
    """The schema is missing or older than this release needs: run ``workfleet migrate``."""


class InvalidRequestError(WorkfleetError, ValueError):
    """What was asked cannot be done as given (a malformed id, cron expression, payload or page
    size); the message says what to change. Nothing was written."""


class RunNotFoundError(WorkfleetError):
    """No run (or no run in the required state) has the given id."""


class ExecutorError(WorkfleetError):
    """An executor broke its contract (for example returned a value that is not JSON)."""
