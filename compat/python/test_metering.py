"""The official Python SDK's entitlements and reporting modules, unchanged,
against our server (catalog and purchases over plain HTTP)."""

import datetime
import uuid

import httpx
import pytest
from kelviq_sdk import Kelviq
from kelviq_sdk.exceptions import InvalidRequestError, NotFoundError


def _post(server, path, body):
    r = httpx.post(f"{server.url}/api/v1{path}", json=body, headers={"Authorization": f"Bearer {server.server_key}"})
    assert r.status_code < 300, (path, r.status_code, r.text)
    return r.json()


@pytest.fixture(scope="module")
def metered(server):
    _post(server, "/catalog/products/", {"name": "Meters", "identifier": "meters", "taxCode": "saas"})
    units = {"singular": "unit", "plural": "units"}
    _post(server, "/catalog/features/", {"name": "Api Calls", "identifier": "api-calls", "featureType": "METER",
                                         "featureDetails": {"featureSubType": "PRE_AGGREGATED_USAGE", "units": units}})
    _post(server, "/catalog/features/", {"name": "Tokens", "identifier": "tokens", "featureType": "METER",
                                         "featureDetails": {"featureSubType": "RAW_EVENTS", "units": units},
                                         "meter": {"aggregation": {"function": "SUM", "field": "tokens"},
                                                   "filters": [[{"property": "event_name", "operator": "equals", "value": "llm"}]]}})
    _post(server, "/catalog/features/", {"name": "Export", "identifier": "export", "featureType": "BOOLEAN"})
    plans = {
        "metered-base": [{"feature": "api-calls", "details": {"value": 100, "reset": "EVERY_MONTH", "hardLimit": True}},
                         {"feature": "tokens", "details": {"value": 1000, "reset": "EVERY_MONTH", "hardLimit": True}},
                         {"feature": "export", "details": {"value": True}}],
        "metered-topup": [{"feature": "api-calls", "details": {"value": 50, "reset": "NEVER", "hardLimit": True}}],
    }
    for identifier, features in plans.items():
        _post(server, "/catalog/plans/", {"name": identifier, "identifier": identifier, "product": "meters"})
        _post(server, f"/catalog/plans/{identifier}/prices/bulk/", {"prices": [{"priceType": "PAID", "currency": "USD",
              "chargeCatalogPrice": [{"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 9}}]}]}]})
        _post(server, f"/catalog/plans/{identifier}/features/", {"planEntitlements": features})
        _post(server, f"/catalog/plans/{identifier}/publish/", {})
    return server


def _subscribe(server, plan, customer):
    s = _post(server, "/checkout/", {"planIdentifier": plan, "chargePeriod": "MONTHLY", "customerId": customer,
                                      "successUrl": "https://x.example/"})
    _post(server, f"/checkout/sessions/{s['checkoutSessionId']}/complete/", {"card": "4242424242424242"})


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def test_entitlements_and_reporting(metered, unique):
    client = Kelviq.create_sync_client(access_token=metered.server_key, base_url=metered.url, edge_api_url=metered.url,
                                       enable_cache=False)
    _subscribe(metered, "metered-base", unique)
    _subscribe(metered, "metered-topup", unique)

    assert client.entitlements.has_access(customerId=unique, featureId="export") is True
    assert client.entitlements.has_access(customerId=unique, featureId="nothing") is False
    calls = client.entitlements.get_entitlement(customerId=unique, featureId="api-calls")
    assert (calls.usageLimit, calls.currentUsage, calls.remaining) == (150, 0, 150), "two rows aggregated"
    assert len(calls.items) == 2

    reported = client.reporting.report_usage(value=120, customerId=unique, featureId="api-calls", behaviour="delta")
    assert reported.behaviour == "DELTA" and reported.orgId and len(reported.idempotencyKey) == 32
    calls = client.entitlements.get_entitlement(customerId=unique, featureId="api-calls")
    assert (calls.currentUsage, calls.remaining, calls.hasAccess) == (120, 30, True)
    client.reporting.report_usage(value=150, customerId=unique, featureId="api-calls", behaviour="SET")
    assert client.entitlements.has_access(customerId=unique, featureId="api-calls") is False

    key = str(uuid.uuid4())
    first = client.reporting.report_event(customerId=unique, eventName="llm", idempotencyKey=key, timestamp=_now(),
                                          properties={"tokens": 300})
    again = client.reporting.report_event(customerId=unique, eventName="llm", idempotencyKey=key, timestamp=_now(),
                                          properties={"tokens": 300})
    assert again.timestamp == first.timestamp, "a repeated key answers as the first time"
    tokens = client.entitlements.get_entitlement(customerId=unique, featureId="tokens")
    assert tokens.currentUsage == 300

    everything = client.entitlements.get_entitlements(customerId=unique)
    assert set(everything) == {"api-calls", "tokens", "export"}
    raw = client.entitlements.get_raw_entitlements(customerId=unique)
    assert raw.customerId == unique and len(raw.entitlements) == 4

    with pytest.raises(NotFoundError):
        client.entitlements.get_entitlements(customerId="nobody-" + unique)
    with pytest.raises(InvalidRequestError) as e:
        client.reporting.report_usage(value=1, customerId=unique, featureId="export", behaviour="SET")
    assert "featureId" in e.value.details
    client.close()


def test_client_key_reads_entitlements(metered, unique):
    _subscribe(metered, "metered-base", unique)
    client = Kelviq.create_sync_client(access_token=metered.client_key, base_url=metered.url, edge_api_url=metered.url)
    assert client.entitlements.has_access(customerId=unique, featureId="export") is True
    client.close()
