//! Buying: with a saved method, or by completing a checkout session.

use super::payments::{self, card_taker, CardInput, PayError};
use crate::clock::tenant_now;
use crate::discounts::redeem::{self, NotTaken, Trying};
use crate::error::{ServiceError, ServiceResult};
use crate::state::AppState;
use chrono::{DateTime, Duration, Utc};
use kelviq_core::billing::{CheckoutSession, FeatureQuantity, Order, PaymentMethod, Quote, SubStatus, Subscription};
use kelviq_core::customer::{BillingAddress, CustomerChanges, NewCustomer};
use kelviq_core::discounts::AppliedDiscount;
use kelviq_core::events::{self, OutboxEvent};
use kelviq_core::ids::hex32;
use kelviq_core::plans::{ChargePeriod, PlanVersion};
use kelviq_core::tax_ids::parse_tax_id;
use kelviq_core::Tenant;
use kelviq_store::{DocColumns, DocTable, StoreError, Work};
use serde_json::Value;

use super::records::*;
use super::*;

/// What is being bought.
pub struct Purchase {
    pub plan: PlanVersion,
    pub period: ChargePeriod,
    pub quote: Quote,
    pub features: Vec<FeatureQuantity>,
    pub trial_days: i64,
    pub checkout_session: Option<String>,
    /// A redeemed code's terms: the first invoice that bills a period is
    /// its first cycle.
    pub discount: Option<AppliedDiscount>,
    pub first_payment: FirstPayment,
}

/// How the first invoice is paid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum FirstPayment {
    /// Charged here, to the saved method.
    #[default]
    Charge,
    /// Not at all: the purchase is rehearsed for its first invoice's total.
    Rehearse,
    /// Already, on a provider's payment page: this much, as this payment.
    Made { amount_minor: i64, payment_ref: Option<String> },
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
) -> ServiceResult<(Subscription, Order)> {
    let trial = purchase.trial_days > 0 && purchase.period.is_recurring();
    let mut lines = purchase.quote.lines.clone();
    let mut discount = purchase.discount.clone();
    let due = if trial {
        0
    } else {
        let mut net = purchase.quote.total_minor;
        if let Some(d) = discount.as_mut() {
            if let Some(line) = d.line(&lines) {
                net += line.amount_minor;
                lines.push(line);
            }
            d.use_cycle();
        }
        let address = parties.customer.billing_address.as_ref();
        let behavior = Some(purchase.quote.tax_behavior.as_str());
        net + crate::tax::tax_invoice(state, w, address, behavior, &mut lines).await?
    };
    let mut pm = pm;
    let mut paid_by = None;
    match &purchase.first_payment {
        FirstPayment::Charge => {}
        FirstPayment::Rehearse => {}
        FirstPayment::Made { amount_minor, payment_ref } if *amount_minor == due.max(0) => {
            paid_by = payment_ref.clone();
        }
        FirstPayment::Made { .. } => {
            return Err(ServiceError::BadRequest(
                "The amount to pay changed while the payment page was open; start the checkout again.".into(),
            ))
        }
    }
    if due > 0 && purchase.first_payment == FirstPayment::Charge {
        let Some((_, method)) = pm.as_mut() else {
            return Err(ServiceError::BadRequest("A payment method is required to complete this payment.".into()));
        };
        let purpose = format!("purchase:{}", purchase.plan.id);
        paid_by = payments::charge(state, w, method, due, &purchase.quote.currency, &purpose)
            .await?
            .map_err(pay_error)?
            .payment_ref;
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
    s.discount = discount.filter(|d| d.live() && purchase.period.is_recurring());
    if let Some(end) = trial_end {
        // During a trial the period is the trial; billing periods count from its end.
        s.status = SubStatus::Trialing;
        (s.trial_start, s.trial_end) = (Some(now), Some(end));
        (s.anchor_at, s.period_start, s.period_end) = (end, Some(now), Some(end));
    }
    save_subscription(w, &s).await?;
    let pm_ref = pm.as_ref().map(|(id, m)| (*id, &**m));
    let kind = if trial { OrderKind::TrialStart } else { OrderKind::Purchase };
    let address = parties.customer.billing_address.as_ref();
    let order = record_payment(state, w, &s, pm_ref, lines, due, Charged::Paid, kind, address, paid_by, now).await?;
    order_events(w, &order, parties, None, OrderNews::Created).await?;
    subscription_event(w, "subscription.created", &s, parties, None, now).await?;
    crate::licenses::issue(state, w, &purchase.plan, &s, &order.id, now).await?;
    w.entitlements_changed(&s.customer_id, now).await?;
    Ok((s, order))
}

/// A payment's refusal as the request's: a rehearsal's pending charge
/// stays the server's (see `payments::scope`), so nothing reports it as
/// a decline.
pub fn pay_error(e: PayError) -> ServiceError {
    match e {
        PayError::Pending => ServiceError::Internal(StoreError::Held.into()),
        e => ServiceError::BadRequest(e.to_string()),
    }
}

/// The sandbox card form of a hosted checkout (or its API twin).
#[derive(Debug, Clone, Default)]
pub struct CheckoutForm {
    pub card: Option<CardInput>,
    pub payment: CheckoutPayment,
    pub email: Option<String>,
    pub name: Option<String>,
    pub billing_country: Option<String>,
    /// A business buyer's tax id (checked against the billing country's format).
    pub tax_id: Option<String>,
    /// A code typed on the page (a session that holds one keeps it).
    pub discount_code: Option<String>,
}

/// How a checkout pays.
#[derive(Debug, Clone, Default)]
pub enum CheckoutPayment {
    /// With the form's card, through the sandbox provider.
    #[default]
    Card,
    /// Not yet: the checkout runs without committing, for the first
    /// invoice's total, before the payer goes to a provider's page.
    Rehearse,
    /// On a provider's page: the card saved there, and what was paid.
    Provider { method: Box<PaymentMethod>, amount_minor: i64, payment_ref: Option<String> },
}

/// What running a checkout gave.
#[derive(Debug)]
pub enum Ran {
    Completed(Box<CheckoutSession>),
    /// A rehearsal: the first invoice's total and currency.
    Rehearsed {
        due_minor: i64,
        currency: String,
    },
}

/// Why a checkout could not complete.
#[derive(Debug)]
pub enum CheckoutError {
    /// The payer can fix it (declined card, bad email): the field and what to show.
    Payer(&'static str, String),
    Api(ServiceError),
}

impl From<ServiceError> for CheckoutError {
    fn from(e: ServiceError) -> Self {
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
    match run_checkout(state, tenant, session_id, form).await? {
        Ran::Completed(cs) => Ok(*cs),
        Ran::Rehearsed { .. } => Err(CheckoutError::Api(ServiceError::Internal(anyhow::anyhow!("a rehearsal")))),
    }
}

/// Runs a checkout for the first invoice's total, changing nothing.
pub async fn rehearse_checkout(
    state: &AppState,
    tenant: &Tenant,
    session_id: &str,
    form: CheckoutForm,
) -> Result<(i64, String), CheckoutError> {
    let form = CheckoutForm { payment: CheckoutPayment::Rehearse, card: None, ..form };
    match run_checkout(state, tenant, session_id, form).await? {
        Ran::Rehearsed { due_minor, currency } => Ok((due_minor, currency)),
        Ran::Completed(_) => Err(CheckoutError::Api(ServiceError::Internal(anyhow::anyhow!("a rehearsal committed")))),
    }
}

async fn run_checkout(
    state: &AppState,
    tenant: &Tenant,
    session_id: &str,
    form: CheckoutForm,
) -> Result<Ran, CheckoutError> {
    let now = tenant_now(state, tenant).await?;
    let mut cs: CheckoutSession = state
        .store
        .find_doc(DocTable::CheckoutSessions, tenant, session_id)
        .await?
        .ok_or_else(|| CheckoutError::Api(ServiceError::NotFound("Checkout session not found.".into())))?;
    match cs.status.as_str() {
        "open" if now >= cs.expires_at => {
            return Err(CheckoutError::Api(ServiceError::BadRequest("This checkout session has expired.".into())))
        }
        "open" => {}
        "expired" => {
            return Err(CheckoutError::Api(ServiceError::BadRequest("This checkout session has expired.".into())))
        }
        _ => {
            return Err(CheckoutError::Api(ServiceError::BadRequest(
                "This checkout session is already complete.".into(),
            )))
        }
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
    let country = form.billing_country.as_deref().or(cs.default_billing_country.as_deref()).filter(|c| !c.is_empty());
    let mut errors = kelviq_core::FieldErrors::new();
    let tax_id = form.tax_id.as_deref().and_then(|id| parse_tax_id(country, id, "tax_id", &mut errors));
    if let Some(message) = errors.fields().values().flatten().next() {
        return Err(CheckoutError::Payer("tax_id", message.clone()));
    }
    if let Some(shown) = cs.price_country.clone().filter(|_| cs.price_strict) {
        let billed = form.billing_country.as_deref().or(cs.default_billing_country.as_deref()).map(str::to_uppercase);
        if billed.as_deref() != Some(shown.as_str()) {
            fall_back_to_global_price(state, tenant, &cs, now).await?;
            let name = kelviq_core::geo::country_name(&shown).unwrap_or(shown.as_str());
            return Err(CheckoutError::Payer(
                "billing_country",
                format!(
                    "The price shown is for buyers billed in {name}; this checkout now shows the standard price. \
                     Submit again to pay it."
                ),
            ));
        }
    }
    let taker = card_taker(state, tenant).await?;
    let needs_card = !cs.quote.free;
    if needs_card && form.card.is_none() && matches!(form.payment, CheckoutPayment::Card) {
        return Err(CheckoutError::Payer("card", "Enter your card details.".into()));
    }
    let mut w = state.store.begin(tenant).await?;
    if !w.claim_session(session_id, "open", "processing").await? {
        return Err(CheckoutError::Api(ServiceError::BadRequest("This checkout session is already complete.".into())));
    }
    // The customer: the session's, created when new.
    let customer_id = cs.customer_id.clone().unwrap_or_else(hex32);
    let country = form.billing_country.clone().or(cs.default_billing_country.clone()).filter(|c| !c.is_empty());
    let customer = match w.lock_customer(&customer_id).await? {
        Some(existing) => {
            // A tax id given now joins the address it belongs to.
            let address = match (&existing.billing_address, &tax_id) {
                (None, _) => country.clone().map(|c| BillingAddress {
                    country: Some(c),
                    tax_id: tax_id.clone(),
                    ..Default::default()
                }),
                (Some(a), Some(id)) if a.country == country => {
                    Some(BillingAddress { tax_id: Some(id.clone()), ..a.clone() })
                }
                _ => None,
            };
            let changes = CustomerChanges {
                email: email.clone().filter(|e| existing.email.as_deref() != Some(e)).map(Some),
                name: form.name.clone().filter(|n| !n.is_empty() && existing.name.is_none()).map(Some),
                billing_address: address.filter(|a| existing.billing_address.as_ref() != Some(a)).map(Some),
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
                billing_address: country.clone().map(|c| BillingAddress {
                    country: Some(c),
                    tax_id: tax_id.clone(),
                    ..Default::default()
                }),
            };
            w.insert_customer(&new, now).await?
        }
    };
    let product_name = w.find_product_any(&cs.product_id.to_string()).await?.map(|p| p.name);
    let parties = Parties { customer, product_name: product_name.unwrap_or_default() };
    // The card, saved as the customer's default method.
    let mut pm = None;
    if let CheckoutPayment::Provider { method, .. } = &form.payment {
        let method = PaymentMethod {
            customer_uuid: parties.customer.id,
            customer_id: customer_id.clone(),
            ..(**method).clone()
        };
        let id = w.insert_payment_method(&customer_id, &method, true, now).await?;
        let object = events::payment_method_object(id, &method, true, &parties.customer, tenant);
        w.event(&OutboxEvent::new("payment_method.created", object, None, now)).await?;
        pm = Some((id, method));
    } else if let Some(card) =
        form.card.as_ref().filter(|_| needs_card && matches!(form.payment, CheckoutPayment::Card))
    {
        let method = match taker.attach(card, &parties.customer, now) {
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
        .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("plan version {} of a session is gone", cs.plan_id)))?;
    let typed = form.discount_code.as_deref();
    let discount = match discount_at_completion(&mut w, &cs, typed, &customer_id, country.as_deref(), now).await {
        Ok(d) => d,
        Err(NotTaken::Refused(m)) => return Err(CheckoutError::Payer("discount_code", m)),
        Err(NotTaken::Store(e)) => return Err(e.into()),
    };
    let purchase = Purchase {
        plan,
        period: cs.charge_period,
        quote: cs.quote.clone(),
        features: cs.features.clone(),
        trial_days: cs.trial_days,
        checkout_session: Some(cs.id.clone()),
        discount: discount.clone(),
        first_payment: match &form.payment {
            CheckoutPayment::Card => FirstPayment::Charge,
            CheckoutPayment::Rehearse => FirstPayment::Rehearse,
            CheckoutPayment::Provider { amount_minor, payment_ref, .. } => {
                FirstPayment::Made { amount_minor: *amount_minor, payment_ref: payment_ref.clone() }
            }
        },
    };
    let bought = buy(state, &mut w, &parties, &purchase, pm.as_mut().map(|(id, m)| (*id, m)), now).await;
    let (sub, order) = match bought {
        Ok(done) => done,
        Err(ServiceError::BadRequest(message)) => {
            drop(w);
            record_failed_attempt(state, tenant, session_id, &PayError::Declined(message.clone()), now).await?;
            return Err(CheckoutError::Payer("card", message));
        }
        Err(e) => return Err(e.into()),
    };
    if matches!(form.payment, CheckoutPayment::Rehearse) {
        // Rolled back: nothing of the rehearsal is kept.
        drop(w);
        return Ok(Ran::Rehearsed { due_minor: order.total_minor, currency: order.currency });
    }
    if let Some(d) = &discount {
        w.redeem_discount(d.discount_id, &customer_id, &cs.id, &order.id, now).await?;
        cs.discount_code = Some(d.code.clone());
        cs.discount = Some(d.clone());
    }
    cs.status = SessionStatus::Success;
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
        status: Some(cs.status.as_str().into()),
        created_at: cs.created_at,
        modified_at: now,
        ..Default::default()
    };
    w.put(DocTable::CheckoutSessions, &cs.id, &cs, &cols).await?;
    finish(state, w).await?;
    crate::http::reqlog::in_span(
        || tracing::info!(session = %cs.id, order = %order.id, subscription = %sub.id, "checkout completed"),
    );
    Ok(Ran::Completed(Box::new(cs)))
}

/// A strict local price shown to a buyer billed elsewhere: the session is
/// priced again at the plan's own price (nothing is charged here).
async fn fall_back_to_global_price(
    state: &AppState,
    tenant: &Tenant,
    cs: &CheckoutSession,
    now: DateTime<Utc>,
) -> Result<(), CheckoutError> {
    let identifiers = feature_identifiers(state, tenant).await?;
    let mut w = state.store.begin(tenant).await?;
    let Some(mut fresh) = w.lock::<CheckoutSession>(DocTable::CheckoutSessions, &cs.id).await? else {
        return Ok(());
    };
    let plan = w.find_plan_version(fresh.plan_id).await?.ok_or_else(|| {
        ServiceError::Internal(anyhow::anyhow!("plan version {} of a session is gone", fresh.plan_id))
    })?;
    let mut quote = quote_plan(&plan, fresh.charge_period, None, &fresh.features, &identifiers)?;
    quote.tax_behavior = fresh.quote.tax_behavior.clone();
    (fresh.quote, fresh.price_country, fresh.price_strict) = (quote, None, false);
    fresh.modified_at = now;
    fresh.log(
        "checkout_session.repriced",
        "Priced at the standard price: billed outside the price's country",
        "success",
        now,
    );
    let cols = DocColumns {
        status: Some(fresh.status.as_str().into()),
        created_at: fresh.created_at,
        modified_at: now,
        expires_at: Some(fresh.expires_at),
        ..Default::default()
    };
    w.put(DocTable::CheckoutSessions, &fresh.id, &fresh, &cols).await?;
    finish(state, w).await?;
    Ok(())
}

/// The code a completing checkout sells with: the one it holds (checked
/// again now that the buyer is known), else one typed on the page.
async fn discount_at_completion(
    w: &mut Work,
    cs: &CheckoutSession,
    typed: Option<&str>,
    customer_id: &str,
    country: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<AppliedDiscount>, NotTaken> {
    let trying = Trying::of_session(cs, Some(customer_id), now).completing(country);
    if let Some(held) = &cs.discount {
        redeem::recheck_for_buyer(w, held, &cs.id, &trying).await?;
        return Ok(Some(held.clone()));
    }
    let Some(code) = typed.map(str::trim).filter(|c| !c.is_empty()) else { return Ok(None) };
    redeem::session_takes_codes(cs)?;
    Ok(Some(redeem::check(w, code, &trying).await?))
}

pub(super) async fn record_failed_attempt(
    state: &AppState,
    tenant: &Tenant,
    session_id: &str,
    e: &PayError,
    now: DateTime<Utc>,
) -> ServiceResult<()> {
    let mut w = state.store.begin(tenant).await?;
    if let Some(mut cs) = w.lock::<CheckoutSession>(DocTable::CheckoutSessions, session_id).await? {
        cs.log("checkout_session.payment_failed", &format!("Payment failed: {e}"), "failed", now);
        cs.modified_at = now;
        let cols = DocColumns {
            status: Some(cs.status.as_str().into()),
            created_at: cs.created_at,
            modified_at: now,
            ..Default::default()
        };
        w.put(DocTable::CheckoutSessions, session_id, &cs, &cols).await?;
    }
    finish(state, w).await?;
    Ok(())
}

/// Buys with the customer's saved default method; shared by create and charges.
/// Buys `purchase` for a customer with their default saved method (a free
/// purchase needs none), in one transaction.
pub async fn buy_with_saved_method(
    state: &AppState,
    tenant: &Tenant,
    customer_id: &str,
    purchase: Purchase,
) -> ServiceResult<Subscription> {
    let op = payments::Op::request();
    let purchase = &purchase;
    payments::charging(state, tenant, op, move || Box::pin(buy_saved_now(state, tenant, customer_id, purchase))).await
}

async fn buy_saved_now(
    state: &AppState,
    tenant: &Tenant,
    customer_id: &str,
    purchase: &Purchase,
) -> ServiceResult<Subscription> {
    let now = tenant_now(state, tenant).await?;
    let mut w = state.store.begin(tenant).await?;
    let customer = w
        .lock_customer(customer_id)
        .await?
        .ok_or_else(|| ServiceError::BadRequest("Customer does not exist.".into()))?;
    let mut pm = w.default_payment_method::<PaymentMethod>(customer_id).await?;
    if pm.is_none() && !purchase.quote.free {
        return Err(ServiceError::BadRequest("A payment method is required to complete this payment.".into()));
    }
    let product_name = w.find_product_any(&purchase.plan.product_id.to_string()).await?.map(|p| p.name);
    let parties = Parties { customer, product_name: product_name.unwrap_or_default() };
    let (sub, _) = buy(state, &mut w, &parties, purchase, pm.as_mut().map(|m| (m.id, &mut m.doc)), now).await?;
    finish(state, w).await?;
    Ok(sub)
}

/// A one-time charge asked for, its fields checked.
#[derive(Debug, Clone)]
pub struct NewCharge {
    pub plan_identifier: String,
    pub customer_id: String,
    pub features: Vec<FeatureQuantity>,
    pub currency: Option<String>,
    /// A custom amount in minor units of `currency`, instead of the plan's price.
    pub custom_minor: Option<i64>,
    pub tax_behavior: Option<String>,
}

/// Charges a customer's saved method once for a one-time plan (or a custom
/// amount); the purchase grants the plan's entitlements.
pub async fn charge_once(state: &AppState, tenant: &Tenant, charge: NewCharge) -> ServiceResult<Subscription> {
    let NewCharge { plan_identifier, customer_id, features, currency, custom_minor: custom, tax_behavior } = charge;
    let plan = published_plan(state, tenant, &plan_identifier).await?;
    let identifiers = feature_identifiers(state, tenant).await?;
    let mut quote = match custom {
        Some(minor) => Quote {
            currency: currency.clone().unwrap_or_default(),
            lines: vec![Line::plain(plan.name.clone(), minor)],
            total_minor: minor,
            trial_days: 0,
            tax_behavior: tax_behavior.clone().unwrap_or_else(|| "UNSPECIFIED".into()),
            free: false,
        },
        None => quote_plan(&plan, ChargePeriod::OneTime, currency.as_deref(), &features, &identifiers)?,
    };
    if let Some(t) = &tax_behavior {
        quote.tax_behavior = t.clone();
    }
    let purchase = Purchase {
        plan,
        period: ChargePeriod::OneTime,
        quote,
        features,
        trial_days: 0,
        checkout_session: None,
        discount: None,
        first_payment: FirstPayment::Charge,
    };
    buy_with_saved_method(state, tenant, &customer_id, purchase).await
}
