//! How selling records look on the wire (camelCase, spec §1.2, §1.5, §1.6).

use crate::http::error::ApiResult;
use crate::state::AppState;
use crate::wire::catalog::FeatureOut;
use chrono::{DateTime, Utc};
use kelviq_core::billing::{
    amount_number, amount_text, bp_text, CheckoutSession, LogEntry, Order, PaymentMethod, Refund, SubStatus,
    Subscription, Transaction,
};
use kelviq_core::casing::camelize;
use kelviq_core::catalog::FeatureType;
use kelviq_core::customer::Customer;
use kelviq_core::money::currency_symbol;
use kelviq_core::periods::recurrence_fields;
use kelviq_core::plans::PlanVersion;
use kelviq_core::timefmt::{date, iso_micros, iso_seconds};
use kelviq_core::Tenant;
use kelviq_store::{DocTable, StoredPaymentMethod};
use serde_json::{json, Value};
use std::collections::HashMap;

fn time_opt(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| json!(iso_seconds(t)))
}

fn date_opt(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| json!(date(t.date_naive())))
}

/// Loads what rendering selling records needs, once per request.
pub struct Renderer<'a> {
    state: &'a AppState,
    tenant: &'a Tenant,
    pub now: DateTime<Utc>,
    features: Option<HashMap<uuid::Uuid, kelviq_core::catalog::Feature>>,
    plans: HashMap<uuid::Uuid, Option<PlanVersion>>,
    products: HashMap<uuid::Uuid, Value>,
    customers: HashMap<String, Option<Customer>>,
}

impl<'a> Renderer<'a> {
    pub fn new(state: &'a AppState, tenant: &'a Tenant, now: DateTime<Utc>) -> Self {
        Renderer {
            state,
            tenant,
            now,
            features: None,
            plans: HashMap::new(),
            products: HashMap::new(),
            customers: HashMap::new(),
        }
    }

    async fn plan(&mut self, id: uuid::Uuid) -> ApiResult<Option<PlanVersion>> {
        if !self.plans.contains_key(&id) {
            let p = self.state.store.find_plan_version(self.tenant, id).await?;
            self.plans.insert(id, p);
        }
        Ok(self.plans[&id].clone())
    }

    /// `{id, identifier, name, description}` of a product, archived or not.
    pub async fn product(&mut self, id: uuid::Uuid) -> ApiResult<Value> {
        if !self.products.contains_key(&id) {
            let p = self.state.store.find_product_any(self.tenant, &id.to_string()).await?;
            let v = match p {
                Some(p) => {
                    json!({"id": p.id.to_string(), "identifier": p.identifier, "name": p.name, "description": p.description})
                }
                None => json!({"id": id.to_string(), "identifier": null, "name": null}),
            };
            self.products.insert(id, v);
        }
        Ok(self.products[&id].clone())
    }

    pub async fn customer(&mut self, customer_id: &str) -> ApiResult<Option<Customer>> {
        if !self.customers.contains_key(customer_id) {
            let c = self.state.store.find_customer_any(self.tenant, customer_id).await?;
            self.customers.insert(customer_id.to_string(), c);
        }
        Ok(self.customers[customer_id].clone())
    }

    /// The plan's features as the subscription object lists them.
    async fn plan_features(&mut self, plan_id: uuid::Uuid) -> ApiResult<Vec<Value>> {
        let Some(plan) = self.plan(plan_id).await? else { return Ok(Vec::new()) };
        if self.features.is_none() {
            self.features = Some(self.state.store.features_by_id(self.tenant).await?);
        }
        let resolved = self.state.store.effective_entitlements(self.tenant, &plan).await?;
        let features = self.features.as_ref().expect("loaded");
        Ok(resolved
            .iter()
            .filter_map(|e| {
                let f = features.get(&e.feature_id)?.clone();
                let details = camelize(serde_json::to_value(&e.details).unwrap_or_default());
                let ty = f.feature_type;
                let mut out = serde_json::to_value(FeatureOut::from(f)).unwrap_or_default();
                out["details"] = details;
                out["reset"] = json!(e.details.reset);
                out["resetTime"] = json!(e.details.reset_time);
                // The published schema's `value` is an integer: a BOOLEAN
                // feature is granted by being listed, and has none.
                if ty == FeatureType::Boolean {
                    if let Some(o) = out.as_object_mut() {
                        o.remove("value");
                    }
                } else {
                    out["value"] = e.details.value.clone();
                }
                out["hardLimit"] = json!(ty == FeatureType::Meter && e.details.hard_limit);
                Some(out)
            })
            .collect())
    }

    /// A subscription in the shape of `GET /subscriptions/{id}/`.
    pub async fn subscription(&mut self, s: &Subscription) -> ApiResult<Value> {
        let (billing_type, unit, kind) = recurrence_fields(s.charge_period.recurrence());
        let product = self.product(s.product_id).await?;
        let features = self.plan_features(s.plan_id).await?;
        let next_invoice = match s.status {
            SubStatus::Trialing if s.cancel_at.is_none() => s.trial_end,
            SubStatus::Active | SubStatus::PastDue if s.cancel_at.is_none() && !s.is_one_time() => s.period_end,
            _ => None,
        };
        let files = match self.plan(s.plan_id).await? {
            Some(p) => p.fields.links.clone(),
            None => Vec::new(),
        };
        Ok(json!({
            "id": s.id.to_string(),
            "startDate": date(s.started_at.date_naive()),
            "endDate": date_opt(s.ended_at.or(s.cancel_at)),
            "billingPeriodStartTime": time_opt(s.period_start),
            "billingPeriodEndTime": time_opt(s.period_end),
            "amount": amount_text(s.amount_minor, &s.currency),
            "amountUnits": s.amount_minor,
            "recurrence": s.charge_period.recurrence(),
            "chargePeriod": s.charge_period.as_str(),
            "currency": s.currency.to_ascii_lowercase(),
            "status": s.status.as_str(),
            "trialDaysRemaining": s.trial_days_remaining(self.now),
            "trialStart": time_opt(s.trial_start),
            "trialEnd": time_opt(s.trial_end),
            "billingType": billing_type,
            "recurrenceUnit": unit,
            "recurrenceType": kind,
            "nextInvoiceDate": time_opt(next_invoice),
            "customerId": s.customer_id,
            "product": product["name"],
            "plan": {"name": s.plan_name, "identifier": s.plan_identifier, "version": s.plan_version},
            "features": features,
            "quantities": s.features.iter().map(|f| json!({"identifier": f.identifier, "quantity": f.quantity})).collect::<Vec<_>>(),
            "files": [],
            "links": files,
            "license": [],
            "canceledAt": time_opt(s.canceled_at),
            "cancellationReason": s.cancellation_reason,
            "cancellationFeedback": s.cancellation_feedback,
            "cancellationComment": s.cancellation_comment,
            "scheduledChange": s.pending_change.as_ref().map(|c| json!({
                "planIdentifier": c.plan_identifier, "chargePeriod": c.charge_period.as_str(),
                "amount": amount_text(c.amount_minor, &s.currency), "effectiveAt": time_opt(s.period_end),
            })),
            "creditBalanceUnits": s.credit_minor,
            "createdOn": iso_seconds(s.created_at),
            "modifiedOn": iso_seconds(s.modified_at),
        }))
    }

    /// A one-time charge as `POST /charges/` answers it: the subscription
    /// shape with the product as an object.
    pub async fn charge(&mut self, s: &Subscription) -> ApiResult<Value> {
        let mut v = self.subscription(s).await?;
        let product = self.product(s.product_id).await?;
        v["product"] = json!({"name": product["name"], "id": product["id"], "identifier": product["identifier"]});
        v["features"] = json!([]);
        Ok(v)
    }

    /// An order (with its invoice id) as `GET /orders/{id}/` answers it.
    pub async fn order(&mut self, o: &Order) -> ApiResult<Value> {
        let customer = self.customer(&o.customer_id).await?;
        let product = self.product(o.product_id).await?;
        let subscription = match o.subscription_id {
            Some(id) => {
                self.state.store.find_doc::<Subscription>(DocTable::Subscriptions, self.tenant, &id.to_string()).await?
            }
            None => None,
        };
        let pm = match o.payment_method_id {
            Some(id) => self
                .state
                .store
                .payment_methods::<PaymentMethod>(self.tenant, Some(&o.customer_id))
                .await?
                .into_iter()
                .find(|m| m.id == id),
            None => None,
        };
        let t = |m: i64| amount_text(m, &o.currency);
        Ok(json!({
            "id": o.id,
            "invoiceId": o.invoice_id,
            "invoiceStatus": o.invoice_status,
            "customer": customer.as_ref().map(|c| json!({"customerId": c.customer_id, "name": c.name, "email": c.email})),
            "product": product,
            "status": o.status,
            "paidAt": time_opt(o.paid_at),
            "createdOn": iso_seconds(o.created_at),
            "amountSubtotal": t(o.subtotal_minor),
            "amountDiscount": t(o.discount_minor),
            "amountTax": t(o.tax_minor),
            "amountTotal": t(o.total_minor),
            "amountSubtotalUnits": o.subtotal_minor,
            "amountDiscountUnits": o.discount_minor,
            "amountTaxUnits": o.tax_minor,
            "amountTotalUnits": o.total_minor,
            "refundedTotalUnits": o.refunded_minor,
            "saleCurrency": o.currency,
            "saleCurrencySymbol": currency_symbol(&o.currency),
            "billingAddress": customer.as_ref().and_then(|c| c.billing_address.clone()),
            "plan": {"name": o.plan_name, "identifier": o.plan_identifier, "version": o.plan_version},
            "billingType": o.billing_type,
            "isRenewal": o.is_renewal,
            "isTrial": o.is_trial,
            "license": [],
            "lineItems": o.lines.iter().map(|l| json!({"description": l.description, "amount": t(l.amount_minor), "amountUnits": l.amount_minor})).collect::<Vec<_>>(),
            "subscription": subscription.map(|s| json!({
                "id": s.id.to_string(), "status": s.status.as_str(), "amount": amount_text(s.amount_minor, &s.currency),
                "currency": s.currency.to_ascii_lowercase(), "interval": s.charge_period.recurrence().split_whitespace().last().unwrap_or(""),
                "currencySymbol": currency_symbol(&s.currency), "nextInvoiceDate": time_opt(s.period_end),
            })),
            "customFieldsData": {},
            "paymentMethod": pm.map(|m| payment_method_summary(&m.doc)),
        }))
    }

    pub async fn refund(&mut self, r: &Refund) -> ApiResult<Value> {
        let order = self.state.store.find_doc::<Order>(DocTable::Orders, self.tenant, &r.order_id).await?;
        let order = match order {
            Some(o) => self.order(&o).await?,
            None => json!({"id": r.order_id}),
        };
        Ok(json!({
            "id": r.id.to_string(),
            "reason": r.reason,
            "amountUnits": r.amount_minor,
            "amount": amount_number(r.amount_minor, &r.currency),
            "currency": r.currency,
            "internalNote": r.internal_note,
            "failureReason": r.failure_reason,
            "status": r.status,
            "createdOn": iso_seconds(r.created_at),
            "order": order,
        }))
    }

    pub async fn transaction(&mut self, t: &Transaction) -> ApiResult<Value> {
        let order = self.state.store.find_doc::<Order>(DocTable::Orders, self.tenant, &t.order_id).await?;
        let order = match order {
            Some(o) => {
                json!({"id": o.id, "invoiceId": o.invoice_id, "status": o.status, "customerId": o.customer_id, "billingType": o.billing_type})
            }
            None => json!({"id": t.order_id}),
        };
        let n = |m: i64| amount_number(m, &t.currency);
        // Payouts settle seven days after the charge.
        let available = (t.created_at + chrono::Duration::days(7)).date_naive();
        Ok(json!({
            "id": t.id.to_string(),
            "order": order,
            "createdOn": iso_seconds(t.created_at),
            "currency": t.currency,
            "currencySymbol": currency_symbol(&t.currency),
            "amountTotal": n(t.amount_minor),
            "amountTotalUnits": t.amount_minor,
            "morFee": n(t.fee_minor()),
            "morFeeBreakdown": t.fees.iter().map(|f| json!({
                "name": f.name, "percentage": f.bp.map(bp_text), "valueUnits": f.value_minor, "currency": t.currency,
            })).collect::<Vec<_>>(),
            "collectedTax": n(t.tax_minor),
            "netPayout": n(if t.status == "success" { t.net_minor() } else { 0 }),
            "status": t.status,
            "transactionType": t.transaction_type,
            "paymentMethodType": t.payment_method_type,
            "availableOn": date(available),
            "isSettled": self.now.date_naive() >= available,
            "paymentMethodName": t.payment_method_name,
            "last4": t.last4,
        }))
    }

    pub async fn payment_method(&mut self, m: &StoredPaymentMethod<PaymentMethod>) -> ApiResult<Value> {
        let customer = self.customer(&m.doc.customer_id).await?;
        Ok(json!({
            "id": m.id,
            "customer": {
                "customerId": m.doc.customer_id,
                "name": customer.as_ref().and_then(|c| c.name.clone()),
                "email": customer.as_ref().and_then(|c| c.email.clone()),
                "billingAddress": customer.as_ref().and_then(|c| c.billing_address.clone()),
            },
            "methodType": m.doc.method_type,
            "methodData": {"brand": m.doc.brand, "last4": m.doc.last4, "expMonth": m.doc.exp_month, "expYear": m.doc.exp_year,
                "funding": m.doc.funding, "country": m.doc.country},
            "isDefault": m.is_default,
            "status": m.doc.status,
            "createdOn": iso_micros(m.doc.created_at),
            "modifiedOn": iso_micros(m.doc.modified_at),
        }))
    }

    /// A checkout session; `detail` adds its order, subscription and payment method.
    pub async fn session(&mut self, cs: &CheckoutSession, detail: bool) -> ApiResult<Value> {
        let product = self.product(cs.product_id).await?;
        let status = session_status(cs, self.now);
        // A session not yet tied to a customer has no `customerId` (the
        // published schema's is a string, never null).
        let mut customer = json!({"name": cs.customer_name, "email": cs.customer_email});
        if let Some(id) = &cs.customer_id {
            customer["customerId"] = json!(id);
        }
        let mut out = json!({
            "id": cs.id,
            "customer": customer,
            "product": product,
            "billingAddress": cs.billing_country.as_ref().or(cs.default_billing_country.as_ref()).map(|c| json!({"country": c})),
            "discountCode": cs.discount_code,
            "taxId": null,
            "currency": cs.quote.currency.to_ascii_lowercase(),
            "currencySymbol": currency_symbol(&cs.quote.currency),
            "status": status,
            "createdOn": iso_seconds(cs.created_at),
            "expiresOn": iso_seconds(cs.expires_at),
            "selectedData": {
                "planIdentifier": cs.plan_identifier,
                "planName": cs.plan_name,
                "chargePeriod": cs.charge_period.as_str(),
                "features": cs.features.iter().map(|f| json!({"identifier": f.identifier, "quantity": f.quantity})).collect::<Vec<_>>(),
                "amount": amount_text(cs.quote.total_minor, &cs.quote.currency),
                "amountUnits": cs.quote.total_minor,
            },
            "offeringData": {"offeringId": cs.offering_id, "pricingTableId": cs.pricing_table_id, "ruleId": cs.rule_id},
            "data": {
                "successUrl": cs.success_url,
                "cancelUrl": cs.cancel_url,
                "lockEmail": cs.lock_email,
                "discountsEnabled": cs.discounts_enabled,
                "defaultBillingCountry": cs.default_billing_country,
                "taxBehavior": cs.quote.tax_behavior,
            },
            "customFieldsData": {},
            "metadata": cs.metadata,
            "customization": {},
            "trialPeriod": cs.trial_days,
        });
        if detail {
            let order = match &cs.order_id {
                Some(id) => self.state.store.find_doc::<Order>(DocTable::Orders, self.tenant, id).await?,
                None => None,
            };
            let sub = match cs.subscription_id {
                Some(id) => {
                    self.state
                        .store
                        .find_doc::<Subscription>(DocTable::Subscriptions, self.tenant, &id.to_string())
                        .await?
                }
                None => None,
            };
            out["order"] = match &order {
                Some(o) => json!({
                    "id": o.id, "status": o.status, "paidAt": time_opt(o.paid_at), "createdOn": iso_seconds(o.created_at),
                    "billingType": o.billing_type, "isTrial": o.is_trial,
                    "amountSubtotal": amount_text(o.subtotal_minor, &o.currency), "amountDiscount": amount_text(o.discount_minor, &o.currency),
                    "amountTax": amount_text(o.tax_minor, &o.currency), "amountTotal": amount_text(o.total_minor, &o.currency),
                    "saleCurrency": o.currency, "saleCurrencySymbol": currency_symbol(&o.currency), "invoiceId": o.invoice_id,
                }),
                None => Value::Null,
            };
            out["subscription"] = match &sub {
                Some(s) => {
                    let (billing_type, unit, kind) = recurrence_fields(s.charge_period.recurrence());
                    json!({
                        "id": s.id.to_string(), "recurrence": s.charge_period.recurrence(),
                        "billingPeriodStartTime": time_opt(s.period_start), "billingPeriodEndTime": time_opt(s.period_end),
                        "startDate": date(s.started_at.date_naive()), "endDate": date_opt(s.ended_at.or(s.cancel_at)),
                        "status": s.status.as_str(), "amount": amount_text(s.amount_minor, &s.currency),
                        "currency": s.currency.to_ascii_lowercase(), "trialDaysRemaining": s.trial_days_remaining(self.now),
                        "billingType": billing_type, "recurrenceUnit": unit, "recurrenceType": kind,
                    })
                }
                None => Value::Null,
            };
            let pm = match (cs.payment_method_id, &cs.customer_id) {
                (Some(id), Some(customer)) => self
                    .state
                    .store
                    .payment_methods::<PaymentMethod>(self.tenant, Some(customer))
                    .await?
                    .into_iter()
                    .find(|m| m.id == id),
                _ => None,
            };
            out["paymentMethod"] = pm.map(|m| payment_method_summary(&m.doc)).unwrap_or(Value::Null);
        }
        Ok(out)
    }
}

pub fn payment_method_summary(m: &PaymentMethod) -> Value {
    json!({"paymentMethodType": m.method_type, "paymentMethodName": m.brand, "last4": m.last4})
}

/// A session's status as of `now`: an open session past its expiry is expired.
pub fn session_status(cs: &CheckoutSession, now: DateTime<Utc>) -> &str {
    if cs.status == "open" && now >= cs.expires_at {
        "expired"
    } else if cs.status == "processing" {
        "open"
    } else {
        &cs.status
    }
}

/// Log entries as the events endpoints list them (newest first).
pub fn log_entries(log: &[LogEntry], extra: Option<(&str, &Value)>) -> Vec<Value> {
    let mut out: Vec<Value> = log
        .iter()
        .rev()
        .map(|e| {
            let mut v = json!({"id": e.id, "title": e.title, "code": e.code, "status": e.status, "timestamp": iso_seconds(e.at), "metadata": e.metadata});
            if let Some((k, val)) = extra {
                v[k] = val.clone();
            }
            v
        })
        .collect();
    out.shrink_to_fit();
    out
}
