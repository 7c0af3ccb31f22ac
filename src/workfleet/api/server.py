"""``workfleet api``: the composition root of the API process. It opens one pool, builds the
stores and the :class:`~workfleet.operations.Operations` façade over them, and serves
:func:`~workfleet.api.app.create_app` with uvicorn until SIGTERM or SIGINT.

The only module of :mod:`workfleet.api` that names :mod:`workfleet.db` (an import-linter
contract keeps it so). Uvicorn's own access log is off: it would log query strings, which may
carry payload filters; :class:`~workfleet.api.middleware.AccessLog` logs route templates.
"""

from __future__ import annotations

from workfleet.errors import ConfigError
from workfleet.observability.logging import get_logger
from workfleet.settings import Settings

log = get_logger(component="api")


async def serve(settings: Settings) -> int:
    """Serve the API and console on ``WORKFLEET_API__HOST:PORT``; 0 after a clean stop."""
    import uvicorn

    from workfleet.api.app import create_app
    from workfleet.db.batches import PgBatches, PgStats
    from workfleet.db.migrate import require_schema
    from workfleet.db.pool import open_pool
    from workfleet.db.schedules import PgSchedules
    from workfleet.db.status import PgStatus
    from workfleet.db.store import PgStore
    from workfleet.db.workflows import PgWorkflowStore
    from workfleet.operations import Operations

    api = settings.api
    if not api.keys:
        raise ConfigError(
            "the API needs at least one key: set WORKFLEET_API__KEYS "
            "(name:scope:sha256, see `workfleet api --hash-key`)",
            env_var="WORKFLEET_API__KEYS",
        )
    resolved = settings.resolved_dsn()
    pool = await open_pool(
        resolved.conninfo,
        max_size=api.pool_max_size,
        min_size=settings.pool_min_size,
        connect_timeout=settings.connect_timeout,
        name="workfleet-api",
        application_name="workfleet-api",
    )
    try:
        async with pool.connection() as conn:
            await require_schema(conn, resolved.schema)
        store = PgStore(pool, resolved.schema)
        ops = Operations(
            queue=store,
            reads=store,
            runs=store,
            status=PgStatus(pool, resolved.schema),
            schedules=PgSchedules(pool, resolved.schema),
            batches=PgBatches(pool, resolved.schema),
            stats=PgStats(pool, resolved.schema),
            workflows=PgWorkflowStore(pool, resolved.schema),
        )
        app = create_app(ops, api)
        config = uvicorn.Config(
            app,
            host=api.host,
            port=api.port,
            access_log=False,
            log_config=None,
            server_header=False,
            proxy_headers=True,
            lifespan="off",
            # on SIGTERM, open requests get this long; event streams are cut after it
            timeout_graceful_shutdown=10,
        )
        server = uvicorn.Server(config)
        log.info(
            "api.listening",
            host=api.host,
            port=api.port,
            schema=resolved.schema,
            keys=[k.name for k in api.keys],
        )
        await server.serve()
        await store.close()
    finally:
        await pool.close()
    return 0
