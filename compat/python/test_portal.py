"""The official Python SDK's `portal` module, unchanged, against our server:
a session for a customer, its signed link opening the portal, and the
errors for an unknown customer and one without an e-mail address.
"""

import re

import httpx
import pytest
from kelviq_sdk.exceptions import InvalidRequestError


def test_portal_session_opens_the_portal(client, server, unique):
    client.customers.create(customerId=unique, email=f"{unique}@example.com", name="Portal Buyer")
    session = client.portal.create_session(customerId=unique)
    assert re.fullmatch(r"cpt-[0-9a-f-]{36}:[0-9a-f-]{36}", session.token)
    assert session.email == f"{unique}@example.com"
    assert session.customerPortalUrl == f"{server.url}/portal/demo/"
    opened = httpx.get(f"{session.customerPortalUrl}?token={session.token}", follow_redirects=True)
    assert opened.status_code == 200 and "Your account" in opened.text
    assert httpx.get(session.customerPortalUrl).status_code == 401

    with pytest.raises(InvalidRequestError) as unknown:
        client.portal.create_session(customerId=f"{unique}-nobody")
    assert unknown.value.details == {"customerId": ["Invalid customer id"]}
    nomail = httpx.post(
        f"{server.url}/api/v1/customers/",
        json={"customerId": f"{unique}-nomail"},
        headers={"Authorization": f"Bearer {server.server_key}"},
    )
    assert nomail.status_code == 201, nomail.text
    with pytest.raises(InvalidRequestError) as no_mail:
        client.portal.create_session(customerId=f"{unique}-nomail")
    assert no_mail.value.details == {"customerId": ["Customer does not have an email"]}
