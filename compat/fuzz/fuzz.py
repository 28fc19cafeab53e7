"""A bounded property-based fuzz pass over the whole API, on SQLite and
PostgreSQL: schemathesis generates requests from the server's own
`openapi.json` (path parameters pointed at seeded objects, so requests reach
the handlers rather than stopping at 404), and two checks must hold for every
answer: no server error, and every documented response body matches its
schema.

Run by scripts/test.sh; on its own:
    KELVIQ_BIN=target/debug/kelviq .venv/bin/python compat/fuzz/fuzz.py
KELVIQ_FUZZ_SECONDS bounds each backend's run (default 60).
"""

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "compat" / "python"))
from conftest import ADMIN_URL, Server, _psql  # noqa: E402

SECONDS = int(os.environ.get("KELVIQ_FUZZ_SECONDS", "60"))
SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))


def call(srv, method, path, body=None):
    req = urllib.request.Request(
        srv.url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {srv.server_key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as res:
        text = res.read()
        return json.loads(text) if text else None


def seed(srv):
    """Objects for the path parameters: a customer with a subscription and
    an order, a product, a metered feature, a published plan, a refund."""
    call(srv, "POST", "/api/v1/customers/", {"customerId": "fuzz-customer", "name": "Fuzz", "email": "f@example.com"})
    product = call(srv, "POST", "/api/v1/catalog/products/", {"name": "Fuzz", "identifier": "fuzz-product", "taxCode": "saas"})
    units = {"singular": "call", "plural": "calls"}
    call(srv, "POST", "/api/v1/catalog/features/", {
        "name": "Fuzz calls", "identifier": "fuzz-calls", "featureType": "METER",
        "featureDetails": {"featureSubType": "PRE_AGGREGATED_USAGE", "units": units}})
    call(srv, "POST", "/api/v1/catalog/plans/", {"name": "Fuzz", "identifier": "fuzz-plan", "product": "fuzz-product"})
    call(srv, "POST", "/api/v1/catalog/plans/fuzz-plan/prices/bulk/", {"prices": [{"priceType": "PAID", "currency": "USD",
        "chargeCatalogPrice": [{"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 9}}]}]}]})
    call(srv, "POST", "/api/v1/catalog/plans/fuzz-plan/features/", {"planEntitlements": [
        {"feature": "fuzz-calls", "details": {"value": 100, "reset": "EVERY_MONTH", "resetTime": "SUBSCRIPTION_START", "hardLimit": True}}]})
    call(srv, "POST", "/api/v1/catalog/plans/fuzz-plan/publish/", {})
    session = call(srv, "POST", "/api/v1/checkout/", {"planIdentifier": "fuzz-plan", "chargePeriod": "MONTHLY",
        "customerId": "fuzz-customer", "successUrl": "https://example.com/"})
    done = call(srv, "POST", f"/api/v1/checkout/sessions/{session['checkoutSessionId']}/complete/", {"card": "4242424242424242"})
    order = call(srv, "GET", "/api/v1/orders/")["results"][0]["id"]
    refund = call(srv, "POST", "/api/v1/refunds/", {"orderId": order, "amountUnits": 100})
    open_session = call(srv, "POST", "/api/v1/checkout/", {"planIdentifier": "fuzz-plan", "chargePeriod": "MONTHLY",
        "successUrl": "https://example.com/"})
    return {
        "KQ_CUSTOMER": "fuzz-customer",
        "KQ_PRODUCT": product["id"],
        "KQ_FEATURE": "fuzz-calls",
        "KQ_PLAN": "fuzz-plan",
        "KQ_SUBSCRIPTION": done["subscription"]["id"],
        "KQ_ORDER": order,
        "KQ_REFUND": refund["id"],
        "KQ_SESSION": open_session["checkoutSessionId"],
    }


def fuzz(name, env):
    srv = Server(env)
    try:
        objects = seed(srv)
        run_env = {**os.environ, **objects, "KQ_KEY": srv.server_key, "KQ_URL": srv.url}
        cmd = [
            SCHEMATHESIS, "--config-file", str(HERE / "schemathesis.toml"), "run", str(REPO / "openapi.json"),
            "--url", srv.url, "--max-time", str(SECONDS), "--workers", "1",
            "--checks", "not_a_server_error,response_schema_conformance",
        ]
        print(f"== fuzzing the API on {name} for {SECONDS} s", flush=True)
        return subprocess.run(cmd, env=run_env).returncode
    finally:
        srv.stop()


def main():
    failed = 0
    import tempfile
    with tempfile.TemporaryDirectory() as data:
        failed += fuzz("SQLite", {"KELVIQ_DATA_DIR": data}) != 0
    db = f"kq_fuzz_{uuid.uuid4().hex}"
    _psql(f"CREATE DATABASE {db}")
    try:
        url = urlunsplit(urlsplit(ADMIN_URL)._replace(path=f"/{db}"))
        failed += fuzz("PostgreSQL", {"DATABASE_URL": url}) != 0
    finally:
        _psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    print(f"fuzz: {2 - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
