//! Orders with their invoices, refunds, transactions and payment methods as
//! the API shows them.

use super::subscription::PlanRefOut;
use super::{log_entries, time_opt, LogEntryOut, ProductRef, Renderer};
use crate::error::ServiceResult;
use crate::state::AppState;
use chrono::{DateTime, Utc};
use kelviq_core::billing::{
    amount_number, amount_text, bp_text, Order, PaymentMethod, Refund, Subscription, Transaction, TransactionStatus,
};
use kelviq_core::customer::BillingAddress;
use kelviq_core::money::currency_symbol;
use kelviq_core::timefmt::{date, iso_micros, iso_seconds};
use kelviq_core::Tenant;
use kelviq_store::Filter;
use kelviq_store::{DocTable, StoredPaymentMethod};
use serde::Serialize;
use serde_json::json;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Who an order is for.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderCustomerOut {
    pub customer_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// One line of an order's invoice.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LineOut {
    /// BASE, QUANTITY, USAGE, PRORATION, DISCOUNT, TAX, CREDIT or LATE_USAGE.
    pub kind: String,
    pub description: String,
    /// The feature's identifier, for per-unit and usage lines.
    pub feature_id: Option<String>,
    pub quantity: Option<u64>,
    pub amount: String,
    pub amount_units: i64,
}

/// The subscription an order paid for.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderSubscriptionOut {
    pub id: String,
    pub status: String,
    pub amount: String,
    pub currency: String,
    pub interval: String,
    pub currency_symbol: String,
    pub next_invoice_date: Option<String>,
}

/// How a payment was made, in short.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentMethodSummary {
    pub payment_method_type: String,
    pub payment_method_name: String,
    pub last4: String,
}

impl From<&PaymentMethod> for PaymentMethodSummary {
    fn from(m: &PaymentMethod) -> Self {
        PaymentMethodSummary {
            payment_method_type: m.method_type.clone(),
            payment_method_name: m.brand.clone(),
            last4: m.last4.clone(),
        }
    }
}

/// An order (with its invoice), as `GET /orders/{id}/` answers it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderOut {
    pub id: String,
    pub invoice_id: String,
    pub invoice_status: String,
    pub customer: Option<OrderCustomerOut>,
    pub product: ProductRef,
    pub status: String,
    pub paid_at: Option<String>,
    pub created_on: String,
    pub amount_subtotal: String,
    pub amount_discount: String,
    pub amount_tax: String,
    pub amount_total: String,
    pub amount_subtotal_units: i64,
    pub amount_discount_units: i64,
    pub amount_tax_units: i64,
    pub amount_total_units: i64,
    pub refunded_total_units: i64,
    pub sale_currency: String,
    pub sale_currency_symbol: String,
    #[schema(value_type = Option<Object>)]
    pub billing_address: Option<BillingAddress>,
    pub plan: PlanRefOut,
    pub billing_type: String,
    pub is_renewal: bool,
    pub is_trial: bool,
    /// The licenses this order issued.
    pub license: Vec<crate::wire::licenses::SubscriptionLicenseOut>,
    pub line_items: Vec<LineOut>,
    pub subscription: Option<OrderSubscriptionOut>,
    #[schema(value_type = Object)]
    pub custom_fields_data: Map<String, Value>,
    pub payment_method: Option<PaymentMethodSummary>,
}

/// The order a refund or transaction belongs to: the whole order, or (when
/// it cannot be found) its id.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum OrderOrId<T> {
    Order(Box<T>),
    Id { id: String },
}

/// A refund, as `GET /refunds/{id}/` answers it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefundOut {
    pub id: String,
    pub reason: Option<String>,
    pub amount_units: i64,
    #[schema(value_type = f64)]
    pub amount: Value,
    pub currency: String,
    pub internal_note: Option<String>,
    pub failure_reason: Option<String>,
    pub status: String,
    /// Beyond Kelviq: given back as credit on the subscription's next invoices.
    pub as_credit: bool,
    pub created_on: String,
    #[schema(value_type = Object)]
    pub order: OrderOrId<OrderOut>,
}

/// The order of a transaction, in short.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransactionOrderOut {
    pub id: String,
    pub invoice_id: String,
    pub status: String,
    pub customer_id: String,
    pub billing_type: String,
}

/// One line of the platform fee.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeeLineOut {
    pub name: String,
    pub percentage: Option<String>,
    pub value_units: i64,
    pub currency: String,
}

/// A transaction (a charge or a refund), as `GET /transaction/` lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransactionOut {
    pub id: String,
    #[schema(value_type = Object)]
    pub order: OrderOrId<TransactionOrderOut>,
    pub created_on: String,
    pub currency: String,
    pub currency_symbol: String,
    #[schema(value_type = f64)]
    pub amount_total: Value,
    pub amount_total_units: i64,
    #[schema(value_type = f64)]
    pub mor_fee: Value,
    pub mor_fee_breakdown: Vec<FeeLineOut>,
    #[schema(value_type = f64)]
    pub collected_tax: Value,
    #[schema(value_type = f64)]
    pub net_payout: Value,
    pub status: String,
    pub transaction_type: String,
    pub payment_method_type: String,
    pub available_on: String,
    pub is_settled: bool,
    pub payment_method_name: Option<String>,
    pub last4: Option<String>,
}

/// Whose payment method it is.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentMethodCustomerOut {
    pub customer_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub billing_address: Option<BillingAddress>,
}

/// A card's details.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MethodDataOut {
    pub brand: String,
    pub last4: String,
    pub exp_month: u32,
    pub exp_year: i32,
    pub funding: String,
    pub country: Option<String>,
}

/// A saved payment method, as `GET /payment-methods/` lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentMethodOut {
    pub id: i64,
    pub customer: PaymentMethodCustomerOut,
    pub method_type: String,
    pub method_data: MethodDataOut,
    pub is_default: bool,
    pub status: String,
    pub created_on: String,
    pub modified_on: String,
}

impl Renderer<'_> {
    /// The saved method of a customer with this id, if it still exists.
    pub(super) async fn saved_method(&mut self, customer_id: &str, id: i64) -> ServiceResult<Option<PaymentMethod>> {
        let methods = self.state.store.payment_methods::<PaymentMethod>(self.tenant, Some(customer_id)).await?;
        Ok(methods.into_iter().find(|m| m.id == id).map(|m| m.doc))
    }

    /// An order (with its invoice id) as `GET /orders/{id}/` answers it.
    pub async fn order(&mut self, o: &Order) -> ServiceResult<OrderOut> {
        let customer = self.customer(&o.customer_id).await?;
        let product = self.product(o.product_id).await?;
        let subscription = match o.subscription_id {
            Some(id) => {
                self.state.store.find_doc::<Subscription>(DocTable::Subscriptions, self.tenant, &id.to_string()).await?
            }
            None => None,
        };
        let pm = match o.payment_method_id {
            Some(id) => self.saved_method(&o.customer_id, id).await?,
            None => None,
        };
        let license = match o.subscription_id {
            Some(id) => crate::licenses::subscription_licenses(self, id, Some(&o.id)).await?,
            None => Vec::new(),
        };
        let t = |m: i64| amount_text(m, &o.currency);
        Ok(OrderOut {
            id: o.id.clone(),
            invoice_id: o.invoice_id.clone(),
            invoice_status: o.invoice_status.as_str().to_string(),
            customer: customer.as_ref().map(|c| OrderCustomerOut {
                customer_id: c.customer_id.clone(),
                name: c.name.clone(),
                email: c.email.clone(),
            }),
            product,
            status: o.status.as_str().to_string(),
            paid_at: time_opt(o.paid_at),
            created_on: iso_seconds(o.created_at),
            amount_subtotal: t(o.subtotal_minor),
            amount_discount: t(o.discount_minor),
            amount_tax: t(o.tax_minor),
            amount_total: t(o.total_minor),
            amount_subtotal_units: o.subtotal_minor,
            amount_discount_units: o.discount_minor,
            amount_tax_units: o.tax_minor,
            amount_total_units: o.total_minor,
            refunded_total_units: o.refunded_minor,
            sale_currency: o.currency.clone(),
            sale_currency_symbol: currency_symbol(&o.currency),
            billing_address: customer.as_ref().and_then(|c| c.billing_address.clone()),
            plan: PlanRefOut {
                name: o.plan_name.clone(),
                identifier: o.plan_identifier.clone(),
                version: o.plan_version,
            },
            billing_type: o.billing_type.clone(),
            is_renewal: o.is_renewal,
            is_trial: o.is_trial,
            license,
            line_items: o
                .lines
                .iter()
                .map(|l| LineOut {
                    kind: l.kind.as_str().to_string(),
                    description: l.description.clone(),
                    feature_id: l.feature.clone(),
                    quantity: l.quantity,
                    amount: t(l.amount_minor),
                    amount_units: l.amount_minor,
                })
                .collect(),
            subscription: subscription.map(|s| OrderSubscriptionOut {
                id: s.id.to_string(),
                status: s.status.as_str().to_string(),
                amount: amount_text(s.amount_minor, &s.currency),
                currency: s.currency.to_ascii_lowercase(),
                interval: s.charge_period.recurrence().split_whitespace().last().unwrap_or("").to_string(),
                currency_symbol: currency_symbol(&s.currency),
                next_invoice_date: time_opt(s.period_end),
            }),
            custom_fields_data: Map::new(),
            payment_method: pm.as_ref().map(PaymentMethodSummary::from),
        })
    }

    pub async fn refund(&mut self, r: &Refund) -> ServiceResult<RefundOut> {
        let order = self.state.store.find_doc::<Order>(DocTable::Orders, self.tenant, &r.order_id).await?;
        let order = match order {
            Some(o) => OrderOrId::Order(Box::new(self.order(&o).await?)),
            None => OrderOrId::Id { id: r.order_id.clone() },
        };
        Ok(RefundOut {
            id: r.id.to_string(),
            reason: r.reason.clone(),
            amount_units: r.amount_minor,
            amount: amount_number(r.amount_minor, &r.currency),
            currency: r.currency.clone(),
            internal_note: r.internal_note.clone(),
            failure_reason: r.failure_reason.clone(),
            status: r.status.as_str().to_string(),
            as_credit: r.as_credit,
            created_on: iso_seconds(r.created_at),
            order,
        })
    }

    pub async fn transaction(&mut self, t: &Transaction) -> ServiceResult<TransactionOut> {
        let order = self.state.store.find_doc::<Order>(DocTable::Orders, self.tenant, &t.order_id).await?;
        let order = match order {
            Some(o) => OrderOrId::Order(Box::new(TransactionOrderOut {
                id: o.id,
                invoice_id: o.invoice_id,
                status: o.status.as_str().to_string(),
                customer_id: o.customer_id,
                billing_type: o.billing_type,
            })),
            None => OrderOrId::Id { id: t.order_id.clone() },
        };
        let n = |m: i64| amount_number(m, &t.currency);
        // Payouts settle seven days after the charge.
        let available = (t.created_at + chrono::Duration::days(7)).date_naive();
        Ok(TransactionOut {
            id: t.id.to_string(),
            order,
            created_on: iso_seconds(t.created_at),
            currency: t.currency.clone(),
            currency_symbol: currency_symbol(&t.currency),
            amount_total: n(t.amount_minor),
            amount_total_units: t.amount_minor,
            mor_fee: n(t.fee_minor()),
            mor_fee_breakdown: t
                .fees
                .iter()
                .map(|f| FeeLineOut {
                    name: f.name.clone(),
                    percentage: f.bp.map(bp_text),
                    value_units: f.value_minor,
                    currency: t.currency.clone(),
                })
                .collect(),
            collected_tax: n(t.tax_minor),
            net_payout: n(if t.status == TransactionStatus::Success { t.net_minor() } else { 0 }),
            status: t.status.as_str().to_string(),
            transaction_type: t.transaction_type.clone(),
            payment_method_type: t.payment_method_type.clone(),
            available_on: date(available),
            is_settled: self.now.date_naive() >= available,
            payment_method_name: t.payment_method_name.clone(),
            last4: t.last4.clone(),
        })
    }

    pub async fn payment_method(&mut self, m: &StoredPaymentMethod<PaymentMethod>) -> ServiceResult<PaymentMethodOut> {
        let customer = self.customer(&m.doc.customer_id).await?;
        Ok(PaymentMethodOut {
            id: m.id,
            customer: PaymentMethodCustomerOut {
                customer_id: m.doc.customer_id.clone(),
                name: customer.as_ref().and_then(|c| c.name.clone()),
                email: customer.as_ref().and_then(|c| c.email.clone()),
                billing_address: customer.as_ref().and_then(|c| c.billing_address.clone()),
            },
            method_type: m.doc.method_type.clone(),
            method_data: MethodDataOut {
                brand: m.doc.brand.clone(),
                last4: m.doc.last4.clone(),
                exp_month: m.doc.exp_month,
                exp_year: m.doc.exp_year,
                funding: m.doc.funding.clone(),
                country: m.doc.country.clone(),
            },
            is_default: m.is_default,
            status: m.doc.status.clone(),
            created_on: iso_micros(m.doc.created_at),
            modified_on: iso_micros(m.doc.modified_at),
        })
    }
}

/// An order's story, newest first: created, then paid or failed, then
/// refunded, with its log; for a subscription's order, every order of
/// the subscription.
pub async fn order_history(state: &AppState, tenant: &Tenant, o: Order) -> ServiceResult<Vec<LogEntryOut>> {
    let related: Vec<Order> = match o.subscription_id {
        Some(sub) => {
            let filters = [Filter::Eq("subscription_id", sub.to_string())];
            state.store.list_docs::<Order>(DocTable::Orders, tenant, &filters, 10_000, 0).await?
        }
        None => vec![o],
    };
    // An order's story: created, then paid or failed, then refunded.
    let mut entries: Vec<(DateTime<Utc>, LogEntryOut)> = Vec::new();
    for order in &related {
        let mut push = |at: DateTime<Utc>, code: &str, title: &str, status: &str| {
            let entry = LogEntryOut {
                id: 0,
                title: title.to_string(),
                code: code.to_string(),
                status: status.to_string(),
                timestamp: iso_seconds(at),
                metadata: json!({}),
                order: Some(order.id.clone()),
            };
            entries.push((at, entry));
        };
        push(order.created_at, "order.created", "Order created", "success");
        match order.status.as_str() {
            "FAILED" => push(order.created_at, "order.payment_failed", "Payment failed", "failed"),
            _ => {
                if let Some(paid) = order.paid_at {
                    push(paid, "order.completed", "Order completed", "success");
                }
            }
        }
        if order.refunded_minor > 0 {
            push(order.created_at, "order.refunded", "Order refunded", "success");
        }
        entries.extend(log_entries(&order.log, Some(&order.id)).into_iter().map(|v| (order.created_at, v)));
    }
    entries.sort_by_key(|e| std::cmp::Reverse(e.0));
    let items: Vec<LogEntryOut> = entries
        .into_iter()
        .enumerate()
        .map(|(i, (_, mut v))| {
            v.id = i as i64 + 1;
            v
        })
        .collect();
    Ok(items)
}
