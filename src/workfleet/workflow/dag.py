"""Declarative workflows: a DAG of named steps (orchwf, Hatchet) and sequential chains
(go-workflow). Both are ordinary workflow functions underneath, checkpointed step by step.

A DAG::

    etl = Dag()

    @etl.step()
    async def extract(inp: StepInput) -> list[int]: ...

    @etl.step(after=["extract"], retry=RetryPolicy(attempts=5))
    async def transform_a(inp: StepInput) -> int:
        return sum(inp["extract"])

    @etl.step(after=["transform_a", "transform_b"])
    async def load(inp: StepInput) -> str: ...

    plugin.workflow("etl.pipeline.v1")(etl.run)

A chain, each step's output feeding the next::

    plugin.workflow("orders.process.v1")(chain(validate_order, deduct_money, send_email))
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from workfleet.workflow.context import Workflow
from workfleet.workflow.policy import RetryPolicy

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class StepInput:
    """What a DAG step receives: the workflow's payload and its dependencies' outputs by step
    name (None for an optional dependency that failed)."""

    payload: Any
    outputs: Mapping[str, Any]

    def __getitem__(self, step: str) -> Any:
        try:
            return self.outputs[step]
        except KeyError:
            raise KeyError(f"{step!r} is not a dependency of this step") from None


@dataclass(frozen=True, slots=True)
class DagStep:
    """One declared step: its function, dependencies and policies."""

    name: str
    fn: Callable[[StepInput], Any]
    after: tuple[str, ...]
    retry: RetryPolicy | None
    timeout: float | None
    required: bool


class Dag:
    """A workflow declared as steps with dependencies. Independent steps run concurrently; each
    step is checkpointed under its name, so a replay skips the finished ones."""

    def __init__(self) -> None:
        self.steps: dict[str, DagStep] = {}

    def step(
        self,
        name: str | None = None,
        *,
        after: Iterable[str] = (),
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        required: bool = True,
    ) -> Callable[[F], F]:
        """Declare the decorated function as a step that runs once every step in ``after``
        finished. ``required=False``: its failure is recorded and its dependents get None."""

        def register(fn: F) -> F:
            step_name = name or fn.__name__
            deps = tuple(after)
            if step_name in self.steps:
                raise ValueError(f"the DAG already has a step {step_name!r}")
            unknown = [d for d in deps if d not in self.steps]
            if unknown:
                # declaring in dependency order makes cycles impossible by construction
                raise ValueError(
                    f"step {step_name!r} depends on {unknown}, which are not declared yet "
                    "(declare a step after the steps it depends on)"
                )
            self.steps[step_name] = DagStep(step_name, fn, deps, retry, timeout, required)
            return fn

        return register

    async def run(self, wf: Workflow[Any]) -> dict[str, Any]:
        """The workflow function: run every step as soon as its dependencies finished; the
        outputs of all steps, by name."""
        if not self.steps:
            raise ValueError("the DAG has no steps")
        results: dict[str, asyncio.Future[Any]] = {
            name: asyncio.get_running_loop().create_future() for name in self.steps
        }

        async def run_one(step: DagStep) -> None:
            outputs = {d: await results[d] for d in step.after}
            value = await wf.step(
                step.name,
                step.fn,
                StepInput(wf.payload, outputs),
                key=step.name,
                retry=step.retry,
                timeout=step.timeout,
                required=step.required,
                default=None,
            )
            results[step.name].set_result(value)

        tasks = [asyncio.ensure_future(run_one(s)) for s in self.steps.values()]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            failed = [t for t in done if not t.cancelled() and t.exception() is not None]
            if failed:
                # dependents of the failed step stop waiting; steps already running finish and
                # keep their checkpoints (a resume will not run them again)
                for future in results.values():
                    future.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise failed[0].exception()  # type: ignore[misc]
        finally:
            for task in tasks:
                task.cancel()
        return {name: future.result() for name, future in results.items()}


def chain(
    *fns: Callable[[Any], Any], retry: RetryPolicy | None = None
) -> Callable[[Workflow[Any]], Awaitable[Any]]:
    """A workflow function running ``fns`` one after the other, each step named after its
    function and given the previous step's output (the first gets the payload)."""
    if not fns:
        raise ValueError("a chain needs at least one step")

    async def run(wf: Workflow[Any]) -> Any:
        value = wf.raw_payload
        for fn in fns:
            value = await wf.step(fn, value, retry=retry)
        return value

    run.__name__ = "chain_" + "_".join(getattr(f, "__name__", "step") for f in fns)
    run.__qualname__ = run.__name__
    run.__doc__ = " -> ".join(getattr(f, "__name__", "step") for f in fns)
    return run
