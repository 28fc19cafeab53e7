//! Short answers of the selling endpoints: a checkout made, a subscription
//! changed or cancelled, and the preview of a change.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// `POST /checkout/`: where to send the payer.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutCreatedOut {
    pub checkout_url: String,
    pub checkout_session_id: String,
}

/// `POST /subscriptions/{id}/update/`: the subscription that carries on.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionChangedOut {
    pub subscription_id: String,
}

/// A confirmation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageOut {
    pub message: String,
}

/// A line of a previewed invoice.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviewLineOut {
    pub description: String,
    #[schema(value_type = f64)]
    pub amount: Value,
    pub amount_units: i64,
}

/// The invoice after a change.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NextInvoiceOut {
    #[schema(value_type = f64)]
    pub amount_due: Value,
    pub amount_due_units: i64,
    pub next_payment_attempt: Option<String>,
    pub line_items: Vec<PreviewLineOut>,
}

/// `POST /subscriptions/{id}/update/preview/`: what a change would cost.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePreviewOut {
    pub currency: String,
    #[schema(value_type = f64)]
    pub recurring_amount: Value,
    pub recurring_amount_units: i64,
    #[schema(value_type = f64)]
    pub amount_charged_immediately: Value,
    pub amount_charged_immediately_units: i64,
    pub next_invoice: NextInvoiceOut,
}
