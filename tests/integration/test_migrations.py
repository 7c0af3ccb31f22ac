"""Migrations: idempotent, safe concurrently, adopt a simple-workflow database, and the triggers."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from workfleet.db.listener import channel_name
from workfleet.db.migrate import latest_version, migrate, require_schema, schema_version
from workfleet.db.store import PgStore
from workfleet.dsn import resolve_dsn
from workfleet.errors import SchemaNotReadyError
from workfleet.models import NewRun

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "simple_workflow_schema.sql"

CATALOG = {
    # ordinal_position: simple-workflow's tools may rely on column order (SELECT *, COPY)
    "columns": """
        SELECT table_name, ordinal_position, column_name, data_type, column_default, is_nullable
        FROM information_schema.columns WHERE table_schema = %(s)s
          AND table_name <> 'goose_db_version'
        ORDER BY 1, 2""",
    "constraints": """
        SELECT cl.relname, c.conname, pg_get_constraintdef(c.oid)
        FROM pg_constraint c JOIN pg_class cl ON cl.oid = c.conrelid
        JOIN pg_namespace n ON n.oid = cl.relnamespace
        WHERE n.nspname = %(s)s AND cl.relname <> 'goose_db_version' ORDER BY 1, 2, 3""",
    "indexes": """
        SELECT tablename, indexname, replace(indexdef, %(s)s || '.', '')
        FROM pg_indexes WHERE schemaname = %(s)s AND tablename <> 'goose_db_version'
        ORDER BY 1, 2""",
    "triggers": """
        SELECT event_object_table, trigger_name, event_manipulation, action_timing,
               action_orientation, action_condition
        FROM information_schema.triggers WHERE trigger_schema = %(s)s ORDER BY 1, 2, 3""",
    "functions": """
        SELECT p.proname, pg_get_function_result(p.oid), p.proconfig, p.prosecdef
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = %(s)s ORDER BY 1""",
}


async def _catalog(
    dsn: str, schema: str, *, column_order: bool = True
) -> dict[str, list[tuple[Any, ...]]]:
    """The schema's tables, columns, constraints, indexes, triggers and functions, comparable
    across schemas; ``column_order=False`` compares columns by name only."""
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        out = {}
        for name, query in CATALOG.items():
            cur = await conn.execute(query.encode(), {"s": schema})
            rows = await cur.fetchall()
            # function configs pin search_path to the schema: normalise its name
            out[name] = [tuple(str(v).replace(schema, "<schema>") for v in r) for r in rows]
        if not column_order:
            out["columns"] = sorted((t, *rest) for t, _position, *rest in out["columns"])
        return out


async def _sql(dsn: str, schema: str, statement: str, params: Any = None) -> list[Any]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        cur = await conn.execute(statement.encode(), params)
        return await cur.fetchall() if cur.description else []


async def test_migrate_is_idempotent(pg_dsn: str, schema_name: str) -> None:
    applied = await migrate(pg_dsn, schema_name)
    assert [m.version for m in applied] == list(range(1, latest_version() + 1))
    assert await migrate(pg_dsn, schema_name) == []


async def test_concurrent_migrations_apply_once(pg_dsn: str, schema_name: str) -> None:
    results = await asyncio.gather(*(migrate(pg_dsn, schema_name) for _ in range(3)))
    assert sorted(len(r) for r in results) == [0, 0, latest_version()]
    rows = await _sql(pg_dsn, schema_name, "SELECT version FROM workfleet_schema_version")
    assert sorted(r[0] for r in rows) == list(range(1, latest_version() + 1))


async def test_adopting_simple_workflow_equals_fresh_install(pg_dsn: str) -> None:
    adopted, fresh = f"wf_adopt_{uuid.uuid4().hex[:8]}", f"wf_fresh_{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(adopted)))
    await _sql(pg_dsn, adopted, FIXTURE.read_text())
    assert [m.version for m in await migrate(pg_dsn, adopted)] == list(
        range(1, latest_version() + 1)
    )
    await migrate(pg_dsn, fresh)
    assert await _catalog(pg_dsn, adopted) == await _catalog(pg_dsn, fresh)

    # existing rows are intact and the adopted database works with workfleet
    rows = await _sql(pg_dsn, adopted, "SELECT id::text, status FROM workflow_run ORDER BY id")
    assert rows == [
        ("11111111-1111-1111-1111-111111111111", "pending"),
        ("22222222-2222-2222-2222-222222222222", "succeeded"),
    ]
    registry = await _sql(
        pg_dsn, adopted, "SELECT workflow_name, runtime FROM workflow_registry ORDER BY 1"
    )
    # the three rows simple-workflow's registry migration seeds, untouched
    assert registry == [
        ("content.object_detection.v1", "python"),
        ("content.ocr.v1", "python"),
        ("content.thumbnail.v1", "go"),
    ]
    async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
        assert await schema_version(conn, adopted) == latest_version()


async def test_an_event_check_under_another_name_is_widened(pg_dsn: str) -> None:
    """An adopted database whose event CHECK has another name still records workflow events."""
    adopted = f"wf_named_{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(adopted)))
    await _sql(pg_dsn, adopted, FIXTURE.read_text())
    await _sql(
        pg_dsn,
        adopted,
        "ALTER TABLE workflow_event RENAME CONSTRAINT workflow_event_event_type_check "
        "TO legacy_event_kinds",
    )
    await migrate(pg_dsn, adopted)
    checks = await _sql(
        pg_dsn,
        adopted,
        "SELECT conname FROM pg_constraint WHERE conrelid = 'workflow_event'::regclass "
        "AND contype = 'c'",
    )
    assert checks == [("workflow_event_event_type_check",)]
    await _sql(
        pg_dsn,
        adopted,
        "INSERT INTO workflow_event (workflow_id, event_type) "
        "VALUES ('11111111-1111-1111-1111-111111111111', 'step')",
    )


OLD_0001 = FIXTURE.parent / "workfleet_0001_before_0004.sql"
MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


async def test_old_registry_is_converted_by_0004(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An install made by workfleet's 0001-0003 (registry keyed by workflow_name), upgraded by
    0004, has a fresh install's constraints, indexes, triggers and columns; only the order of
    the registry's columns differs (ALTER TABLE appends)."""
    import workfleet.db.migrate as migrate_module

    old, fresh = f"wf_old_{uuid.uuid4().hex[:8]}", f"wf_fresh_{uuid.uuid4().hex[:8]}"
    (tmp_path / "0001_simple_workflow_base.sql").write_text(OLD_0001.read_text())
    for version in ("0002", "0003"):
        [path] = MIGRATIONS.glob(f"{version}_*.sql")
        (tmp_path / path.name).write_text(path.read_text())
    monkeypatch.setattr(migrate_module, "_migrations_dir", lambda: tmp_path)
    assert [m.version for m in await migrate(pg_dsn, old)] == [1, 2, 3]
    monkeypatch.undo()
    await _sql(
        pg_dsn,
        old,
        "INSERT INTO workflow_registry (workflow_name, runtime, is_enabled) "
        "VALUES ('a.v1', 'python', true), ('b.v1', 'go', false)",
    )
    assert [m.version for m in await migrate(pg_dsn, old)] == list(range(4, latest_version() + 1))
    await migrate(pg_dsn, fresh)

    assert await _catalog(pg_dsn, old, column_order=False) == await _catalog(
        pg_dsn, fresh, column_order=False
    )
    order = await _sql(
        pg_dsn,
        old,
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = 'workflow_registry' "
        "ORDER BY ordinal_position",
    )
    assert [c for (c,) in order] == [
        "workflow_name", "intent_type", "runtime", "is_enabled", "description",
        "created_at", "updated_at", "id", "deleted_at",
    ]  # fmt: skip
    rows = await _sql(
        pg_dsn,
        old,
        "SELECT workflow_name, is_enabled, deleted_at FROM workflow_registry ORDER BY 1",
    )
    assert rows == [("a.v1", True, None), ("b.v1", False, None)]
    [(ids,)] = await _sql(pg_dsn, old, "SELECT count(DISTINCT id) FROM workflow_registry")
    assert ids == 2, "every existing row got its own id"

    # 0004 again is a no-op, on the converted install and on a fresh one
    [path] = MIGRATIONS.glob("0004_*.sql")
    before = await _catalog(pg_dsn, old)
    await _sql(pg_dsn, old, path.read_text())
    await _sql(pg_dsn, fresh, path.read_text())
    assert await _catalog(pg_dsn, old) == before
    assert await _catalog(pg_dsn, fresh, column_order=False) == await _catalog(
        pg_dsn, old, column_order=False
    )


async def test_require_schema(pg_dsn: str, schema_name: str) -> None:
    async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
        with pytest.raises(SchemaNotReadyError, match="workfleet migrate"):
            await require_schema(conn, schema_name)
    await migrate(pg_dsn, schema_name)
    async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
        assert await require_schema(conn, schema_name) == latest_version()


@pytest.mark.parametrize("param", ["search_path", "schema"])
async def test_schema_from_dsn(pg_dsn: str, param: str, pg_pool: Any) -> None:
    target = f"wf_dsn_{uuid.uuid4().hex[:8]}"
    info = psycopg.conninfo.conninfo_to_dict(pg_dsn)
    url = (
        f"postgresql://{info.get('user', 'postgres')}@/{info['dbname']}"
        f"?host={info.get('host', '')}&port={info.get('port', 5432)}&{param}={target}"
    )
    resolved = resolve_dsn(url)
    assert resolved.schema == target
    await migrate(resolved.conninfo, resolved.schema)
    store = PgStore(pg_pool, resolved.schema)
    [run] = await store.enqueue_many([NewRun("t.v1")])
    rows = await _sql(pg_dsn, target, "SELECT count(*) FROM workflow_run WHERE id = %s", [run.id])
    assert rows == [(1,)]


async def _collect(conn: psycopg.AsyncConnection[Any], timeout: float) -> list[str]:
    return [n.payload async for n in conn.notifies(timeout=timeout)]


async def test_one_notification_per_type_per_statement(pg_dsn: str, schema: str) -> None:
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as listener:
        await listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel_name(schema))))
        await _sql(
            pg_dsn,
            schema,
            "INSERT INTO workflow_run (type, payload) SELECT "
            "CASE WHEN g % 2 = 0 THEN 'a.v1' ELSE 'b.v1' END, '{}' "
            "FROM generate_series(1, 100) g",
        )
        payloads = await _collect(listener, 1.0)
    assert sorted(payloads) == ["i:a.v1", "i:b.v1"]
    created = await _sql(
        pg_dsn, schema, "SELECT count(*) FROM workflow_event WHERE event_type = 'created'"
    )
    assert created == [(100,)]


async def test_cancellation_is_audited_and_notified(pg_dsn: str, schema: str) -> None:
    [(run_id,)] = await _sql(
        pg_dsn,
        schema,
        "INSERT INTO workflow_run (type, payload) VALUES ('a.v1', '{}') RETURNING id",
    )
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as listener:
        await listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel_name(schema))))
        await _sql(
            pg_dsn, schema, "UPDATE workflow_run SET status = 'cancelled' WHERE id = %s", [run_id]
        )
        # an unrelated update notifies nothing
        await _sql(pg_dsn, schema, "UPDATE workflow_run SET priority = 5 WHERE id = %s", [run_id])
        payloads = await _collect(listener, 1.0)
    assert payloads == [f"c:{run_id}"]
    events = await _sql(
        pg_dsn,
        schema,
        "SELECT event_type, data->>'previous_status' "
        "FROM workflow_event WHERE workflow_id = %s ORDER BY id",
        [run_id],
    )
    assert events == [("created", None), ("cancelled", "pending")]
