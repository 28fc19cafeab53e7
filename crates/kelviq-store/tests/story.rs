//! The store's story: one organisation's life told through every public
//! method of the store, on SQLite and on PostgreSQL, so both dialects are
//! held to the same answers.

use chrono::{DateTime, Duration, Utc};
use kelviq_core::billing::Subscription;
use kelviq_core::catalog::{FeatureChanges, FeatureType, NewFeature, NewProduct, ProductChanges, ProductSettings};
use kelviq_core::customer::{CustomerChanges, NewCustomer};
use kelviq_core::events::OutboxEvent;
use kelviq_core::keys::{generate, KeyKind};
use kelviq_core::plans::{EntitlementDetails, NewPlan, PlanEntitlement, PlanFields};
use kelviq_core::{Environment, Tenant};
use kelviq_store::*;
use serde_json::json;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z").unwrap().with_timezone(&Utc)
}

/// A fresh database of `backend`, dropped with the guard.
struct Db {
    url: String,
    pg: Option<String>,
    _dir: tempfile::TempDir,
}

fn postgres_admin() -> String {
    std::env::var("KELVIQ_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl Db {
    async fn new(postgres: bool) -> Db {
        let dir = tempfile::tempdir().unwrap();
        if !postgres {
            return Db { url: format!("sqlite://{}", dir.path().join("k.db").display()), pg: None, _dir: dir };
        }
        sqlx::any::install_default_drivers();
        let name = format!("kq_story_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::AnyPool::connect(&postgres_admin()).await.expect("PostgreSQL answers");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
        admin.close().await;
        let mut url = url::Url::parse(&postgres_admin()).unwrap();
        url.set_path(&format!("/{name}"));
        Db { url: url.to_string(), pg: Some(name), _dir: dir }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let Some(name) = self.pg.take() else { return };
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                if let Ok(pool) = sqlx::AnyPool::connect(&postgres_admin()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&pool).await;
                }
            });
        })
        .join();
    }
}

#[tokio::test]
async fn story_on_sqlite() {
    story(false).await;
}

#[tokio::test]
async fn story_on_postgres() {
    story(true).await;
}

async fn story(postgres: bool) {
    let db = Db::new(postgres).await;
    assert_eq!(Backend::from_url(&db.url).unwrap().name(), if postgres { "postgres" } else { "sqlite" });
    let store = Store::connect(&db.url, 8).await.unwrap();
    store.migrate_through(1).await.unwrap();
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    assert_eq!(store.backend() == Backend::Postgres, postgres);
    assert_eq!(store.sqlite_path().is_some(), !postgres);
    assert_eq!(store.open_journal().unwrap().is_some(), !postgres);
    let now = t0();

    // Organisations and keys.
    assert_eq!(store.count_organizations().await.unwrap(), 0);
    let org = store.create_organization("Acme", "acme", now).await.unwrap();
    let taken = store.create_organization("Acme", "acme", now).await.unwrap_err();
    assert!(matches!(taken, StoreError::Conflict(_)) && !taken.is_busy());
    assert_eq!(store.list_organizations().await.unwrap().len(), 1);
    assert_eq!(store.find_organization_by_slug("acme").await.unwrap().unwrap().id, org.id);
    let tenant = Tenant { org_id: org.id, org_seq: org.seq, env: Environment::Sandbox };
    let secret = generate(KeyKind::Server, Environment::Sandbox);
    let key =
        store.insert_api_key(org.id, Environment::Sandbox, KeyKind::Server, Some("ci"), &secret, now).await.unwrap();
    assert_eq!(store.find_api_key(key.id).await.unwrap().unwrap().id, key.id);
    assert_eq!(store.find_key_identity(&secret.hash).await.unwrap().unwrap().tenant.org_id, org.id);
    assert_eq!(store.list_api_keys(Some(org.id)).await.unwrap().len(), 1);
    store.revoke_api_key(&key.id.to_string(), now).await.unwrap();
    assert!(store.find_key_identity(&secret.hash).await.unwrap().unwrap().revoked, "a revoked key says so");

    // Customers, directly and in a unit of work.
    let ann = NewCustomer {
        customer_id: "ann".into(),
        name: Some("Ann".into()),
        email: None,
        metadata: json!({}),
        billing_address: None,
    };
    store.insert_customer(&tenant, &ann, now).await.unwrap();
    assert!(matches!(store.insert_customer(&tenant, &ann, now).await, Err(StoreError::Conflict(_))));
    let changes = CustomerChanges { email: Some(Some("ann@example.com".into())), ..Default::default() };
    store.update_customer(&tenant, "ann", &changes, now).await.unwrap();
    assert_eq!(store.find_customer(&tenant, "ann").await.unwrap().unwrap().email.as_deref(), Some("ann@example.com"));
    assert_eq!(store.count_customers(&tenant, Some("ann@")).await.unwrap(), 1);
    assert_eq!(store.list_customers(&tenant, None, 10, 0).await.unwrap().len(), 1);
    let mut w = store.begin(&tenant).await.unwrap();
    assert_eq!(w.tenant(), &tenant);
    let bob =
        NewCustomer { customer_id: "bob".into(), name: None, email: None, metadata: json!({}), billing_address: None };
    let bob = w.insert_customer(&bob, now).await.unwrap();
    let locked = w.lock_customer("bob").await.unwrap().unwrap();
    w.update_customer(&locked, &CustomerChanges { name: Some(Some("Bob".into())), ..Default::default() }, now)
        .await
        .unwrap();
    assert!(w.find_customer_any("bob").await.unwrap().is_some());
    w.commit().await.unwrap();
    store.archive_customer(&tenant, "bob", now).await.unwrap();
    assert!(store.find_customer(&tenant, "bob").await.unwrap().is_none(), "archived customers are not found");
    assert_eq!(
        store.find_customer_any(&tenant, "bob").await.unwrap().unwrap().id,
        bob.id,
        "but records still name them"
    );

    // The catalog: a product, its settings, features.
    let new = NewProduct::parse(
        Some("App".into()),
        Some("app".into()),
        None,
        Some(kelviq_core::catalog::TAX_CODES[0].into()),
    )
    .unwrap();
    let product = store.insert_product(&tenant, &new, "story", now).await.unwrap();
    assert_eq!(store.find_product(&tenant, "app").await.unwrap().unwrap().id, product.id);
    let renamed = ProductChanges { name: Some("The app".into()), ..Default::default() };
    assert_eq!(store.update_product(&tenant, "app", &renamed, now).await.unwrap().name, "The app");
    let settings = ProductSettings { vpn: true, tor: false, proxy: false, currency: "EUR".into(), product_url: None };
    store.update_product_settings(&tenant, "app", &settings, now).await.unwrap();
    assert_eq!(store.count_products(&tenant, None).await.unwrap(), 1);
    assert_eq!(store.list_products(&tenant, Some("app"), 10, 0).await.unwrap().len(), 1);
    let seats = NewFeature {
        name: "Seats".into(),
        identifier: "seats".into(),
        identifier_generated: false,
        description: String::new(),
        feature_type: FeatureType::Customizable,
        feature_details: json!({}),
        meter: None,
        metadata: json!({}),
    };
    let seats = store.insert_feature(&tenant, &seats, now).await.unwrap();
    let calls = NewFeature {
        identifier: "calls".into(),
        name: "Calls".into(),
        feature_type: FeatureType::Meter,
        ..clone_feature(&seats)
    };
    let calls = store.insert_feature(&tenant, &calls, now).await.unwrap();
    assert_eq!(store.find_feature(&tenant, "calls").await.unwrap().unwrap().id, calls.id);
    let described = FeatureChanges { description: Some("API calls".into()), ..Default::default() };
    store.update_feature(&tenant, "calls", &described, now).await.unwrap();
    assert_eq!(store.count_features(&tenant, None).await.unwrap(), 2);
    assert_eq!(store.list_features(&tenant, None, 10, 0).await.unwrap().len(), 2);
    assert_eq!(store.features_by_id(&tenant).await.unwrap().len(), 2);

    // Plans: draft, edit, publish, inherit, discard.
    let base = NewPlan {
        identifier: "basic".into(),
        identifier_generated: false,
        name: "Basic".into(),
        product: product.id.to_string(),
        fields: PlanFields::default(),
    };
    store.insert_plan(&tenant, &base, product.id, now).await.unwrap();
    let grant = EntitlementDetails {
        value: json!(1000),
        has_unlimited_usage: false,
        reset: Some("EVERY_MONTH".into()),
        reset_time: None,
        hard_limit: true,
        rollover: None,
        usage_alerts: None,
    };
    let price: kelviq_core::plans::Price =
        serde_json::from_value(json!({"currency": "USD", "price_type": "PAID", "charge_catalog_price": []})).unwrap();
    store
        .edit_plan(&tenant, "basic", now, |draft| {
            draft.entitlements.push(PlanEntitlement { feature_id: calls.id, details: grant.clone() });
            draft.prices = vec![price.clone()];
            Ok(())
        })
        .await
        .unwrap();
    let basic = store.publish_plan(&tenant, "basic", now).await.unwrap();
    assert_eq!(store.find_published_plan(&tenant, "basic").await.unwrap().unwrap().id, basic.id);
    assert_eq!(store.find_plan(&tenant, "basic", Some(basic.version)).await.unwrap().unwrap().id, basic.id);
    assert_eq!(store.find_plan_version(&tenant, basic.id).await.unwrap().unwrap().identifier, "basic");
    assert_eq!(store.published_plan_identifiers(&tenant, product.id).await.unwrap(), ["basic"]);
    assert!(store.inheritable_plan(&tenant, "basic").await.unwrap().is_some());
    let pro = NewPlan {
        identifier: "pro".into(),
        name: "Pro".into(),
        fields: PlanFields { parent: Some("basic".into()), ..PlanFields::default() },
        ..base.clone()
    };
    store.insert_plan(&tenant, &pro, product.id, now).await.unwrap();
    assert!(store.check_plan_parent(&tenant, "basic", "pro").await.unwrap().is_err(), "no inheritance loops");
    let pro_draft = store.find_plan(&tenant, "pro", None).await.unwrap().unwrap();
    let inherited = store.effective_entitlements(&tenant, &pro_draft).await.unwrap();
    assert_eq!(inherited.len(), 1, "pro inherits basic's calls");
    assert!(inherited[0].inherited);
    store.discard_plan_draft(&tenant, "pro").await.unwrap();
    assert!(store.find_plan(&tenant, "pro", None).await.unwrap().is_none());
    assert_eq!(store.count_plans(&tenant).await.unwrap(), 1);
    assert_eq!(store.list_plans(&tenant, 10, 0).await.unwrap().len(), 1);

    // Media: an upload, attached to the product, changed and deleted.
    assert_eq!(store.server_secret("media").await.unwrap(), store.server_secret("media").await.unwrap());
    let upload = Upload {
        file_key: "tmp/story/logo.png".into(),
        org_id: org.id,
        environment: Environment::Sandbox,
        file_name: "logo.png".into(),
        content_type: "image/png".into(),
        expires_at: now + Duration::hours(1),
        uploaded_at: None,
        size: None,
        consumed_at: None,
    };
    store.insert_upload(&tenant, &upload, now).await.unwrap();
    assert!(store.find_attachable_upload(&tenant, &upload.file_key).await.unwrap().is_none(), "not uploaded yet");
    store.mark_uploaded(&upload.file_key, 68, now).await.unwrap();
    assert_eq!(store.find_upload(&upload.file_key).await.unwrap().unwrap().size, Some(68));
    let ready = store.find_attachable_upload(&tenant, &upload.file_key).await.unwrap().unwrap();
    let file = MediaFile {
        id: uuid::Uuid::new_v4(),
        owner_id: product.id.to_string(),
        name: "logo.png".into(),
        content_type: "image/png".into(),
        storage_path: "org/x/logo.png".into(),
        size: 68,
        ordering: 0,
        thumbnail: false,
        enabled: true,
        created_at: now,
    };
    let owner = product.id.to_string();
    store.attach_media(&tenant, MediaOwner::ProductImage, &owner, &[(ready, file.clone())], now).await.unwrap();
    assert_eq!(store.list_media(&tenant, MediaOwner::ProductImage, &owner).await.unwrap().len(), 1);
    let id = file.id.to_string();
    assert!(store.find_media(&tenant, MediaOwner::ProductImage, &owner, &id).await.unwrap().is_some());
    assert!(store.find_media_by_id(&id, MediaOwner::ProductImage).await.unwrap().is_some());
    let thumb = MediaChanges { thumbnail: Some(true), ..Default::default() };
    assert!(store.update_media(&tenant, MediaOwner::ProductImage, &owner, &id, &thumb, now).await.unwrap().thumbnail);
    store.delete_media(&tenant, MediaOwner::ProductImage, &owner, &id).await.unwrap();
    assert!(store.list_media(&tenant, MediaOwner::ProductImage, &owner).await.unwrap().is_empty());
    assert_eq!(MediaOwner::PlanFile.as_str(), "plan_file");

    // Selling: a subscription, a payment method, an order, the test clock.
    let ann = store.find_customer(&tenant, "ann").await.unwrap().unwrap();
    let sub =
        Subscription::start(ann.id, "ann", &basic, kelviq_core::plans::ChargePeriod::Monthly, "USD", 900, vec![], now);
    let mut w = store.begin(&tenant).await.unwrap();
    w.put_subscription(&sub).await.unwrap();
    let card = json!({"brand": "visa", "last4": "4242"});
    let pm = w.insert_payment_method("ann", &card, true, now).await.unwrap();
    assert_eq!(w.default_payment_method::<serde_json::Value>("ann").await.unwrap().unwrap().id, pm);
    let mut locked = w.lock_payment_method::<serde_json::Value>(pm).await.unwrap().unwrap();
    locked.doc["last4"] = json!("0000");
    w.save_payment_method(pm, &locked.doc).await.unwrap();
    let order = json!({"id": "ORD-1", "customer_id": "ann"});
    let cols = DocColumns {
        customer_id: Some("ann".into()),
        status: Some("COMPLETE".into()),
        created_at: now,
        modified_at: now,
        ..Default::default()
    };
    w.put(DocTable::Orders, "ORD-1", &order, &cols).await.unwrap();
    assert!(w.lock::<serde_json::Value>(DocTable::Orders, "ORD-1").await.unwrap().is_some());
    assert_eq!(
        w.lock_all::<serde_json::Value>(DocTable::Orders, &[Filter::Eq("status", "COMPLETE".into())])
            .await
            .unwrap()
            .len(),
        1
    );
    let due: Vec<Subscription> =
        w.lock_due(&[sub.id.to_string(), "gone".into()], now + Duration::days(40)).await.unwrap();
    assert_eq!(due.iter().map(|s| s.id).collect::<Vec<_>>(), vec![sub.id]);
    assert!(w.lock_due::<Subscription>(&[sub.id.to_string()], now).await.unwrap().is_empty(), "not due yet");
    w.event(&OutboxEvent::new("order.created", order.clone(), None, now)).await.unwrap();
    w.entitlements_changed("ann", now).await.unwrap();
    w.set_test_clock(Duration::days(2), now).await.unwrap();
    let session = json!({"id": "cs_1", "status": "open"});
    let open = DocColumns {
        status: Some("open".into()),
        created_at: now,
        modified_at: now,
        expires_at: Some(now + Duration::days(1)),
        ..Default::default()
    };
    w.put(DocTable::CheckoutSessions, "cs_1", &session, &open).await.unwrap();
    assert!(w.claim_session("cs_1", "open", "processing").await.unwrap());
    assert!(!w.claim_session("cs_1", "open", "processing").await.unwrap(), "a session is claimed once");
    let changed = w.commit().await.unwrap();
    assert!(changed.iter().any(|(_, c)| c == "ann"), "the commit names whose entitlements changed");
    assert_eq!(
        store.find_doc::<serde_json::Value>(DocTable::Orders, &tenant, "ORD-1").await.unwrap().unwrap()["id"],
        "ORD-1"
    );
    assert_eq!(store.count_docs(DocTable::Orders, &tenant, &[Filter::Search("ORD".into())]).await.unwrap(), 1);
    assert_eq!(
        store.list_docs::<serde_json::Value>(DocTable::Subscriptions, &tenant, &[], 10, 0).await.unwrap().len(),
        1
    );
    let (found_in, _) = store.find_checkout_session_anywhere::<serde_json::Value>("cs_1").await.unwrap().unwrap();
    assert_eq!(found_in, tenant);
    assert_eq!(store.payment_methods::<serde_json::Value>(&tenant, Some("ann")).await.unwrap()[0].doc["last4"], "0000");
    assert_eq!(store.test_clock_offset(&tenant).await.unwrap(), Duration::days(2));
    assert_eq!(store.test_clocks().await.unwrap().len(), 1);
    assert_eq!(store.tenants_with_due_work(now + Duration::days(40)).await.unwrap().len(), 1);
    assert_eq!(DocColumns::of_subscription(&sub).customer_id.as_deref(), Some("ann"));
    let events = store.list_events(&tenant, 0, 100).await.unwrap();
    assert!(events.iter().any(|(_, e)| e.event_type == "order.created"));
    let (position, peeked) =
        store.peek_due::<Subscription>(&tenant, now + Duration::days(40), None, 10).await.unwrap()[0].clone();
    assert_eq!(peeked.id, sub.id);
    assert!(store
        .peek_due::<Subscription>(&tenant, now + Duration::days(40), Some(position), 10)
        .await
        .unwrap()
        .is_empty());
    deferred_writes(&store, &tenant, &sub, now).await;

    // Usage: events, counters, keys, overrides, alerts; the dialect's append.
    let period = kelviq_core::timefmt::to_micros(now);
    let mut w = store.begin(&tenant).await.unwrap();
    let rows = [EventRow {
        tenant: &tenant,
        customer_id: "ann",
        event_name: "call",
        key: "e1",
        at: now,
        resource_id: None,
        properties: "{}",
        unfolded: &[],
    }];
    assert!(w.insert_events(&rows, now).await.unwrap().is_empty(), "a new key is not skipped");
    assert_eq!(w.insert_events(&rows, now).await.unwrap(), [0], "a repeated key is");
    assert_eq!(w.find_events(&tenant, &["e1"]).await.unwrap()[0].event_name, "call");
    w.add_counters(
        &[AddRow { tenant: &tenant, customer_id: "ann", feature: "calls", period_start: period, delta: 3 }],
        now,
    )
    .await
    .unwrap();
    w.switch_tenant(&tenant);
    let (before, after, _) = w.change_counter("ann", "calls", period, &CounterChange::Add(2), now).await.unwrap();
    assert_eq!((before, after), (3, 5));
    assert_eq!(w.lock_counter("ann", "calls", period).await.unwrap().unwrap().value, 5);
    w.set_counter_alerts("ann", "calls", period, "[80]").await.unwrap();
    assert!(w.find_key("report", "k1").await.unwrap().is_none());
    w.save_key("report", "k1", "{\"ok\":true}", now).await.unwrap();
    assert_eq!(w.find_key("report", "k1").await.unwrap().as_deref(), Some("{\"ok\":true}"));
    assert!(!w.put_override("ann", "seats", Some(&json!({"value": 9})), now).await.unwrap());
    assert!(w.put_override("ann", "seats", None, now).await.unwrap(), "reverting an override says it existed");
    w.usage_changed(&["ann".to_string()], "story", now).await.unwrap();
    w.commit().await.unwrap();
    assert_eq!(store.counters(&tenant, "ann").await.unwrap()[0].alerts, "[80]");
    assert!(store.overrides(&tenant, "ann").await.unwrap().is_empty());
    assert_eq!(store.count_events(&tenant, Some("ann")).await.unwrap(), 1);
    let mut kept = KeptConnection::default();
    let more = [EventRow { key: "e2", ..rows[0] }];
    // Take the counters over (folding what is deferred), as a starting writer does.
    let mut w = store.begin(&tenant).await.unwrap();
    let (_, epoch) = w.take_usage(now, Some(1), &|_, _, _, _| 0).await.unwrap();
    w.commit().await.unwrap();
    if postgres {
        let appended = store.append_counted_events(&mut kept, &tenant, &more, "story", now, now).await.unwrap();
        assert!(appended.skipped.is_empty());
        let deferred = [EventRow { key: "e3", ..rows[0] }];
        assert!(store.append_deferred_events(&mut kept, &tenant, &deferred, now, 0, epoch).await.unwrap().is_empty());
        let mut w = store.begin(&tenant).await.unwrap();
        w.fence_usage(0, epoch).await.unwrap();
        w.commit().await.unwrap();
    } else {
        let mut journal = store.open_journal().unwrap().unwrap();
        let mut sync = journal.wal_sync();
        let mut tx = journal.begin().unwrap();
        assert!(tx.insert_events(&more, now).unwrap().is_empty());
        assert!(tx.insert_events(&[EventRow { key: "e3", ..rows[0] }], now).unwrap().is_empty());
        assert_eq!(tx.find_events(&tenant, &["e2", "e3"]).unwrap().len(), 2);
        tx.commit().unwrap();
        sync.sync().unwrap();
    }
    kept.release();
    let mut w = store.begin(&tenant).await.unwrap();
    w.mark_folded(0).await.unwrap();
    w.commit().await.unwrap();
    drop(store.write_turn().await.unwrap());
    assert_eq!(store.count_events(&tenant, None).await.unwrap(), 3);

    // The change feed, housekeeping, and archiving.
    let latest = store.latest_change_seq().await.unwrap();
    assert!(latest > 0);
    assert!(!store.change_seqs_after(0, 100).await.unwrap().is_empty());
    assert!(!store.changes_between(0, latest).await.unwrap().is_empty());
    store.prune_changes(now - Duration::days(1), now - Duration::days(1)).await.unwrap();
    if postgres {
        let mut listener = ChangeListener::connect(&db.url).await.unwrap();
        assert!(listener.wait(std::time::Duration::from_millis(10)).await.unwrap().is_none());
        let mut lock = UsageLock::connect(&db.url).await.unwrap();
        assert!(lock.try_own().await.unwrap() && lock.owns());
        lock.ping().await.unwrap();
        lock.release_exclusive().await.unwrap();
        lock.share().await.unwrap();
        let _ = HandoverListener::connect(&db.url).await.unwrap();
    }
    store.archive_plan(&tenant, "basic", now).await.unwrap();
    store.archive_feature(&tenant, "seats", now).await.unwrap();
    store.archive_product(&tenant, "app", now).await.unwrap();
    assert!(store.find_product(&tenant, "app").await.unwrap().is_none());
    assert!(store.find_product_any(&tenant, "app").await.unwrap().is_some(), "records still name it");
    store.analyze().await.unwrap();
    store.close().await;
    assert!(store.is_closed());
}

/// A deferring work (a billing run's batch) sends its writes together,
/// more rows than one statement takes; it reads what it wrote; dropped, it
/// writes nothing.
async fn deferred_writes(store: &Store, tenant: &Tenant, sub: &Subscription, now: DateTime<Utc>) {
    let count = || store.count_docs(DocTable::Orders, tenant, &[]);
    let before = count().await.unwrap();
    let events_before = store.list_events(tenant, 0, 10_000).await.unwrap().len();

    let mut w = store.begin(tenant).await.unwrap();
    w.defer_writes();
    hold_orders(&mut w, "X", now).await;
    drop(w);
    assert_eq!(count().await.unwrap(), before, "a dropped work writes nothing");

    let mut w = store.begin(tenant).await.unwrap();
    w.defer_writes();
    assert_eq!(w.lock_due::<Subscription>(&[sub.id.to_string()], now + Duration::days(40)).await.unwrap().len(), 1);
    w.read_default_payment_methods_of(&["ann", "nobody"]).await.unwrap();
    assert!(w.default_payment_method::<serde_json::Value>("nobody").await.unwrap().is_none());
    let mut m = w.default_payment_method::<serde_json::Value>("ann").await.unwrap().unwrap();
    m.doc["last4"] = json!("1111");
    w.save_payment_method(m.id, &m.doc).await.unwrap();
    assert_eq!(w.default_payment_method::<serde_json::Value>("ann").await.unwrap().unwrap().doc["last4"], "1111");
    let first = w.next_invoice_number().await.unwrap();
    assert_eq!(w.next_invoice_number().await.unwrap(), first + 1);
    hold_orders(&mut w, "Y", now).await;
    assert!(w.order_id_taken("ORD-Y7", "INV-none").await.unwrap(), "an order held back is taken");
    let taken = w.order_ids_taken(&["INV-Y299".into(), "ORD-1".into(), "ORD-free".into()]).await.unwrap();
    assert_eq!(taken.len(), 2, "{taken:?}");
    w.keep_free_order_ids(now, vec![("ORD-kept".into(), "INV-kept".into())]);
    assert!(w.order_id_taken("ORD-kept", "INV-other").await.unwrap(), "a kept id is taken");
    assert_eq!(w.take_free_order_ids(now + Duration::days(1)), None);
    assert_eq!(w.take_free_order_ids(now), Some(("ORD-kept".into(), "INV-kept".into())));
    let mut changed = sub.clone();
    changed.plan_name = "Renewed".into();
    w.put_subscription(&changed).await.unwrap();
    w.entitlements_changed("ann", now).await.unwrap();
    // A read of a table it holds rows for sends them first.
    assert!(w.lock::<serde_json::Value>(DocTable::Orders, "ORD-Y299").await.unwrap().is_some());
    assert_eq!(
        w.lock::<Subscription>(DocTable::Subscriptions, &sub.id.to_string()).await.unwrap().unwrap().plan_name,
        "Renewed"
    );
    w.put_subscription(sub).await.unwrap();
    w.commit().await.unwrap();

    assert_eq!(count().await.unwrap(), before + 300);
    assert_eq!(store.list_events(tenant, 0, 10_000).await.unwrap().len(), events_before + 300);
    let stored: Subscription =
        store.find_doc(DocTable::Subscriptions, tenant, &sub.id.to_string()).await.unwrap().unwrap();
    assert_eq!(stored.plan_name, sub.plan_name, "the last update of a subscription wins");
    assert_eq!(store.payment_methods::<serde_json::Value>(tenant, Some("ann")).await.unwrap()[0].doc["last4"], "1111");
    let mut w = store.begin(tenant).await.unwrap();
    assert_eq!(w.next_invoice_number().await.unwrap(), first + 2, "the counter was written");
    drop(w);
}

/// 300 orders, each with an event: more rows than one statement takes.
async fn hold_orders(w: &mut Work, prefix: &str, now: DateTime<Utc>) {
    for i in 0..300 {
        let id = format!("ORD-{prefix}{i}");
        let cols = DocColumns {
            customer_id: Some("ann".into()),
            invoice_id: Some(format!("INV-{prefix}{i}")),
            status: Some("COMPLETE".into()),
            created_at: now,
            modified_at: now,
            ..Default::default()
        };
        w.insert_doc(DocTable::Orders, &id, &json!({"id": id}), &cols).await.unwrap();
        w.event(&OutboxEvent::new("order.created", json!({"id": id}), None, now)).await.unwrap();
    }
}

fn clone_feature(f: &kelviq_core::catalog::Feature) -> NewFeature {
    NewFeature {
        name: f.name.clone(),
        identifier: f.identifier.clone(),
        identifier_generated: false,
        description: f.description.clone(),
        feature_type: f.feature_type,
        feature_details: f.feature_details.clone(),
        meter: f.meter.clone(),
        metadata: f.metadata.clone(),
    }
}
