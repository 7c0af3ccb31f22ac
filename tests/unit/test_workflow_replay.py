"""The replay logic of durable workflows, without I/O: the real Workflow and driver over the
in-memory stores and a manual clock."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from workfleet.models import NewRun, RunStatus, Suspended
from workfleet.retry import ConstantBackoff
from workfleet.store import ClaimFilter
from workfleet.testing import ManualClock, MemoryStore, MemoryWorkflowStore
from workfleet.workflow import (
    Dag,
    NonDeterminismError,
    RetryPolicy,
    StepFailed,
    StepInput,
    Workflow,
)
from workfleet.workflow.driver import WorkflowDriver
from workfleet.workflow.session import WorkflowSession

WORKER = "w-unit"
ALL = ClaimFilter((), ("%",))
Fn = Callable[[Workflow[Any]], Awaitable[Any]]


@dataclass
class World:
    clock: ManualClock
    runs: MemoryStore
    flows: MemoryWorkflowStore
    calls: Counter[str]

    async def start(self, payload: Any = None) -> uuid.UUID:
        [e] = await self.runs.enqueue_many([NewRun("wf.unit.v1", payload or {})])
        return e.id

    async def execute(self, fn: Fn, patches: tuple[str, ...] = ()) -> tuple[str, Any]:
        """One execution of the next runnable run: ('returned', value), ('suspended',
        Suspended) or ('raised', exception)."""
        [claimed] = await self.runs.claim(WORKER, ALL, 1, 30)
        session = WorkflowSession(
            self.flows,
            WORKER,
            claimed.lease,
            claimed.claimed_at,
            max_output_bytes=1 << 20,
            lost=lambda status: None,
            patches=patches,
        )
        wf: Workflow[Any] = Workflow(
            session=session,
            id=claimed.id,
            type=claimed.type,
            payload=claimed.payload,
            raw_payload=claimed.payload,
            attempt=claimed.attempt + 1,
            max_attempts=claimed.max_attempts,
            handle=None,
            log=None,
        )
        try:
            value = await WorkflowDriver(fn, wf, session, 1.0).run()
        except Suspended as exc:
            return "suspended", exc
        except Exception as exc:  # noqa: BLE001 - the tests look at it
            return "raised", exc
        return "returned", value

    def counted(self, name: str, value: Any = None) -> Callable[..., Awaitable[Any]]:
        async def fn(*args: Any) -> Any:
            self.calls[name] += 1
            return value if value is not None else f"{name}:{self.calls[name]}"

        fn.__name__ = name
        return fn


@pytest.fixture
def world() -> World:
    clock = ManualClock()
    runs = MemoryStore(clock)
    return World(clock, runs, MemoryWorkflowStore(runs), Counter())


async def test_finished_steps_return_their_stored_output_on_replay(world: World) -> None:
    async def flow(wf: Workflow[Any]) -> Any:
        a = await wf.step(world.counted("a"))
        when = await wf.now()
        got = await wf.wait_signal("go")
        b = await wf.step(world.counted("b"))
        return [a, when.isoformat(), got, b]

    run_id = await world.start()
    kind, suspended = await world.execute(flow)
    assert kind == "suspended" and suspended.kind == "signal"
    world.clock.advance(5)
    await world.flows.send_signal(run_id, "go", '{"x": 1}', None)
    kind, value = await world.execute(flow)
    assert kind == "returned"
    assert value[0] == "a:1" and value[2] == {"x": 1} and value[3] == "b:1"
    assert world.calls == Counter({"a": 1, "b": 1})
    # the recorded time, not the later replay's
    steps = {s.key: s for s in await world.flows.load_steps(run_id)}
    assert value[1] == steps["now"].output


async def test_a_durable_sleep_suspends_until_it_is_due(world: World) -> None:
    async def flow(wf: Workflow[Any]) -> str:
        await wf.step(world.counted("before"))
        await wf.sleep(60)
        await wf.step(world.counted("after"))
        return "done"

    run_id = await world.start()
    kind, suspended = await world.execute(flow)
    assert kind == "suspended" and suspended.kind == "sleep"
    assert (suspended.wake_at - world.clock.now()).total_seconds() == pytest.approx(60, abs=1)
    assert await world.runs.claim(WORKER, ALL, 1, 30) == []  # not due yet
    world.clock.advance(61)
    assert await world.execute(flow) == ("returned", "done")
    assert world.calls == Counter({"before": 1, "after": 1})
    del run_id


async def test_a_signal_sent_before_the_wait_is_taken_without_suspending(world: World) -> None:
    async def flow(wf: Workflow[Any]) -> Any:
        return await wf.wait_signal("go")

    run_id = await world.start()
    await world.flows.send_signal(run_id, "go", "[1, 2]", None)
    assert await world.execute(flow) == ("returned", [1, 2])


async def test_concurrent_steps_need_distinct_keys(world: World) -> None:
    async def unkeyed(wf: Workflow[Any]) -> Any:
        slow = world.counted("fetch")
        return await asyncio.gather(wf.step("fetch", slow), wf.step("fetch", slow))

    await world.start()
    kind, exc = await world.execute(unkeyed)
    assert kind == "raised" and isinstance(exc, ValueError) and "key=" in str(exc)

    async def keyed(wf: Workflow[Any]) -> Any:
        fetch = world.counted("keyed")
        return await asyncio.gather(
            wf.step("fetch", fetch, key="eu"), wf.step("fetch", fetch, key="us")
        )

    run_id = await world.start()
    kind, value = await world.execute(keyed)
    assert kind == "returned" and sorted(value) == ["keyed:1", "keyed:2"]
    assert sorted(s.key for s in await world.flows.load_steps(run_id)) == ["eu", "us"]


async def test_a_changed_step_kind_fails_the_run_even_if_the_code_catches_it(
    world: World,
) -> None:
    async def v1(wf: Workflow[Any]) -> Any:
        await wf.step("x", world.counted("x"))
        await wf.wait_signal("go")

    async def v2(wf: Workflow[Any]) -> Any:
        try:  # noqa: SIM105 - written as user code often is
            await wf.sleep(1, key="x")
        except Exception:  # noqa: BLE001, S110 - code that swallows everything
            pass
        return "swallowed"

    run_id = await world.start()
    assert (await world.execute(v1))[0] == "suspended"
    await world.flows.send_signal(run_id, "go", "{}", None)
    kind, exc = await world.execute(v2)
    assert kind == "raised" and isinstance(exc, NonDeterminismError)
    assert "recorded as step 'x'" in str(exc)


async def test_a_step_renamed_under_a_run_in_flight_is_caught(world: World) -> None:
    async def v1(wf: Workflow[Any]) -> Any:
        await wf.step("charge", world.counted("charge"))
        await wf.wait_signal("go")
        return "v1"

    async def v2(wf: Workflow[Any]) -> Any:
        await wf.step("charge_card", world.counted("charge_card"))
        await wf.wait_signal("go")
        return "v2"

    run_id = await world.start()
    assert (await world.execute(v1))[0] == "suspended"
    await world.flows.send_signal(run_id, "go", "{}", None)
    kind, exc = await world.execute(v2)
    assert kind == "raised" and isinstance(exc, NonDeterminismError)
    assert "'charge_card'" in str(exc) and "'charge'" in str(exc)
    assert world.calls["charge_card"] == 0


async def test_a_branch_waits_while_another_finishes_its_step(world: World) -> None:
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        world.calls["slow"] += 1
        return "slow"

    async def flow(wf: Workflow[Any]) -> Any:
        return await asyncio.gather(wf.wait_signal("go"), wf.step("slow", slow))

    run_id = await world.start()
    execution = asyncio.ensure_future(world.execute(flow))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not execution.done()  # the step runs: no suspension while it does
    release.set()
    kind, _ = await execution
    assert kind == "suspended"
    steps = {s.key: s.status for s in await world.flows.load_steps(run_id)}
    assert steps == {"slow": "succeeded", "signal:go": "waiting"}


async def test_step_retries_suspend_without_consuming_run_attempts(world: World) -> None:
    tries = Counter[str]()

    async def flaky() -> str:
        tries["flaky"] += 1
        if tries["flaky"] < 3:
            raise ConnectionError(f"try {tries['flaky']}")
        return "ok"

    policy = RetryPolicy(attempts=5, backoff=ConstantBackoff(30))

    async def flow(wf: Workflow[Any]) -> Any:
        return await wf.step("flaky", flaky, retry=policy)

    run_id = await world.start()
    for expected_tries in (1, 2):
        kind, suspended = await world.execute(flow)
        assert (kind, suspended.kind, tries["flaky"]) == ("suspended", "retry", expected_tries)
        world.clock.advance(31)
    assert await world.execute(flow) == ("returned", "ok")
    row = await world.runs.get(run_id)
    assert row is not None and row.attempt == 0
    [record] = await world.flows.load_steps(run_id)
    assert (record.status, record.attempts) == ("succeeded", 3)


async def test_optional_steps_and_retryable_error_classes(world: World) -> None:
    async def broken() -> None:
        raise KeyError("missing")

    only_network = RetryPolicy(attempts=3, backoff=ConstantBackoff(0), retry_on=(ConnectionError,))

    async def flow(wf: Workflow[Any]) -> Any:
        quick = RetryPolicy(attempts=3, backoff=ConstantBackoff(0))
        skipped = await wf.step("notify", broken, retry=quick, required=False, default="skipped")
        try:
            await wf.step("lookup", broken, retry=only_network)
        except StepFailed as exc:
            return [skipped, exc.key, exc.error]
        return None

    run_id = await world.start()
    kind, value = await world.execute(flow)
    assert (kind, value) == ("returned", ["skipped", "lookup", "KeyError: 'missing'"])
    steps = {s.key: (s.status, s.attempts) for s in await world.flows.load_steps(run_id)}
    assert steps == {"notify": ("failed", 3), "lookup": ("failed", 1)}


async def test_patched_is_recorded_once_per_run(world: World) -> None:
    async def flow(wf: Workflow[Any]) -> Any:
        first = await wf.patched("v2-tax")
        await wf.wait_signal("go")
        return [first, await wf.patched("v2-tax")]

    run_id = await world.start()
    assert (await world.execute(flow, patches=("v2-tax",)))[0] == "suspended"
    await world.flows.send_signal(run_id, "go", "{}", None)
    assert await world.execute(flow, patches=("v2-tax",)) == ("returned", [True, True])

    async def undeclared(wf: Workflow[Any]) -> Any:
        return await wf.patched("nope")

    await world.start()
    kind, exc = await world.execute(undeclared)
    assert kind == "raised" and "not declared" in str(exc)


async def test_outputs_are_json_round_tripped_the_same_on_first_run_and_replay(
    world: World,
) -> None:
    async def tuple_maker() -> Any:
        return (1, {"a": (2, 3)})

    async def flow(wf: Workflow[Any]) -> Any:
        first = await wf.step("t", tuple_maker)
        await wf.wait_signal("go")
        return first

    run_id = await world.start()
    await world.flows.send_signal(run_id, "go", "{}", None)
    kind, value = await world.execute(flow)
    assert (kind, value) == ("returned", [1, {"a": [2, 3]}])
    assert json.dumps(value)


async def test_a_resumed_step_waits_for_siblings_to_replay_a_long_recorded_chain(
    world: World,
) -> None:
    """On replay, a step with no checkpoint (here: dropped by resume) must not be mistaken for
    a renamed one while a sibling branch still walks its recorded chain (a loop turn a link)."""
    fail_x = [True]
    dag = Dag()

    @dag.step()
    async def a(inp: StepInput) -> int:
        return 0

    previous = "a"
    for i in range(40):

        async def link(inp: StepInput, _prev: str = previous) -> int:
            return int(inp[_prev]) + 1

        dag.step(f"b{i}", after=[previous])(link)
        previous = f"b{i}"

    @dag.step(after=["a"], retry=RetryPolicy(attempts=1))
    async def x(inp: StepInput) -> str:
        await asyncio.sleep(0.01)  # the chain finishes first
        if fail_x[0]:
            raise ConnectionError("x is down")
        return "x"

    run_id = await world.start()
    kind, exc = await world.execute(dag.run)
    assert kind == "raised" and isinstance(exc, StepFailed)
    row = world.runs._runs[run_id]
    row.status, row.leased_by = RunStatus.FAILED, None
    assert await world.flows.resume(run_id) == 1
    fail_x[0] = False
    kind, value = await world.execute(dag.run)
    assert kind == "returned", value
    assert value["b39"] == 40 and value["x"] == "x"


async def test_keys_and_names_must_be_storable_text(world: World) -> None:
    async def flow(wf: Workflow[Any]) -> Any:
        return await wf.step("bad\x00name", world.counted("x"))

    await world.start()
    kind, exc = await world.execute(flow)
    assert kind == "raised" and isinstance(exc, ValueError) and "printable" in str(exc)


async def test_concurrent_waits_and_values_need_distinct_keys(world: World) -> None:
    """Numbering concurrent waits by call order would swap them on a replay that schedules the
    branches differently (a 4-second sleep waking after 1 second): they must carry keys."""

    async def unkeyed(wf: Workflow[Any]) -> Any:
        async def branch(seconds: float) -> None:
            await wf.sleep(seconds)

        await asyncio.gather(branch(4), branch(1))

    await world.start()
    kind, exc = await world.execute(unkeyed)
    assert kind == "raised" and isinstance(exc, ValueError) and "key=" in str(exc)

    async def keyed(wf: Workflow[Any]) -> Any:
        async def branch(seconds: float) -> None:
            await wf.sleep(seconds, key=f"nap-{seconds:g}")

        await asyncio.gather(branch(4), branch(1), wf.now(key="t1"), wf.now(key="t2"))
        return "rested"

    run_id = await world.start()
    kind, suspended = await world.execute(keyed)
    assert kind == "suspended"
    naps = {s.key: s.wake_at for s in await world.flows.load_steps(run_id) if s.kind == "sleep"}
    assert (naps["nap-4"] - naps["nap-1"]).total_seconds() == pytest.approx(3, abs=0.5)
    world.clock.advance(5)
    assert await world.execute(keyed) == ("returned", "rested")


async def test_a_child_waited_for_suspends_the_parent(world: World) -> None:
    """wf.child calls other workflow calls (start, gather): the wait inside must still let the
    run suspend instead of holding its slot."""

    async def flow(wf: Workflow[Any]) -> Any:
        return await wf.child("wf.kid.v1", {"n": 1})

    run_id = await world.start()
    kind, suspended = await asyncio.wait_for(world.execute(flow), 5)
    assert kind == "suspended" and suspended.kind == "children"
    del run_id


async def test_a_driver_cancelled_mid_step_leaves_nothing_behind(world: World) -> None:
    """The execution's timeout cancels the driver. Workflow code that turns the cancellation
    into another exception must not leave asyncio an unretrieved task exception, and a step
    function that swallows it must not leave the workflow's task hanging on a wait."""
    import gc

    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(30)

    async def swallowing() -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            raise ConnectionError("cleanup failed") from None

    async def converts(wf: Workflow[Any]) -> Any:
        try:
            return await wf.step("slow", slow)
        except asyncio.CancelledError:
            raise RuntimeError("cleanup failed") from None

    async def swallows(wf: Workflow[Any]) -> Any:
        return await wf.step("swallowing", swallowing)

    lost: list[Any] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: lost.append(context))
    before = set(asyncio.all_tasks())
    try:
        for flow in (converts, swallows):
            started.clear()
            await world.start()
            execution = asyncio.ensure_future(world.execute(flow))
            await started.wait()
            execution.cancel()
            with pytest.raises(asyncio.CancelledError):
                await execution
        for _ in range(10):
            await asyncio.sleep(0)
        left = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task()]
        assert not left, left
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert not lost, lost
