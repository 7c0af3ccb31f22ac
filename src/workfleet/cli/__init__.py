"""The ``workfleet`` command line: thin — parse, build Settings, ask
:class:`~workfleet.operations.Operations`, map refusals and errors to exit codes.

``main`` parses and dispatches to the command modules (``commands``, ``dev``, ``schedules``),
which share ``options`` (flags, settings, exit codes), ``connect`` (the database side) and
``render`` (output); an import-linter contract keeps these layers free of import circles.

Exit codes (also in ``docs/cli.md``):

====  ==========================================================================
0     success
1     the operation did not succeed (run not found, not cancellable, value refused)
2     usage, configuration or input error (the message names the variable at fault)
3     the database is unreachable
4     the schema is missing or older than this release: run ``workfleet migrate``
5     a plugin could not be loaded (the message names the distribution)
====  ==========================================================================
"""

from __future__ import annotations

import sys

from workfleet.cli.main import EXIT, main

__all__ = ["EXIT", "main"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
