"""workfleet: a worker runtime for durable, Postgres-backed work.

Producers record intent with one SQL statement; a fleet of workers discovers executor plugins,
claims runs with ``FOR UPDATE SKIP LOCKED`` and drives each run to a terminal state.
"""

from workfleet.errors import ConfigError, PluginError, StoreError, WorkfleetError
from workfleet.models import Fail, Retry, RunStatus, Snooze
from workfleet.plugin import Plugin, Run, SyncRun
from workfleet.retry import Backoff, ExponentialBackoff, QuadraticBackoff

__version__ = "0.1.0"

__all__ = [
    "Backoff",
    "ConfigError",
    "ExponentialBackoff",
    "Fail",
    "Plugin",
    "PluginError",
    "QuadraticBackoff",
    "Retry",
    "Run",
    "RunStatus",
    "Snooze",
    "StoreError",
    "SyncRun",
    "WorkfleetError",
    "__version__",
]
