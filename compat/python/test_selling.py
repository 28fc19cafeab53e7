"""The official Python SDK's checkout, subscriptions, charges, refunds,
transactions and payment-methods modules, unchanged, against our server.

The catalog is made over plain HTTP (the SDK has no catalog module); a checkout
is paid through the sandbox completion endpoint, as the hosted page would.
"""

import asyncio

import httpx
import pytest
from kelviq_sdk import Kelviq
from kelviq_sdk.exceptions import InvalidRequestError, NotFoundError


def _post(server, path, body):
    r = httpx.post(f"{server.url}/api/v1{path}", json=body, headers={"Authorization": f"Bearer {server.server_key}"})
    assert r.status_code < 300, (path, r.status_code, r.text)
    return r.json()


@pytest.fixture(scope="module")
def catalog(server):
    _post(server, "/catalog/products/", {"name": "Suite", "identifier": "suite", "taxCode": "saas"})
    _post(server, "/catalog/features/", {"name": "SSO", "featureType": "BOOLEAN"})
    plans = {
        "basic": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 10}}],
        "pro": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 30}}],
        "once": [{"chargePeriod": "ONE_TIME", "priceData": {"amount": 49}}],
    }
    for identifier, charges in plans.items():
        _post(server, "/catalog/plans/", {"name": identifier.title(), "identifier": identifier, "product": "suite"})
        _post(
            server,
            f"/catalog/plans/{identifier}/prices/bulk/",
            {"prices": [{"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"charges": charges}]}]},
        )
        _post(server, f"/catalog/plans/{identifier}/features/", {"planEntitlements": [{"feature": "sso", "details": {"value": True}}]})
        _post(server, f"/catalog/plans/{identifier}/publish/", {})
    return server


def _pay(server, session_id, card="4242424242424242"):
    return _post(server, f"/checkout/sessions/{session_id}/complete/", {"card": card, "email": "buyer@example.com"})


def test_checkout_then_subscriptions(client, catalog, unique):
    session = client.checkout.create_session(
        planIdentifier="basic",
        chargePeriod="MONTHLY",
        successUrl="https://app.example.com/done",
        customerId=unique,
        metadata={"source": "py", "camelKey": 1},
        lockEmail=False,
        discountsEnabled=True,
        defaultBillingCountry="US",
    )
    assert session.checkoutSessionId.startswith("cs_")
    assert session.checkoutUrl.endswith(f"/checkout/{session.checkoutSessionId}/")
    _pay(catalog, session.checkoutSessionId)

    page = client.subscriptions.list(customerId=unique)
    assert page.count == 1
    sub = page.results[0]
    assert (sub.status, sub.amount, sub.billingType, sub.recurrence) == ("active", "10.00", "SUBSCRIPTION", "1 month")
    assert sub.plan.identifier == "basic"
    assert client.subscriptions.retrieve(sub.id).id == sub.id
    assert client.subscriptions.list(customerId=unique, startDateAfter="2000-01-01").count == 1
    assert client.subscriptions.list(customerId=unique, startDateBefore="2000-01-01").count == 0

    preview = client.subscriptions.preview_update(sub.id, planIdentifier="pro", chargePeriod="MONTHLY")
    assert preview.recurringAmountUnits == 3000
    assert preview.amountChargedImmediatelyUnits == 2000, "the full difference at the very start of the period"
    updated = client.subscriptions.update(sub.id, planIdentifier="pro", chargePeriod="MONTHLY", prorationBehavior="IMMEDIATE_CHARGE")
    assert updated.subscriptionId == sub.id
    assert client.subscriptions.retrieve(sub.id).plan.identifier == "pro"

    cancelled = client.subscriptions.cancel(sub.id, cancellationType="CURRENT_PERIOD_ENDS")
    assert cancelled.message == "Subscription cancellation processed successfully."
    assert client.subscriptions.retrieve(sub.id).endDate is not None

    with pytest.raises(NotFoundError):
        client.subscriptions.retrieve("00000000-0000-0000-0000-000000000000")
    with pytest.raises(InvalidRequestError) as e:
        client.checkout.create_session(planIdentifier="nope", chargePeriod="MONTHLY", successUrl="https://x.example/")
    assert "planIdentifier" in e.value.details


def test_charges_refunds_transactions_payment_methods(client, catalog, unique):
    session = client.checkout.create_session(
        planIdentifier="basic", chargePeriod="MONTHLY", successUrl="https://app.example.com/done", customerId=unique
    )
    _pay(catalog, session.checkoutSessionId)
    created = client.subscriptions.create(planIdentifier="pro", chargePeriod="MONTHLY", customerId=unique)
    assert (created.status, created.amount) == ("active", "30.00")
    charge = client.charges.create(planIdentifier="once", chargePeriod="ONE_TIME", customerId=unique)
    assert (charge.amount, charge.billingType, charge.product.name) == ("49.00", "ONE_TIME", "Suite")

    methods = client.payment_methods.list(customer_id=unique)
    assert methods.count == 1
    assert methods.results[0].isDefault and methods.results[0].customer.customerId == unique
    assert methods.results[0].methodData["last4"] == "4242"

    orders = httpx.get(
        f"{catalog.url}/api/v1/orders/", params={"search": unique}, headers={"Authorization": f"Bearer {catalog.server_key}"}
    ).json()
    once = next(o for o in orders["results"] if o["billingType"] == "ONE_TIME")
    partial = client.refunds.create(orderId=once["id"], amountUnits=900, reason="REQUESTED_BY_CUSTOMER")
    assert (partial.status, partial.amountUnits, partial.amount) == ("SUCCEEDED", 900, 9.0)
    with pytest.raises(InvalidRequestError) as e:
        client.refunds.create(orderId=once["id"], amount=40.01)
    assert e.value.details == {"error": "Amount exceeds order total."}
    rest = client.refunds.create(orderId=once["id"])
    assert rest.amountUnits == 4000
    assert client.refunds.retrieve(rest.id).id == rest.id
    assert client.refunds.list(status="SUCCEEDED", search=once["id"]).count == 2

    txs = client.transactions.list(status="success", search=once["id"])
    kinds = sorted(t.transactionType for t in txs.results)
    assert kinds == ["CHARGE", "REFUND", "REFUND"]
    charge_tx = next(t for t in txs.results if t.transactionType == "CHARGE")
    assert charge_tx.amountTotal == 49.0 and charge_tx.morFee > 0
    assert {c.name for c in charge_tx.morFeeBreakdown} == {"base_fee", "fixed_fee"}


def test_async_client(catalog, unique):
    async def run():
        async with Kelviq.create_async_client(
            access_token=catalog.server_key, base_url=catalog.url, edge_api_url=catalog.url
        ) as c:
            s = await c.checkout.create_session(
                planIdentifier="pro", chargePeriod="MONTHLY", successUrl="https://app.example.com/", customerId=unique
            )
            _pay(catalog, s.checkoutSessionId)
            page = await c.subscriptions.list(customerId=unique)
            assert page.results[0].plan.identifier == "pro"
            await c.subscriptions.cancel(page.results[0].id, cancellationType="IMMEDIATE")
            assert (await c.subscriptions.retrieve(page.results[0].id)).status == "canceled"

    asyncio.run(run())
