//! Checkout sessions as the API shows them.

use super::orders::PaymentMethodSummary;
use super::subscription::QuantityOut;
use super::{date_opt, time_opt, ProductRef, Renderer};
use crate::error::ServiceResult;
use kelviq_core::billing::{amount_text, CheckoutSession, Order, Subscription};
use kelviq_core::money::currency_symbol;
use kelviq_core::periods::recurrence_fields;
use kelviq_core::timefmt::{date, iso_seconds};
use kelviq_store::DocTable;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Who is paying (a session not yet tied to a customer has no `customerId`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionCustomerOut {
    pub name: Option<String>,
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
}

/// The billing country a session knows.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionAddressOut {
    pub country: String,
}

/// What the session sells.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelectedDataOut {
    pub plan_identifier: String,
    pub plan_name: String,
    pub charge_period: String,
    pub features: Vec<QuantityOut>,
    pub amount: String,
    pub amount_units: i64,
}

/// Where the session came from.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfferingDataOut {
    pub offering_id: Option<String>,
    pub pricing_table_id: Option<String>,
    pub rule_id: Option<String>,
}

/// How the session was asked for.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionDataOut {
    pub success_url: String,
    pub cancel_url: Option<String>,
    pub lock_email: bool,
    pub discounts_enabled: bool,
    pub default_billing_country: Option<String>,
    pub tax_behavior: String,
}

/// The order a completed session made, in short.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionOrderOut {
    pub id: String,
    pub status: String,
    pub paid_at: Option<String>,
    pub created_on: String,
    pub billing_type: String,
    pub is_trial: bool,
    pub amount_subtotal: String,
    pub amount_discount: String,
    pub amount_tax: String,
    pub amount_total: String,
    pub sale_currency: String,
    pub sale_currency_symbol: String,
    pub invoice_id: String,
}

/// The subscription a completed session started, in short.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionSubscriptionOut {
    pub id: String,
    pub recurrence: String,
    pub billing_period_start_time: Option<String>,
    pub billing_period_end_time: Option<String>,
    pub start_date: String,
    pub end_date: Option<String>,
    pub status: String,
    pub amount: String,
    pub currency: String,
    pub trial_days_remaining: i64,
    pub billing_type: String,
    pub recurrence_unit: Option<i64>,
    pub recurrence_type: Option<String>,
}

/// What a session's detail view adds: its order, subscription and payment method.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionDetailOut {
    pub order: Option<SessionOrderOut>,
    pub subscription: Option<SessionSubscriptionOut>,
    pub payment_method: Option<PaymentMethodSummary>,
}

/// How much of a session to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionView {
    /// As lists show it.
    Summary,
    /// With its order, subscription and payment method.
    Detail,
}

/// A checkout session, as `GET /checkout/sessions/{id}/` answers it (the
/// list leaves out `order`, `subscription` and `paymentMethod`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionOut {
    pub id: String,
    pub customer: SessionCustomerOut,
    pub product: ProductRef,
    pub billing_address: Option<SessionAddressOut>,
    pub discount_code: Option<String>,
    #[schema(value_type = Option<String>)]
    pub tax_id: Option<()>,
    pub currency: String,
    pub currency_symbol: String,
    pub status: String,
    pub created_on: String,
    pub expires_on: String,
    pub selected_data: SelectedDataOut,
    pub offering_data: OfferingDataOut,
    pub data: SessionDataOut,
    #[schema(value_type = Object)]
    pub custom_fields_data: Map<String, Value>,
    #[schema(value_type = Object)]
    pub metadata: Value,
    #[schema(value_type = Object)]
    pub customization: Map<String, Value>,
    pub trial_period: i64,
    #[serde(flatten)]
    pub detail: Option<SessionDetailOut>,
}

impl Renderer<'_> {
    /// A checkout session; `detail` adds its order, subscription and payment method.
    pub async fn session(&mut self, cs: &CheckoutSession, view: SessionView) -> ServiceResult<SessionOut> {
        let product = self.product(cs.product_id).await?;
        let status = cs.shown_status(self.now).as_str().to_string();
        let mut out = SessionOut {
            id: cs.id.clone(),
            customer: SessionCustomerOut {
                name: cs.customer_name.clone(),
                email: cs.customer_email.clone(),
                customer_id: cs.customer_id.clone(),
            },
            product,
            billing_address: cs
                .billing_country
                .as_ref()
                .or(cs.default_billing_country.as_ref())
                .map(|c| SessionAddressOut { country: c.clone() }),
            discount_code: cs.discount_code.clone(),
            tax_id: None,
            currency: cs.quote.currency.to_ascii_lowercase(),
            currency_symbol: currency_symbol(&cs.quote.currency),
            status,
            created_on: iso_seconds(cs.created_at),
            expires_on: iso_seconds(cs.expires_at),
            selected_data: SelectedDataOut {
                plan_identifier: cs.plan_identifier.clone(),
                plan_name: cs.plan_name.clone(),
                charge_period: cs.charge_period.as_str().to_string(),
                features: cs
                    .features
                    .iter()
                    .map(|f| QuantityOut { identifier: f.identifier.clone(), quantity: f.quantity })
                    .collect(),
                amount: amount_text(cs.quote.total_minor, &cs.quote.currency),
                amount_units: cs.quote.total_minor,
            },
            offering_data: OfferingDataOut {
                offering_id: cs.offering_id.clone(),
                pricing_table_id: cs.pricing_table_id.clone(),
                rule_id: cs.rule_id.clone(),
            },
            data: SessionDataOut {
                success_url: cs.success_url.clone(),
                cancel_url: cs.cancel_url.clone(),
                lock_email: cs.lock_email,
                discounts_enabled: cs.discounts_enabled,
                default_billing_country: cs.default_billing_country.clone(),
                tax_behavior: cs.quote.tax_behavior.clone(),
            },
            custom_fields_data: Map::new(),
            metadata: cs.metadata.clone(),
            customization: Map::new(),
            trial_period: cs.trial_days,
            detail: None,
        };
        if view == SessionView::Detail {
            out.detail = Some(self.session_detail(cs).await?);
        }
        Ok(out)
    }

    async fn session_detail(&mut self, cs: &CheckoutSession) -> ServiceResult<SessionDetailOut> {
        let order = match &cs.order_id {
            Some(id) => self.state.store.find_doc::<Order>(DocTable::Orders, self.tenant, id).await?,
            None => None,
        };
        let sub = match cs.subscription_id {
            Some(id) => {
                self.state.store.find_doc::<Subscription>(DocTable::Subscriptions, self.tenant, &id.to_string()).await?
            }
            None => None,
        };
        let pm = match (cs.payment_method_id, &cs.customer_id) {
            (Some(id), Some(customer)) => self.saved_method(customer, id).await?,
            _ => None,
        };
        Ok(SessionDetailOut {
            order: order.map(|o| SessionOrderOut {
                status: o.status.as_str().to_string(),
                paid_at: time_opt(o.paid_at),
                created_on: iso_seconds(o.created_at),
                billing_type: o.billing_type.clone(),
                is_trial: o.is_trial,
                amount_subtotal: amount_text(o.subtotal_minor, &o.currency),
                amount_discount: amount_text(o.discount_minor, &o.currency),
                amount_tax: amount_text(o.tax_minor, &o.currency),
                amount_total: amount_text(o.total_minor, &o.currency),
                sale_currency_symbol: currency_symbol(&o.currency),
                sale_currency: o.currency,
                invoice_id: o.invoice_id,
                id: o.id,
            }),
            subscription: sub.map(|s| {
                let (billing_type, unit, kind) = recurrence_fields(s.charge_period.recurrence());
                SessionSubscriptionOut {
                    id: s.id.to_string(),
                    recurrence: s.charge_period.recurrence().to_string(),
                    billing_period_start_time: time_opt(s.period_start),
                    billing_period_end_time: time_opt(s.period_end),
                    start_date: date(s.started_at.date_naive()),
                    end_date: date_opt(s.ended_at.or(s.cancel_at)),
                    status: s.status.as_str().to_string(),
                    amount: amount_text(s.amount_minor, &s.currency),
                    currency: s.currency.to_ascii_lowercase(),
                    trial_days_remaining: s.trial_days_remaining(self.now),
                    billing_type: billing_type.to_string(),
                    recurrence_unit: unit,
                    recurrence_type: kind,
                }
            }),
            payment_method: pm.as_ref().map(PaymentMethodSummary::from),
        })
    }
}
