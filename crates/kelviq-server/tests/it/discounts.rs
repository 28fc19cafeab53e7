//! Discount codes through the real server, on SQLite and PostgreSQL: made
//! and checked field by field; redeemed at checkout (held by an open
//! session, given back when it expires unpaid or its order is refunded in
//! full); each duration over three renewals with the test clock; the
//! limits under a race of checkouts; scope, minimum, first purchase and
//! expiry; the hosted page's field.

use crate::common::api::Api;
use crate::common::{Backend, TestServer};
use kelviq_core::keys::KeyKind;
use kelviq_core::Environment;
use reqwest::Method;
use serde_json::{json, Value};

/// Product `app` with plans `pro` (20 USD a month) and `team` (50 USD a
/// month, 100 USD a year).
async fn seed(api: &Api<'_>) {
    api.ok("/api/v1/catalog/products/", json!({"name": "App", "identifier": "app", "taxCode": "saas"})).await;
    for (id, monthly) in [("pro", 20), ("team", 50)] {
        api.ok("/api/v1/catalog/plans/", json!({"name": id.to_uppercase(), "identifier": id, "product": "app"})).await;
        api.ok(
            &format!("/api/v1/catalog/plans/{id}/prices/bulk/"),
            json!({"prices": [{"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"charges": [
                {"chargePeriod": "MONTHLY", "priceData": {"amount": monthly}},
                {"chargePeriod": "YEARLY", "priceData": {"amount": monthly * 10}}]}]}]}),
        )
        .await;
        api.ok(&format!("/api/v1/catalog/plans/{id}/publish/"), json!({})).await;
    }
}

async fn code(api: &Api<'_>, body: Value) -> Value {
    api.ok("/api/v1/discounts/", body).await
}

/// Opens a checkout (with `extra` fields); the status and body.
async fn open(api: &Api<'_>, plan: &str, customer: &str, extra: Value) -> (u16, Value) {
    let mut body = json!({"planIdentifier": plan, "chargePeriod": "MONTHLY", "customerId": customer,
        "successUrl": "https://app.example.com/welcome"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    api.post("/api/v1/checkout/", body).await
}

async fn complete(api: &Api<'_>, session: &Value, extra: Value) -> (u16, Value) {
    let id = session["checkoutSessionId"].as_str().unwrap();
    let mut body = json!({"card": "4242424242424242", "email": "buyer@example.com"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    api.post(&format!("/api/v1/checkout/sessions/{id}/complete/"), body).await
}

/// The DISCOUNT lines' amounts of a customer's invoices, oldest first.
async fn discount_lines(api: &Api<'_>, customer: &str) -> Vec<Vec<String>> {
    let (status, page) = api.get(&format!("/api/v1/invoices/?customer_id={customer}&page_size=100")).await;
    assert_eq!(status, 200, "{page}");
    let mut all = page["results"].as_array().unwrap().clone();
    all.reverse();
    all.iter()
        .map(|i| {
            let lines = i["lines"].as_array().unwrap();
            let sum: f64 = lines.iter().map(|l| l["amount"].as_str().unwrap().parse::<f64>().unwrap()).sum();
            assert_eq!(format!("{sum:.2}"), i["total"].as_str().unwrap(), "lines add up: {i}");
            lines
                .iter()
                .filter(|l| l["kind"] == "DISCOUNT")
                .map(|l| l["amount"].as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

async fn discounts_are_managed(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api).await;
    let (_, product) = api.get("/api/v1/catalog/products/app/").await;
    let d = code(
        &api,
        json!({"code": "launch-20", "name": "Launch", "discountType": "PERCENTAGE", "percentage": 20,
            "duration": "REPEATING", "durationInCycles": 3, "maxRedemptions": 100, "maxRedemptionsPerCustomer": 1,
            "expiresAt": "2026-03-01T00:00:00Z", "products": [product["id"]], "plans": ["team"],
            "firstPurchaseOnly": true, "minimumAmount": {"currency": "usd", "amount": "10.50"}}),
    )
    .await;
    assert_eq!(
        d,
        json!({"id": d["id"], "code": "LAUNCH-20", "name": "Launch", "discountType": "PERCENTAGE", "percentage": 20.0,
            "amounts": [], "duration": "REPEATING", "durationInCycles": 3, "maxRedemptions": 100,
            "maxRedemptionsPerCustomer": 1, "timesRedeemed": 0, "startsAt": null,
            "expiresAt": "2026-03-01T00:00:00.000000Z", "products": [product["id"]], "plans": ["team"],
            "firstPurchaseOnly": true, "minimumAmount": {"currency": "USD", "amount": 10.5}, "countries": [],
            "promotionId": null, "status": "ACTIVE",
            "createdOn": d["createdOn"], "modifiedOn": d["modifiedOn"]})
    );
    let fixed = code(&api, json!({"code": "FIVE", "discountType": "FIXED", "amounts": [{"currency": "USD", "amount": 5}, {"currency": "EUR", "amount": 4.5}], "duration": "FOREVER"})).await;
    assert_eq!((fixed["name"].clone(), fixed["percentage"].clone()), (json!("FIVE"), json!(null)));
    assert_eq!(fixed["amounts"], json!([{"currency": "USD", "amount": 5.0}, {"currency": "EUR", "amount": 4.5}]));

    // Unique ignoring case; every bad field named; nothing written.
    let (status, e) = api.post("/api/v1/discounts/", json!({"code": "Launch-20", "percentage": 5})).await;
    assert_eq!((status, e), (400, json!({"code": ["A discount with this code already exists."]})));
    let (status, e) = api
        .post(
            "/api/v1/discounts/",
            json!({"code": "no spaces", "name": "x\u{7}", "discountType": "PERCENTAGE", "percentage": 0.001,
                "duration": "REPEATING", "maxRedemptions": 0, "expiresAt": "soon", "products": ["nope"],
                "plans": ["ghost"], "minimumAmount": {"currency": "XXX", "amount": 1}}),
        )
        .await;
    assert_eq!(status, 400, "{e}");
    for field in [
        "code",
        "name",
        "percentage",
        "durationInCycles",
        "maxRedemptions",
        "expiresAt",
        "products",
        "plans",
        "minimumAmount",
    ] {
        assert!(e[field].is_array(), "{field} in {e}");
    }
    let (status, e) =
        api.post("/api/v1/discounts/", json!({"code": "AB", "discountType": "FIXED", "amounts": []})).await;
    assert_eq!((status, e["code"].is_array(), e["amounts"].is_array()), (400, true, true), "{e}");
    let (status, e) = api.post("/api/v1/discounts/", json!({"code": "X1Y2", "percentage": 5, "unknown": 1})).await;
    assert_eq!(status, 400, "{e}");
    let (_, all) = api.get("/api/v1/discounts/").await;
    assert_eq!(all["count"], 2, "{all}");
    assert_eq!(all["results"][0]["code"], "LAUNCH-20", "oldest first");

    // A change; a redemption keeps the terms it was made with.
    let id = d["id"].as_str().unwrap();
    let (status, changed) = api
        .send(
            Method::PATCH,
            &format!("/api/v1/discounts/{id}/"),
            Some(json!({"percentage": 25, "expiresAt": null, "plans": []})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!((changed["percentage"].clone(), changed["expiresAt"].clone()), (json!(25.0), json!(null)));

    // Expiry at the test clock's time (it starts 2026-01-31T10:00Z).
    let soon = code(&api, json!({"code": "SOON", "percentage": 10, "expiresAt": "2026-02-01T00:00:00Z"})).await;
    assert_eq!(soon["status"], "ACTIVE");
    let (status, _) = open(&api, "pro", "early", json!({"discountCode": "soon"})).await;
    assert_eq!(status, 201);
    api.advance_to("2026-02-01T00:00:00Z").await;
    let (_, later) = api.get(&format!("/api/v1/discounts/{}/", soon["id"].as_str().unwrap())).await;
    assert_eq!(later["status"], "EXPIRED");
    let (status, e) = open(&api, "pro", "late", json!({"discountCode": "SOON"})).await;
    assert_eq!((status, e), (400, json!({"discountCode": ["This discount code has expired."]})));

    // Other environments and client keys see nothing.
    let (_, other_key) = s.other_tenant("other-org", Environment::Sandbox).await;
    let (status, _) = Api::with_key(&s, &other_key).get(&format!("/api/v1/discounts/{id}/")).await;
    assert_eq!(status, 404);
    let client = s.key_for(KeyKind::Client, Environment::Sandbox).await;
    let (status, _) = Api::with_key(&s, &client).get("/api/v1/discounts/").await;
    assert!(status == 401 || status == 403, "{status}");

    // Deleted: gone, its code free again.
    let (status, _) = api.send(Method::DELETE, &format!("/api/v1/discounts/{id}/"), None).await;
    assert_eq!(status, 204);
    let (status, _) = api.get(&format!("/api/v1/discounts/{id}/")).await;
    assert_eq!(status, 404);
    code(&api, json!({"code": "launch-20", "percentage": 5})).await;
}

async fn each_duration_over_three_renewals(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api).await;
    code(&api, json!({"code": "HALF", "percentage": 50, "duration": "ONCE"})).await;
    code(&api, json!({"code": "TWO", "percentage": 12.5, "duration": "REPEATING", "durationInCycles": 2})).await;
    code(&api, json!({"code": "ALWAYS", "discountType": "FIXED", "amounts": [{"currency": "USD", "amount": 5}], "duration": "FOREVER"}))
        .await;
    for (customer, code) in [("once", "half"), ("twice", "TWO"), ("always", "Always")] {
        let (status, session) = open(&api, "pro", customer, json!({"discountCode": code})).await;
        assert_eq!(status, 201, "{session}");
        let (status, done) = complete(&api, &session, json!({})).await;
        assert_eq!(status, 200, "{done}");
        assert_eq!(done["discountCode"], code.to_uppercase());
    }
    for day in ["2026-02-28T10:00:00Z", "2026-03-31T10:00:00Z", "2026-04-30T10:00:00Z"] {
        api.advance_to(day).await;
    }
    let none: Vec<String> = Vec::new();
    assert_eq!(
        discount_lines(&api, "once").await,
        vec![vec!["-10.00".to_string()], none.clone(), none.clone(), none.clone()]
    );
    assert_eq!(
        discount_lines(&api, "twice").await,
        vec![vec!["-2.50".to_string()], vec!["-2.50".to_string()], none.clone(), none.clone()]
    );
    assert_eq!(discount_lines(&api, "always").await, vec![vec!["-5.00".to_string()]; 4]);
    let orders = api.orders("twice").await;
    assert_eq!(orders[0]["amountDiscount"], "2.50", "{}", orders[0]);
    assert_eq!(orders[0]["amountTotal"], "17.50");
    assert_eq!(orders[2]["amountTotal"], "20.00");
    // checkout.completed carries the code.
    let events = s.store.list_events(&s.tenant, 0, 10_000).await.unwrap();
    let completed: Vec<&Value> =
        events.iter().filter(|(_, e)| e.event_type == "checkout.completed").map(|(_, e)| &e.payload["data"]).collect();
    let codes: Vec<&Value> = completed.iter().map(|d| &d["object"]["discount_code"]).collect();
    assert_eq!(codes, [&json!("HALF"), &json!("TWO"), &json!("ALWAYS")], "{completed:?}");
    let (_, list) = api.get("/api/v1/discounts/").await;
    let redeemed: Vec<i64> =
        list["results"].as_array().unwrap().iter().map(|d| d["timesRedeemed"].as_i64().unwrap()).collect();
    assert_eq!(redeemed, [1, 1, 1]);
}

async fn the_limit_holds_under_a_race(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api).await;
    // 100 checkouts completing at once with a code for 10.
    code(&api, json!({"code": "TEN", "percentage": 10, "maxRedemptions": 10})).await;
    let mut sessions = Vec::new();
    for i in 0..100 {
        let (status, session) = open(&api, "pro", &format!("racer-{i}"), json!({})).await;
        assert_eq!(status, 201);
        sessions.push(session);
    }
    let results = futures::future::join_all(
        sessions.iter().map(|session| complete(&api, session, json!({"discountCode": "TEN"}))),
    )
    .await;
    let won = results.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!(won, 10, "{:?}", results.iter().map(|r| r.0).collect::<Vec<_>>());
    for (status, e) in results.iter().filter(|(status, _)| *status != 200) {
        assert_eq!(
            (*status, e),
            (400, &json!({"discountCode": ["This discount code has reached its redemption limit."]}))
        );
    }
    let (_, list) = api.get("/api/v1/discounts/").await;
    assert_eq!(
        (list["results"][0]["timesRedeemed"].clone(), list["results"][0]["status"].clone()),
        (json!(10), json!("EXPIRED"))
    );

    // 100 sessions opened at once with a code for 10: 10 hold it.
    let held = code(&api, json!({"code": "HELD", "percentage": 10, "maxRedemptions": 10})).await;
    let names: Vec<String> = (0..100).map(|i| format!("holder-{i}")).collect();
    let opened =
        futures::future::join_all(names.iter().map(|n| open(&api, "pro", n, json!({"discountCode": "HELD"})))).await;
    let holding: Vec<&Value> = opened.iter().filter(|(status, _)| *status == 201).map(|(_, v)| v).collect();
    assert_eq!(holding.len(), 10);
    let (status, e) = open(&api, "pro", "one-more", json!({"discountCode": "HELD"})).await;
    assert_eq!((status, e["discountCode"].is_array()), (400, true));
    // One completes; the other nine expire unpaid and give theirs back.
    let (status, done) = complete(&api, holding[0], json!({})).await;
    assert_eq!(status, 200, "{done}");
    api.advance_to("2026-02-01T11:00:00Z").await;
    let mut fresh = Vec::new();
    for i in 0..9 {
        let (status, session) = open(&api, "pro", &format!("late-{i}"), json!({"discountCode": "HELD"})).await;
        assert_eq!(status, 201, "{session}");
        fresh.push(session);
    }
    let (status, _) = open(&api, "pro", "late-9", json!({"discountCode": "HELD"})).await;
    assert_eq!(status, 400, "9 given back, 1 redeemed");
    // A full refund gives the completed one back.
    let order = done["order"]["id"].as_str().unwrap();
    api.ok("/api/v1/refunds/", json!({"orderId": order})).await;
    let (_, after) = api.get(&format!("/api/v1/discounts/{}/", held["id"].as_str().unwrap())).await;
    assert_eq!(after["timesRedeemed"], 0);
    let (status, _) = open(&api, "pro", "late-9", json!({"discountCode": "HELD"})).await;
    assert_eq!(status, 201);
}

async fn scope_minimum_and_first_purchase(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api).await;
    code(&api, json!({"code": "TEAMONLY", "percentage": 10, "plans": ["team"]})).await;
    code(&api, json!({"code": "BIG", "percentage": 10, "minimumAmount": {"currency": "USD", "amount": 30}})).await;
    code(&api, json!({"code": "EURO", "discountType": "FIXED", "amounts": [{"currency": "EUR", "amount": 3}]})).await;
    code(&api, json!({"code": "WELCOME", "percentage": 30, "firstPurchaseOnly": true, "maxRedemptionsPerCustomer": 1}))
        .await;
    let refused = [
        ("pro", "TEAMONLY", "This discount code does not apply to this plan."),
        ("pro", "BIG", "This discount code needs a purchase of at least 30.00 USD."),
        ("pro", "EURO", "This discount code does not apply to purchases in USD."),
        ("pro", "NOSUCH", "This discount code is invalid or has expired."),
        ("pro", "x", "This discount code is invalid or has expired."),
    ];
    for (plan, c, message) in refused {
        let (status, e) = open(&api, plan, "shopper", json!({"discountCode": c})).await;
        assert_eq!((status, e), (400, json!({"discountCode": [message]})), "{c}");
    }
    let (status, _) = open(&api, "team", "shopper", json!({"discountCode": "TEAMONLY"})).await;
    assert_eq!(status, 201);
    let (status, _) = open(&api, "team", "shopper", json!({"discountCode": "big"})).await;
    assert_eq!(status, 201);
    let (status, e) = open(&api, "pro", "shopper", json!({"discountCode": "WELCOME", "discountsEnabled": false})).await;
    assert_eq!((status, e), (400, json!({"discountCode": ["Discounts are not enabled for this checkout."]})));

    // First purchase only: a new buyer may, one who bought before may not.
    api.buy("pro", "MONTHLY", "returning", "4242424242424242", json!({})).await;
    let (status, e) = open(&api, "team", "returning", json!({"discountCode": "WELCOME"})).await;
    assert_eq!((status, e), (400, json!({"discountCode": ["This discount code is for a first purchase only."]})));
    let (status, first) = open(&api, "team", "newcomer", json!({"discountCode": "WELCOME"})).await;
    assert_eq!(status, 201);
    // The per-customer limit counts the hold of an open checkout.
    let (status, e) = open(&api, "pro", "newcomer", json!({"discountCode": "WELCOME"})).await;
    assert_eq!((status, e), (400, json!({"discountCode": ["You have already used this discount code."]})));
    let (status, done) = complete(&api, &first, json!({})).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["order"]["amountDiscount"], "15.00");
    // A buyer not known when the session opened is checked at completion.
    let (_, anonymous) = api
        .post("/api/v1/checkout/", json!({"planIdentifier": "pro", "chargePeriod": "MONTHLY", "successUrl": "https://x.example/", "discountCode": "WELCOME"}))
        .await;
    let id = anonymous["checkoutSessionId"].as_str().unwrap();
    let (status, _) = api.get(&format!("/api/v1/checkout/sessions/{id}/")).await;
    assert_eq!(status, 200);
    let (status, ok) = complete(&api, &anonymous, json!({})).await;
    assert_eq!(status, 200, "a new customer is a first purchase: {ok}");
}

async fn the_hosted_page_takes_a_code(backend: Backend) {
    let s = TestServer::start(backend).await;
    let api = Api::new(&s);
    seed(&api).await;
    code(&api, json!({"code": "SPRING", "percentage": 25})).await;
    let (_, session) = open(&api, "pro", "page-buyer", json!({})).await;
    let url = session["checkoutUrl"].as_str().unwrap();
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    // Apply is a GET of the page with the code: a bad code says so, a good one shows the price.
    let page = client.get(format!("{url}?discount_code=WINTER")).send().await.unwrap().text().await.unwrap();
    assert!(
        page.contains("value=\"WINTER\"") && page.contains("This discount code is invalid or has expired."),
        "{page}"
    );
    assert!(page.contains("aria-invalid") && page.contains("<span id=\"total\">$20.00</span>"));
    let page = client.get(format!("{url}?discount_code=spring")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Discount SPRING (25% off)") && page.contains("<span id=\"total\">$15.00</span>"), "{page}");
    assert!(
        page.contains("<input type=\"hidden\" name=\"discount_code\" value=\"SPRING\">"),
        "the payment form carries it"
    );
    let form = |code: &'static str| {
        vec![
            ("email", "page@example.com"),
            ("name", "Page"),
            ("country", "US"),
            ("card_number", "4242 4242 4242 4242"),
            ("expiry", "12/30"),
            ("cvc", "123"),
            ("discount_code", code),
        ]
    };
    let bad = client.post(url).form(&form("WINTER")).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let bad = bad.text().await.unwrap();
    assert!(bad.contains("This discount code is invalid or has expired."), "{bad}");
    let paid = client.post(url).form(&form("SPRING")).send().await.unwrap();
    assert_eq!(paid.status(), 303);
    let orders = api.orders("page-buyer").await;
    assert_eq!(
        (orders[0]["amountDiscount"].clone(), orders[0]["amountTotal"].clone()),
        (json!("5.00"), json!("15.00"))
    );
}

on_both_backends!(
    discounts_are_managed,
    each_duration_over_three_renewals,
    the_limit_holds_under_a_race,
    scope_minimum_and_first_purchase,
    the_hosted_page_takes_a_code,
);
