"""The CLI under the least-privilege roles of docs/security.md: each command works with the
least role that can do its job, or says which grant is missing."""

from __future__ import annotations

import pytest

from tests.acceptance.cli import cli_env, run_cli
from tests.security.roles import applied_roles, dsn_as

pytestmark = pytest.mark.postgres


async def test_the_producer_role_can_enqueue_and_the_reader_is_told_what_it_lacks(
    pg_dsn: str, schema: str
) -> None:
    async with applied_roles(pg_dsn, schema) as roles:
        producer = cli_env(dsn_as(pg_dsn, roles.login(roles.producer)), schema)
        code, out, err = await run_cli("enqueue", "sec.echo.v1", '{"pan": 1}', env=producer)
        assert (code, err) == (0, ""), err
        run_id = out.split()[0]

        reader = cli_env(dsn_as(pg_dsn, roles.login(roles.reader)), schema)
        code, out, err = await run_cli("inspect", run_id, env=reader)
        assert code == 1
        assert "Traceback" not in err and len(err.splitlines()) == 1
        assert "lacks SELECT on workflow_run.payload and .result" in err
        assert "pan" not in out + err

        owner = cli_env(pg_dsn, schema)
        code, out, _ = await run_cli("inspect", run_id, env=owner)
        assert code == 0 and '"pan": 1' in out
