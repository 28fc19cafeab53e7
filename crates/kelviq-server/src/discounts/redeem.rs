//! Redeeming a code inside the unit of work that sells with it: the code's
//! row is locked first, so the redemptions counted are all there are.

use chrono::{DateTime, Utc};
use kelviq_core::billing::CheckoutSession;
use kelviq_core::discounts::{normalize_code, AppliedDiscount, Redeeming};
use kelviq_store::{StoreError, Work};

/// What a code is tried on.
#[derive(Debug, Clone)]
pub struct Trying<'a> {
    pub product_id: uuid::Uuid,
    pub plan_identifier: &'a str,
    pub currency: &'a str,
    /// What the first invoice charges before the discount.
    pub subtotal_minor: i64,
    /// The buyer, when known.
    pub customer_id: Option<&'a str>,
    /// The buyer's billing country, when known, and whether it is final.
    pub country: Option<&'a str>,
    pub country_final: bool,
    pub now: DateTime<Utc>,
}

/// Why a code was not taken: the buyer's message, or the store's fault.
#[derive(Debug)]
pub enum NotTaken {
    Refused(String),
    Store(StoreError),
}

impl From<StoreError> for NotTaken {
    fn from(e: StoreError) -> Self {
        NotTaken::Store(e)
    }
}

impl<'a> Trying<'a> {
    /// A code tried on a checkout session's purchase, by `customer_id`.
    pub fn of_session(cs: &'a CheckoutSession, customer_id: Option<&'a str>, now: DateTime<Utc>) -> Trying<'a> {
        Trying {
            product_id: cs.product_id,
            plan_identifier: &cs.plan_identifier,
            currency: &cs.quote.currency,
            subtotal_minor: cs.quote.total_minor,
            customer_id,
            country: cs.billing_country.as_deref().or(cs.default_billing_country.as_deref()),
            country_final: false,
            now,
        }
    }

    /// The same, at completion: the billing country is the buyer's last word.
    pub fn completing(mut self, country: Option<&'a str>) -> Trying<'a> {
        (self.country, self.country_final) = (country, true);
        self
    }
}

/// Whether a session takes a code at all: it allows discounts, and its
/// price is the plan's, not free and not an amount the buyer chose.
pub fn session_takes_codes(cs: &CheckoutSession) -> Result<(), NotTaken> {
    if !cs.discounts_enabled {
        return Err(NotTaken::Refused("Discounts are not enabled for this checkout.".into()));
    }
    if cs.custom_amount || cs.quote.free {
        return Err(NotTaken::Refused("A discount code does not apply to this purchase.".into()));
    }
    Ok(())
}

pub const UNKNOWN_CODE: &str = "This discount code is invalid or has expired.";

/// Checks `code` for a purchase and locks it for the work; returns its
/// terms in the purchase's currency. The caller then holds or redeems it in
/// the same work.
pub async fn check(w: &mut Work, code: &str, t: &Trying<'_>) -> Result<AppliedDiscount, NotTaken> {
    let code = normalize_code(code).map_err(|_| NotTaken::Refused(UNKNOWN_CODE.into()))?;
    let Some(d) = w.lock_discount(&code).await? else {
        return Err(NotTaken::Refused(UNKNOWN_CODE.into()));
    };
    let taken = w.discount_taken(d.id, t.customer_id, None, t.now).await?;
    let bought_before = match t.customer_id {
        Some(c) if d.first_purchase_only => w.customer_bought_before(c).await?,
        _ => false,
    };
    let trying = Redeeming {
        now: t.now,
        product_id: t.product_id,
        plan_identifier: t.plan_identifier,
        currency: t.currency,
        subtotal_minor: t.subtotal_minor,
        taken: taken.all,
        taken_by_customer: taken.by_customer,
        bought_before,
        country: t.country,
        country_final: t.country_final,
    };
    d.check(&trying).map_err(|r| NotTaken::Refused(r.message()))?;
    d.terms(t.currency).ok_or_else(|| NotTaken::Refused(UNKNOWN_CODE.into()))
}

/// Checks a code an open checkout holds against the buyer now known (the
/// per-customer limit, first purchase only, the billing country); the code
/// itself still counts its hold. A code deleted since keeps its hold's terms.
pub async fn recheck_for_buyer(
    w: &mut Work,
    held: &AppliedDiscount,
    session_id: &str,
    t: &Trying<'_>,
) -> Result<(), NotTaken> {
    let Some(d) = w.lock_discount(&held.code).await?.filter(|d| d.id == held.discount_id) else {
        return Ok(());
    };
    let customer_id = t.customer_id.unwrap_or_default();
    let taken = match d.max_redemptions_per_customer {
        Some(_) => w.discount_taken(d.id, Some(customer_id), Some(session_id), t.now).await?,
        None => Default::default(),
    };
    let bought_before = d.first_purchase_only && w.customer_bought_before(customer_id).await?;
    let buyer = Redeeming {
        now: t.now,
        product_id: t.product_id,
        plan_identifier: t.plan_identifier,
        currency: t.currency,
        subtotal_minor: t.subtotal_minor,
        taken: 0,
        taken_by_customer: taken.by_customer,
        bought_before,
        country: t.country,
        country_final: t.country_final,
    };
    // Its window, limit and scope held when the hold was taken.
    let mut held_terms = d.clone();
    (held_terms.starts_at, held_terms.expires_at, held_terms.max_redemptions) = (None, None, None);
    (held_terms.minimum_amount, held_terms.products, held_terms.plans) = (None, Vec::new(), Vec::new());
    held_terms.check(&buyer).map_err(|r| NotTaken::Refused(r.message()))
}

/// What a code would take off an open checkout, without taking it (the
/// hosted page's Apply): checked in a work that is then dropped.
pub async fn preview(
    state: &crate::state::AppState,
    tenant: &kelviq_core::Tenant,
    cs: &CheckoutSession,
    code: &str,
    now: DateTime<Utc>,
) -> Result<AppliedDiscount, NotTaken> {
    session_takes_codes(cs)?;
    let mut w = state.store.begin(tenant).await?;
    let trying = Trying::of_session(cs, cs.customer_id.as_deref(), now);
    let terms = check(&mut w, code, &trying).await;
    drop(w);
    terms
}
