"""The REST API and web console (``workfleet api``): :func:`~workfleet.api.app.create_app`
builds the ASGI app over an :class:`~workfleet.operations.Operations`;
:func:`~workfleet.api.server.serve` runs it on PostgreSQL."""
