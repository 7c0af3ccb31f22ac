"""Property tests from the served OpenAPI document (schemathesis): whatever a client sends to
any route, with a valid admin key or none, the answer is never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.api.conftest import ADMIN_KEY
from tests.api.served import Served, serve_api

pytestmark = [pytest.mark.postgres, pytest.mark.acceptance]


@pytest.fixture(scope="module")
def served(pg_dsn: str) -> Iterator[Served]:
    with serve_api(pg_dsn) as api:
        yield api


def _operations(served: Served) -> list[Any]:
    # schemathesis's own pytest plugin does not load under this pytest; its strategies do
    api = schemathesis.openapi.from_url(f"{served.url}/api/v1/openapi.json")
    return [result.ok() for result in api.get_all_operations()]


def _check_all(served: Served, examples: int, headers: dict[str, str], check: Any) -> int:
    """Run ``check`` on ``examples`` generated cases of every operation; how many ran."""
    ran = 0
    for operation in _operations(served):

        @given(case=operation.as_strategy())
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            nonlocal ran
            ran += 1
            response = case.call(base_url=served.url, headers=headers, timeout=30)
            check(case, response)

        run()
    return ran


def test_no_input_makes_a_server_error(served: Served) -> None:
    def no_5xx(case: Any, response: Any) -> None:
        assert response.status_code < 500, (case.method, case.path, response.text[:500])

    ran = _check_all(served, 40, {"X-API-Key": ADMIN_KEY}, no_5xx)
    assert ran > 200, "every operation was exercised"


def test_without_a_key_nothing_but_health_answers(served: Served) -> None:
    open_paths = {"/health", "/api/v1/health", "/livez"}

    def refused(case: Any, response: Any) -> None:
        assert response.status_code < 500
        if case.path not in open_paths:
            assert response.status_code in (401, 404, 405, 413, 422), (case.path, response)

    _check_all(served, 5, {}, refused)
