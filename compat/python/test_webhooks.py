"""Webhooks our server delivers, verified by the official Python SDK's
`validate_event`, unchanged: a receiver on this machine gets every event of a
customer's life, a checkout, usage crossing an alert, an upgrade, a one-time
charge, a refund, a cancellation and a test event, and each one verifies with
the endpoint's secret (and fails with another secret or a changed body).
"""

import http.server
import json
import threading
import time

import httpx
import pytest
from kelviq_sdk import WebhookVerificationError, validate_event

EXPECTED = {
    "customer.created",
    "customer.updated",
    "checkout.completed",
    "payment_method.created",
    "order.created",
    "invoice.created",
    "invoice.paid",
    "subscription.created",
    "subscription.plan_changed",
    "subscription.cancelled",
    "refund.created",
    "order.refunded",
    "feature.usage_alert",
    "webhook.test",
}


class _Receiver(http.server.ThreadingHTTPServer):
    def __init__(self):
        self.got = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        with self.server.lock:
            self.server.got.append((dict(self.headers.items()), body))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def _call(server, method, path, body=None):
    r = httpx.request(
        method, f"{server.url}/api/v1{path}", json=body, headers={"Authorization": f"Bearer {server.server_key}"}
    )
    assert r.status_code < 300, (path, r.status_code, r.text)
    return r.json() if r.content else None


def _seed(server):
    _call(server, "POST", "/catalog/products/", {"name": "Suite", "identifier": "suite", "taxCode": "saas"})
    _call(
        server,
        "POST",
        "/catalog/features/",
        {
            "name": "Calls",
            "featureType": "METER",
            "featureDetails": {"featureSubType": "PRE_AGGREGATED_USAGE", "units": {"singular": "call", "plural": "calls"}},
        },
    )
    plans = {"basic": ("MONTHLY", 10), "pro": ("MONTHLY", 30), "once": ("ONE_TIME", 49)}
    for identifier, (period, amount) in plans.items():
        _call(server, "POST", "/catalog/plans/", {"name": identifier, "identifier": identifier, "product": "suite"})
        _call(
            server,
            "POST",
            f"/catalog/plans/{identifier}/prices/bulk/",
            {"prices": [{"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"charges": [{"chargePeriod": period, "priceData": {"amount": amount}}]}]}]},
        )
        details = {"value": 10, "reset": "EVERY_MONTH", "resetTime": "SUBSCRIPTION_START", "hardLimit": True,
                   "usageAlerts": {"enabled": True, "thresholdType": "PERCENTAGE", "thresholds": [50]}}
        _call(server, "POST", f"/catalog/plans/{identifier}/features/", {"planEntitlements": [{"feature": "calls", "details": details}]})
        _call(server, "POST", f"/catalog/plans/{identifier}/publish/", {})


def test_every_delivery_verifies_with_the_official_sdk(server, client, unique):
    receiver = _Receiver()
    try:
        endpoint = _call(server, "POST", "/webhooks/endpoints/", {"url": receiver.url, "description": "python"})
        secret = endpoint["secret"]
        _seed(server)

        client.customers.create(customerId=unique, email="ann@example.com", name="Ann")
        client.customers.update(unique, name="Annie")
        session = client.checkout.create_session(
            planIdentifier="basic", chargePeriod="MONTHLY", successUrl="https://app.example.com/", customerId=unique
        )
        _call(server, "POST", f"/checkout/sessions/{session.checkoutSessionId}/complete/", {"card": "4242424242424242"})
        client.reporting.report_usage(value=6, customerId=unique, featureId="calls", behaviour="delta")
        sub = client.subscriptions.list(customerId=unique).results[0]
        client.subscriptions.update(sub.id, planIdentifier="pro", chargePeriod="MONTHLY")
        client.charges.create(planIdentifier="once", chargePeriod="ONE_TIME", customerId=unique)
        orders = _call(server, "GET", f"/orders/?search={unique}")["results"]
        once = next(o for o in orders if o["billingType"] == "ONE_TIME")
        client.refunds.create(orderId=once["id"], amountUnits=100, reason="OTHER")
        client.subscriptions.cancel(sub.id, cancellationType="IMMEDIATE")
        _call(server, "POST", f"/webhooks/endpoints/{endpoint['id']}/test/", {})

        # Every event the server lists arrives, and verifies.
        events = _call(server, "GET", "/webhooks/events/?page_size=100")
        assert events["count"] == len(events["results"])
        wanted = {e["id"]: e["type"] for e in events["results"]}
        deadline = time.monotonic() + 30
        while True:
            with receiver.lock:
                got = list(receiver.got)
            delivered = {}
            for headers, body in got:
                event = validate_event(body, headers, secret)
                assert headers["webhook-id"] == event["id"]
                delivered[event["id"]] = event
            if set(wanted) <= set(delivered) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        missing = {i: t for i, t in wanted.items() if i not in delivered}
        assert not missing, missing
        assert EXPECTED <= {e["type"] for e in delivered.values()}
        assert all(delivered[i]["type"] == t for i, t in wanted.items())

        headers, body = got[0]
        event = json.loads(body)
        assert set(event) == {"id", "type", "created_at", "data"} and "object" in event["data"]
        with pytest.raises(WebhookVerificationError, match="Webhook signature verification failed."):
            validate_event(body, headers, "kq_whsec_someone_else")
        with pytest.raises(WebhookVerificationError, match="Webhook signature verification failed."):
            validate_event(body.replace(b'"', b"'", 1), headers, secret)
        # A header lookup is case-insensitive, as a framework may capitalise them.
        assert validate_event(body.decode(), {k.upper(): v for k, v in headers.items()}, secret)["id"] == event["id"]
    finally:
        receiver.shutdown()
