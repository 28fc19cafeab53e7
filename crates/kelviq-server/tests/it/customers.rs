//! Customers end to end, driven by the Rust SDK against the real server.

use crate::common;

use common::{Backend, TestServer};
use kelviq_core::Environment;
use kelviq_sdk::customers::{CreateCustomer, ListCustomers, UpdateCustomer};
use kelviq_sdk::models::BillingAddress;
use kelviq_sdk::ErrorKind;
use serde_json::{json, Map, Value};

fn meta(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

async fn create_retrieve_update_archive(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let sdk = srv.sdk();
    let created = sdk
        .customers()
        .create(
            CreateCustomer::new("user-123")
                .email("john@example.com")
                .name("John Doe")
                .metadata(meta(json!({"planTier": "gold", "nested_key": {"innerKey": 1}})))
                .billing_address(BillingAddress {
                    country: Some("gb".into()),
                    postal_code: Some("N1 9GU".into()),
                    ..Default::default()
                }),
        )
        .await
        .unwrap();
    assert_eq!(created.customer_id, "user-123");
    assert_eq!(created.email.as_deref(), Some("john@example.com"));
    assert_eq!(
        created.metadata,
        Some(json!({"planTier": "gold", "nested_key": {"innerKey": 1}})),
        "metadata keys kept verbatim"
    );
    let address = created.billing_address.clone().unwrap();
    assert_eq!(address.country.as_deref(), Some("GB"));
    assert_eq!(address.postal_code.as_deref(), Some("N1 9GU"));
    assert_eq!(created.created_on, common::start_time());
    uuid::Uuid::parse_str(&created.id).expect("id is a UUID");

    let fetched = sdk.customers().retrieve("user-123").await.unwrap();
    assert_eq!(fetched, created);

    srv.clock.advance(chrono::Duration::minutes(5));
    let updated = sdk
        .customers()
        .update(
            "user-123",
            UpdateCustomer { name: Some("Johnny".into()), metadata: Some(meta(json!({"b": 2}))), ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(updated.name.as_deref(), Some("Johnny"));
    assert_eq!(updated.email.as_deref(), Some("john@example.com"), "fields not sent stay");
    assert_eq!(updated.metadata, Some(json!({"b": 2})), "metadata replaces");
    assert_eq!(updated.billing_address, created.billing_address);
    assert_eq!(updated.modified_on, common::start_time() + chrono::Duration::minutes(5));
    assert_eq!(updated.created_on, created.created_on);

    let archived = sdk.customers().archive("user-123").await.unwrap();
    assert_eq!(archived.message, "Customer archived successfully.");
    let gone = sdk.customers().retrieve("user-123").await.unwrap_err();
    assert_eq!((gone.kind(), gone.status()), (ErrorKind::NotFound, Some(404)));
    assert_eq!(gone.details(), Some(&json!({"detail": "Not found."})));
    assert_eq!(
        sdk.customers().list(ListCustomers::default()).await.unwrap().count,
        0,
        "archived customers are not listed"
    );
    let again = sdk.customers().archive("user-123").await.unwrap_err();
    assert_eq!(again.status(), Some(404));

    // An archived customer's id cannot be reused.
    let reuse = sdk.customers().create(CreateCustomer::new("user-123").email("x@example.com")).await.unwrap_err();
    assert_eq!(reuse.kind(), ErrorKind::InvalidRequest);
    assert_eq!(reuse.details().unwrap()["customerId"][0], "customer with this customerId already exists.");
    srv.stop().await;
}

async fn duplicates_and_validation(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let sdk = srv.sdk();
    sdk.customers().create(CreateCustomer::new("dup").email("a@example.com")).await.unwrap();
    let e = sdk.customers().create(CreateCustomer::new("dup").email("b@example.com")).await.unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert!(e.details().unwrap().get("customerId").is_some(), "{:?}", e.details());

    let e = sdk.customers().create(CreateCustomer::new("bad-email").email("not-an-email")).await.unwrap_err();
    assert_eq!(e.details(), Some(&json!({"email": ["Enter a valid email address."]})));

    // Refused client-side, as the Python SDK does: no request, no status.
    let e = sdk.customers().create(CreateCustomer::new("")).await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (ErrorKind::InvalidRequest, None));
    let e = sdk.customers().update("dup", UpdateCustomer::default()).await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (ErrorKind::InvalidRequest, None));

    let e = sdk
        .customers()
        .update("nobody", UpdateCustomer { name: Some("x".into()), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404));
    let e = sdk
        .customers()
        .update("dup", UpdateCustomer { email: Some("nope".into()), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(e.details(), Some(&json!({"email": ["Enter a valid email address."]})));
    assert_eq!(
        sdk.customers().retrieve("dup").await.unwrap().email.as_deref(),
        Some("a@example.com"),
        "a refused update changes nothing"
    );
    srv.stop().await;
}

async fn list_search_and_pagination(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let sdk = srv.sdk();
    for i in 0..25 {
        let name = if i % 5 == 0 { format!("Alice {i}") } else { format!("Bob {i}") };
        sdk.customers()
            .create(CreateCustomer::new(format!("c-{i:02}")).email(format!("u{i}@example.com")).name(name))
            .await
            .unwrap();
        srv.clock.advance(chrono::Duration::seconds(1));
    }
    let first = sdk.customers().list(ListCustomers::default()).await.unwrap();
    assert_eq!(first.count, 25);
    assert_eq!(first.results.len(), 10, "default page size is 10");
    assert_eq!(first.results[0].customer_id, "c-24", "newest first");
    assert_eq!(first.previous, None);
    assert_eq!(first.next.as_deref(), Some(format!("{}/api/v1/customers/?page=2", srv.base_url).as_str()));

    let third = sdk.customers().list(ListCustomers { page: Some(3), ..Default::default() }).await.unwrap();
    assert_eq!(
        third.results.iter().map(|c| c.customer_id.as_str()).collect::<Vec<_>>(),
        ["c-04", "c-03", "c-02", "c-01", "c-00"]
    );
    assert_eq!(third.next, None);
    assert_eq!(third.previous.as_deref(), Some(format!("{}/api/v1/customers/?page=2", srv.base_url).as_str()));

    let big = sdk.customers().list(ListCustomers { page_size: Some(500), ..Default::default() }).await.unwrap();
    assert_eq!(big.results.len(), 25, "page_size is capped at 100, not refused");

    let past = sdk.customers().list(ListCustomers { page: Some(4), ..Default::default() }).await.unwrap_err();
    assert_eq!((past.status(), past.details().cloned()), (Some(404), Some(json!({"detail": "Invalid page."}))));

    let alices = sdk
        .customers()
        .list(ListCustomers { search: Some("ALICE".into()), page_size: Some(2), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(alices.count, 5);
    assert_eq!(alices.results[0].name.as_deref(), Some("Alice 20"));
    let next = alices.next.unwrap();
    assert!(next.contains("page=2") && next.contains("search=ALICE") && next.contains("page_size=2"), "{next}");
    let by_email =
        sdk.customers().list(ListCustomers { search: Some("u13@".into()), ..Default::default() }).await.unwrap();
    assert_eq!(by_email.results.iter().map(|c| c.customer_id.as_str()).collect::<Vec<_>>(), ["c-13"]);
    let by_id = sdk.customers().list(ListCustomers { search: Some("c-1".into()), ..Default::default() }).await.unwrap();
    assert_eq!(by_id.count, 10);
    let literal = sdk.customers().list(ListCustomers { search: Some("%".into()), ..Default::default() }).await.unwrap();
    assert_eq!(literal.count, 0, "LIKE wildcards in the search are literal");
    srv.stop().await;
}

async fn events_are_written_with_the_change(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let sdk = srv.sdk();
    sdk.customers()
        .create(CreateCustomer::new("ev").email("ev@example.com").metadata(meta(json!({"KeepCase": 1}))))
        .await
        .unwrap();
    sdk.customers().update("ev", UpdateCustomer { name: Some("Eve".into()), ..Default::default() }).await.unwrap();
    // An update that changes nothing writes no event.
    sdk.customers().update("ev", UpdateCustomer { name: Some("Eve".into()), ..Default::default() }).await.unwrap();
    // A refused create writes no event.
    sdk.customers().create(CreateCustomer::new("ev").email("ev@example.com")).await.unwrap_err();

    let events = srv.store.list_events(&srv.tenant, 0, 100).await.unwrap();
    let types: Vec<&str> = events.iter().map(|(_, e)| e.event_type.as_str()).collect();
    assert_eq!(types, ["customer.created", "customer.updated"]);
    let created = &events[0].1.payload;
    assert_eq!(created["type"], "customer.created");
    assert_eq!(created["created_at"], "2026-01-31T10:00:00Z");
    let object = &created["data"]["object"];
    assert_eq!(object["object"], "customer");
    assert_eq!(object["customer_id"], "ev");
    assert_eq!(object["organization"], srv.tenant.org_id.to_string());
    assert_eq!(object["metadata"], json!({"KeepCase": 1}));
    assert_eq!(created["id"], events[0].1.id.to_string());
    let updated = &events[1].1.payload;
    assert_eq!(updated["data"]["object"]["name"], "Eve");
    assert_eq!(updated["data"]["previous_attributes"], json!({"name": null}));
    srv.stop().await;
}

async fn tenants_are_isolated(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (other, other_key) = srv.other_tenant("acme", Environment::Sandbox).await;
    let production_key = srv.key_for(kelviq_core::keys::KeyKind::Server, Environment::Production).await;
    let mine = srv.sdk();
    let theirs = srv.sdk_with(&other_key);
    let prod = srv.sdk_with(&production_key);

    mine.customers().create(CreateCustomer::new("shared-id").email("mine@example.com")).await.unwrap();
    // The same customer id is free in another organisation and in another environment.
    theirs.customers().create(CreateCustomer::new("shared-id").email("theirs@example.com")).await.unwrap();
    prod.customers().create(CreateCustomer::new("shared-id").email("prod@example.com")).await.unwrap();
    mine.customers().create(CreateCustomer::new("only-mine").email("m@example.com")).await.unwrap();

    assert_eq!(mine.customers().retrieve("shared-id").await.unwrap().email.as_deref(), Some("mine@example.com"));
    assert_eq!(theirs.customers().retrieve("shared-id").await.unwrap().email.as_deref(), Some("theirs@example.com"));
    assert_eq!(prod.customers().retrieve("shared-id").await.unwrap().email.as_deref(), Some("prod@example.com"));
    for other_client in [&theirs, &prod] {
        assert_eq!(other_client.customers().retrieve("only-mine").await.unwrap_err().status(), Some(404));
        let patch = UpdateCustomer { name: Some("hijack".into()), ..Default::default() };
        assert_eq!(other_client.customers().update("only-mine", patch).await.unwrap_err().status(), Some(404));
        assert_eq!(other_client.customers().archive("only-mine").await.unwrap_err().status(), Some(404));
        assert_eq!(other_client.customers().list(ListCustomers::default()).await.unwrap().count, 1);
        let search = other_client
            .customers()
            .list(ListCustomers { search: Some("only".into()), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(search.count, 0);
    }
    let untouched = mine.customers().retrieve("only-mine").await.unwrap();
    assert_eq!(untouched.name, None);
    assert_eq!(mine.customers().list(ListCustomers::default()).await.unwrap().count, 2);
    assert_eq!(srv.store.list_events(&other, 0, 100).await.unwrap().len(), 1, "events are per tenant too");
    srv.stop().await;
}

async fn blocking_client_works(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (base, key) = (srv.base_url.clone(), srv.server_key.clone());
    let listed = tokio::task::spawn_blocking(move || {
        let client = kelviq_sdk::Kelviq::builder().access_token(key).base_url(&base).build_blocking().unwrap();
        let c = client
            .customers()
            .create(CreateCustomer::new("blocking/1".replace('/', "-")).email("b@example.com"))
            .unwrap();
        assert_eq!(c.customer_id, "blocking-1");
        let c = client
            .customers()
            .update("blocking-1", UpdateCustomer { name: Some("B".into()), ..Default::default() })
            .unwrap();
        assert_eq!(c.name.as_deref(), Some("B"));
        assert_eq!(client.customers().retrieve("blocking-1").unwrap().name.as_deref(), Some("B"));
        let listed = client.customers().list(ListCustomers::default()).unwrap();
        client.customers().archive("blocking-1").unwrap();
        assert_eq!(client.customers().retrieve("blocking-1").unwrap_err().status(), Some(404));
        listed.count
    })
    .await
    .unwrap();
    assert_eq!(listed, 1);
    srv.stop().await;
}

async fn customer_ids_with_reserved_characters(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let sdk = srv.sdk();
    let id = "user@example.com?x=1#frag %20 é";
    sdk.customers().create(CreateCustomer::new(id)).await.unwrap();
    let c = sdk.customers().retrieve(id).await.unwrap();
    assert_eq!(c.customer_id, id);
    assert_eq!(c.email, None, "email is optional and null when absent");
    srv.stop().await;
}

on_both_backends!(
    create_retrieve_update_archive,
    duplicates_and_validation,
    list_search_and_pagination,
    events_are_written_with_the_change,
    tenants_are_isolated,
    blocking_client_works,
    customer_ids_with_reserved_characters,
);
