//! Migrations applied to data written in the shape before them, on both
//! backends.

use crate::common;

use chrono::Utc;
use common::{Backend, TestDatabase};
use kelviq_core::{Environment, Tenant};
use kelviq_store::{EventRow, Store};

/// Migration 0011: usage events and counters written under the organisation's
/// id and the environment's name keep their tenant, their keys and their
/// order under the tenant's number.
async fn usage_rows_move_to_the_tenant_number(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = Store::connect(&db.url, 2).await.unwrap();
    store.migrate_through(10).await.unwrap();
    let now = Utc::now();
    // Two organisations, so that the number is not the same by chance.
    let first = store.create_organization("First", "first", now).await.unwrap();
    let org = store.create_organization("Second", "second", now).await.unwrap();
    let raw = sqlx::AnyPool::connect(&db.url).await.unwrap();
    for (seq, org_id, env, key, customer) in [
        (1, &org.id, "sandbox", "k1", "ann"),
        (2, &org.id, "production", "k1", "ann"),
        (3, &first.id, "sandbox", "k1", "bob"),
        (7, &org.id, "sandbox", "k2", "ann"),
    ] {
        sqlx::query(
            "INSERT INTO usage_events (seq, org_id, environment, idempotency_key, customer_id, event_name, event_at, \
             resource_id, properties, received_at, unfolded) VALUES ($1, $2, $3, $4, $5, 'api.call', 1, NULL, '{}', 1, '')",
        )
        .bind(seq as i64)
        .bind(org_id.to_string())
        .bind(env)
        .bind(key)
        .bind(customer)
        .execute(&raw)
        .await
        .unwrap();
    }
    for (org_id, env, value) in [(&org.id, "sandbox", 5i64), (&org.id, "production", 9), (&first.id, "sandbox", 2)] {
        sqlx::query(
            "INSERT INTO usage_counters (org_id, environment, customer_id, feature, period_start, value, value_at, \
             alerts, updated_at) VALUES ($1, $2, 'ann', 'api_calls', 0, $3, 0, '50', 1)",
        )
        .bind(org_id.to_string())
        .bind(env)
        .bind(value)
        .execute(&raw)
        .await
        .unwrap();
    }

    store.migrate().await.unwrap();

    let sandbox = Tenant { org_id: org.id, org_seq: org.seq, env: Environment::Sandbox };
    let production = Tenant { env: Environment::Production, ..sandbox.clone() };
    let other = Tenant { org_id: first.id, org_seq: first.seq, env: Environment::Sandbox };
    let value =
        |counters: Vec<kelviq_store::Counter>| counters.iter().map(|c| (c.value, c.alerts.clone())).collect::<Vec<_>>();
    assert_eq!(value(store.counters(&sandbox, "ann").await.unwrap()), [(5, "50".to_string())]);
    assert_eq!(value(store.counters(&production, "ann").await.unwrap()), [(9, "50".to_string())]);
    assert_eq!(value(store.counters(&other, "ann").await.unwrap()), [(2, "50".to_string())]);
    assert_eq!(store.count_events(&sandbox, None).await.unwrap(), 2);
    assert_eq!(store.count_events(&production, None).await.unwrap(), 1);
    assert_eq!(store.count_events(&other, Some("bob")).await.unwrap(), 1);

    // A stored key is still stored for its tenant only, and new rows come
    // after the old ones.
    let rows = |tenant| {
        ["k1", "k3"].map(|key| EventRow {
            tenant,
            customer_id: "ann",
            event_name: "api.call",
            key,
            at: now,
            resource_id: None,
            properties: "{}",
            unfolded: &[],
        })
    };
    let mut work = store.begin(&sandbox).await.unwrap();
    assert_eq!(work.insert_events(&rows(&sandbox), now).await.unwrap(), [0], "k1 was stored in sandbox");
    work.commit().await.unwrap();
    let mut work = store.begin(&other).await.unwrap();
    assert_eq!(work.insert_events(&rows(&other), now).await.unwrap(), [0], "k1 was stored for the first org");
    work.commit().await.unwrap();
    let third = store.create_organization("Third", "third", now).await.unwrap();
    let fresh = Tenant { org_id: third.id, org_seq: third.seq, env: Environment::Production };
    let mut work = store.begin(&fresh).await.unwrap();
    assert!(work.insert_events(&rows(&fresh), now).await.unwrap().is_empty(), "a new tenant stores both");
    work.commit().await.unwrap();
    let newest: i64 = sqlx::query_scalar("SELECT MIN(seq) FROM usage_events WHERE idempotency_key = 'k3'")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert!(newest > 7, "new events are numbered after the migrated ones ({newest})");
    raw.close().await;
    store.close().await;
}

on_both_backends!(usage_rows_move_to_the_tenant_number);
