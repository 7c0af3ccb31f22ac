"""The runtime: lease loops, executions, completion, heartbeats, side loops, the worker."""
