//! Two processes writing one SQLite file (a server and the `kelviq` command
//! beside it): a unit of work that reads and then writes waits for the
//! other's write instead of failing with "database is locked".

use chrono::Utc;
use kelviq_core::events::OutboxEvent;
use kelviq_core::{Environment, Tenant};
use kelviq_store::Store;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_then_write_waits_for_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("k.db").display());
    let (a, b) = (Store::connect(&url, 4).await.unwrap(), Store::connect(&url, 4).await.unwrap());
    a.migrate().await.unwrap();
    let org = a.create_organization("Acme", "acme", Utc::now()).await.unwrap();
    let tenant = Tenant { org_id: org.id, org_seq: org.seq, env: Environment::Sandbox };
    let event = || OutboxEvent::new("customer.updated", json!({"object": "customer"}), None, Utc::now());

    // A reads, then B writes and commits, then A writes: with a deferred
    // transaction A's write found its snapshot stale and failed at once.
    let mut first = a.begin(&tenant).await.unwrap();
    first.lock_customer("nobody").await.unwrap();
    let other = tokio::spawn({
        let (tenant, e) = (tenant.clone(), event());
        async move {
            let mut second = b.begin(&tenant).await?;
            second.event(&e).await?;
            second.commit().await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    first.event(&event()).await.unwrap();
    first.commit().await.unwrap();
    other.await.unwrap().unwrap();
    assert_eq!(a.list_events(&tenant, 0, 10).await.unwrap().len(), 2);
}
