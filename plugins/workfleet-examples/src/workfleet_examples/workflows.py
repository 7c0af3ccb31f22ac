"""Durable workflows: the examples of the workflow engines workfleet covers, as workflows.

- ``shop.order.v1`` — flows' order workflow: charge the payment, wait for the warehouse's
  ``warehouse.ready`` signal (sent by anyone: ``INSERT INTO workflow_signal``), ship.
- ``etl.pipeline.v1`` — an orchwf-style DAG: extract, two transforms in parallel, load, and an
  optional notification that may fail without failing the pipeline.
- ``orders.process.v1`` and ``users.onboarding.v1`` — go-workflow's chains, each step's output
  feeding the next.

Every step runs once: when the worker restarts, the workflow is replayed and finished steps
return their stored output. Step functions log with this module's logger (they run outside
the workflow's ``Run``); the run id travels in their arguments.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog
from pydantic import BaseModel, Field

import workfleet
from workfleet.retry import ConstantBackoff
from workfleet.workflow import Dag, RetryPolicy, StepInput, Workflow, chain

plugin = workfleet.Plugin("workflows")
log = structlog.get_logger("workfleet_examples.workflows")

# --- flows: charge payment -> wait for the warehouse -> ship ---------------------------------


class OrderPayload(BaseModel):
    customer_id: str = Field(min_length=1)
    items: list[str] = Field(min_length=1)
    total_price: float = Field(gt=0)


class WarehouseConfirmation(BaseModel):
    available: bool
    warehouse: str = "main"


async def charge_payment(order_id: str, order: OrderPayload) -> dict[str, Any]:
    """Charge the customer (simulated payment API)."""
    log.info(f"Charging ${order.total_price:.2f} to customer {order.customer_id} for {order_id}")
    return {"charge_id": f"ch-{order_id[:8]}", "success": True}


async def ship_order(order_id: str, items: list[str], warehouse: str) -> dict[str, Any]:
    """Create the shipment (simulated shipping API)."""
    log.info(f"Shipping {len(items)} item(s) of {order_id} from warehouse {warehouse}")
    return {"tracking_number": f"TRK-{order_id[:8].upper()}"}


@plugin.workflow("shop.order.v1", payload=OrderPayload, max_attempts=3)
async def order(wf: Workflow[OrderPayload]) -> dict[str, Any]:
    """Charge an order, wait for the warehouse's confirmation, then ship it."""
    order_id = str(await wf.uuid7())  # recorded: a replay gets the same id
    payment = await wf.step("charge-payment", charge_payment, order_id, wf.payload)
    if not payment["success"]:
        raise workfleet.Fail("payment was declined")
    # the run gives its slot and lease back while it waits; a signal sent earlier is kept
    confirmation = await wf.wait_signal(
        "warehouse.ready", WarehouseConfirmation, timeout=timedelta(days=2)
    )
    if not confirmation.available:
        raise workfleet.Fail("items not available in warehouse")
    shipment = await wf.step(
        "ship-order", ship_order, order_id, wf.payload.items, confirmation.warehouse
    )
    return {
        "order_id": order_id,
        "charge_id": payment["charge_id"],
        "tracking_number": shipment["tracking_number"],
        "status": "shipped",
    }


# --- orchwf: extract -> (clean | enrich, in parallel) -> load, + an optional notify ---------


class PipelinePayload(BaseModel):
    source: str = Field(min_length=1)
    rows: int = Field(default=10, ge=0, le=100_000)
    # where the optional notification goes; "down" plays a mail server that is unreachable
    notify: str = "ops@example.com"


class MailServerDownError(ConnectionError):
    """The (simulated) mail server did not answer."""


etl = Dag()


@etl.step()
async def extract(inp: StepInput) -> list[int]:
    p: PipelinePayload = inp.payload
    log.info(f"Extracting {p.rows} rows from {p.source}")
    return list(range(p.rows))


@etl.step(after=["extract"], timeout=30)
async def clean(inp: StepInput) -> list[int]:
    rows: list[int] = inp["extract"]
    log.info(f"Cleaning {len(rows)} rows")
    return [r for r in rows if r % 7 != 0]  # drop the (simulated) bad rows


@etl.step(after=["extract"], timeout=30)
async def enrich(inp: StepInput) -> dict[str, int]:
    rows: list[int] = inp["extract"]
    log.info(f"Enriching {len(rows)} rows")
    return {"total": sum(rows), "count": len(rows)}


@etl.step(after=["clean", "enrich"])
async def load(inp: StepInput) -> dict[str, Any]:
    p: PipelinePayload = inp.payload
    loaded = len(inp["clean"])
    log.info(f"Loading {loaded} rows from {p.source}")
    return {"loaded": loaded, "total": inp["enrich"]["total"]}


# orchwf's WithRetryableErrors: only a connection failure is worth a second try
NOTIFY_RETRY = RetryPolicy(attempts=2, backoff=ConstantBackoff(0.2), retry_on=(ConnectionError,))


@etl.step(after=["load"], required=False, retry=NOTIFY_RETRY)
async def notify(inp: StepInput) -> str:
    p: PipelinePayload = inp.payload
    if p.notify == "down":
        log.info("Notification failed: mail server down (optional step, the pipeline goes on)")
        raise MailServerDownError("the mail server is down")
    log.info(f"Notified {p.notify}: {inp['load']['loaded']} rows loaded")
    return p.notify


plugin.workflow(
    "etl.pipeline.v1",
    payload=PipelinePayload,
    description="Extract, clean and enrich in parallel, load, notify (optional).",
)(etl.run)


# --- go-workflow: sequential chains of named steps ----------------------------------------


class OrderRequest(BaseModel):
    order_id: str = Field(min_length=1)
    amount: float = Field(gt=0)


async def validate_order(order: dict[str, Any]) -> dict[str, Any]:
    log.info(f"ValidateOrder {order['order_id']}")  # the payload model checked its shape
    return order | {"validated": True}


async def deduct_money(order: dict[str, Any]) -> dict[str, Any]:
    log.info(f"DeductMoney {order['amount']} for {order['order_id']}")
    return order | {"charged": order["amount"]}


async def send_email(order: dict[str, Any]) -> dict[str, Any]:
    log.info(f"SendEmail: order {order['order_id']} confirmed")
    return order | {"emailed": True}


plugin.workflow(
    "orders.process.v1",
    payload=OrderRequest,
    description="OrderProcess: ValidateOrder -> DeductMoney -> SendEmail.",
)(chain(validate_order, deduct_money, send_email))


class SignUp(BaseModel):
    username: str = Field(min_length=1)
    email: str = Field(min_length=3)


async def create_account(user: dict[str, Any]) -> dict[str, Any]:
    log.info(f"CreateAccount {user['username']}")
    return user | {"account_id": f"acct-{user['username']}"}


def send_welcome_email(user: dict[str, Any]) -> dict[str, Any]:  # a sync step: runs in a thread
    log.info(f"SendWelcomeEmail to {user['email']}")
    return user | {"welcomed": True}


async def assign_role(user: dict[str, Any]) -> dict[str, Any]:
    log.info(f"AssignRole member to {user['account_id']}")
    return user | {"role": "member"}


plugin.workflow(
    "users.onboarding.v1",
    payload=SignUp,
    description="UserOnboarding: CreateAccount -> SendWelcomeEmail -> AssignRole.",
)(chain(create_account, send_welcome_email, assign_role))
