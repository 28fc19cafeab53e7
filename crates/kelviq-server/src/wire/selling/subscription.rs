//! Subscriptions and one-time charges as the API shows them.

use super::{date_opt, time_opt, ProductRef, Renderer};
use crate::error::ServiceResult;
use crate::wire::catalog::FeatureOut;
use kelviq_core::billing::{amount_text, SubStatus, Subscription};
use kelviq_core::casing::camelize;
use kelviq_core::catalog::FeatureType;
use kelviq_core::periods::recurrence_fields;
use kelviq_core::timefmt::{date, iso_seconds};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A plan as a record names it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlanRefOut {
    pub name: String,
    pub identifier: String,
    pub version: i64,
}

/// A purchased quantity of a feature.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QuantityOut {
    pub identifier: String,
    pub quantity: u64,
}

/// A feature as a subscription's plan grants it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanFeatureOut {
    #[serde(flatten)]
    pub feature: FeatureOut,
    pub reset: Option<String>,
    pub reset_time: Option<String>,
    /// The granted value; a BOOLEAN feature is granted by being listed, and has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    pub hard_limit: bool,
}

/// A plan change waiting for the period end.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledChangeOut {
    pub plan_identifier: String,
    pub charge_period: String,
    pub amount: String,
    pub effective_at: Option<String>,
}

/// The product of a subscription: its name; of a one-time charge: an object.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SubscriptionProduct {
    Name(Option<String>),
    Object(ChargeProductOut),
}

/// The product of a one-time charge.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChargeProductOut {
    pub name: Option<String>,
    pub id: String,
    pub identifier: Option<String>,
}

/// A subscription (or a one-time purchase), as `GET /subscriptions/{id}/` answers it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionOut {
    pub id: String,
    pub start_date: String,
    pub end_date: Option<String>,
    pub billing_period_start_time: Option<String>,
    pub billing_period_end_time: Option<String>,
    pub amount: String,
    pub amount_units: i64,
    pub recurrence: String,
    pub charge_period: String,
    pub currency: String,
    pub status: String,
    pub trial_days_remaining: i64,
    pub trial_start: Option<String>,
    pub trial_end: Option<String>,
    pub billing_type: String,
    pub recurrence_unit: Option<i64>,
    pub recurrence_type: Option<String>,
    pub next_invoice_date: Option<String>,
    pub customer_id: String,
    pub product: SubscriptionProduct,
    pub plan: PlanRefOut,
    pub features: Vec<PlanFeatureOut>,
    pub quantities: Vec<QuantityOut>,
    /// The plan's downloadable files while the subscription grants access; each `downloadUrl` is signed and works for 5 minutes.
    pub files: Vec<crate::wire::plans::PlanFileOut>,
    #[schema(value_type = Vec<Object>)]
    pub links: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub license: Vec<crate::wire::licenses::SubscriptionLicenseOut>,
    pub canceled_at: Option<String>,
    pub cancellation_reason: Option<String>,
    pub cancellation_feedback: Option<String>,
    pub cancellation_comment: Option<String>,
    pub scheduled_change: Option<ScheduledChangeOut>,
    pub credit_balance_units: i64,
    pub created_on: String,
    pub modified_on: String,
}

impl Renderer<'_> {
    /// The plan's features as the subscription object lists them.
    async fn plan_features(&mut self, plan_id: uuid::Uuid) -> ServiceResult<Vec<PlanFeatureOut>> {
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
                let ty = f.feature_type;
                let mut feature = FeatureOut::from(f);
                feature.details = camelize(serde_json::to_value(&e.details).unwrap_or_default());
                Some(PlanFeatureOut {
                    feature,
                    reset: e.details.reset.clone(),
                    reset_time: e.details.reset_time.clone(),
                    value: (ty != FeatureType::Boolean).then(|| e.details.value.clone()),
                    hard_limit: ty == FeatureType::Meter && e.details.hard_limit,
                })
            })
            .collect())
    }

    /// The plan's enabled files, with signed download links, while `s` grants access.
    async fn subscription_files(&mut self, s: &Subscription) -> ServiceResult<Vec<crate::wire::plans::PlanFileOut>> {
        if !s.status.grants() {
            return Ok(Vec::new());
        }
        let files =
            self.state.store.list_media(self.tenant, kelviq_store::MediaOwner::PlanFile, &s.plan_identifier).await?;
        let mut out = Vec::new();
        for f in files.into_iter().filter(|f| f.enabled) {
            let url = crate::media::signed_file_url(self.state, &self.base, &f).await?;
            out.push(crate::wire::plans::PlanFileOut {
                id: f.id.to_string(),
                name: f.name,
                file: url.clone(),
                ordering: f.ordering,
                enabled: f.enabled,
                download_url: url,
            });
        }
        Ok(out)
    }

    /// A subscription in the shape of `GET /subscriptions/{id}/`.
    pub async fn subscription(&mut self, s: &Subscription) -> ServiceResult<SubscriptionOut> {
        let (billing_type, unit, kind) = recurrence_fields(s.charge_period.recurrence());
        let product = self.product(s.product_id).await?;
        let features = self.plan_features(s.plan_id).await?;
        let next_invoice = match s.status {
            SubStatus::Trialing if s.cancel_at.is_none() => s.trial_end,
            SubStatus::Active | SubStatus::PastDue if s.cancel_at.is_none() && !s.is_one_time() => s.period_end,
            _ => None,
        };
        let links = match self.plan(s.plan_id).await? {
            Some(p) => p.fields.links.clone(),
            None => Vec::new(),
        };
        Ok(SubscriptionOut {
            id: s.id.to_string(),
            start_date: date(s.started_at.date_naive()),
            end_date: date_opt(s.ended_at.or(s.cancel_at)),
            billing_period_start_time: time_opt(s.period_start),
            billing_period_end_time: time_opt(s.period_end),
            amount: amount_text(s.amount_minor, &s.currency),
            amount_units: s.amount_minor,
            recurrence: s.charge_period.recurrence().to_string(),
            charge_period: s.charge_period.as_str().to_string(),
            currency: s.currency.to_ascii_lowercase(),
            status: s.status.as_str().to_string(),
            trial_days_remaining: s.trial_days_remaining(self.now),
            trial_start: time_opt(s.trial_start),
            trial_end: time_opt(s.trial_end),
            billing_type: billing_type.to_string(),
            recurrence_unit: unit,
            recurrence_type: kind,
            next_invoice_date: time_opt(next_invoice),
            customer_id: s.customer_id.clone(),
            product: SubscriptionProduct::Name(product.name),
            plan: PlanRefOut {
                name: s.plan_name.clone(),
                identifier: s.plan_identifier.clone(),
                version: s.plan_version,
            },
            features,
            quantities: s
                .features
                .iter()
                .map(|f| QuantityOut { identifier: f.identifier.clone(), quantity: f.quantity })
                .collect(),
            files: self.subscription_files(s).await?,
            links,
            license: crate::licenses::subscription_licenses(self, s.id, None).await?,
            canceled_at: time_opt(s.canceled_at),
            cancellation_reason: s.cancellation_reason.clone(),
            cancellation_feedback: s.cancellation_feedback.clone(),
            cancellation_comment: s.cancellation_comment.clone(),
            scheduled_change: s.pending_change.as_ref().map(|c| ScheduledChangeOut {
                plan_identifier: c.plan_identifier.clone(),
                charge_period: c.charge_period.as_str().to_string(),
                amount: amount_text(c.amount_minor, &s.currency),
                effective_at: time_opt(s.period_end),
            }),
            credit_balance_units: s.credit_minor,
            created_on: iso_seconds(s.created_at),
            modified_on: iso_seconds(s.modified_at),
        })
    }

    /// A one-time charge as `POST /charges/` answers it: the subscription
    /// shape with the product as an object.
    pub async fn charge(&mut self, s: &Subscription) -> ServiceResult<SubscriptionOut> {
        let mut out = self.subscription(s).await?;
        let ProductRef { id, identifier, name, .. } = self.product(s.product_id).await?;
        out.product = SubscriptionProduct::Object(ChargeProductOut { name, id, identifier });
        out.features = Vec::new();
        Ok(out)
    }
}
