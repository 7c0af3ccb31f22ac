"""The ``workfleet`` command line: thin — parse, build Settings, call, map errors to exit codes.

Exit codes (also in ``docs/cli.md``):

====  ==========================================================================
0     success
1     the operation did not succeed (run not found, not cancellable, check failed)
2     usage or configuration error (the message names the environment variable)
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
