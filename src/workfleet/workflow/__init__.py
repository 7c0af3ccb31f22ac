"""Durable multi-step workflows on workfleet's tables (see docs/workflows.md).

A workflow is an ordinary ``workflow_run`` row whose executor is a workflow function::

    @plugin.workflow("shop.order.v1", payload=Order)
    async def order(wf: Workflow[Order]) -> dict[str, str]:
        charge = await wf.step("charge", charge_card, wf.payload)
        ready = await wf.wait_signal("warehouse.ready", timeout=timedelta(days=2))
        await wf.step("ship", ship, wf.payload, ready)
        return {"charge": charge["id"]}
"""

from workfleet.workflow.children import ChildHandle, ChildResult, ChildSpec
from workfleet.workflow.context import Workflow
from workfleet.workflow.dag import Dag, StepInput, chain
from workfleet.workflow.history import NonDeterminismError
from workfleet.workflow.policy import (
    NO_RETRY,
    ChildFailed,
    RetryPolicy,
    SignalTimeout,
    StepFailed,
)

__all__ = [
    "NO_RETRY",
    "ChildFailed",
    "ChildHandle",
    "ChildResult",
    "ChildSpec",
    "Dag",
    "NonDeterminismError",
    "RetryPolicy",
    "SignalTimeout",
    "StepFailed",
    "StepInput",
    "Workflow",
    "chain",
]
