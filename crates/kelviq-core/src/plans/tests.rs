//! Plan validation, by example.

use super::*;
use crate::catalog::FeatureType;

fn meter_ref(key: &str) -> Option<FeatureRef> {
    match key {
        "api-calls" => Some(FeatureRef { id: uuid::Uuid::nil(), feature_type: FeatureType::Meter }),
        "sso" => Some(FeatureRef { id: uuid::Uuid::max(), feature_type: FeatureType::Boolean }),
        _ => None,
    }
}

fn price(v: Value) -> Result<Price, FieldErrors> {
    let mut e = FieldErrors::new();
    let out = parse_price(&crate::casing::underscoreize(v), "prices[0]: ", &meter_ref, &mut e);
    e.into_result().map(|_| out.unwrap())
}

#[test]
fn prices_are_stored_in_minor_units_and_rendered_back() {
    let wire = json!({
        "priceType": "PAID", "currency": "usd", "freeTrial": true, "trialPeriod": 14, "taxBehavior": "EXCLUSIVE",
        "chargeCatalogPrice": [
            {"feature": null, "priceModel": "FLAT", "charges": [
                {"chargePeriod": "MONTHLY", "priceData": {"amount": 29.99}},
                {"chargePeriod": "YEARLY", "priceData": {"amount": 299}}]},
            {"feature": "api-calls", "priceModel": "TIERED", "paymentType": "PAY_AS_YOU_GO", "charges": [
                {"chargePeriod": "MONTHLY", "priceData": {"currency": "USD"}, "tiers": [
                    {"flatAmount": 0, "unitAmount": 0, "upTo": 1000},
                    {"flatAmount": 5, "unitAmount": 0.001, "upTo": "inf"}]}]}
        ]
    });
    let typed = price(wire).unwrap();
    let stored = serde_json::to_value(&typed).unwrap();
    assert_eq!(serde_json::from_value::<Price>(stored.clone()).unwrap(), typed, "the stored form reads back");
    assert_eq!(stored["currency"], "USD");
    assert_eq!(stored["charge_catalog_price"][0]["charges"][0]["amount_minor"], 2999);
    assert_eq!(stored["charge_catalog_price"][0]["charges"][1]["amount_minor"], 29900);
    assert_eq!(stored["charge_catalog_price"][1]["charges"][0]["tiers"][1]["unit_micro"], 100_000);
    assert_eq!(stored["charge_catalog_price"][1]["feature"], uuid::Uuid::nil().to_string());
    let back = price_to_wire(&typed);
    assert_eq!(back["chargeCatalogPrice"][0]["charges"][0]["priceData"]["amount"], json!(29.99));
    assert_eq!(back["chargeCatalogPrice"][0]["charges"][1]["priceData"]["amount"], json!(299.0));
    assert_eq!(back["chargeCatalogPrice"][1]["charges"][0]["tiers"][1]["unitAmount"], json!(0.001));
    assert_eq!(back["chargeCatalogPrice"][1]["charges"][0]["tiers"][1]["upTo"], "inf");
    assert_eq!(back["trialPeriod"], 14);
}

#[test]
fn price_rules() {
    let flat = |amount: Value| json!({"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": amount}}]}]});
    assert!(price(flat(json!(10))).is_ok());
    assert!(price(flat(json!(10.001))).is_err(), "more decimals than USD has");
    assert!(price(flat(json!(-1))).is_err());
    let bad = [
        json!({"priceType": "PAID", "chargeCatalogPrice": []}),
        json!({"priceType": "NOPE"}),
        json!({"priceType": "PAID", "currency": "XYZ", "chargeCatalogPrice": [{"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 1}}]}]}),
        json!({"priceType": "FREE", "chargeCatalogPrice": [{"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 1}}]}]}),
        json!({"priceType": "PAID", "currency": "USD", "freeTrial": true, "chargeCatalogPrice": [{"charges": [{"chargePeriod": "ONE_TIME", "priceData": {"amount": 1}}]}]}),
        json!({"priceType": "PAID", "currency": "USD", "freeTrial": true, "trialPeriod": 400, "chargeCatalogPrice": [{"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 1}}]}]}),
        json!({"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 1}}, {"chargePeriod": "MONTHLY", "priceData": {"amount": 2}}]}]}),
        json!({"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"charges": [{"chargePeriod": "FORTNIGHTLY", "priceData": {"amount": 1}}]}]}),
        json!({"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"priceModel": "TIERED", "charges": [{"chargePeriod": "MONTHLY", "tiers": [{"upTo": "inf", "unitAmount": 1}]}]}]}),
        json!({"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"feature": "sso", "priceModel": "VOLUME", "charges": [{"chargePeriod": "MONTHLY", "tiers": [{"upTo": "inf", "unitAmount": 1}]}]}]}),
        json!({"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"feature": "nope", "charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 1}}]}]}),
        json!({"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"feature": "api-calls", "priceModel": "TIERED", "charges": [{"chargePeriod": "MONTHLY", "tiers": [{"upTo": 100, "unitAmount": 1}, {"upTo": 50, "unitAmount": 1}, {"upTo": "inf", "unitAmount": 1}]}]}]}),
        json!({"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"feature": "api-calls", "priceModel": "TIERED", "charges": [{"chargePeriod": "MONTHLY", "tiers": [{"upTo": 100, "unitAmount": 1}]}]}]}),
        json!({"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"feature": "api-calls", "priceModel": "STAIRSTEP", "paymentType": "PAY_AS_YOU_GO", "charges": [{"chargePeriod": "MONTHLY", "tiers": [{"upTo": "inf", "flatAmount": 1}]}]}]}),
        json!({"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"feature": "api-calls", "priceModel": "FLAT", "paymentType": "PAY_AS_YOU_GO", "charges": [{"chargePeriod": "YEARLY", "priceData": {"amount": 1}}]}]}),
        json!({"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"feature": "api-calls", "priceModel": "TIERED", "charges": [{"chargePeriod": "ONE_TIME", "tiers": [{"upTo": "inf", "unitAmount": 1}]}]}]}),
        json!({"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"feature": "api-calls", "priceModel": "PACKAGE", "charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 1}}]}]}),
        json!({"priceType": "PAID", "currency": "JPY", "chargeCatalogPrice": [{"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 10.5}}]}]}),
    ];
    for b in bad {
        let e = price(b.clone()).unwrap_err();
        assert!(e.fields().contains_key("prices"), "{b}: {e}");
    }
    assert!(price(json!({"priceType": "FREE"})).is_ok());
    assert!(price(json!({"priceType": "PAID", "currency": "USD", "chargeCatalogPrice": [{"priceModel": "FLAT", "charges": [{"chargePeriod": "QUARTERLY", "priceData": {"amount": 1}}]}]})).is_ok());
}

#[test]
fn entitlement_details() {
    let mut e = FieldErrors::new();
    let d = parse_entitlement_details(
        FeatureType::Meter,
        &json!({"value": 10000, "reset": "EVERY_MONTH", "hard_limit": true,
        "rollover": {"enabled": true, "percentage": 50, "limit": 750},
        "usage_alerts": {"enabled": true, "thresholds": [90, 75], "threshold_type": "PERCENTAGE"}}),
        "",
        &mut e,
    )
    .unwrap();
    assert!(e.is_empty());
    assert_eq!((d.value.clone(), d.hard_limit, d.reset.as_deref()), (json!(10000), true, Some("EVERY_MONTH")));
    assert_eq!(d.usage_alerts.unwrap()["thresholds"], json!([75, 90]));
    let unlimited =
        parse_entitlement_details(FeatureType::Meter, &json!({"has_unlimited_usage": true}), "", &mut e).unwrap();
    assert_eq!((unlimited.value, unlimited.reset.as_deref()), (Value::Null, Some("EVERY_MONTH")));
    assert_eq!(parse_entitlement_details(FeatureType::Boolean, &json!({}), "", &mut e).unwrap().value, json!(true));
    assert!(e.is_empty());
    for (ty, bad) in [
        (FeatureType::Meter, json!({})),
        (FeatureType::Meter, json!({"value": -1})),
        (FeatureType::Meter, json!({"value": 5, "reset": "HOURLY"})),
        (FeatureType::Meter, json!({"value": 5, "rollover": {"enabled": true, "percentage": 150}})),
        (
            FeatureType::Meter,
            json!({"has_unlimited_usage": true, "usage_alerts": {"enabled": true, "thresholds": [50]}}),
        ),
        (
            FeatureType::Meter,
            json!({"value": 5, "usage_alerts": {"enabled": true, "thresholds": [0], "threshold_type": "PERCENTAGE"}}),
        ),
        (FeatureType::Boolean, json!({"value": 3})),
        (FeatureType::Customizable, json!({"value": "x"})),
        (FeatureType::Customizable, json!({})),
    ] {
        let mut e = FieldErrors::new();
        assert!(parse_entitlement_details(ty, &bad, "", &mut e).is_none(), "{bad}");
        assert!(e.fields().contains_key("details"), "{bad}");
    }
}

#[test]
fn inheritance_resolution() {
    let f = |n: u128| uuid::Uuid::from_u128(n);
    let details = |v: i64| EntitlementDetails {
        value: json!(v),
        has_unlimited_usage: false,
        reset: None,
        reset_time: None,
        hard_limit: false,
        rollover: None,
        usage_alerts: None,
    };
    let starter = [
        PlanEntitlement { feature_id: f(1), details: details(1000) },
        PlanEntitlement { feature_id: f(2), details: details(1) },
    ];
    let starter = resolve_entitlements(&starter, &[]);
    assert!(starter.iter().all(|e| !e.inherited && !e.overridden));
    let pro_own = [
        PlanEntitlement { feature_id: f(1), details: details(100_000) },
        PlanEntitlement { feature_id: f(3), details: details(1) },
    ];
    let pro = resolve_entitlements(&pro_own, &starter);
    let summary: Vec<(u128, i64, bool, bool)> = pro
        .iter()
        .map(|e| (e.feature_id.as_u128(), e.details.value.as_i64().unwrap(), e.inherited, e.overridden))
        .collect();
    assert_eq!(summary, [(1, 100_000, false, true), (2, 1, true, false), (3, 1, false, false)]);
    // A grandchild inherits the child's override as an inherited value.
    let enterprise = resolve_entitlements(&[], &pro);
    assert!(enterprise.iter().all(|e| e.inherited));
    assert_eq!(enterprise[0].details.value, json!(100_000));
}

#[test]
fn plans() {
    let p =
        NewPlan::parse(PlanInput { name: Some("Pro Monthly".into()), product: Some("p".into()), ..Default::default() })
            .unwrap();
    assert_eq!((p.identifier.as_str(), p.fields.is_visible), ("pro-monthly", true));
    let e = NewPlan::parse(PlanInput {
        license: Some(json!({"enabled": true, "activation_limit_enabled": true})),
        links: Some(json!([{"name": "x", "url": "ftp://x"}])),
        ordering: Some(json!("first")),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(e.fields().keys().collect::<Vec<_>>(), ["license", "links", "name", "ordering", "product"]);
    assert!(ChargePeriod::parse("QUARTERLY") == Some(ChargePeriod::ThreeMonths));
}

#[test]
fn local_prices_localize_a_plan() {
    let wire = json!({
        "priceType": "PAID", "currency": "USD",
        "chargeCatalogPrice": [
            {"charges": [{"chargePeriod": "MONTHLY", "priceData": {"amount": 20}}]},
            {"feature": "api-calls", "priceModel": "PACKAGE", "charges": [
                {"chargePeriod": "MONTHLY", "priceData": {"amount": 5, "blockSize": 100}}]}],
        "localPrices": [
            {"group": "TIER_4", "currency": "INR", "charges": [
                {"chargePeriod": "MONTHLY", "priceData": {"amount": 499}},
                {"feature": "api-calls", "chargePeriod": "MONTHLY", "priceData": {"amount": 99}}]},
            {"countries": ["in"], "currency": "USD", "strictCountry": false, "charges": [
                {"chargePeriod": "MONTHLY", "priceData": {"amount": 8}},
                {"feature": "api-calls", "chargePeriod": "MONTHLY", "priceData": {"amount": 2}}]}]
    });
    let typed = price(wire).unwrap();
    let back = price_to_wire(&typed);
    assert_eq!(back["localPrices"][1]["countries"], json!(["IN"]));
    assert_eq!(back["localPrices"][0]["charges"][1]["priceData"], json!({"amount": 99.0, "blockSize": 100}));
    let group_of = |c: &str| ["IN", "PK"].contains(&c).then(|| "TIER_4".to_string());
    // The country's own local price wins over its group's.
    assert_eq!(typed.local_for("in", &group_of).map(|l| l.currency.as_str()), Some("USD"));
    assert_eq!(typed.local_for("PK", &group_of).map(|l| l.currency.as_str()), Some("INR"));
    assert_eq!(typed.local_for("US", &group_of), None);
    let pk = typed.localized(typed.local_for("PK", &group_of).unwrap());
    assert_eq!(pk.currency, "INR");
    let amounts: Vec<(Option<i64>, Option<u64>)> =
        pk.charge_catalog_price.iter().map(|g| (g.charges[0].amount_minor, g.charges[0].block_size)).collect();
    assert_eq!(amounts, [(Some(49_900), None), (Some(9_900), Some(100))], "amounts local, block size the price's");
    assert!(pk.local_prices.is_empty());
    let plan = |prices: Vec<Price>| PlanVersion {
        id: uuid::Uuid::nil(),
        identifier: "pro".into(),
        version: 1,
        product_id: uuid::Uuid::nil(),
        name: "Pro".into(),
        fields: PlanFields::default(),
        prices,
        entitlements: Vec::new(),
        status: PlanStatus::Published,
        created_at: chrono::DateTime::UNIX_EPOCH,
        modified_at: chrono::DateTime::UNIX_EPOCH,
        published_at: None,
        archived_at: None,
    };
    let india = plan(vec![typed.clone()]).localized(Some("IN"), &group_of);
    assert_eq!(india.local, Some(false), "not strict");
    assert_eq!(india.plan.prices.len(), 1, "a local price in USD takes the USD price's place");
    assert_eq!(india.plan.prices[0].charge_catalog_price[0].charges[0].amount_minor, Some(800));
    let pakistan = plan(vec![typed.clone()]).localized(Some("PK"), &group_of);
    let currencies: Vec<&str> = pakistan.plan.prices.iter().map(|p| p.currency.as_str()).collect();
    assert_eq!((currencies, pakistan.local), (vec!["INR", "USD"], Some(true)), "the local price first");
    assert_eq!(plan(vec![typed]).localized(None, &group_of).local, None);
}
