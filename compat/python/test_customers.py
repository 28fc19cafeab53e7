"""The official Python SDK's customers module, unchanged, against our server."""

import asyncio

import pytest
from kelviq_sdk import Kelviq
from kelviq_sdk.exceptions import AuthenticationError, InvalidRequestError, NotFoundError


def test_create_retrieve_update_archive_sync(client, unique):
    created = client.customers.create(
        customerId=unique, email="ann@example.com", name="Ann", metadata={"tier": "gold", "camelKey": {"x": 1}}
    )
    assert created.customerId == unique
    assert created.email == "ann@example.com"
    assert created.name == "Ann"
    assert created.metadata == {"tier": "gold", "camelKey": {"x": 1}}
    assert created.createdOn.tzinfo is not None

    fetched = client.customers.retrieve(unique)
    assert fetched.id == created.id

    updated = client.customers.update(unique, name="Annie", metadata={"only": True})
    assert updated.name == "Annie"
    assert updated.email == "ann@example.com"
    assert updated.metadata == {"only": True}
    assert updated.modifiedOn >= created.modifiedOn

    archived = client.customers.archive(unique)
    assert archived.message == "Customer archived successfully."
    with pytest.raises(NotFoundError) as e:
        client.customers.retrieve(unique)
    assert e.value.status_code == 404
    assert e.value.details == {"detail": "Not found."}


def test_list_pages(client, unique):
    for i in range(3):
        client.customers.create(customerId=f"{unique}-{i}", email=f"{i}@example.com")
    page = client.customers.list(page=1, page_size=2)
    assert page.count >= 3
    assert len(page.results) == 2
    assert page.results[0].customerId == f"{unique}-2"
    assert page.next is not None and "page=2" in page.next
    assert page.previous is None
    second = client.customers.list(page=2, page_size=2)
    assert second.previous is not None


def test_errors_map_to_sdk_exceptions(client, server, unique):
    client.customers.create(customerId=unique, email="dup@example.com")
    with pytest.raises(InvalidRequestError) as e:
        client.customers.create(customerId=unique, email="dup@example.com")
    assert e.value.status_code == 400
    assert "customerId" in e.value.details

    with pytest.raises(InvalidRequestError) as e:
        client.customers.create(customerId=f"{unique}-x", email="not an email")
    assert e.value.details == {"email": ["Enter a valid email address."]}

    with pytest.raises(NotFoundError):
        client.customers.update(f"{unique}-missing", name="x")

    bad = Kelviq.create_sync_client(access_token="sk_test_nope", base_url=server.url, edge_api_url=server.url)
    with pytest.raises(AuthenticationError) as e:
        bad.customers.list()
    assert e.value.status_code == 401

    public = Kelviq.create_sync_client(access_token=server.client_key, base_url=server.url, edge_api_url=server.url)
    with pytest.raises(AuthenticationError) as e:
        public.customers.create(customerId=f"{unique}-c", email="c@example.com")
    assert e.value.status_code == 403


def test_async_client(server, unique):
    async def scenario():
        async with Kelviq.create_async_client(
            access_token=server.server_key, base_url=server.url, edge_api_url=server.url
        ) as c:
            created = await c.customers.create(customerId=unique, email="async@example.com", name="Async")
            assert created.customerId == unique
            assert (await c.customers.retrieve(unique)).name == "Async"
            updated = await c.customers.update(unique, email="new@example.com")
            assert updated.email == "new@example.com"
            listed = await c.customers.list(page_size=100)
            assert unique in [r.customerId for r in listed.results]
            assert (await c.customers.archive(unique)).message == "Customer archived successfully."
            with pytest.raises(NotFoundError):
                await c.customers.retrieve(unique)

    asyncio.run(scenario())
