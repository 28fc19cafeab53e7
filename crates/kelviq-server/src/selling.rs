//! The selling engine: completing checkouts, buying, changing and cancelling
//! subscriptions, renewals and their retries, refunds, and the scheduler
//! that runs due work. Every operation is one store [`Work`] (transaction):
//! records, outbox events and the entitlement change notice commit together.

use crate::app::AppState;
use crate::http::error::{ApiError, ApiResult};
use crate::payments::{provider_for, CardInput, PayError, PaymentProvider};
use chrono::{DateTime, Duration, Utc};
use kelviq_core::billing::{
    order_number, plan_change, CheckoutSession, Due, Dunning, FeatureQuantity, FeeSchedule, Line, Order, PaymentMethod,
    Proration, Quote, Refund, SubStatus, Subscription, Transaction,
};
use kelviq_core::customer::{BillingAddress, Customer, CustomerChanges, NewCustomer};
use kelviq_core::events::{self, OutboxEvent, Sold};
use kelviq_core::ids::hex32;
use kelviq_core::plans::{ChargePeriod, PlanVersion};
use kelviq_core::{Environment, Tenant};
use kelviq_store::{DocColumns, DocTable, Filter, StoreError, Work};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Commits a unit of work and forgets this process's cached entitlement
/// state of every customer it changed (other processes learn through the
/// change feed), so the very next check sees the change.
pub async fn finish(state: &AppState, w: Work) -> Result<(), StoreError> {
    for (tenant, customer) in w.commit().await? {
        state.entitlements.evict(tenant.org_id, tenant.env, &customer);
    }
    Ok(())
}

/// The tenant's current time: the server clock plus the sandbox test clock.
/// The offset is read once per process and then kept in memory; moves of
/// the clock reach the other processes through the change feed.
pub async fn tenant_now(state: &AppState, tenant: &Tenant) -> ApiResult<DateTime<Utc>> {
    if tenant.env == Environment::Production {
        return Ok(state.clock.now());
    }
    let k = (tenant.org_id, tenant.env);
    let cached = state.test_clocks.read().unwrap_or_else(|e| e.into_inner()).get(&k).copied();
    let offset = match cached {
        Some(o) => o,
        None => {
            let o = state.store.test_clock_offset(tenant).await?;
            state.test_clocks.write().unwrap_or_else(|e| e.into_inner()).insert(k, o);
            o
        }
    };
    Ok(state.clock.now() + offset)
}

pub fn dunning(state: &AppState) -> Dunning {
    Dunning { grace_days: state.config.grace_period_days, retries: state.config.renewal_retries }
}

pub fn fees(state: &AppState) -> FeeSchedule {
    FeeSchedule {
        base_bp: state.config.fee_base_bp,
        fixed_minor: state.config.fee_fixed_minor,
        subscription_bp: state.config.fee_subscription_bp,
    }
}

/// Feature identifiers by stored feature id, for quotes.
pub async fn feature_identifiers(state: &AppState, tenant: &Tenant) -> ApiResult<HashMap<String, String>> {
    Ok(state.store.features_by_id(tenant).await?.into_values().map(|f| (f.id.to_string(), f.identifier)).collect())
}

/// Prices a plan, with errors naming the request field.
pub fn quote_plan(
    plan: &PlanVersion,
    period: ChargePeriod,
    currency: Option<&str>,
    features: &[FeatureQuantity],
    identifiers: &HashMap<String, String>,
) -> ApiResult<Quote> {
    kelviq_core::billing::quote(plan, period, currency, features, &|id| identifiers.get(id).cloned())
        .map_err(|e| ApiError::field(e.field, e.message))
}

/// The published plan, or a 400 naming `planIdentifier`.
pub async fn published_plan(state: &AppState, tenant: &Tenant, identifier: &str) -> ApiResult<PlanVersion> {
    state.store.find_published_plan(tenant, identifier).await?.ok_or_else(|| {
        ApiError::field("plan_identifier", format!("Plan \"{identifier}\" does not exist or is not published."))
    })
}

fn order_columns(o: &Order) -> DocColumns {
    DocColumns {
        customer_id: Some(o.customer_id.clone()),
        status: Some(o.status.clone()),
        invoice_id: Some(o.invoice_id.clone()),
        subscription_id: o.subscription_id.map(|i| i.to_string()),
        billing_type: Some(o.billing_type.clone()),
        is_renewal: o.is_renewal,
        paid_at: o.paid_at,
        created_at: o.created_at,
        modified_at: o.created_at,
        ..Default::default()
    }
}

pub async fn save_subscription(w: &mut Work, s: &Subscription) -> ApiResult<()> {
    w.put_subscription(s).await?;
    Ok(())
}

pub async fn save_order(w: &mut Work, o: &Order) -> ApiResult<()> {
    w.put(DocTable::Orders, &o.id, o, &order_columns(o)).await?;
    Ok(())
}

/// The customer and product names an event needs.
pub struct Parties {
    pub customer: Customer,
    pub product_name: String,
}

impl Parties {
    pub fn sold(&self, product_id: uuid::Uuid) -> Sold<'_> {
        Sold { customer: &self.customer, product_id, product_name: &self.product_name }
    }
}

async fn parties(w: &mut Work, customer_id: &str, product_id: uuid::Uuid) -> ApiResult<Parties> {
    let customer = match w.lock_customer(customer_id).await? {
        Some(c) => c,
        None => w
            .find_customer_any(customer_id)
            .await?
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("customer {customer_id} of a subscription is gone")))?,
    };
    let product_name = w.find_product_any(&product_id.to_string()).await?.map(|p| p.name).unwrap_or_default();
    Ok(Parties { customer, product_name })
}

/// Writes a transaction.
async fn save_transaction(w: &mut Work, t: &Transaction) -> ApiResult<()> {
    let cols = DocColumns {
        status: Some(t.status.clone()),
        order_id: Some(t.order_id.clone()),
        created_at: t.created_at,
        modified_at: t.created_at,
        ..Default::default()
    };
    w.put(DocTable::Transactions, &t.id.to_string(), t, &cols).await?;
    Ok(())
}

/// A successful or failed charge for an order.
fn charge_transaction(
    state: &AppState,
    o: &Order,
    pm: Option<&PaymentMethod>,
    paid: bool,
    at: DateTime<Utc>,
) -> Transaction {
    Transaction {
        id: uuid::Uuid::new_v4(),
        order_id: o.id.clone(),
        transaction_type: "CHARGE".into(),
        status: if paid { "success".into() } else { "failure".into() },
        currency: o.currency.clone(),
        amount_minor: o.total_minor,
        fees: if paid { fees(state).fees(o.total_minor, o.billing_type == "SUBSCRIPTION") } else { Vec::new() },
        tax_minor: o.tax_minor,
        payment_method_type: "card".into(),
        payment_method_name: pm.map(|m| m.brand.clone()),
        last4: pm.map(|m| m.last4.clone()),
        created_at: at,
    }
}

/// A payment attempt's record: the order (and invoice) and, when money moved, the transaction.
#[allow(clippy::too_many_arguments)]
async fn record_payment(
    state: &AppState,
    w: &mut Work,
    s: &Subscription,
    pm: Option<(i64, &PaymentMethod)>,
    lines: Vec<Line>,
    total: i64,
    paid: bool,
    is_renewal: bool,
    is_trial: bool,
    at: DateTime<Utc>,
) -> ApiResult<Order> {
    let subtotal: i64 = lines.iter().map(|l| l.amount_minor).sum::<i64>().max(total);
    let order = Order {
        id: order_number("ORD", at),
        invoice_id: order_number("INV", at),
        customer_uuid: s.customer_uuid,
        customer_id: s.customer_id.clone(),
        subscription_id: Some(s.id),
        plan_id: s.plan_id,
        plan_identifier: s.plan_identifier.clone(),
        plan_name: s.plan_name.clone(),
        plan_version: s.plan_version,
        product_id: s.product_id,
        charge_period: s.charge_period,
        billing_type: if s.is_one_time() { "ONE_TIME".into() } else { "SUBSCRIPTION".into() },
        is_renewal,
        is_trial,
        status: if paid { "COMPLETE".into() } else { "FAILED".into() },
        invoice_status: if paid { "PAID".into() } else { "PAYMENT_FAILED".into() },
        currency: s.currency.clone(),
        lines,
        subtotal_minor: subtotal,
        discount_minor: subtotal - total,
        tax_minor: 0,
        total_minor: total,
        refunded_minor: 0,
        paid_at: paid.then_some(at),
        due_at: at,
        created_at: at,
        payment_method_id: pm.map(|p| p.0),
        features: s.features.clone(),
        log: Vec::new(),
    };
    save_order(w, &order).await?;
    if total > 0 {
        save_transaction(w, &charge_transaction(state, &order, pm.map(|p| p.1), paid, at)).await?;
    }
    Ok(order)
}

async fn order_events(w: &mut Work, o: &Order, p: &Parties, pay_link: Option<String>, created: bool) -> ApiResult<()> {
    let tenant = w.tenant().clone();
    let sold = p.sold(o.product_id);
    let at = o.paid_at.unwrap_or(o.created_at);
    if created {
        w.event(&OutboxEvent::new("order.created", events::order_object(o, &sold, &tenant), None, at)).await?;
    } else {
        w.event(&OutboxEvent::new("order.updated", events::order_object(o, &sold, &tenant), None, at)).await?;
    }
    let invoice_type = if o.invoice_status == "PAID" { "invoice.paid" } else { "invoice.payment_failed" };
    if created {
        w.event(&OutboxEvent::new(
            "invoice.created",
            events::invoice_object(o, &sold, &tenant, pay_link.clone()),
            None,
            at,
        ))
        .await?;
    }
    w.event(&OutboxEvent::new(invoice_type, events::invoice_object(o, &sold, &tenant, pay_link), None, at)).await?;
    Ok(())
}

async fn subscription_event(
    w: &mut Work,
    kind: &str,
    s: &Subscription,
    p: &Parties,
    previous: Option<Map<String, Value>>,
    at: DateTime<Utc>,
) -> ApiResult<()> {
    let tenant = w.tenant().clone();
    let object = events::subscription_object(s, &p.sold(s.product_id), &tenant);
    w.event(&OutboxEvent::new(kind, object, previous, at)).await?;
    Ok(())
}

/// The fields of `before` that differ in `after`, with their old values.
fn previous_attributes(before: &Value, after: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    if let (Some(b), Some(a)) = (before.as_object(), after.as_object()) {
        for (k, v) in b {
            if a.get(k) != Some(v) && k != "modified_on" {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

/// What is being bought.
pub struct Purchase {
    pub plan: PlanVersion,
    pub period: ChargePeriod,
    pub quote: Quote,
    pub features: Vec<FeatureQuantity>,
    pub trial_days: i64,
    pub checkout_session: Option<String>,
}

/// Buys `purchase` for `customer` with a saved method: charges the first
/// period (nothing during a trial), writes the subscription (or one-time
/// purchase), its order, invoice and transaction, and their events.
/// A declined first charge writes nothing and is an error.
pub async fn buy(
    state: &AppState,
    w: &mut Work,
    parties: &Parties,
    purchase: &Purchase,
    pm: Option<(i64, &mut PaymentMethod)>,
    now: DateTime<Utc>,
) -> ApiResult<(Subscription, Order)> {
    let provider = provider_for(w.tenant().env);
    let trial = purchase.trial_days > 0 && purchase.period.is_recurring();
    let due = if trial { 0 } else { purchase.quote.total_minor };
    let mut pm = pm;
    if due > 0 {
        let Some((_, method)) = pm.as_mut() else {
            return Err(ApiError::BadRequest("A payment method is required to complete this payment.".into()));
        };
        provider.charge(method, due, &purchase.quote.currency).map_err(pay_error)?;
    }
    if let Some((id, method)) = pm.as_ref() {
        w.save_payment_method(*id, &**method).await?;
    }
    let trial_end = trial.then(|| now + Duration::days(purchase.trial_days));
    let mut s = Subscription::start(
        parties.customer.id,
        &parties.customer.customer_id,
        &purchase.plan,
        purchase.period,
        &purchase.quote.currency,
        purchase.quote.total_minor,
        purchase.features.clone(),
        now,
    );
    s.payment_method_id = pm.as_ref().map(|p| p.0);
    s.checkout_session = purchase.checkout_session.clone();
    if let Some(end) = trial_end {
        // During a trial the period is the trial; billing periods count from its end.
        s.status = SubStatus::Trialing;
        (s.trial_start, s.trial_end) = (Some(now), Some(end));
        (s.anchor_at, s.period_start, s.period_end) = (end, Some(now), Some(end));
    }
    save_subscription(w, &s).await?;
    let pm_ref = pm.as_ref().map(|(id, m)| (*id, &**m));
    let order =
        record_payment(state, w, &s, pm_ref, purchase.quote.lines.clone(), due, true, false, trial, now).await?;
    order_events(w, &order, parties, None, true).await?;
    subscription_event(w, "subscription.created", &s, parties, None, now).await?;
    w.entitlements_changed(&s.customer_id, now).await?;
    Ok((s, order))
}

pub fn pay_error(e: PayError) -> ApiError {
    ApiError::BadRequest(e.to_string())
}

/// The sandbox card form of a hosted checkout (or its API twin).
#[derive(Debug, Clone, Default)]
pub struct CheckoutForm {
    pub card: Option<CardInput>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub billing_country: Option<String>,
}

/// Why a checkout could not complete.
#[derive(Debug)]
pub enum CheckoutError {
    /// The payer can fix it (declined card, bad email): the field and what to show.
    Payer(&'static str, String),
    Api(ApiError),
}

impl From<ApiError> for CheckoutError {
    fn from(e: ApiError) -> Self {
        CheckoutError::Api(e)
    }
}

impl From<StoreError> for CheckoutError {
    fn from(e: StoreError) -> Self {
        CheckoutError::Api(e.into())
    }
}

/// Completes a checkout session: customer, payment method, subscription,
/// order, invoice, transaction and every event, in one transaction. A
/// session completes at most once, however many payers race.
pub async fn complete_checkout(
    state: &AppState,
    tenant: &Tenant,
    session_id: &str,
    form: CheckoutForm,
) -> Result<CheckoutSession, CheckoutError> {
    let now = tenant_now(state, tenant).await?;
    let mut cs: CheckoutSession = state
        .store
        .find_doc(DocTable::CheckoutSessions, tenant, session_id)
        .await?
        .ok_or_else(|| CheckoutError::Api(ApiError::NotFound("Checkout session not found.".into())))?;
    match cs.status.as_str() {
        "open" if now >= cs.expires_at => {
            return Err(CheckoutError::Api(ApiError::BadRequest("This checkout session has expired.".into())))
        }
        "open" => {}
        "expired" => return Err(CheckoutError::Api(ApiError::BadRequest("This checkout session has expired.".into()))),
        _ => return Err(CheckoutError::Api(ApiError::BadRequest("This checkout session is already complete.".into()))),
    }
    let email = match (&form.email, &cs.customer_email) {
        (Some(given), Some(locked)) if cs.lock_email && !given.eq_ignore_ascii_case(locked) => {
            return Err(CheckoutError::Payer("email", "The email address of this checkout cannot be changed.".into()))
        }
        (Some(given), _) if !given.trim().is_empty() => Some(given.trim().to_string()),
        (_, known) => known.clone(),
    };
    if let Some(e) = &email {
        if !kelviq_core::validation::is_valid_email(e) {
            return Err(CheckoutError::Payer("email", "Enter a valid email address.".into()));
        }
    }
    let provider = provider_for(tenant.env);
    let needs_card = !cs.quote.free;
    if needs_card && form.card.is_none() {
        return Err(CheckoutError::Payer("card", "Enter your card details.".into()));
    }
    let mut w = state.store.begin(tenant).await?;
    if !w.claim_session(session_id, "open", "processing").await? {
        return Err(CheckoutError::Api(ApiError::BadRequest("This checkout session is already complete.".into())));
    }
    // The customer: the session's, created when new.
    let customer_id = cs.customer_id.clone().unwrap_or_else(hex32);
    let country = form.billing_country.clone().or(cs.default_billing_country.clone()).filter(|c| !c.is_empty());
    let customer = match w.lock_customer(&customer_id).await? {
        Some(existing) => {
            let changes = CustomerChanges {
                email: email.clone().filter(|e| existing.email.as_deref() != Some(e)).map(Some),
                name: form.name.clone().filter(|n| !n.is_empty() && existing.name.is_none()).map(Some),
                billing_address: country
                    .clone()
                    .filter(|_| existing.billing_address.is_none())
                    .map(|c| Some(BillingAddress { country: Some(c), ..Default::default() })),
                ..Default::default()
            };
            w.update_customer(&existing, &changes, now).await?
        }
        None => {
            let new = NewCustomer {
                customer_id: customer_id.clone(),
                name: form.name.clone().filter(|n| !n.is_empty()).or(cs.customer_name.clone()),
                email: email.clone(),
                metadata: Value::Object(Default::default()),
                billing_address: country.clone().map(|c| BillingAddress { country: Some(c), ..Default::default() }),
            };
            w.insert_customer(&new, now).await?
        }
    };
    let product_name = w.find_product_any(&cs.product_id.to_string()).await?.map(|p| p.name);
    let parties = Parties { customer, product_name: product_name.unwrap_or_default() };
    // The card, saved as the customer's default method.
    let mut pm = None;
    if let Some(card) = form.card.as_ref().filter(|_| needs_card) {
        let method = match provider.attach(card, &parties.customer, now) {
            Ok(m) => m,
            Err(e) => {
                drop(w);
                record_failed_attempt(state, tenant, session_id, &e, now).await?;
                return Err(CheckoutError::Payer("card", e.to_string()));
            }
        };
        let id = w.insert_payment_method(&customer_id, &method, true, now).await?;
        let object = events::payment_method_object(id, &method, true, &parties.customer, tenant);
        w.event(&OutboxEvent::new("payment_method.created", object, None, now)).await?;
        pm = Some((id, method));
    }
    let plan = w
        .find_plan_version(cs.plan_id)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("plan version {} of a session is gone", cs.plan_id)))?;
    let purchase = Purchase {
        plan,
        period: cs.charge_period,
        quote: cs.quote.clone(),
        features: cs.features.clone(),
        trial_days: cs.trial_days,
        checkout_session: Some(cs.id.clone()),
    };
    let bought = buy(state, &mut w, &parties, &purchase, pm.as_mut().map(|(id, m)| (*id, m)), now).await;
    let (sub, order) = match bought {
        Ok(done) => done,
        Err(ApiError::BadRequest(message)) => {
            drop(w);
            record_failed_attempt(state, tenant, session_id, &PayError::Declined(message.clone()), now).await?;
            return Err(CheckoutError::Payer("card", message));
        }
        Err(e) => return Err(e.into()),
    };
    cs.status = "success".into();
    cs.customer_id = Some(customer_id);
    cs.customer_email = parties.customer.email.clone();
    cs.customer_name = parties.customer.name.clone();
    cs.billing_country = country;
    cs.order_id = Some(order.id.clone());
    cs.subscription_id = Some(sub.id);
    cs.payment_method_id = pm.as_ref().map(|p| p.0);
    cs.modified_at = now;
    cs.log("checkout_session.completed", "Checkout completed", "success", now);
    let object = events::checkout_object(&cs, &parties.sold(cs.product_id), tenant, order.total_minor);
    w.event(&OutboxEvent::new("checkout.completed", object, None, now)).await?;
    let cols = DocColumns {
        status: Some(cs.status.clone()),
        created_at: cs.created_at,
        modified_at: now,
        ..Default::default()
    };
    w.put(DocTable::CheckoutSessions, &cs.id, &cs, &cols).await?;
    finish(state, w).await?;
    crate::http::reqlog::in_span(
        || tracing::info!(session = %cs.id, order = %order.id, subscription = %sub.id, "checkout completed"),
    );
    Ok(cs)
}

async fn record_failed_attempt(
    state: &AppState,
    tenant: &Tenant,
    session_id: &str,
    e: &PayError,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let mut w = state.store.begin(tenant).await?;
    if let Some(mut cs) = w.lock::<CheckoutSession>(DocTable::CheckoutSessions, session_id).await? {
        cs.log("checkout_session.payment_failed", &format!("Payment failed: {e}"), "failed", now);
        cs.modified_at = now;
        let cols = DocColumns {
            status: Some(cs.status.clone()),
            created_at: cs.created_at,
            modified_at: now,
            ..Default::default()
        };
        w.put(DocTable::CheckoutSessions, session_id, &cs, &cols).await?;
    }
    finish(state, w).await?;
    Ok(())
}

/// The method a subscription is billed with: the customer's default one (a
/// card saved later replaces a failing one), else the one it was bought with.
async fn billing_method(w: &mut Work, s: &Subscription) -> ApiResult<Option<(i64, PaymentMethod)>> {
    if let Some(m) = w.default_payment_method::<PaymentMethod>(&s.customer_id).await? {
        return Ok(Some((m.id, m.doc)));
    }
    Ok(match s.payment_method_id {
        Some(id) => w.lock_payment_method::<PaymentMethod>(id).await?.map(|m| (id, m.doc)),
        None => None,
    })
}

/// Charges a subscription's saved method for `total`, recording the order.
/// Returns the order; the subscription is not saved here.
async fn charge_subscription(
    state: &AppState,
    w: &mut Work,
    s: &Subscription,
    lines: Vec<Line>,
    total: i64,
    is_renewal: bool,
    at: DateTime<Utc>,
) -> ApiResult<Order> {
    let provider: &dyn PaymentProvider = provider_for(w.tenant().env);
    let method = billing_method(w, s).await?;
    let mut method = method;
    let paid = match method.as_mut() {
        _ if total <= 0 => true,
        Some((_, m)) => provider.charge(m, total, &s.currency).is_ok(),
        None => false,
    };
    if let Some((id, m)) = &method {
        w.save_payment_method(*id, m).await?;
    }
    record_payment(state, w, s, method.as_ref().map(|(i, m)| (*i, m)), lines, total, paid, is_renewal, false, at).await
}

fn renewal_lines(s: &Subscription, credit_used: i64) -> Vec<Line> {
    let mut lines = vec![Line::plain(format!("{} ({})", s.plan_name, s.charge_period.as_str()), s.amount_minor)];
    if s.debit_minor > 0 {
        lines.push(Line::plain("Proration from a plan change", s.debit_minor));
    }
    if credit_used > 0 {
        lines.push(Line::plain("Account credit", -credit_used));
    }
    lines
}

/// Collects a renewal (or the first period after a trial) at `at`: paid →
/// active; declined → past due with retries.
async fn collect_period(
    state: &AppState,
    w: &mut Work,
    s: &mut Subscription,
    p: &Parties,
    at: DateTime<Utc>,
) -> ApiResult<()> {
    let gross = s.amount_minor + s.debit_minor;
    let credit_used = s.credit_minor.min(gross).max(0);
    let total = gross - credit_used;
    let lines = renewal_lines(s, credit_used);
    let order = charge_subscription(state, w, s, lines, total, true, at).await?;
    s.credit_minor -= credit_used;
    s.debit_minor = 0;
    let before = s.status;
    if order.status == "COMPLETE" {
        s.status = SubStatus::Active;
        s.unpaid_order = None;
    } else {
        s.status = SubStatus::PastDue;
        s.past_due_since = Some(at);
        s.retries = 0;
        s.next_retry_at = dunning(state).next_retry(at, 0);
        s.unpaid_order = Some(order.id.clone());
        if s.next_retry_at.is_none() {
            end_subscription(s, at, "CANCELLED_BY_PROVIDER");
        }
    }
    s.modified_at = at;
    order_events(w, &order, p, Some(pay_link(state, &order)), true).await?;
    if s.status != before || order.status != "COMPLETE" {
        subscription_event(w, "subscription.updated", s, p, None, at).await?;
    }
    if s.status == SubStatus::Canceled {
        subscription_event(w, "subscription.cancelled", s, p, None, at).await?;
    }
    Ok(())
}

fn pay_link(state: &AppState, o: &Order) -> String {
    let base = state.config.public_url.clone().unwrap_or_default();
    format!("{}/invoices/{}/pay/", base.trim_end_matches('/'), o.invoice_id)
}

fn end_subscription(s: &mut Subscription, at: DateTime<Utc>, reason: &str) {
    s.status = SubStatus::Canceled;
    s.ended_at = Some(at);
    s.cancel_at = None;
    s.next_retry_at = None;
    s.pending_change = None;
    if s.canceled_at.is_none() {
        s.canceled_at = Some(at);
    }
    if s.cancellation_reason.is_none() {
        s.cancellation_reason = Some(reason.into());
    }
}

/// Runs one due item of a locked subscription at its due time.
async fn run_item(state: &AppState, w: &mut Work, mut s: Subscription, at: DateTime<Utc>, due: Due) -> ApiResult<()> {
    let p = parties(w, &s.customer_id, s.product_id).await?;
    match due {
        Due::Cancel => {
            end_subscription(&mut s, at, "CANCELLED_BY_MERCHANT");
            s.modified_at = at;
            subscription_event(w, "subscription.cancelled", &s, &p, None, at).await?;
        }
        Due::TrialEnd => {
            s.anchor_at = at;
            s.period_index = 0;
            let (start, end) = s.period_bounds(0).expect("trials are recurring");
            (s.period_start, s.period_end) = (Some(start), Some(end));
            collect_period(state, w, &mut s, &p, at).await?;
        }
        Due::Renew => {
            let before = events::subscription_object(&s, &p.sold(s.product_id), w.tenant());
            let mut changed_plan = false;
            if let Some(change) = s.pending_change.take() {
                changed_plan = change.plan_id != s.plan_id;
                s.plan_id = change.plan_id;
                s.plan_identifier = change.plan_identifier;
                s.plan_name = change.plan_name;
                s.plan_version = change.plan_version;
                s.product_id = change.product_id;
                s.features = change.features;
                s.amount_minor = change.amount_minor;
                if change.charge_period != s.charge_period {
                    s.charge_period = change.charge_period;
                    s.anchor_at = at;
                    s.period_index = -1;
                }
            }
            s.period_index += 1;
            let (start, end) = s.period_bounds(s.period_index).expect("renewals are recurring");
            (s.period_start, s.period_end) = (Some(start), Some(end));
            if changed_plan {
                let p2 = parties(w, &s.customer_id, s.product_id).await?;
                subscription_event(w, "subscription.plan_changed", &s, &p2, before.as_object().cloned(), at).await?;
            }
            collect_period(state, w, &mut s, &p, at).await?;
        }
        Due::Retry => {
            let order_id = s.unpaid_order.clone().unwrap_or_default();
            let mut order: Order = w
                .lock(DocTable::Orders, &order_id)
                .await?
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("unpaid order {order_id} is gone")))?;
            let provider = provider_for(w.tenant().env);
            let mut paid = false;
            if let Some((id, mut m)) = billing_method(w, &s).await? {
                paid = provider.charge(&mut m, order.total_minor, &order.currency).is_ok();
                w.save_payment_method(id, &m).await?;
                s.payment_method_id = Some(id);
            }
            s.retries += 1;
            if paid {
                order.status = "COMPLETE".into();
                order.invoice_status = "PAID".into();
                order.paid_at = Some(at);
                save_order(w, &order).await?;
                let method = match order.payment_method_id.or(s.payment_method_id) {
                    Some(id) => w.lock_payment_method::<PaymentMethod>(id).await?.map(|m| m.doc),
                    None => None,
                };
                save_transaction(w, &charge_transaction(state, &order, method.as_ref(), true, at)).await?;
                order_events(w, &order, &p, None, false).await?;
                s.status = SubStatus::Active;
                s.past_due_since = None;
                s.next_retry_at = None;
                s.unpaid_order = None;
                s.retries = 0;
                subscription_event(w, "subscription.updated", &s, &p, None, at).await?;
            } else {
                let since = s.past_due_since.unwrap_or(at);
                s.next_retry_at = dunning(state).next_retry(since, s.retries);
                if s.next_retry_at.is_none() {
                    end_subscription(&mut s, at, "CANCELLED_BY_PROVIDER");
                    subscription_event(w, "subscription.cancelled", &s, &p, None, at).await?;
                }
            }
            s.modified_at = at;
        }
    }
    save_subscription(w, &s).await?;
    w.entitlements_changed(&s.customer_id, at).await?;
    Ok(())
}

/// What [`run_due`] did.
#[derive(Debug, Clone, Copy)]
pub struct DueRun {
    /// How many items ran.
    pub ran: u64,
    /// The due time of the last item run, when `limit` items ran before
    /// everything due was done (what is due later is left for another call).
    pub stopped_at: Option<DateTime<Utc>>,
}

/// Runs everything of the tenant that falls due at or before `until`, in
/// due order, each at its own due time, at most `limit` items.
pub async fn run_due(state: &AppState, tenant: &Tenant, until: DateTime<Utc>, limit: u64) -> ApiResult<DueRun> {
    let mut ran = 0;
    let mut last = None;
    loop {
        let mut w = state.store.begin(tenant).await?;
        let Some((id, _)) = w.next_due(until).await? else { break };
        if ran >= limit {
            return Ok(DueRun { ran, stopped_at: last });
        }
        let Some(s) = w.lock::<Subscription>(DocTable::Subscriptions, &id).await? else { break };
        match s.next_due() {
            Some((at, due)) if at <= until => {
                run_item(state, &mut w, s, at, due).await?;
                ran += 1;
                last = Some(at);
            }
            // The column was stale: correct it.
            _ => save_subscription(&mut w, &s).await?,
        }
        finish(state, w).await?;
    }
    Ok(DueRun { ran, stopped_at: None })
}

/// How many due items one scheduler pass runs for a tenant.
const SCHEDULER_ITEMS_PER_TICK: u64 = 100_000;

/// The scheduler: runs due work of every tenant on its own clock until shutdown.
pub fn spawn_scheduler(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = std::time::Duration::from_millis(state.config.scheduler_interval_ms.max(10));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => break,
            }
            if let Err(e) = scheduler_tick(&state).await {
                tracing::warn!(error = %e, "scheduler tick failed");
            }
        }
    })
}

async fn scheduler_tick(state: &AppState) -> anyhow::Result<()> {
    let wall = state.clock.now();
    let ahead = state.store.test_clocks().await?.into_iter().map(|c| c.2).max().unwrap_or_else(Duration::zero);
    for (org_id, org_seq, env) in state.store.tenants_with_due_work(wall + ahead.max(Duration::zero())).await? {
        let Ok(env) = env.parse::<Environment>() else { continue };
        let tenant = Tenant { org_id, org_seq, env };
        let now = tenant_now(state, &tenant).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let ran = run_due(state, &tenant, now, SCHEDULER_ITEMS_PER_TICK).await.map_err(|e| anyhow::anyhow!("{e}"))?.ran;
        if ran > 0 {
            tracing::info!(org = %org_id, env = env.as_str(), ran, "ran due subscription work");
        }
    }
    Ok(())
}

/// A subscription change request, parsed.
#[derive(Debug, Clone)]
pub struct ChangeRequest {
    pub plan: PlanVersion,
    pub period: ChargePeriod,
    pub features: Vec<FeatureQuantity>,
    pub quote: Quote,
    pub proration: Option<Proration>,
    /// `trialEnd`: `Some(None)` is "now".
    pub trial_end: Option<Option<DateTime<Utc>>>,
    pub activate_on_payment: bool,
}

/// Whether a subscription can be changed through `update/`.
pub fn check_changeable(s: &Subscription) -> ApiResult<()> {
    if s.is_one_time() {
        return Err(ApiError::BadRequest(
            "Upgrading from a free or one-time plan is not supported here; start a checkout for the new plan.".into(),
        ));
    }
    if !s.status.grants() {
        return Err(ApiError::BadRequest(format!("A {} subscription cannot be changed.", s.status.as_str())));
    }
    Ok(())
}

/// Applies a plan change (or trial change) now or schedules it; returns the
/// id of the subscription that carries on (a new one with `activate_on_payment`).
pub async fn change_subscription(
    state: &AppState,
    tenant: &Tenant,
    id: &str,
    req: ChangeRequest,
) -> ApiResult<uuid::Uuid> {
    let now = tenant_now(state, tenant).await?;
    let mut w = state.store.begin(tenant).await?;
    let mut s: Subscription = w.lock(DocTable::Subscriptions, id).await?.ok_or_else(sub_not_found)?;
    check_changeable(&s)?;
    if req.quote.currency != s.currency {
        return Err(ApiError::field("plan_identifier", format!("The new plan has no price in {}.", s.currency)));
    }
    let p = parties(&mut w, &s.customer_id, s.product_id).await?;
    let before = events::subscription_object(&s, &p.sold(s.product_id), tenant);
    let old_plan = s.plan_id;
    // A trial ending now is billed as a fresh cycle of the new plan.
    let end_trial_now = matches!(req.trial_end, Some(None)) && s.status == SubStatus::Trialing;
    let same_plan = req.plan.id == s.plan_id && req.period == s.charge_period && req.features == s.features;
    if req.activate_on_payment && !same_plan {
        let change =
            plan_change(&s, req.quote.total_minor, req.period, req.proration.or(Some(Proration::ImmediateCharge)), now);
        let mut next = s.clone();
        next.id = uuid::Uuid::new_v4();
        next.status = SubStatus::Incomplete;
        adopt_plan(&mut next, &req);
        next.created_at = now;
        next.modified_at = now;
        next.credit_minor = s.credit_minor + change.credit_minor;
        next.debit_minor = s.debit_minor + change.debit_minor;
        if change.restart_cycle {
            restart_cycle(&mut next, now);
        }
        let order =
            charge_subscription(state, &mut w, &next, change.lines.clone(), change.charge_now_minor, false, now)
                .await?;
        order_events(&mut w, &order, &p, Some(pay_link(state, &order)), true).await?;
        if order.status == "COMPLETE" {
            next.status = if s.status == SubStatus::Trialing { SubStatus::Trialing } else { SubStatus::Active };
            s.status = SubStatus::Superseded;
            s.superseded_by = Some(next.id);
            s.modified_at = now;
            save_subscription(&mut w, &s).await?;
            save_subscription(&mut w, &next).await?;
            subscription_event(&mut w, "subscription.plan_changed", &next, &p, before.as_object().cloned(), now)
                .await?;
        } else {
            next.status = SubStatus::IncompleteExpired;
            save_subscription(&mut w, &next).await?;
        }
        w.entitlements_changed(&s.customer_id, now).await?;
        finish(state, w).await?;
        return Ok(next.id);
    }
    if let Some(Some(end)) = req.trial_end {
        s.status = SubStatus::Trialing;
        s.trial_start = s.trial_start.or(Some(now));
        s.trial_end = Some(end);
        s.period_start = Some(now);
        s.period_end = Some(end);
    }
    if end_trial_now {
        s.trial_end = Some(now);
        s.status = SubStatus::Active;
    }
    if !same_plan || end_trial_now {
        let change = if end_trial_now {
            adopt_plan(&mut s, &req);
            restart_cycle(&mut s, now);
            let lines = req.quote.lines.clone();
            let order = charge_subscription(state, &mut w, &s, lines, req.quote.total_minor, false, now).await?;
            settle_immediate(state, &mut s, &order, now);
            order_events(&mut w, &order, &p, Some(pay_link(state, &order)), true).await?;
            None
        } else {
            Some(plan_change(&s, req.quote.total_minor, req.period, req.proration, now))
        };
        if let Some(change) = change {
            if change.now {
                adopt_plan(&mut s, &req);
                s.pending_change = None;
                s.credit_minor += change.credit_minor;
                s.debit_minor += change.debit_minor;
                if change.restart_cycle {
                    restart_cycle(&mut s, now);
                }
                if change.charge_now_minor > 0 {
                    let order = charge_subscription(
                        state,
                        &mut w,
                        &s,
                        change.lines.clone(),
                        change.charge_now_minor,
                        false,
                        now,
                    )
                    .await?;
                    settle_immediate(state, &mut s, &order, now);
                    order_events(&mut w, &order, &p, Some(pay_link(state, &order)), true).await?;
                }
            } else {
                s.pending_change = Some(kelviq_core::billing::PendingChange {
                    plan_id: req.plan.id,
                    plan_identifier: req.plan.identifier.clone(),
                    plan_name: req.plan.name.clone(),
                    plan_version: req.plan.version,
                    product_id: req.plan.product_id,
                    charge_period: req.period,
                    features: req.features.clone(),
                    amount_minor: req.quote.total_minor,
                });
            }
        }
    }
    s.modified_at = now;
    save_subscription(&mut w, &s).await?;
    let p2 = parties(&mut w, &s.customer_id, s.product_id).await?;
    let after = events::subscription_object(&s, &p2.sold(s.product_id), tenant);
    let previous = previous_attributes(&before, &after);
    if s.plan_id != old_plan {
        subscription_event(&mut w, "subscription.plan_changed", &s, &p2, before.as_object().cloned(), now).await?;
    } else if !previous.is_empty() || s.pending_change.is_some() {
        subscription_event(&mut w, "subscription.updated", &s, &p2, Some(previous), now).await?;
    }
    w.entitlements_changed(&s.customer_id, now).await?;
    finish(state, w).await?;
    Ok(s.id)
}

/// After an immediate charge: a declined one puts the subscription past due.
fn settle_immediate(state: &AppState, s: &mut Subscription, order: &Order, now: DateTime<Utc>) {
    if order.status != "COMPLETE" {
        s.status = SubStatus::PastDue;
        s.past_due_since = Some(now);
        s.retries = 0;
        s.next_retry_at = dunning(state).next_retry(now, 0);
        s.unpaid_order = Some(order.id.clone());
    }
}

fn adopt_plan(s: &mut Subscription, req: &ChangeRequest) {
    s.plan_id = req.plan.id;
    s.plan_identifier = req.plan.identifier.clone();
    s.plan_name = req.plan.name.clone();
    s.plan_version = req.plan.version;
    s.product_id = req.plan.product_id;
    s.features = req.features.clone();
    s.amount_minor = req.quote.total_minor;
    s.charge_period = req.period;
}

fn restart_cycle(s: &mut Subscription, now: DateTime<Utc>) {
    s.anchor_at = now;
    s.period_index = 0;
    if let Some((start, end)) = s.period_bounds(0) {
        (s.period_start, s.period_end) = (Some(start), Some(end));
    }
}

pub fn sub_not_found() -> ApiError {
    ApiError::NotFound("Subscription not found.".into())
}

/// A cancellation request.
#[derive(Debug, Clone)]
pub struct Cancellation {
    pub kind: String,
    pub date: Option<chrono::NaiveDate>,
    pub feedback: Option<String>,
    pub comment: Option<String>,
}

pub async fn cancel_subscription(state: &AppState, tenant: &Tenant, id: &str, c: Cancellation) -> ApiResult<()> {
    let now = tenant_now(state, tenant).await?;
    let mut w = state.store.begin(tenant).await?;
    let mut s: Subscription = w.lock(DocTable::Subscriptions, id).await?.ok_or_else(sub_not_found)?;
    if !s.status.grants() && s.status != SubStatus::Incomplete {
        return Err(ApiError::BadRequest(format!("A {} subscription cannot be cancelled.", s.status.as_str())));
    }
    let p = parties(&mut w, &s.customer_id, s.product_id).await?;
    let before = events::subscription_object(&s, &p.sold(s.product_id), tenant);
    s.canceled_at = Some(now);
    s.cancellation_reason = Some("CANCELLED_BY_MERCHANT".into());
    s.cancellation_feedback = c.feedback.clone();
    s.cancellation_comment = c.comment.clone();
    s.modified_at = now;
    let at = match c.kind.as_str() {
        "IMMEDIATE" => None,
        "CURRENT_PERIOD_ENDS" if s.is_one_time() => {
            return Err(ApiError::field("cancellation_type", "A one-time purchase has no period; cancel it IMMEDIATE."))
        }
        "CURRENT_PERIOD_ENDS" => s.period_end,
        _ => {
            let date = c
                .date
                .ok_or_else(|| ApiError::field("cancellation_date", "This field is required for SPECIFIC_DATE."))?;
            let at = date.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
            if at <= now {
                return Err(ApiError::field("cancellation_date", "The cancellation date must be in the future."));
            }
            Some(at)
        }
    };
    match at {
        None => {
            end_subscription(&mut s, now, "CANCELLED_BY_MERCHANT");
            save_subscription(&mut w, &s).await?;
            subscription_event(&mut w, "subscription.cancelled", &s, &p, None, now).await?;
        }
        Some(at) => {
            s.cancel_at = Some(at);
            save_subscription(&mut w, &s).await?;
            let after = events::subscription_object(&s, &p.sold(s.product_id), tenant);
            subscription_event(&mut w, "subscription.updated", &s, &p, Some(previous_attributes(&before, &after)), now)
                .await?;
        }
    }
    w.entitlements_changed(&s.customer_id, now).await?;
    finish(state, w).await?;
    Ok(())
}

/// Refunds (part of) an order. A full refund revokes what the order bought.
pub async fn refund_order(
    state: &AppState,
    tenant: &Tenant,
    order_id: &str,
    amount: Option<i64>,
    reason: Option<String>,
    note: Option<String>,
) -> ApiResult<Refund> {
    let now = tenant_now(state, tenant).await?;
    let mut w = state.store.begin(tenant).await?;
    let mut order: Order =
        w.lock(DocTable::Orders, order_id).await?.ok_or_else(|| ApiError::NotFound("Order not found.".into()))?;
    if order.status != "COMPLETE" && order.status != "PARTIAL_REFUND" {
        return Err(ApiError::BadRequest(format!("A {} order cannot be refunded.", order.status)));
    }
    let remaining = order.total_minor - order.refunded_minor;
    let amount = amount.unwrap_or(remaining);
    if amount > remaining {
        return Err(ApiError::Error("Amount exceeds order total.".into()));
    }
    if amount <= 0 {
        return Err(ApiError::Error("Nothing is left to refund on this order.".into()));
    }
    let method = match order.payment_method_id {
        Some(id) => w.lock_payment_method::<PaymentMethod>(id).await?.map(|m| m.doc),
        None => None,
    };
    provider_for(tenant.env).refund(method.as_ref(), amount, &order.currency).map_err(pay_error)?;
    let refund = Refund {
        id: uuid::Uuid::new_v4(),
        order_id: order.id.clone(),
        amount_minor: amount,
        currency: order.currency.clone(),
        reason: Some(reason.unwrap_or_else(|| "REQUESTED_BY_CUSTOMER".into())),
        internal_note: note,
        status: "SUCCEEDED".into(),
        failure_reason: None,
        created_at: now,
    };
    let cols = DocColumns {
        status: Some(refund.status.clone()),
        order_id: Some(order.id.clone()),
        created_at: now,
        modified_at: now,
        ..Default::default()
    };
    w.put(DocTable::Refunds, &refund.id.to_string(), &refund, &cols).await?;
    let t = Transaction {
        id: uuid::Uuid::new_v4(),
        order_id: order.id.clone(),
        transaction_type: "REFUND".into(),
        status: "success".into(),
        currency: order.currency.clone(),
        amount_minor: -amount,
        fees: Vec::new(),
        tax_minor: 0,
        payment_method_type: "card".into(),
        payment_method_name: method.as_ref().map(|m| m.brand.clone()),
        last4: method.as_ref().map(|m| m.last4.clone()),
        created_at: now,
    };
    let tcols = DocColumns {
        status: Some("success".into()),
        order_id: Some(order.id.clone()),
        created_at: now,
        modified_at: now,
        ..Default::default()
    };
    w.put(DocTable::Transactions, &t.id.to_string(), &t, &tcols).await?;
    order.refunded_minor += amount;
    let full = order.refunded_minor >= order.total_minor;
    order.status = if full { "REFUNDED".into() } else { "PARTIAL_REFUND".into() };
    save_order(&mut w, &order).await?;
    let p = parties(&mut w, &order.customer_id, order.product_id).await?;
    let object = events::refund_object(&refund, &p.customer, order.subscription_id, tenant);
    w.event(&OutboxEvent::new("refund.created", object, None, now)).await?;
    let object = events::order_object(&order, &p.sold(order.product_id), tenant);
    w.event(&OutboxEvent::new("order.refunded", object, None, now)).await?;
    if full {
        if let Some(sub_id) = order.subscription_id {
            if let Some(mut s) = w.lock::<Subscription>(DocTable::Subscriptions, &sub_id.to_string()).await? {
                if s.status.grants() {
                    end_subscription(&mut s, now, "CANCELLED_BY_MERCHANT");
                    s.modified_at = now;
                    save_subscription(&mut w, &s).await?;
                    subscription_event(&mut w, "subscription.cancelled", &s, &p, None, now).await?;
                    w.entitlements_changed(&s.customer_id, now).await?;
                }
            }
        }
    }
    finish(state, w).await?;
    Ok(refund)
}

/// Live subscriptions of a customer (for archive checks and entitlements).
pub async fn live_subscriptions(state: &AppState, tenant: &Tenant, customer_id: &str) -> ApiResult<Vec<Subscription>> {
    let statuses = SubStatus::ALL.iter().filter(|s| s.grants()).map(|s| s.as_str().to_string()).collect();
    let filters = [Filter::Eq("customer_id", customer_id.to_string()), Filter::In("status", statuses)];
    Ok(state.store.list_docs(DocTable::Subscriptions, tenant, &filters, 1000, 0).await?)
}

/// Publishes a plan's newest draft and, when asked, moves the live
/// subscribers of its earlier versions onto it, in one transaction:
/// `features` points them at the new version (its entitlements apply at
/// once); `pricing` sets their price to the new version's for their charge
/// period, currency and quantities from the next renewal (a subscriber whose
/// period or currency the new version does not sell keeps its price).
/// Returns the published version and how many subscriptions moved.
pub async fn publish_and_migrate(
    state: &AppState,
    tenant: &Tenant,
    identifier: &str,
    features: bool,
    pricing: bool,
) -> Result<(PlanVersion, u64), StoreError> {
    let now = state.clock.now();
    let mut w = state.store.begin(tenant).await?;
    let plan = w.publish_plan(identifier, now).await?;
    let mut moved = 0;
    if features || pricing {
        let identifiers: HashMap<String, String> =
            w.features_by_id().await?.into_values().map(|f| (f.id.to_string(), f.identifier)).collect();
        let live = SubStatus::ALL.iter().filter(|s| s.grants()).map(|s| s.as_str().to_string()).collect();
        let subs: Vec<Subscription> = w.lock_all(DocTable::Subscriptions, &[Filter::In("status", live)]).await?;
        for mut s in subs.into_iter().filter(|s| s.plan_identifier == identifier && s.plan_version < plan.version) {
            let before = s.clone();
            if features {
                s.plan_id = plan.id;
                s.plan_version = plan.version;
                s.plan_name = plan.name.clone();
            }
            if pricing {
                let q = kelviq_core::billing::quote(&plan, s.charge_period, Some(&s.currency), &s.features, &|id| {
                    identifiers.get(id).cloned()
                });
                if let Some(q) = q.ok().filter(|q| q.currency == s.currency && !q.free) {
                    s.amount_minor = q.total_minor;
                }
            }
            if s == before {
                continue;
            }
            s.modified_at = now;
            w.put_subscription(&s).await?;
            let customer = w.find_customer_any(&s.customer_id).await?;
            let product = w.find_product_any(&s.product_id.to_string()).await?;
            if let Some(customer) = customer {
                let sold = Sold {
                    customer: &customer,
                    product_id: s.product_id,
                    product_name: product.as_ref().map_or("", |p| &p.name),
                };
                let after = events::subscription_object(&s, &sold, tenant);
                let old = events::subscription_object(&before, &sold, tenant);
                let object = OutboxEvent::new(
                    "subscription.updated",
                    after.clone(),
                    Some(previous_attributes(&old, &after)),
                    now,
                );
                w.event(&object).await?;
            }
            w.entitlements_changed(&s.customer_id, now).await?;
            moved += 1;
        }
    }
    finish(state, w).await?;
    Ok((plan, moved))
}
