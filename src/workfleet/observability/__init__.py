"""Logs, metrics and the HTTP endpoints (probes and /metrics)."""
