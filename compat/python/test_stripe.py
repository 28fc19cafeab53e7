"""Issue 27 through the official Python SDK: with Stripe as the sandbox's
provider (the repository's fake Stripe, run as its own process), a monthly
plan is bought through the hosted checkout and Stripe's card page (plain
HTTP here; Chromium does it in compat/browser), and the SDK, unchanged,
reads the subscription, the saved card, the entitlement and the
transaction.
"""

import os
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from kelviq_sdk import Kelviq

from conftest import ADMIN_URL, BIN, Server, _psql

REPO = Path(__file__).resolve().parents[2]
FAKE = os.environ.get("FAKE_STRIPE_BIN", str(REPO / "target" / "debug" / "fake-stripe"))
SECRET = "whsec_python_tests_0001"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stripe_server(request, tmp_path_factory):
    fake = subprocess.Popen([FAKE, "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    line = fake.stdout.readline().strip()
    assert line.startswith("fake-stripe listening on "), line
    fake_url = line.split()[3]
    dir = tmp_path_factory.mktemp("stripe")
    env = {"KELVIQ_STRIPE_API_BASE": fake_url}
    name = None
    if request.param == "sqlite":
        env["KELVIQ_DATA_DIR"] = str(dir / "data")
    else:
        name = f"kq_py_{uuid.uuid4().hex}"
        _psql(f"CREATE DATABASE {name}")
        env["DATABASE_URL"] = urlunsplit(urlsplit(ADMIN_URL)._replace(path=f"/{name}"))
    srv = Server(env)
    (dir / "sk").write_text("sk_test_51PythonTests0001")
    (dir / "whsec").write_text(SECRET)
    subprocess.run(
        [BIN, "providers", "set", "stripe", "--env", "sandbox", "--secret-key-file", str(dir / "sk"),
         "--webhook-secret-file", str(dir / "whsec")],
        env=srv.env, check=True, capture_output=True,
    )
    r = httpx.post(f"{fake_url}/_fake/webhook", json={"url": f"{srv.url}/stripe/webhook/sandbox", "secret": SECRET})
    assert r.status_code == 204
    headers = {"Authorization": f"Bearer {srv.server_key}"}
    for path, body in [
        ("/catalog/products/", {"name": "Suite", "identifier": "suite", "taxCode": "saas"}),
        ("/catalog/features/", {"name": "SSO", "featureType": "BOOLEAN"}),
        ("/catalog/plans/", {"name": "Basic", "identifier": "basic", "product": "suite"}),
        ("/catalog/plans/basic/prices/bulk/", {"prices": [{"priceType": "PAID", "currency": "USD",
            "chargeCatalogPrice": [{"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 10}}]}]}]}),
        ("/catalog/plans/basic/features/", {"planEntitlements": [{"feature": "sso", "details": {"value": True}}]}),
        ("/catalog/plans/basic/publish/", {}),
    ]:
        r = httpx.post(f"{srv.url}/api/v1{path}", json=body, headers=headers)
        assert r.status_code < 300, (path, r.status_code, r.text)
    yield srv
    srv.stop()
    fake.terminate()
    fake.wait(timeout=10)
    if name:
        _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _pay_on_stripe(server, checkout_url, email, card):
    """The buyer's way through our page and Stripe's; where they land."""
    with httpx.Client(follow_redirects=False, timeout=30) as b:
        page = b.get(checkout_url)
        assert page.status_code == 200 and "Continue to payment" in page.text and "card_number" not in page.text
        r = b.post(checkout_url, data={"email": email, "name": "Py Buyer", "country": "US"})
        assert r.status_code == 303, r.text
        stripe_page = r.headers["location"]
        r = b.post(stripe_page, data={"card_number": card, "expiry": "12/30", "cvc": "123"})
        assert r.status_code == 303, r.text
        r = b.get(r.headers["location"])
        assert r.status_code == 303, r.text
        return r.headers["location"]


def test_bought_through_stripe_read_by_the_sdk(stripe_server):
    customer = f"py-{uuid.uuid4().hex[:12]}"
    client = Kelviq.create_sync_client(
        access_token=stripe_server.server_key, base_url=stripe_server.url, edge_api_url=stripe_server.url
    )
    try:
        session = client.checkout.create_session(
            planIdentifier="basic", chargePeriod="MONTHLY", successUrl="https://app.example.com/done", customerId=customer
        )
        landed = _pay_on_stripe(stripe_server, session.checkoutUrl, f"{customer}@example.com", "4242424242424242")
        assert landed == "https://app.example.com/done"

        page = client.subscriptions.list(customerId=customer)
        assert page.count == 1
        assert (page.results[0].status, page.results[0].amount) == ("active", "10.00")
        methods = client.payment_methods.list(customer_id=customer)
        assert methods.count == 1 and methods.results[0].isDefault
        assert methods.results[0].methodData["last4"] == "4242"
        assert client.entitlements.has_access(customerId=customer, featureId="sso") is True
        invoices = httpx.get(
            f"{stripe_server.url}/api/v1/invoices/",
            params={"customer_id": customer},
            headers={"Authorization": f"Bearer {stripe_server.server_key}"},
        ).json()
        assert invoices["results"][0]["status"] == "PAID"
    finally:
        client.close()
