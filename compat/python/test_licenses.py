"""The official Python SDK's `license` module, unchanged, against our server:
activate, validate and deactivate, their typed answers (LicenseDetails with
its customer, plan, product and subscription) and their errors.
"""

import asyncio

import httpx
import pytest
from kelviq_sdk import Kelviq
from kelviq_sdk.exceptions import AuthenticationError, InvalidRequestError, NotFoundError


def _post(server, path, body):
    r = httpx.post(f"{server.url}/api/v1{path}", json=body, headers={"Authorization": f"Bearer {server.server_key}"})
    assert r.status_code < 300, (path, r.status_code, r.text)
    return r.json()


@pytest.fixture(scope="module")
def licensed(server):
    _post(server, "/catalog/products/", {"name": "Desk App", "identifier": "desk-app", "taxCode": "software"})
    _post(
        server,
        "/catalog/plans/",
        {
            "name": "Desk",
            "identifier": "desk",
            "product": "desk-app",
            "license": {"enabled": True, "activationLimitEnabled": True, "activationLimit": 2},
        },
    )
    _post(
        server,
        "/catalog/plans/desk/prices/bulk/",
        {"prices": [{"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 15}}]}]}]},
    )
    _post(server, "/catalog/plans/desk/publish/", {})
    return server


def _buy(server, client, customer):
    session = client.checkout.create_session(
        planIdentifier="desk", chargePeriod="MONTHLY", successUrl="https://app.example.com/", customerId=customer
    )
    _post(server, f"/checkout/sessions/{session.checkoutSessionId}/complete/", {"card": "4242424242424242", "email": f"{customer}@example.com"})
    sub = client.subscriptions.list(customerId=customer).results[0]
    assert len(sub.license) == 1, "the subscription lists its key"
    return sub, sub.license[0].licenseKey


def test_activate_validate_deactivate(client, licensed, unique):
    sub, key = _buy(licensed, client, unique)
    assert key.startswith("LIC-") and len(key) == 40

    activated = client.license.activate(key, customerId=unique, instanceName="laptop", metadata={"fingerprint": "fp-1"})
    lic = activated.license
    assert (lic.licenseKey, lic.activationUsage, lic.activationLimit, lic.enabled) == (key, 1, 2, True)
    assert lic.customer.customerId == unique and lic.customer.email == f"{unique}@example.com"
    assert (lic.plan.identifier, lic.plan.isLatest, lic.plan.product.identifier) == ("desk", True, "desk-app")
    assert lic.subscription.id == sub.id and lic.subscription.billingType == "SUBSCRIPTION"
    assert activated.activatedAt.endswith("Z")

    verdict = client.license.validate(key, instanceId=activated.instanceId)
    assert (verdict.valid, verdict.code, verdict.detail) == (True, "VALID", "Instance ID valid for this license.")
    assert verdict.metadata == {"fingerprint": "fp-1"}
    assert verdict.license.activationUsage == 1

    client.license.activate(key)
    with pytest.raises(AuthenticationError) as full:
        client.license.activate(key)
    assert full.value.status_code == 403
    assert full.value.details == {"error": "Activation limit reached (2/2)."}

    done = client.license.deactivate(key, activated.instanceId)
    assert done.message == "License instance deactivated successfully."
    with pytest.raises(NotFoundError) as gone:
        client.license.validate(key, instanceId=activated.instanceId)
    assert gone.value.details["code"] == "INSTANCE_NOT_FOUND"
    with pytest.raises(NotFoundError) as unknown:
        client.license.activate("LIC-00000000-0000-0000-0000-000000000000")
    assert unknown.value.details == {"error": "Invalid license key or customer ID."}
    with pytest.raises(NotFoundError) as bad:
        client.license.validate("LIC-NOPE")
    assert bad.value.details == {"valid": False, "code": "INVALID_KEY", "detail": "License key not found.", "metadata": {}}
    with pytest.raises(InvalidRequestError):
        client.license.activate("")


def test_async_license(licensed, client, unique):
    _, key = _buy(licensed, client, unique)

    async def run():
        async with Kelviq.create_async_client(
            access_token=licensed.server_key, base_url=licensed.url, edge_api_url=licensed.url
        ) as c:
            a = await c.license.activate(key, instanceName="desktop")
            v = await c.license.validate(key, instanceId=a.instanceId)
            assert v.valid and v.license.id == a.license.id
            d = await c.license.deactivate(key, a.instanceId)
            assert d.deactivatedAt.endswith("Z")

    asyncio.run(run())
