"""Billing worker: every ``billing.*`` type, with a payment that fails once, then succeeds.

The plugin's backoff is short (2 seconds) so the retry shows up within a demo; production
plugins would keep the default (attempt² minutes).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

import workfleet
from workfleet.retry import ConstantBackoff

plugin = workfleet.Plugin("billing", backoff=ConstantBackoff(2.0), max_attempts=5)


class PaymentGatewayTimeoutError(RuntimeError):
    """The (simulated) payment gateway did not answer in time."""


class InvoicePayload(BaseModel):
    invoice_id: str = Field(min_length=1)
    amount: float = Field(ge=0)
    customer_id: str = Field(min_length=1)


class PaymentPayload(BaseModel):
    payment_id: str = Field(min_length=1)
    amount: float = Field(gt=0)
    method: str = Field(min_length=1)


@plugin.executor("billing.invoice.v1", payload=InvoicePayload, timeout=60)
async def invoice(run: workfleet.Run[InvoicePayload]) -> dict[str, str | float]:
    """Generate an invoice."""
    p = run.payload
    run.log.info(
        f"Generating invoice {p.invoice_id} for customer {p.customer_id} (amount: ${p.amount:.2f})"
    )
    run.log.info(f"Invoice {p.invoice_id} generated successfully")
    return {"invoice_id": p.invoice_id, "amount": p.amount, "status": "generated"}


@plugin.executor("billing.payment.v1", payload=PaymentPayload, timeout=60)
async def payment(run: workfleet.Run[PaymentPayload]) -> dict[str, str | float]:
    """Process a payment; the first attempt hits a (simulated) gateway timeout."""
    p = run.payload
    prefix = "[After backoff] " if run.attempt > 1 else ""
    run.log.info(
        f"{prefix}Processing payment {p.payment_id} (amount: ${p.amount:.2f}, method: {p.method})"
    )
    if run.attempt == 1:
        run.log.info("Error: payment gateway timeout (will retry)")
        raise PaymentGatewayTimeoutError("payment gateway timeout")
    run.log.info(f"Payment {p.payment_id} processed successfully")
    return {"payment_id": p.payment_id, "amount": p.amount, "status": "captured"}
